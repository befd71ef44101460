"""Two-factor sign-in in the window, against a real SQLCipher profile: enrolment of a role that
requires it (QR code, first code, recovery codes shown once), the code step at sign-in and at
unlock, Session > Two-factor sign-in…, and the forced password change before the window.
Valid codes come from pyotp at the secret the dialog shows."""

from __future__ import annotations

import time

import pyotp
from PySide6.QtWidgets import QApplication

from core.app.workstation import Workstation
from core.audit.events import Actor
from core.audit.vocabulary import Outcome
from desktop.login import LoginDialog, Mode, Step
from tests.desktop.workstation.helpers import PASSWORD, add_users, auth_events

TEMP = "tulip kettle vanish"
NEW = "orbit lantern meadow"


def _submit(qtbot, dialog) -> None:  # type: ignore[no-untyped-def]
    dialog.submit()
    assert dialog.busy or dialog.step is Step.CODES  # the check runs as a job, not here
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)


def _secret(dialog: LoginDialog) -> str:
    """The key as the dialog shows it (a person types it, or scans the QR code)."""
    return dialog.enrol_panel.key.text().removeprefix("key: ").replace(" ", "")


def test_a_required_role_enrols_at_sign_in_then_gives_its_code(qtbot, ws: Workstation) -> None:
    add_users(ws)
    ws.users.settings.mfa_required_roles.append("admin")
    dialog = LoginDialog(ws)
    qtbot.addWidget(dialog)
    dialog.username.setText("admin")
    dialog.password.setText(PASSWORD)
    _submit(qtbot, dialog)
    assert dialog.step is Step.ENROL
    assert ws.session.user is None  # not signed in before the second factor
    assert not dialog.enrol_panel.qr.pixmap().isNull()
    assert dialog.enrol_panel.qr.pixmap().width() > 150
    secret = _secret(dialog)
    assert len(secret) == 32
    dialog.show()
    dialog.enrol_panel.code.setText("12345")
    _submit(qtbot, dialog)
    assert dialog.step is Step.ENROL
    assert dialog.message.text() == "Two-factor code not accepted."
    dialog.enrol_panel.code.setText(pyotp.TOTP(secret).now())
    _submit(qtbot, dialog)
    assert dialog.step is Step.CODES
    codes = dialog.codes_panel.codes.toPlainText().split()
    assert len(codes) == 10
    assert not dialog.ok_button.isEnabled()  # "I have saved them" first
    dialog.reject()
    assert dialog.isVisible()  # the codes are not shown again: no closing past them
    assert "I have saved them" in dialog.message.text()
    dialog.codes_panel.saved.setChecked(True)
    assert dialog.submit()
    assert dialog.result() == LoginDialog.DialogCode.Accepted
    assert dialog.codes_panel.codes.toPlainText() == ""  # forgotten once saved
    assert ws.session.user is not None
    assert ws.session.user.username == "admin"
    actions = [a for u, a, _ in auth_events(ws) if u == "admin"]
    assert actions[-5:] == [
        "mfa-enrolment-started",
        "mfa-code-refused",
        "login",  # the refusal, counted like a wrong password
        "mfa-enrolled",
        "login",
    ]
    ws.session.logout()

    again = LoginDialog(ws)  # the next sign-in asks for the code
    qtbot.addWidget(again)
    again.username.setText("admin")
    again.password.setText(PASSWORD)
    _submit(qtbot, again)
    assert again.step is Step.CODE
    assert ws.session.user is None
    again.code.setText(codes[0])  # a recovery code
    _submit(qtbot, again)
    assert again.result() == LoginDialog.DialogCode.Accepted
    assert auth_events(ws)[-1] == ("admin", "login", Outcome.SUCCESS)


def test_wrong_codes_lock_the_account_and_return_to_the_password(qtbot, ws: Workstation) -> None:
    add_users(ws)
    enrolment = _enrol_in_core(ws, "rad")
    dialog = LoginDialog(ws)
    qtbot.addWidget(dialog)
    dialog.username.setText("rad")
    dialog.password.setText(PASSWORD)
    _submit(qtbot, dialog)
    assert dialog.step is Step.CODE
    for _ in range(2):
        dialog.code.setText("000000" if pyotp.TOTP(enrolment).now() != "000000" else "111111")
        _submit(qtbot, dialog)
        assert dialog.step is Step.CODE
        assert dialog.message.text() == "Two-factor code not accepted."
    dialog.code.setText("999999" if pyotp.TOTP(enrolment).now() != "999999" else "888888")
    _submit(qtbot, dialog)  # the third failure (max_failed_logins=3) locks
    assert dialog.step is Step.PASSWORD
    assert "now locked for 5 minute(s)" in dialog.message.text()
    assert dialog.password.text() == ""
    assert ws.session.user is None


def _enrol_in_core(ws: Workstation, name: str, at: float | None = None) -> str:
    from core.app.sign_in import finish_enrolment, start_enrolment

    enrolment = start_enrolment(ws, name, PASSWORD)
    code = pyotp.TOTP(enrolment.secret).at(time.time() if at is None else at)
    finish_enrolment(ws, enrolment, PASSWORD, code)
    ws.session.logout()
    return enrolment.secret


