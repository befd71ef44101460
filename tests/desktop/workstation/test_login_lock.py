"""Login, first-run set-up, inactivity lock and sign-out, against a real SQLCipher profile
(keyrings.alt's file keyring under tmp_path, from tests/conftest.py)."""

from __future__ import annotations

import tempfile
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDockWidget

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.security.session import Session
from core.security.users import MIN_PASSWORD_LENGTH, Role
from desktop.login import LoginDialog, Mode
from desktop.main_window import MainWindow
from tests.desktop.workstation.helpers import CR, PASSWORD, Clock, add_users, auth_events, rgb


# --- the dialog ------------------------------------------------------------------------------
def _submit(qtbot, dialog: LoginDialog) -> bool:  # type: ignore[no-untyped-def]
    """Submit and wait for its check (a job off the GUI thread); True once accepted."""
    dialog.submit()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    return dialog.result() == LoginDialog.DialogCode.Accepted


def test_first_run_asks_for_the_administrator(qtbot, ws: Workstation) -> None:
    dialog = LoginDialog(ws)
    qtbot.addWidget(dialog)
    assert dialog.mode is Mode.SETUP
    assert "Create the administrator account" in dialog.windowTitle()
    assert dialog.password.text() == ""
    assert dialog.username.text() == ""
    dialog.username.setText("chief")
    dialog.password.setText(PASSWORD)
    dialog.confirm.setText(PASSWORD + "x")
    assert not _submit(qtbot, dialog)
    assert dialog.message.text() == "The two passwords differ."
    short = "a" * (MIN_PASSWORD_LENGTH - 1)
    dialog.password.setText(short)
    dialog.confirm.setText(short)
    assert not _submit(qtbot, dialog)
    assert f"at least {MIN_PASSWORD_LENGTH} characters" in dialog.message.text()
    assert not ws.users.has_users()
    dialog.password.setText(PASSWORD)
    dialog.confirm.setText(PASSWORD)
    assert _submit(qtbot, dialog)
    assert dialog.result() == LoginDialog.DialogCode.Accepted
    assert ws.session.user is not None
    assert ws.session.user.role is Role.ADMIN
    created = list(ws.audit.iter_events(event_type=EventType.SECURITY_ALERT))
    assert [(e.details["action"], e.objects[0]["id"]) for e in created] == [
        ("user-created", "chief")
    ]
    assert auth_events(ws) == [("chief", "login", Outcome.SUCCESS)]
    assert LoginDialog(ws).mode is Mode.SIGN_IN  # the next start signs in


def test_sign_in_failures_are_shown_audited_and_lock_the_account(qtbot, ws: Workstation) -> None:
    add_users(ws)
    dialog = LoginDialog(ws)
    qtbot.addWidget(dialog)
    assert dialog.mode is Mode.SIGN_IN
    dialog.username.setText("rad")
    dialog.password.setText("not the password")
    assert not _submit(qtbot, dialog)
    assert dialog.message.text() == "User name or password not accepted."
    assert dialog.password.text() == ""  # never left in the field
    assert ws.session.user is None
    for _ in range(2):  # the third failure (max_failed_logins=3) locks for 5 minutes
        dialog.password.setText("not the password")
        _submit(qtbot, dialog)
    assert "now locked for 5 minute(s)" in dialog.message.text()
    dialog.password.setText(PASSWORD)  # right password, locked account
    assert not _submit(qtbot, dialog)
    assert (
        "locked after repeated failed sign-ins; try again in 5 minute(s)" in dialog.message.text()
    )
    failures = [e for e in auth_events(ws) if e[2] == Outcome.MINOR_FAILURE]
    assert len(failures) == 4
    assert {u for u, _, _ in failures} == {"rad"}

    dialog.username.setText("tech")
    dialog.password.setText(PASSWORD)
    assert _submit(qtbot, dialog)
    assert ws.session.user is not None
    assert ws.session.user.username == "tech"
    assert auth_events(ws)[-1] == ("tech", "login", Outcome.SUCCESS)


