"""The login dialog: first-run administrator set-up, sign in, and unlock after a lock; with the
second factor where the account has one or IT's policy requires one of its role.

The steps: the password; then the code of the authenticator app (or a recovery code); or, for
a role that requires a second factor and has none yet, the enrolment (QR code, first code) and
the recovery codes shown once ("I have saved them"). An account whose password must be changed
(reset by an admin, or too old) changes it before the window opens. The rules (password length,
lockout, replayed codes, auditing) live in core.security; each check runs as a job (argon2 and
the database never run on the GUI thread) and a refusal is said in plain language. No default
account or password exists: the first start asks for the administrator.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from core.app.sign_in import create_first_admin, finish_enrolment, sign_in, start_enrolment, unlock
from core.app.workstation import Workstation
from core.security.totp import Enrolment, MfaError
from core.security.users import (
    MIN_PASSWORD_LENGTH,
    AccountLockedError,
    AuthError,
    SecondFactorRequired,
)
from core.store.errors import DatabaseError
from desktop.two_factor import EnrolPanel, RecoveryCodesPanel, code_field, plain
from desktop.workers import ErrorSink, JobContext, JobRunner


class Mode(Enum):
    SETUP = "setup"  # no account yet: create the administrator
    SIGN_IN = "sign-in"
    UNLOCK = "unlock"  # the session is locked: the same user re-authenticates


class Step(Enum):
    PASSWORD = "password"
    CODE = "code"  # the second factor of an enrolled account
    ENROL = "enrol"  # a role that requires a second factor and has none: set it up
    CODES = "codes"  # the recovery codes of the new enrolment, shown once


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
_CODE_TEXT = (
    "Two-factor sign-in: enter the 6-digit code your authenticator app shows now, or one of "
    "your recovery codes."
)
_ENROL_TEXT = (
    "Your role requires two-factor sign-in (IT policy) and this account has none yet: set it "
    "up now to continue."
)


def _call(_ctx: JobContext, use_case: Callable[..., Any], *args: Any) -> Any:
    return use_case(*args)


def _enrol_job(_ctx: JobContext, ws: Workstation, name: str, pw: str) -> tuple[Enrolment, bytes]:
    enrolment = start_enrolment(ws, name, pw)
    return enrolment, enrolment.qr_png()


class LoginDialog(QDialog):
    def __init__(
        self, ws: Workstation, mode: Mode | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        if mode is None:
            mode = Mode.SIGN_IN if ws.users.has_users() else Mode.SETUP
        self.mode = mode
        self.step = Step.PASSWORD
        self.signed_out = False  # unlock mode: the user chose "Sign out" instead
        self.busy = False
        self.runner = JobRunner(ErrorSink(self), self)
        self._password = ""  # held between the password and the code steps only
        self._enrolment: Enrolment | None = None
        title, intro, ok_text = _TEXT[mode]
        self._ok_text = ok_text
        self.setWindowTitle(f"DoctorAI Workstation - {title}")
        self.setObjectName("loginDialog")
        self.setModal(True)
        self.setMinimumWidth(440)

        heading = QLabel(f"<h3>{title}</h3>")
        self._intro_text = intro
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
        self.code = code_field("code")
        self.enrol_panel = EnrolPanel()
        self.codes_panel = RecoveryCodesPanel()
        self.codes_panel.saved.toggled.connect(self._update_buttons)
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
        password_page = QWidget()
        password_page.setLayout(form)
        code_page = QWidget()
        code_form = QFormLayout(code_page)
        code_form.addRow("Code", self.code)
        self.pages = QStackedWidget()
        self._page = {
            Step.PASSWORD: password_page,
            Step.CODE: code_page,
            Step.ENROL: self.enrol_panel,
            Step.CODES: self.codes_panel,
        }
        for page in self._page.values():
            self.pages.addWidget(page)
            if page is not password_page:
                page.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

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
        col.addWidget(self.pages)
        col.addWidget(self.message)
        col.addWidget(buttons)
        (self.password if mode is Mode.UNLOCK else self.username).setFocus()

    # --- the steps -------------------------------------------------------------------------
    def submit(self) -> bool:
        """Start checking the current step (a job); False when refused before it starts. On
        refusal the dialog stays open and says why; it accepts once signed in (or unlocked)."""
        if self.busy:
            return False
        if self.step is Step.CODES:
            if not self.codes_panel.saved.isChecked():
                return self._say('Tick "I have saved them" first: they are not shown again.')
            self.codes_panel.forget()
            self._signed_in()
            return True
        if self.step is Step.PASSWORD:
            return self._submit_password()
        code = (self.code if self.step is Step.CODE else self.enrol_panel.code).text().strip()
        if not code:
            return self._say("Enter the code of your authenticator app.")
        if self.step is Step.ENROL and self._enrolment is not None:
            self._start(finish_enrolment, self.ws, self._enrolment, self._password, code)
        elif self.mode is Mode.UNLOCK:
            self._start(unlock, self.ws, self._password, code)
        else:
            self._start(sign_in, self.ws, self.username.text().strip(), self._password, code)
        return True

    def _submit_password(self) -> bool:
        username, password = self.username.text().strip(), self.password.text()
        if self.mode is Mode.SETUP and password != self.confirm.text():
            return self._refuse("The two passwords differ.")
        self._password = password
        if self.mode is Mode.SETUP:
            self._start(create_first_admin, self.ws, username, password)
        elif self.mode is Mode.SIGN_IN:
            self._start(sign_in, self.ws, username, password)
        else:
            self._start(unlock, self.ws, password)
        return True

    def _start(self, use_case: Callable[..., Any], *args: Any) -> None:
        self._set_busy(True)
        self.message.setStyleSheet("")
        self.message.setText("Checking…")
        self.runner.start(
            "Sign in", _call, use_case, *args, on_result=self._passed, on_error=self._failed
        )

    def _passed(self, _value: object) -> None:
        self._set_busy(False)
        if self.step is Step.ENROL and self._enrolment is not None:
            codes = self._enrolment.recovery_codes
            self._enrolment = None
            self.enrol_panel.forget()
            self.codes_panel.show_codes(codes)
            self._go(Step.CODES, "Two-factor sign-in is set up.")
            return
        self._signed_in()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, SecondFactorRequired):
            if self.mode is Mode.SETUP:  # the account exists now: the rest is a sign-in
                self.mode = Mode.SIGN_IN
            if exc.enrol:
                self._set_busy(True)
                self.message.setText("Preparing the enrolment…")
                self.runner.start(
                    "Two-factor enrolment",
                    _enrol_job,
                    self.ws,
                    self.username.text().strip(),
                    self._password,
                    on_result=self._show_enrolment,
                    on_error=self._failed,
                )
            else:
                self._go(Step.CODE, _CODE_TEXT)
            return
        if isinstance(exc, AccountLockedError) or self.step is Step.PASSWORD:
            self._back_to_password(self._text_of(exc))
            return
        if isinstance(exc, (AuthError, MfaError, DatabaseError, OSError)):
            self._say(self._text_of(exc))
            (self.code if self.step is Step.CODE else self.enrol_panel.code).clear()
            return
        self._back_to_password(self._text_of(exc))

    def _show_enrolment(self, value: tuple[Enrolment, bytes]) -> None:
        self._set_busy(False)
        self._enrolment, png = value
        self.enrol_panel.show_enrolment(self._enrolment, png)
        self._go(Step.ENROL, _ENROL_TEXT)

    def _signed_in(self) -> None:
        """Done; an account whose password must be changed changes it first."""
        self._password = ""
        self.password.clear()
        self.confirm.clear()
        self.code.clear()
        user = self.ws.session.user
        if self.mode is not Mode.UNLOCK and user is not None and user.must_change_password:
            self._change_password_first()
            return
        self.accept()

    def _change_password_first(self) -> None:
        from desktop.change_password import ChangePasswordDialog

        dialog = ChangePasswordDialog(self.ws, self.runner, self, forced=True)
        self.change_password_dialog = dialog

        def finished(code: int) -> None:
            if code == QDialog.DialogCode.Accepted:
                self.accept()
                return
            self._set_busy(True)  # the sign-out is audited: a job, like the rest
            self.runner.start(
                "Sign out",
                _call,
                self.ws.session.logout,
                on_result=lambda _v: self._signed_out_to_change(),
                on_error=lambda exc: self._back_to_password(self._text_of(exc)),
            )

        dialog.finished.connect(finished)
        dialog.open()

    def _signed_out_to_change(self) -> None:
        self._set_busy(False)
        self._back_to_password("Signed out: the password must be changed before you continue.")

    # --- showing ---------------------------------------------------------------------------
    def _go(self, step: Step, intro: str) -> None:
        self.step = step
        for page_step, page in self._page.items():  # the stack takes the size of this page
            size = QSizePolicy.Policy.Preferred if page_step is step else QSizePolicy.Policy.Ignored
            page.setSizePolicy(size, size)
        self.pages.setCurrentWidget(self._page[step])
        self.intro.setText(intro)
        self.message.setText("")
        self._update_buttons()
        if step is Step.CODE:
            self.code.clear()
            self.code.setFocus()
        self.adjustSize()

    def _back_to_password(self, text: str) -> None:
        self._enrolment = None
        self.enrol_panel.forget()
        self.codes_panel.forget()
        self._go(Step.PASSWORD, self._intro_text)
        self._refuse(text)

    def _update_buttons(self) -> None:
        texts = {Step.CODE: "Verify", Step.ENROL: "Confirm", Step.CODES: "Continue"}
        self.ok_button.setText(texts.get(self.step, self._ok_text))
        saved = self.codes_panel.saved.isChecked()
        self.ok_button.setEnabled(not self.busy and (self.step is not Step.CODES or saved))
        self.cancel_button.setEnabled(not self.busy and self.step is not Step.CODES)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        if not busy and self.message.text() in ("Checking…", "Preparing the enrolment…"):
            self.message.setText("")
        self._update_buttons()

    def _say(self, text: str) -> bool:
        self.message.setStyleSheet("color: #ff8a80;")
        self.message.setText(text)
        return False

    def _refuse(self, text: str) -> bool:
        self._password = ""
        self.password.clear()
        self.confirm.clear()
        self._say(text)
        self.password.setFocus()
        return False

    @staticmethod
    def _text_of(exc: BaseException) -> str:
        if isinstance(exc, (DatabaseError, OSError)):
            return f"The workstation database could not be used: {exc}"
        return plain(exc)

    def _cancel(self) -> None:
        self.signed_out = self.mode is Mode.UNLOCK
        self.reject()

    def reject(self) -> None:
        if self.busy:  # a running check finishes first: its result must be seen
            return
        if self.step is Step.CODES and not self.codes_panel.saved.isChecked():
            self._say('Tick "I have saved them" first: they are not shown again.')
            return
        self._password = ""
        self.enrol_panel.forget()
        self.codes_panel.forget()
        super().reject()