def test_unlock_asks_for_the_code(qtbot, ws: Workstation, open_window) -> None:
    t0 = time.time()  # codes of fixed steps, whatever the clock does meanwhile
    add_users(ws)
    secret = _enrol_in_core(ws, "rad", t0)
    from core.app.sign_in import sign_in

    sign_in(ws, "rad", PASSWORD, pyotp.TOTP(secret).at(t0 + 30))
    win = open_window(ws)
    lock = win.session_lock
    lock.lock_action.trigger()
    dialog = lock.dialog
    assert dialog is not None
    assert dialog.mode is Mode.UNLOCK
    dialog.password.setText(PASSWORD)
    _submit(qtbot, dialog)
    assert dialog.step is Step.CODE
    assert lock.is_locked
    assert ws.session.locked  # the right password alone does not unlock
    dialog.code.setText(pyotp.TOTP(secret).at(t0 + 30))  # the sign-in's: a replay
    _submit(qtbot, dialog)
    assert ws.session.locked
    assert dialog.message.text() == "Two-factor code not accepted."
    dialog.code.setText(pyotp.TOTP(secret).at(t0 - 30))  # older than the last used
    _submit(qtbot, dialog)
    assert ws.session.locked
    codes = _recovery_codes_of(ws, "rad")
    dialog.code.setText(codes)
    _submit(qtbot, dialog)
    qtbot.waitUntil(lambda: not lock.is_locked, timeout=3000)
    assert not ws.session.locked
    failures = [a for _, a, o in auth_events(ws) if o == Outcome.MINOR_FAILURE]
    assert failures[-4:] == ["mfa-code-refused", "login"] * 2  # the replay, the older step


def _recovery_codes_of(ws: Workstation, name: str) -> str:
    """A fresh recovery code for ``name`` (renewed in the core while the window is locked)."""
    user = ws.session.user
    assert user is not None
    return ws.users.mfa.new_recovery_codes(name, Actor(user.username, user.role.value))[0]


def test_session_menu_sets_up_two_factor_and_the_lock_closes_it(
    qtbot, ws: Workstation, open_window
) -> None:
    add_users(ws)
    ws.session.login("tech", PASSWORD)
    win = open_window(ws)
    lock = win.session_lock
    assert lock.two_factor_action.text() == "Two-factor sign-in…"
    assert lock.two_factor_action in lock.menu.actions()
    lock.two_factor_action.trigger()
    dialog = lock.two_factor_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: not dialog.busy and "off" in dialog.status.text(), timeout=5000)
    assert dialog.enrol_button.isVisibleTo(dialog)
    assert not dialog.codes_button.isVisibleTo(dialog)
    dialog.enrol_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.enrolment is not None, timeout=5000)
    secret = dialog.enrolment.secret
    dialog.enrol_panel.code.setText(pyotp.TOTP(secret).now())
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.enrolment is None, timeout=5000)
    assert len(dialog.codes_panel.codes.toPlainText().split()) == 10
    assert not dialog.close_button.isEnabled()
    dialog.codes_panel.saved.setChecked(True)
    dialog.ok_button.click()
    assert not dialog.isVisible()
    assert ws.users.mfa.status("tech").enrolled

    lock.two_factor_action.trigger()  # enrolled: new recovery codes, then the lock
    dialog = lock.two_factor_dialog
    qtbot.waitUntil(lambda: not dialog.busy and "on" in dialog.status.text(), timeout=5000)
    assert "10 recovery code(s) left" in dialog.status.text()
    dialog.codes_button.click()
    qtbot.waitUntil(
        lambda: not dialog.busy and bool(dialog.codes_panel.codes.toPlainText()), timeout=5000
    )
    lock.lock_action.trigger()
    assert not dialog.isVisible()
    assert dialog.codes_panel.codes.toPlainText() == ""
    actions = [a for u, a, _ in auth_events(ws) if u == "tech"]
    assert "mfa-enrolled" in actions
    assert "mfa-recovery-codes-renewed" in actions


def test_a_password_reset_by_an_admin_is_changed_before_the_window(qtbot, ws: Workstation) -> None:
    add_users(ws)
    ws.users.reset_password("rad", TEMP, by=Actor("admin", "admin"))
    dialog = LoginDialog(ws)
    qtbot.addWidget(dialog)
    dialog.username.setText("rad")
    dialog.password.setText(TEMP)
    _submit(qtbot, dialog)
    change = dialog.change_password_dialog
    assert change.isVisible()
    assert change.forced
    assert dialog.result() != LoginDialog.DialogCode.Accepted  # not before the change
    change.current.setText(TEMP)
    change.new.setText(NEW)
    change.confirm.setText(NEW)
    change.submit()
    qtbot.waitUntil(lambda: dialog.result() == LoginDialog.DialogCode.Accepted, timeout=10_000)
    assert ws.session.user is not None
    assert ws.session.user.username == "rad"
    QApplication.processEvents()


def test_first_run_admin_enrols_where_the_policy_requires_it(qtbot, ws: Workstation) -> None:
    ws.users.settings.mfa_required_roles.append("admin")
    dialog = LoginDialog(ws)
    qtbot.addWidget(dialog)
    assert dialog.mode is Mode.SETUP
    dialog.username.setText("chief")
    dialog.password.setText(PASSWORD)
    dialog.confirm.setText(PASSWORD)
    _submit(qtbot, dialog)
    assert dialog.step is Step.ENROL  # the account exists; signing in needs the enrolment
    assert ws.users.has_users()
    assert ws.session.user is None
    dialog.enrol_panel.code.setText(pyotp.TOTP(_secret(dialog)).now())
    _submit(qtbot, dialog)
    assert dialog.step is Step.CODES
    dialog.codes_panel.saved.setChecked(True)
    assert dialog.submit()
    assert dialog.result() == LoginDialog.DialogCode.Accepted
    assert ws.session.user is not None
    assert ws.session.user.username == "chief"
    assert ws.users.mfa.status("chief").enrolled
