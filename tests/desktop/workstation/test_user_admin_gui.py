"""Tools > Users… and Session > Change my password… in a real signed-in window on a real
SQLCipher profile: the admin's dialog lists the accounts and disables one through a job (never on
the GUI thread), shows a refusal in the dialog, and is greyed with the reason for a radiologist;
a radiologist changes their own password; the dialogs close when the session locks."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from core.app import accounts
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.security.users import AuthError, Role
from desktop.change_password import ChangePasswordDialog
from desktop.main_window import MainWindow
from desktop.session_lock import InactivityLock
from desktop.user_admin import UserAdminDialog
from tests.desktop.workstation.helpers import PASSWORD, add_users

NEW = "orbit lantern meadow"
TEMP = "tulip kettle vanish"
Opener = Callable[[Workstation], MainWindow]


def _lock(win: MainWindow) -> InactivityLock:
    assert win.session_lock is not None
    return win.session_lock


def _cell(table: QTableWidget, row: int, column: int) -> str:
    item = table.item(row, column)
    return item.text() if item is not None else ""


def _states(dialog: UserAdminDialog) -> dict[str, str]:
    table = dialog.table
    return {_cell(table, r, 0): _cell(table, r, 2) for r in range(table.rowCount())}


def test_admin_lists_accounts_and_disables_one_in_a_job(
    qtbot: QtBot, ws: Workstation, open_window: Opener
) -> None:
    add_users(ws)
    ws.session.login("admin", PASSWORD)
    win = open_window(ws)
    actions = _lock(win).accounts
    assert actions.users_action.isEnabled()
    assert win.menus is not None
    assert actions.users_action in win.menus.tools.actions()
    threads: list[threading.Thread] = []
    real = ws.users.set_disabled

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    ws.users.set_disabled = spy  # type: ignore[method-assign]
    dialog = actions.open_users()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 4 and not dialog.busy, timeout=10_000)
    assert _states(dialog) == dict.fromkeys(["admin", "aud", "rad", "tech"], "enabled")
    headers = [dialog.table.model().headerData(c, Qt.Orientation.Horizontal) for c in range(7)]
    assert headers == [
        "Name",
        "Role",
        "State",
        "Last sign-in",
        "Failed attempts",
        "Must change",
        "2FA",
    ]

    dialog.select("rad")
    assert dialog.disable_button.text() == "Disable"
    dialog.disable_button.click()
    assert dialog.busy  # the click returned at once; the job works
    qtbot.waitUntil(
        lambda: _states(dialog).get("rad") == "disabled" and not dialog.busy, timeout=10_000
    )
    assert threads
    assert threads[0] is not threading.main_thread()
    assert dialog.message.text() == "'rad' disabled."
    assert dialog.disable_button.text() == "Enable"  # rad stays selected
    event = [
        e
        for e in ws.audit.iter_events(event_type=EventType.SECURITY_ALERT)
        if e.details.get("action") == "user-disabled"
    ][-1]
    assert (event.user, event.outcome, event.objects[0]["id"]) == ("admin", Outcome.SUCCESS, "rad")
    with pytest.raises(AuthError):
        ws.users.authenticate("rad", PASSWORD)

    # a refusal is said in the dialog, in plain words
    dialog.select("admin")
    dialog.disable_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.message.text() != "", timeout=10_000)
    assert dialog.message.text() == "An admin cannot disable their own account."

    dialog.reset_password("tech", "tulip kettle vanish")
    qtbot.waitUntil(lambda: "reset" in dialog.message.text() and not dialog.busy, timeout=10_000)
    tech = {a.username: a for a in dialog.accounts}["tech"]
    assert tech.must_change_password
    dialog.set_role("aud", Role.TECHNOLOGIST)
    qtbot.waitUntil(
        lambda: "now technologist" in dialog.message.text() and not dialog.busy, timeout=10_000
    )
    assert {a.username: a.role for a in dialog.accounts}["aud"] is Role.TECHNOLOGIST


def test_a_radiologist_sees_why_users_is_off_and_changes_their_password(
    qtbot: QtBot, ws: Workstation, open_window: Opener
) -> None:
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    actions = _lock(win).accounts
    assert not actions.users_action.isEnabled()
    assert actions.users_action.text() == "Users… (admin only)"
    assert actions.password_action.isEnabled()
    assert actions.password_action in _lock(win).menu.actions()

    dialog = actions.change_password()
    assert isinstance(dialog, ChangePasswordDialog)
    dialog.current.setText("not my password")
    dialog.new.setText(NEW)
    dialog.confirm.setText(NEW)
    assert dialog.submit()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert dialog.message.text() == "The current password is not correct."
    assert dialog.isVisible()
    dialog.current.setText(PASSWORD)
    dialog.new.setText(NEW)
    dialog.confirm.setText("something else")
    assert not dialog.submit()
    assert dialog.message.text() == "The two new passwords differ."
    dialog.current.setText(PASSWORD)
    dialog.new.setText(NEW)
    dialog.confirm.setText(NEW)
    with qtbot.waitSignal(dialog.changed, timeout=10_000):
        dialog.submit()
    assert not dialog.isVisible()
    assert ws.users.authenticate("rad", NEW).username == "rad"


def test_the_dialogs_close_when_the_session_locks(
    qtbot: QtBot, ws: Workstation, open_window: Opener
) -> None:
    add_users(ws)
    ws.session.login("admin", PASSWORD)
    win = open_window(ws)
    dialog = _lock(win).accounts.open_users()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.table.rowCount() == 4, timeout=10_000)
    assert dialog.isVisible()
    _lock(win).lock_now()
    assert not dialog.isVisible()
    assert not _lock(win).accounts.users_action.isEnabled()  # every action off while locked
    unlock = _lock(win).dialog
    assert unlock is not None
    unlock.reject()


def test_the_forced_change_dialog_says_why_and_offers_sign_out(
    qtbot: QtBot, ws: Workstation
) -> None:
    add_users(ws)
    ws.session.login("admin", PASSWORD)
    dialog = ChangePasswordDialog(ws, forced=True)
    qtbot.addWidget(dialog)
    assert dialog.cancel_button.text() == "Sign out"
    dialog.cancel_button.click()
    assert dialog.signed_out


def test_a_reset_account_must_change_before_using_the_window(
    qtbot: QtBot, ws: Workstation, open_window: Opener
) -> None:
    """Even when the sign-in dialog did not ask, the window asks at once; closing it signs
    out, and a lock that closes it brings it back after the unlock."""
    add_users(ws)
    ws.session.login("admin", PASSWORD)
    accounts.reset_password(ws, "rad", TEMP)
    ws.session.logout()
    assert ws.session.login("rad", TEMP).must_change_password
    win = open_window(ws)
    actions = _lock(win).accounts
    qtbot.waitUntil(lambda: actions.password_dialog is not None, timeout=5_000)
    dialog = actions.password_dialog
    assert dialog is not None
    assert dialog.forced
    assert dialog.isVisible()
    _lock(win).lock_now()  # locked while asking: closed, and asked again after the unlock
    assert not dialog.isVisible()
    unlock = _lock(win).dialog
    assert unlock is not None
    unlock.password.setText(TEMP)
    unlock.submit()
    qtbot.waitUntil(lambda: actions.password_dialog is not dialog, timeout=5_000)
    again = actions.password_dialog
    assert again is not None
    assert again.isVisible()
    again.current.setText(TEMP)
    again.new.setText(NEW)
    again.confirm.setText(NEW)
    with qtbot.waitSignal(again.changed, timeout=10_000):
        again.submit()
    assert ws.session.user is not None
    assert not ws.session.user.must_change_password
    assert not win.signed_out


def test_closing_the_forced_change_signs_out(
    qtbot: QtBot, ws: Workstation, open_window: Opener
) -> None:
    add_users(ws)
    ws.session.login("admin", PASSWORD)
    accounts.reset_password(ws, "rad", TEMP)
    ws.session.logout()
    ws.session.login("rad", TEMP)
    win = open_window(ws)
    actions = _lock(win).accounts
    qtbot.waitUntil(lambda: actions.password_dialog is not None, timeout=5_000)
    assert actions.password_dialog is not None
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=10_000)  # the window's start-up jobs
    actions.password_dialog.reject()  # Escape or the close box
    assert win.signed_out
    assert ws.session.user is None
