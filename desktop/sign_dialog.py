"""Sign a report, or add a signed addendum: the password again, and the second factor where
the account has one or IT requires one (as at sign-in, desktop.login).

The dialog only collects and shows; the checks are core.app.reports' (``sign_report`` /
``add_addendum`` through ``UserStore.reauthenticate``; the review of a model's unedited draft
by ``review_refusal``, asked here first so the refusal is said before the password), run as a
job by the caller through ``submit``, so argon2 never runs on the GUI thread. A refusal keeps
the dialog open with the reason; nothing is signed until the check passes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from core.app.reports import review_refusal
from core.security.users import AccountLockedError, AuthError, SecondFactorRequired
from desktop.two_factor import REFUSED, code_field, plain

#: submit(password, code or None, addendum text or None, review confirmed, on_done, on_failed)
Submit = Callable[
    [
        str,
        str | None,
        str | None,
        bool,
        Callable[[object], None],
        Callable[[BaseException], None],
    ],
    None,
]


class SignDialog(QDialog):
    """ "Sign report" or "Add addendum": password (+ code), and the addendum's text."""

    def __init__(
        self,
        submit: Submit,
        *,
        addendum: bool = False,
        unreviewed_draft: str = "",
        parent: QWidget | None = None,
    ) -> None:
        """``unreviewed_draft``: a notice when the impression is still a model's draft, unedited:
        the radiologist confirms having reviewed it before the password is checked."""
        super().__init__(parent)
        self.setObjectName("signDialog")
        self.submit_to = submit
        self.addendum = addendum
        self.busy = False
        self.signed: object | None = None  # what the use case returned, once it passed
        self.setWindowTitle("Add a signed addendum" if addendum else "Sign the report")
        intro = QLabel(
            "The addendum is signed as you when added; the signed report is not changed."
            if addendum
            else "Signing makes the report final: afterwards only an addendum can be added. "
            "Enter your password to sign."
        )
        intro.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setObjectName("addendumText")
        self.text.setPlaceholderText("Addendum")
        self.text.setVisible(addendum)
        self.reviewed = QCheckBox("I have reviewed and edited the model-drafted impression")
        self.reviewed.setObjectName("reviewedDraft")
        self.reviewed.setToolTip(unreviewed_draft)
        self.reviewed.setVisible(bool(unreviewed_draft))
        self.password = QLineEdit()
        self.password.setObjectName("signPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.code = code_field("signCode")
        self.code_label = QLabel("Code")
        self.code.hide()
        self.code_label.hide()
        self.message = QLabel("")
        self.message.setObjectName("signMessage")
        self.message.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Password", self.password)
        form.addRow(self.code_label, self.code)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Add addendum" if addendum else "Sign")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.text)
        layout.addWidget(self.reviewed)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.password.setFocus()

    def submit(self) -> bool:
        """Start the check (a job); False when refused before it starts."""
        if self.busy:
            return False
        text = self.text.toPlainText().strip() if self.addendum else None
        if self.addendum and not text:
            return self._say("Write the addendum first.")
        why = review_refusal(self.reviewed.isVisible(), self.reviewed.isChecked())
        if why is not None:  # core's rule (sign_report enforces it again), said at once
            return self._say(f"{why[0].upper()}{why[1:]}: tick the box once you have.")
        if not self.password.text():
            return self._say("Enter your password.")
        code = self.code.text().strip() if self.code.isVisible() else None
        if self.code.isVisible() and not code:
            return self._say("Enter the code of your authenticator app.")
        self._set_busy(True)
        self.message.setStyleSheet("")
        self.message.setText("Checking…")
        reviewed = self.reviewed.isVisible() and self.reviewed.isChecked()
        self.submit_to(self.password.text(), code, text, reviewed, self._passed, self._failed)
        return True

    def _passed(self, value: object) -> None:
        self._set_busy(False)
        self.signed = value
        self.password.clear()
        self.code.clear()
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, SecondFactorRequired) and not exc.enrol:
            self.code.show()
            self.code_label.show()
            self.code.setFocus()
            self.message.setStyleSheet("")
            self.message.setText(
                "Two-factor check: enter the 6-digit code your authenticator app shows now, or "
                "one of your recovery codes."
            )
            return
        if isinstance(exc, SecondFactorRequired):
            self._say(
                "Your role requires two-factor sign-in and it is not set up yet: sign out and "
                "sign in again to set it up, then sign the report."
            )
        elif isinstance(exc, AccountLockedError | AuthError):
            self.password.clear()
            self.code.clear()
            self._say(f"Not signed: {plain(exc)}")
        else:
            self._say(f"Not signed: {plain(exc)}")

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for w in (self.buttons, self.password, self.code, self.text, self.reviewed):
            w.setEnabled(not busy)

    def _say(self, text: str) -> bool:
        self.message.setStyleSheet(REFUSED)
        self.message.setText(text)
        return False

    def reject(self) -> None:
        if self.busy:  # a running check finishes first: its outcome must be seen
            return
        self.password.clear()
        super().reject()
