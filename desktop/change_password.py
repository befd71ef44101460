"""Change my password: from Session > Change my password…, and the forced change after an admin
reset the password or it grew too old (the sign-in flow opens it with ``forced=True``).

The rules (length from the settings, not the old one, the current password checked and counted
like a sign-in) live in core; this dialog collects the words, runs the use case as a job (argon2
never runs on the GUI thread) and shows a refusal in plain words.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
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

from core.app.accounts import change_own_password
from core.app.workstation import Workstation
from desktop.workers import ErrorSink, JobContext, JobRunner

REFUSED = "color: #ff8a80;"


def plain(exc: BaseException) -> str:
    """'the current password is not correct' -> 'The current password is not correct.'"""
    text = str(exc) or type(exc).__name__
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def password_field(name: str) -> QLineEdit:
    field = QLineEdit()
    field.setObjectName(name)
    field.setEchoMode(QLineEdit.EchoMode.Password)
    return field


def _change_job(_ctx: JobContext, ws: Workstation, old: str, new: str) -> None:
    change_own_password(ws, old, new)


class ChangePasswordDialog(QDialog):
    """The signed-in account's own password. ``forced``: nothing else is allowed before it
    (its cancel button says "Sign out" and sets ``signed_out``)."""

    changed = Signal()

    def __init__(
        self,
        ws: Workstation,
        runner: JobRunner | None = None,
        parent: QWidget | None = None,
        *,
        forced: bool = False,
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.runner = runner or JobRunner(ErrorSink(self), self)
        self.forced = forced
        self.signed_out = False
        self.busy = False
        user = ws.session.user
        who = user.username if user else "nobody"
        self.setWindowTitle("DoctorAI Workstation - Change password")
        self.setObjectName("changePasswordDialog")
        self.setModal(True)
        self.setMinimumWidth(440)
        need = ws.users.settings.password_min_length
        why = (
            f"The password of '{who}' must be changed before you continue: an administrator "
            "reset it, or it is older than the password policy allows."
            if forced
            else f"Change the password of '{who}'."
        )
        intro = QLabel(
            f"{why} Choose at least {need} characters, not your user name and not a common "
            "password."
        )
        intro.setWordWrap(True)
        self.current = password_field("currentPassword")
        self.new = password_field("newPassword")
        self.confirm = password_field("confirmPassword")
        form = QFormLayout()
        form.addRow("Current password", self.current)
        form.addRow("New password", self.new)
        form.addRow("Repeat new password", self.confirm)
        self.message = QLabel("")
        self.message.setObjectName("changePasswordMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(REFUSED)
        buttons = QDialogButtonBox()
        self.ok_button = QPushButton("Change password")
        self.ok_button.setDefault(True)
        buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = QPushButton("Sign out" if forced else "Cancel")
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.ok_button.clicked.connect(self.submit)
        self.cancel_button.clicked.connect(self._cancel)
        col = QVBoxLayout(self)
        col.addWidget(QLabel("<h3>Change password</h3>"))
        col.addWidget(intro)
        col.addLayout(form)
        col.addWidget(self.message)
        col.addWidget(buttons)
        self.current.setFocus()

    def submit(self) -> bool:
        """Start the change (a job); False when refused before it starts."""
        if self.busy:
            return False
        old, new = self.current.text(), self.new.text()
        if not old:
            return self._refuse("Enter your current password.")
        if new != self.confirm.text():
            return self._refuse("The two new passwords differ.")
        self._set_busy(True)
        self.message.setText("Checking…")
        self.runner.start(
            "Change password",
            _change_job,
            self.ws,
            old,
            new,
            on_result=lambda _r: self._done(),
            on_error=self._failed,
        )
        return True

    def _done(self) -> None:
        self._set_busy(False)
        for field in (self.current, self.new, self.confirm):
            field.clear()
        self.message.setText("")
        self.changed.emit()
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self._refuse(plain(exc))

    def _refuse(self, text: str) -> bool:
        for field in (self.current, self.new, self.confirm):
            field.clear()
        self.message.setText(text)
        self.current.setFocus()
        return False

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.ok_button.setEnabled(not busy)
        self.cancel_button.setEnabled(not busy)

    def _cancel(self) -> None:
        self.reject()

    def reject(self) -> None:
        """Cancel, Escape or the close box; forced, any of them signs out."""
        if self.busy:  # a running change finishes first: its result must be seen
            return
        self.signed_out = self.forced
        super().reject()
