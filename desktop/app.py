"""Starts the workstation (called by ``desktop.launcher.main``).

Order: settings, the encrypted workstation database (refusing to start without it, the file
untouched), the login dialog, then the main window; signing out returns to the login dialog.
``--demo`` (what ``make run`` uses) makes a throw-away profile with two generated accounts and
signs in as the radiologist, so a first look needs no set-up and no default password ships.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.config import SecuritySettings, Settings

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"
DEMO_ADMIN, DEMO_USER = "demo-admin", "demo"
CANNOT_START = "DoctorAI Workstation cannot start"


def run_gui(options: Namespace) -> int:
    """Sign in, then open the main window on ``options.paths`` (``--demo``: the sample)."""
    from PySide6.QtWidgets import QApplication

    from core.config import ConfigError, SecuritySettings, load_settings_keeping_it, pin_settings
    from core.heap import freeze_long_lived
    from core.store.errors import DatabaseError
    from desktop.theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("DoctorAI Workstation")
    apply_dark_theme(app)  # type: ignore[arg-type]
    demo = bool(getattr(options, "demo", False))
    demo_dir = make_demo_profile() if demo else None
    settings: Settings | None = None
    settings_problem: str | None = None
    try:
        # a wrong user file falls back to IT's machine-wide settings (locks included), not to
        # defaults; only a wrong machine file leaves nothing trustworthy but the defaults
        settings, settings_problem = load_settings_keeping_it()
        workers, hide = settings.viewer.load_workers or None, settings.viewer.hide_patient_info
        security = settings.security
    except ConfigError as exc:
        settings_problem = f"{exc}. Default settings are used (sync off)."
        settings, workers, hide, security = None, None, False, SecuritySettings()
    if settings_problem:
        print(f"doctorai: {settings_problem}", file=sys.stderr)
    _start_logging(settings)
    pin_settings(settings)  # background jobs read these, not the files again
    ws = None
    try:
        try:
            ws = open_workstation(security, demo_dir)
        except DatabaseError as exc:
            print(f"doctorai: {exc}", file=sys.stderr)
            _critical(CANNOT_START, str(exc))
            return 2
        if demo and not ws.users.has_users():
            sign_in_demo(ws, kept=demo_dir is None)
        paths = list(getattr(options, "paths", []) or []) or ([str(SAMPLE)] if demo else [])
        while True:
            if ws.session.user is None and not sign_in(ws):
                return 1
            window = _open_window(ws, options, workers, hide, paths, settings)
            if settings_problem:
                _warn_later(window, "Settings problem", settings_problem)
            sync = _start_sync(window, ws, settings)
            # What start-up made lives as long as the process: out of the collector's full
            # walks, which would otherwise stall the window ~60 ms each (core.heap).
            freeze_long_lived()
            code = int(app.exec())
            if sync is not None:
                sync.stop(5.0)
            window.shutdown()
            if not window.signed_out:
                return code
            paths = []  # the next user opens their own studies
    finally:
        if ws is not None:
            if ws.session.user is not None:
                ws.session.logout()  # the session ends with the app: audited
            ws.close()
        pin_settings(None)
        if demo_dir is not None:
            remove_demo_profile(demo_dir)


def _open_window(
    ws: Workstation,
    options: Namespace,
    workers: int | None,
    hide: bool,
    paths: list[str],
    settings: Settings | None,
) -> Any:
    from desktop.main_window import MainWindow
    from desktop.pacs_panel import install_pacs
    from desktop.seg_overlay import install as install_seg_overlay

    lock_ms = int(getattr(options, "lock_check_ms", 5_000))
    window = MainWindow(
        load_workers=workers,
        ai_device=getattr(options, "device", None),
        workstation=ws,
        lock_check_ms=lock_ms,
    )
    window.state.hide_phi = hide
    install_seg_overlay(window)  # SEG masks over their source slices, SR summaries in a panel
    install_pacs(window, ws, settings)  # File > Search PACS…, Export to PACS (as the user)
    window.show()
    if paths:
        window.open_paths(paths)
    return window


def _start_logging(settings: Settings | None) -> None:
    """The rotating log file (core.logs); Help > Open log folder shows it."""
    from core.logs import setup_logging

    try:
        setup_logging(settings.logging if settings is not None else None)
    except OSError as exc:
        print(f"doctorai: no log file: {exc}", file=sys.stderr)


def _start_sync(window: Any, ws: Workstation, settings: Settings | None) -> Any:
    """Background sync with the backend (desktop.sync_worker); None when not configured."""
    if settings is None:
        return None
    from desktop.sync_worker import install_sync

    return install_sync(window, ws, settings)


def _warn_later(window: Any, title: str, text: str) -> None:
    """Shown in the window (status bar, and a dialog once the event loop runs), not only on a
    terminal the radiologist never sees."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    window.statusBar().showMessage(f"{title}: {text}", 60_000)
    QTimer.singleShot(0, lambda: QMessageBox.warning(window, title, text))


