"""Two-factor sign-in in the window: the enrolment panel (QR code, key, first code), the
recovery codes shown once, and Session > Two-factor sign-in… (enrol, new recovery codes).

The rules live in core.security.totp and the use cases in core.app.sign_in; everything that
hashes (argon2) or writes runs as a ``JobRunner`` job, never on the GUI thread. The secret and
the codes exist only in these widgets while they are shown; they are never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from core.app.sign_in import (
    begin_enrolment,
    finish_enrolment,
    new_recovery_codes,
    second_factor_status,
)
from core.app.workstation import Workstation
from core.security.totp import Enrolment, MfaStatus
from desktop.workers import ErrorSink, JobContext, JobRunner

REFUSED = "color: #ff8a80;"


def plain(exc: BaseException) -> str:
    """'two-factor code not accepted' -> 'Two-factor code not accepted.'"""
    text = str(exc) or type(exc).__name__
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _mono() -> QFont:
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSize(font.pointSize() + 2)
    return font


def code_field(name: str) -> QLineEdit:
    field = QLineEdit()
    field.setObjectName(name)
    field.setPlaceholderText("123456")
    field.setMaxLength(16)  # 6 digits, or a recovery code such as abcde-fghij
    field.setFont(_mono())
    return field


class EnrolPanel(QWidget):
    """The QR code of a started enrolment, its key for typing by hand, and the first code."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.intro = QLabel(
            "Scan this QR code with an authenticator app on your phone (for example FreeOTP, "
            "Google or Microsoft Authenticator), or add the key by hand. Then type the 6-digit "
            "code the app shows."
        )
        self.intro.setWordWrap(True)
        self.qr = QLabel()
        self.qr.setObjectName("qrCode")
        self.qr.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr.setStyleSheet("background: white; padding: 4px;")
        self.key = QLabel()
        self.key.setObjectName("enrolKey")
        self.key.setFont(_mono())
        self.key.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.key.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.code = code_field("enrolCode")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.intro)
        col.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addWidget(self.key)
        col.addWidget(QLabel("Code from the app"))
        col.addWidget(self.code)

    def show_enrolment(self, enrolment: Enrolment, png: bytes) -> None:
        pixmap = QPixmap()
        pixmap.loadFromData(png, "PNG")
        self.qr.setPixmap(pixmap)
        secret = enrolment.secret
        self.key.setText("key: " + " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)))
        self.code.clear()
        self.code.setFocus()

    def forget(self) -> None:
        self.qr.clear()
        self.key.clear()
        self.code.clear()


class RecoveryCodesPanel(QWidget):
    """Ten one-time codes shown once, with an "I have saved them" confirmation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        intro = QLabel(
            "<b>Your recovery codes.</b> Each signs in once in place of a code when the phone "
            "is lost. They are shown only now: print them or write them down and keep them "
            "somewhere safe, away from the phone."
        )
        intro.setWordWrap(True)
        self.codes = QPlainTextEdit()
        self.codes.setObjectName("recoveryCodes")
        self.codes.setReadOnly(True)
        self.codes.setFont(_mono())
        self.codes.setFixedHeight(self.codes.fontMetrics().lineSpacing() * 5 + 16)
        self.saved = QCheckBox("I have saved them")
        self.saved.setObjectName("savedCodes")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(intro)
        col.addWidget(self.codes)
        col.addWidget(self.saved)

    def show_codes(self, codes: list[str] | tuple[str, ...]) -> None:
        pairs = [codes[i : i + 2] for i in range(0, len(codes), 2)]
        self.codes.setPlainText("\n".join("    ".join(p) for p in pairs))
        self.saved.setChecked(False)

    def forget(self) -> None:
        self.codes.clear()
        self.saved.setChecked(False)


def begin_job(_ctx: JobContext, ws: Workstation) -> tuple[Enrolment, bytes]:
    enrolment = begin_enrolment(ws)
    return enrolment, enrolment.qr_png()


def _call(_ctx: JobContext, use_case: Callable[..., Any], *args: Any) -> Any:
    return use_case(*args)


class TwoFactorDialog(QDialog):
    """Session > Two-factor sign-in…: the signed-in account's status; set up an authenticator
    app, or new recovery codes (the old ones stop working)."""

    def __init__(
        self, ws: Workstation, runner: JobRunner | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.runner = runner or JobRunner(ErrorSink(self), self)
        self.busy = False
        self.enrolment: Enrolment | None = None
        self.mfa: MfaStatus | None = None  # read in a job when the dialog opens
        self.setWindowTitle("DoctorAI Workstation - Two-factor sign-in")
        self.setObjectName("twoFactorDialog")
        self.setModal(True)
        self.setMinimumWidth(460)
        self.status = QLabel("Reading…")
        self.status.setObjectName("twoFactorStatus")
        self.status.setWordWrap(True)
        self.enrol_panel = EnrolPanel()
        self.codes_panel = RecoveryCodesPanel()
        self.pages = QStackedWidget()
        for page in (QWidget(), self.enrol_panel, self.codes_panel):
            self.pages.addWidget(page)
        self.message = QLabel("")
        self.message.setObjectName("twoFactorMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(REFUSED)
        self.enrol_button = QPushButton("Set up an authenticator app…")
        self.enrol_button.clicked.connect(self.start_enrolment)
        self.codes_button = QPushButton("New recovery codes…")
        self.codes_button.clicked.connect(self.renew_codes)
        self.ok_button = QPushButton("Confirm")
        self.ok_button.clicked.connect(self.submit)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QDialogButtonBox()
        for button in (self.enrol_button, self.codes_button, self.ok_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.close_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.saved = self.codes_panel.saved
        self.saved.toggled.connect(self._update_buttons)
        col = QVBoxLayout(self)
        col.addWidget(QLabel("<h3>Two-factor sign-in</h3>"))
        col.addWidget(self.status)
        col.addWidget(self.pages)
        col.addWidget(self.message)
        col.addWidget(buttons)
        self._update_buttons()
        self.refresh()

    # --- jobs ------------------------------------------------------------------------------
    def _run(
        self, what: str, func: Callable[..., Any], *args: Any, then: Callable[[Any], None]
    ) -> None:
        self._set_busy(True)
        self.message.setText("")

        def done(value: Any) -> None:
            self._set_busy(False)
            then(value)

        def failed(exc: BaseException) -> None:
            self._set_busy(False)
            self.message.setText(plain(exc))

        self.runner.start(what, func, *args, on_result=done, on_error=failed)

    def refresh(self) -> None:
        user = self.ws.session.user
        if user is None:
            self.status.setText("Nobody is signed in.")
            return
        self._run(
            "Two-factor status",
            _call,
            second_factor_status,
            self.ws,
            user.username,
            then=self._show_status,
        )

    def _show_status(self, status: MfaStatus) -> None:
        self.mfa = status
        if status.enrolled:
            self.status.setText(
                "Two-factor sign-in is <b>on</b>: the code of your authenticator app is asked "
                f"for at sign-in and unlock. {status.recovery_codes_left} recovery code(s) left."
            )
        else:
            self.status.setText(
                "Two-factor sign-in is <b>off</b>: only your password protects this account."
            )
        self._update_buttons()

    def start_enrolment(self) -> None:
        self._run("Two-factor enrolment", begin_job, self.ws, then=self._show_enrolment)

    def _show_enrolment(self, value: tuple[Enrolment, bytes]) -> None:
        self.enrolment, png = value
        self.enrol_panel.show_enrolment(self.enrolment, png)
        self.pages.setCurrentWidget(self.enrol_panel)
        self._update_buttons()

    def submit(self) -> None:
        """Confirm the enrolment with its first code, or close once the codes are saved."""
        if self.busy:
            return
        if self.pages.currentWidget() is self.codes_panel:
            if self.saved.isChecked():
                self.codes_panel.forget()
                self.accept()
            return
        if self.enrolment is None:
            return
        enrolment = self.enrolment
        self._run(
            "Two-factor confirmation",
            _call,
            finish_enrolment,
            self.ws,
            enrolment,
            "",
            self.enrol_panel.code.text().strip(),
            then=lambda _u: self._confirmed(enrolment),
        )

    def _confirmed(self, enrolment: Enrolment) -> None:
        self.enrolment = None
        self.enrol_panel.forget()
        self.status.setText("Two-factor sign-in is <b>on</b>.")
        self.codes_panel.show_codes(enrolment.recovery_codes)
        self.pages.setCurrentWidget(self.codes_panel)
        self._update_buttons()

    def renew_codes(self) -> None:
        self._run("New recovery codes", _call, new_recovery_codes, self.ws, then=self._show_codes)

    def _show_codes(self, codes: list[str]) -> None:
        self.codes_panel.show_codes(codes)
        self.pages.setCurrentWidget(self.codes_panel)
        self._update_buttons()

    # --- state -----------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    def _update_buttons(self) -> None:
        page = self.pages.currentWidget()
        status = self.mfa
        idle = not self.busy and page not in (self.enrol_panel, self.codes_panel)
        self.enrol_button.setVisible(idle and status is not None and not status.enrolled)
        self.codes_button.setVisible(idle and status is not None and status.enrolled)
        self.ok_button.setVisible(page in (self.enrol_panel, self.codes_panel))
        self.ok_button.setText("Done" if page is self.codes_panel else "Confirm")
        self.ok_button.setEnabled(
            not self.busy and (page is not self.codes_panel or self.saved.isChecked())
        )
        # the codes are shown once: closing is "Done", after saying they are saved
        self.close_button.setEnabled(not self.busy and page is not self.codes_panel)

    def reject(self) -> None:
        if self.busy:  # a running job finishes first: its result must be seen
            return
        if self.pages.currentWidget() is self.codes_panel and not self.saved.isChecked():
            self.message.setText('Tick "I have saved them" first: they are not shown again.')
            return
        self.enrol_panel.forget()
        self.codes_panel.forget()
        super().reject()

    def close_for_lock(self) -> None:
        """The session locked: nothing of the account stays on screen."""
        self.enrol_panel.forget()
        self.codes_panel.forget()
        self.done(QDialog.DialogCode.Rejected)