# --- the lock --------------------------------------------------------------------------------
def test_inactivity_lock_hides_everything_and_unlock_reauthenticates(
    qtbot, ws: Workstation, open_window
) -> None:
    clock = Clock()
    ws.session = Session(ws.users, clock=clock)
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    lock = win.session_lock
    assert lock is not None
    assert lock.user_label.text() == "rad (radiologist)"
    assert win.centralWidget().isVisible()
    assert win.browser_dock.isVisible()

    clock.t += 50  # under the 1-minute timeout
    qtbot.keyClick(win.viewport, "a")  # activity restarts the inactivity clock
    clock.t += 50
    qtbot.wait(100)
    assert not lock.is_locked
    assert not ws.session.locked
    clock.t += 15  # 65 s without input
    qtbot.waitUntil(lambda: lock.is_locked, timeout=3000)
    assert ws.session.locked
    assert not win.centralWidget().isVisible()
    assert not any(d.isVisible() for d in win.findChildren(QDockWidget))
    assert win.windowTitle() == "DoctorAI Workstation - locked"
    assert not win.actions_by_name["Open files…"].isEnabled()  # no shortcut opens anything
    # nothing but the cover's colour (and its one line of text) is on screen
    pixels = rgb(win).reshape(-1, 3)
    assert (np.abs(pixels.astype(int) - (0x10, 0x14, 0x18)).sum(axis=1) <= 6).mean() > 0.97

    dialog = lock.dialog
    assert dialog is not None
    assert dialog.mode is Mode.UNLOCK
    assert dialog.username.text() == "rad"
    assert not dialog.username.isVisible()
    dialog.password.setText("not the password")
    assert not _submit(qtbot, dialog)
    assert lock.is_locked
    assert "not accepted" in dialog.message.text()
    dialog.password.setText(PASSWORD)
    assert _submit(qtbot, dialog)
    qtbot.waitUntil(lambda: not lock.is_locked, timeout=3000)
    assert not ws.session.locked
    assert win.centralWidget().isVisible()
    assert win.browser_dock.isVisible()
    assert win.actions_by_name["Open files…"].isEnabled()
    assert win.windowTitle() == "DoctorAI Workstation"
    assert auth_events(ws)[-3:] == [
        ("rad", "lock", Outcome.SUCCESS),
        ("rad", "login", Outcome.MINOR_FAILURE),
        ("rad", "login", Outcome.SUCCESS),
    ]
    lock_event = [
        e
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.details.get("action") == "lock"
    ][-1]
    assert lock_event.details["reason"] == "inactivity"


def test_manual_lock_and_sign_out(qtbot, ws: Workstation, open_window) -> None:
    add_users(ws)
    ws.session.login("tech", PASSWORD)
    win = open_window(ws)
    lock = win.session_lock
    assert lock.lock_action.shortcut().toString() == "Ctrl+L"
    lock.lock_action.trigger()
    assert lock.is_locked
    assert ws.session.locked
    assert not win.centralWidget().isVisible()
    dialog = lock.dialog
    assert dialog.cancel_button.text() == "Sign out"
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: win.signed_out, timeout=3000)
    assert ws.session.user is None
    assert [a for _, a, _ in auth_events(ws)][-3:] == ["login", "lock", "logout"]
    lock_event = [
        e
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.details.get("action") == "lock"
    ][-1]
    assert lock_event.details["reason"] == "user"


# --- run_gui ---------------------------------------------------------------------------------
def _when_modal(qtbot, act: Callable[[object], None]) -> None:
    """Act on the next modal dialog (run_gui blocks in exec())."""

    def poll() -> None:
        modal = QApplication.activeModalWidget()
        if modal is None:
            QTimer.singleShot(30, poll)
        else:
            act(modal)

    QTimer.singleShot(30, poll)


def _close_window_when_shown(seen: dict[str, object]) -> None:
    def poll() -> None:
        wins = [
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, MainWindow) and w.isVisible() and w.workstation is not None
        ]
        if (
            wins
            and not wins[-1].controller.indexing
            and "series_loaded" in wins[-1].controller.timings
        ):
            win = wins[-1]
            seen["user"] = win.workstation.session.user
            seen["slices"] = win.state.slice_count
            win.close()
        else:
            QTimer.singleShot(50, poll)

    QTimer.singleShot(50, poll)


def test_first_start_shows_the_login_before_the_window(qtbot) -> None:
    from desktop.app import run_gui

    seen: dict[str, object] = {}

    def fill(dialog) -> None:
        seen["mode"] = dialog.mode
        seen["windows"] = [
            w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()
        ]
        dialog.username.setText("chief")
        dialog.password.setText(PASSWORD)
        dialog.confirm.setText(PASSWORD)
        dialog.submit()
        _close_window_when_shown(seen)

    _when_modal(qtbot, fill)
    assert run_gui(Namespace(paths=[str(CR)], demo=False, device=None)) == 0
    assert seen["mode"] is Mode.SETUP
    assert seen["windows"] == []  # the main window opens only after the sign-in
    assert seen["user"].username == "chief"
    assert seen["user"].role is Role.ADMIN
    assert seen["slices"] == 1
    ws = Workstation.open()
    try:
        actions = [a for _, a, _ in auth_events(ws)]
        assert actions == ["login", "logout"]
    finally:
        ws.close()