def _critical(title: str, text: str) -> None:
    from PySide6.QtWidgets import QMessageBox

    QMessageBox.critical(None, title, text)


def sign_in(ws: Workstation) -> bool:
    """The login dialog (first run: create the administrator); False when the user quits."""
    from desktop.login import LoginDialog

    return bool(LoginDialog(ws).exec()) and ws.session.user is not None


# --- the throw-away demo profile -----------------------------------------------------------
def make_demo_profile() -> Path | None:
    """A temp profile under the system temp dir, unless DOCTORAI_HOME names one explicitly
    (then that profile is used and kept)."""
    if os.environ.get("DOCTORAI_HOME"):
        return None
    path = Path(tempfile.mkdtemp(prefix="doctorai-demo-"))
    os.environ["DOCTORAI_HOME"] = str(path)
    return path


def open_workstation(security: SecuritySettings, demo_dir: Path | None) -> Workstation:
    """Open the profile's workstation. Only a throw-away demo profile may keep its key in a
    file (inside itself) when the OS has no keyring; a real profile fails with the reason."""
    from core.app.workstation import Workstation
    from core.store.errors import KeyringUnavailableError
    from core.store.keys import use_file_keyring

    try:
        return Workstation.open(security=security)
    except KeyringUnavailableError as exc:
        if demo_dir is None:
            raise
        print(
            f"doctorai: no OS keyring ({exc.reason}).\nThe throw-away demo profile keeps its "
            f"database key in a file inside itself ('{demo_dir}'), deleted on exit; a real "
            "profile never does this.",
            file=sys.stderr,
        )
    use_file_keyring(demo_dir / "demo-keyring.cfg")
    return Workstation.open(security=security)


def sign_in_demo(ws: Workstation, kept: bool = False) -> dict[str, str]:
    """Create the demo accounts with generated passwords (printed once, stored only as argon2
    hashes) and sign in as the radiologist."""
    from core.security.users import Role

    accounts = ((DEMO_ADMIN, Role.ADMIN), (DEMO_USER, Role.RADIOLOGIST))
    passwords = {name: secrets.token_urlsafe(12) for name, _ in accounts}
    for name, role in accounts:
        ws.users.create_user(name, passwords[name], role, by="demo set-up")
    if kept:
        print(
            f"DoctorAI demo accounts created in the profile '{os.environ.get('DOCTORAI_HOME')}' "
            "(KEPT: DOCTORAI_HOME was set; delete them with the admin account or remove "
            "the profile). Shown only this once:"
        )
    else:
        print(
            "DoctorAI demo profile (throw-away, removed on exit). Accounts, shown only this once:"
        )
    for name, role in accounts:
        print(f"  {name:<11} {role.value:<12} password: {passwords[name]}")
    from core.security.users import SecondFactorRequired

    try:
        ws.session.login(DEMO_USER, passwords[DEMO_USER])
    except SecondFactorRequired:  # IT's policy requires one for radiologists: it applies here too
        print("  (IT's policy requires a second factor: sign in, and enrol, in the dialog)")
    return passwords


def remove_demo_profile(path: Path) -> None:
    """Delete the throw-away profile and its keys (from whichever keyring holds them)."""
    from core.audit.chain_key import forget_chain_key
    from core.audit.head_record import forget_head
    from core.store.keys import SERVICE, key_entry_name

    forget_head(path / "doctorai.db")
    forget_chain_key(path / "doctorai.db")
    try:
        import keyring

        keyring.delete_password(SERVICE, key_entry_name(path / "doctorai.db"))
    except Exception:  # noqa: BLE001 - the entry may never have been written
        pass
    shutil.rmtree(path, ignore_errors=True)
    os.environ.pop("DOCTORAI_HOME", None)
