"""The login dialog: first-run administrator set-up, sign in, and unlock after a lock.

The rules (password length, lockout, auditing of failures) live in core.security; this dialog
only collects the words and shows a refusal in plain language. No default account or password
exists: the first start asks for the administrator.
"""

from __future__ import annotations

from enum import Enum

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.app.sign_in import create_first_admin, sign_in, unlock
from core.app.workstation import Workstation
from core.security.users import MIN_PASSWORD_LENGTH, AuthError
from core.store.errors import DatabaseError


class Mode(Enum):
    SETUP = "setup"  # no account yet: create the administrator
    SIGN_IN = "sign-in"
    UNLOCK = "unlock"  # the session is locked: the same user re-authenticates


_TEXT = {
    Mode.SETUP: (
        "Create the administrator account",
        "This workstation has no accounts yet. The administrator manages users, models "
        f"and settings. Choose a password of at least {MIN_PASSWORD_LENGTH} characters; "
        "there is no default password.",
        "Create and sign in",
    ),
    Mode.SIGN_IN: ("Sign in", "Sign in to DoctorAI Workstation.", "Sign in"),
    Mode.UNLOCK: (
        "Unlock",
        "The workstation is locked. Enter your password to continue, or sign out.",
        "Unlock",
    ),
}


class LoginDialog(QDialog):
    def __init__(
        self, ws: Workstation, mode: Mode | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        if mode is None:
            mode = Mode.SIGN_IN if ws.users.has_users() else Mode.SETUP
        self.mode = mode
        self.signed_out = False  # unlock mode: the user chose "Sign out" instead
        title, intro, ok_text = _TEXT[mode]
        self.setWindowTitle(f"DoctorAI Workstation - {title}")
        self.setObjectName("loginDialog")
        self.setModal(True)
        self.setMinimumWidth(440)

        heading = QLabel(f"<h3>{title}</h3>")
        self.intro = QLabel(intro)
        self.intro.setWordWrap(True)
        self.username = QLineEdit()
        self.username.setObjectName("username")
        self.password = QLineEdit()
        self.password.setObjectName("password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm = QLineEdit()
        self.confirm.setObjectName("confirm")
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel("")
        self.message.setObjectName("loginMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ff8a80;")

        form = QFormLayout()
        user = ws.session.user
        if mode is Mode.UNLOCK and user is not None:
            self.username.setText(user.username)
            form.addRow("Signed in", QLabel(f"{user.username} ({user.role.value})"))
        else:
            form.addRow("User name", self.username)
        form.addRow("Password", self.password)
        if mode is Mode.SETUP:
            self.username.setPlaceholderText("e.g. admin")
            form.addRow("Repeat password", self.confirm)

        buttons = QDialogButtonBox()
        self.ok_button = QPushButton(ok_text)
        self.ok_button.setDefault(True)
        buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = QPushButton("Sign out" if mode is Mode.UNLOCK else "Quit")
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.ok_button.clicked.connect(self.submit)
        self.cancel_button.clicked.connect(self._cancel)

        col = QVBoxLayout(self)
        col.addWidget(heading)
        col.addWidget(self.intro)
        col.addLayout(form)
        col.addWidget(self.message)
        col.addWidget(buttons)
        (self.password if mode is Mode.UNLOCK else self.username).setFocus()

    def submit(self) -> bool:
        """Try the entered credentials; on refusal the dialog stays open and says why."""
        username, password = self.username.text().strip(), self.password.text()
        if self.mode is Mode.SETUP and password != self.confirm.text():
            return self._refuse("The two passwords differ.")
        try:
            if self.mode is Mode.SETUP:
                create_first_admin(self.ws, username, password)
            elif self.mode is Mode.SIGN_IN:
                sign_in(self.ws, username, password)
            else:
                unlock(self.ws, password)
        except (AuthError, ValueError) as exc:  # wrong password, locked account, too short
            return self._refuse(_plain(exc))
        except (DatabaseError, OSError) as exc:
            return self._refuse(f"The workstation database could not be used: {exc}")
        self.password.clear()
        self.confirm.clear()
        self.accept()
        return True

    def _refuse(self, text: str) -> bool:
        self.password.clear()
        self.confirm.clear()
        self.message.setText(text)
        self.password.setFocus()
        return False

    def _cancel(self) -> None:
        self.signed_out = self.mode is Mode.UNLOCK
        self.reject()


def _plain(exc: Exception) -> str:
    """'user name or password not accepted' -> 'User name or password not accepted.'"""
    text = str(exc) or "sign-in refused"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