def test_unopenable_database_says_how_to_recover_and_is_left_untouched(qtbot) -> None:
    import keyring

    from core.store.keys import SERVICE, key_entry_name
    from desktop.app import run_gui

    ws = Workstation.open()
    path = ws.db.path
    ws.close()
    keyring.delete_password(SERVICE, key_entry_name(path))  # the key is lost
    before = path.read_bytes()
    seen: dict[str, str] = {}

    def read_and_close(box) -> None:
        seen["title"] = box.windowTitle()
        seen["text"] = box.text()
        box.close()

    _when_modal(qtbot, read_and_close)
    assert run_gui(Namespace(paths=[], demo=False, device=None)) == 2
    assert isinstance(seen.get("text"), str)
    assert seen["title"] == "DoctorAI Workstation cannot start"
    assert f"'{path}'" in seen["text"]
    assert "doctorai backup restore" in seen["text"]
    assert path.read_bytes() == before


def test_demo_profile_without_an_os_keyring(qtbot, tmp_path: Path, monkeypatch, capsys) -> None:
    """`make run` on a desktop with no keyring daemon: the throw-away profile keeps its key in
    a file inside itself, says so, prints the generated passwords once, signs in as 'demo'."""
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    from desktop.app import run_gui

    monkeypatch.delenv("DOCTORAI_HOME")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    keyring.set_keyring(FailKeyring())
    seen: dict[str, object] = {}
    _close_window_when_shown(seen)
    assert run_gui(Namespace(paths=[str(CR)], demo=True, device=None)) == 0
    out, err = capsys.readouterr()
    assert seen["user"].username == "demo"
    assert seen["user"].role is Role.RADIOLOGIST
    assert "keeps its database key in a file inside itself" in err
    lines = [line.split() for line in out.splitlines() if "password:" in line]
    assert [(w[0], w[1]) for w in lines] == [("demo-admin", "admin"), ("demo", "radiologist")]
    assert all(len(w[-1]) >= 16 and w[-1] != "password:" for w in lines)
    assert lines[0][-1] != lines[1][-1]
    assert list((tmp_path / "tmp").iterdir()) == []  # the throw-away profile is gone


def test_a_real_profile_never_falls_back_to_a_key_file(qtbot, monkeypatch) -> None:
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    from core.paths import profile_dir
    from desktop.app import run_gui

    keyring.set_keyring(FailKeyring())
    seen: dict[str, str] = {}

    def read_and_close(box) -> None:
        seen["text"] = box.text()
        box.close()

    _when_modal(qtbot, read_and_close)
    assert run_gui(Namespace(paths=[], demo=False, device=None)) == 2
    assert "keyring" in seen["text"]
    assert not (profile_dir() / "doctorai.db").exists()


def test_sign_out_returns_to_the_login_dialog(qtbot, tmp_path: Path) -> None:
    from desktop.app import run_gui

    ws = Workstation.open()
    add_users(ws)
    ws.close()
    modes: list[Mode] = []

    def sign_in_as_rad(dialog) -> None:
        modes.append(dialog.mode)
        dialog.username.setText("rad")
        dialog.password.setText(PASSWORD)
        dialog.submit()

        def sign_out_when_shown() -> None:
            wins = [
                w
                for w in QApplication.topLevelWidgets()
                if isinstance(w, MainWindow) and w.isVisible() and w.session_lock
            ]
            if not wins:
                QTimer.singleShot(30, sign_out_when_shown)
                return
            _when_modal(qtbot, quit_login)
            wins[-1].session_lock.sign_out_action.trigger()

        QTimer.singleShot(30, sign_out_when_shown)

    def quit_login(dialog) -> None:
        modes.append(dialog.mode)
        dialog.cancel_button.click()  # "Quit"

    _when_modal(qtbot, sign_in_as_rad)
    assert run_gui(Namespace(paths=[], demo=False, device=None)) == 1
    assert modes == [Mode.SIGN_IN, Mode.SIGN_IN]
    ws = Workstation.open()
    try:
        assert [(u, a) for u, a, _ in auth_events(ws)] == [("rad", "login"), ("rad", "logout")]
    finally:
        ws.close()
