"""Automatic lock after inactivity (HIPAA 164.312(a)(2)(iii)), the manual lock and sign-out.

Any key press, click, wheel or mouse move in the application restarts the session's inactivity
clock; a timer asks the session whether it is time to lock (the rule lives in
core.security.session). Locked, the window shows nothing of the patient: the central widget and
every dock (floating ones too) are hidden, an opaque cover fills the window, the title loses the
patient name and every action (menus, shortcuts) is disabled until the same user
re-authenticates. The session itself refuses work while locked, so the cover is not the only
guard.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QMouseEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from core.app.workstation import Workstation
from desktop.login import LoginDialog, Mode
from desktop.two_factor import TwoFactorDialog
from desktop.user_admin import AccountActions
from desktop.workers import JobRunner

_ACTIVITY = {
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseMove,
    QEvent.Type.Wheel,
    QEvent.Type.TouchBegin,
}
TITLE = "DoctorAI Workstation"


class LockCover(QWidget):
    """Opaque child over the whole window; a click on it asks for the password again."""

    clicked = Signal()

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.setObjectName("lockCover")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            "#lockCover, #lockCover QLabel { background: #101418; } "
            "#lockCover QLabel { color: #cfd8dc; }"
        )
        self.label = QLabel("")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        QVBoxLayout(self).addWidget(self.label)
        window.installEventFilter(self)  # follow the window's size
        self.hide()

    def cover(self, text: str) -> None:
        self.label.setText(text)
        self._fit()
        self.show()
        self.raise_()

    def _fit(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.clicked.emit()
        event.accept()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._fit()
        return False


class InactivityLock(QObject):
    """Owns the Session menu (Lock, Sign out), the user label and the lock screen."""

    locked = Signal(str)  # reason: "inactivity" | "user"
    unlocked = Signal()
    signed_out = Signal()

    def __init__(self, window: QMainWindow, ws: Workstation, check_ms: int = 5_000) -> None:
        super().__init__(window)
        self.window = window
        self.ws = ws
        self.cover = LockCover(window)
        self.cover.clicked.connect(self.ask_unlock)
        self.dialog: LoginDialog | None = None
        self._hidden: list[QWidget] = []
        self._disabled: list[QAction] = []
        self._build_menu_and_status()
        self.timer = QTimer(self)
        self.timer.setInterval(check_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def _build_menu_and_status(self) -> None:
        user = self.ws.session.user
        who = f"{user.username} ({user.role.value})" if user else "signed out"
        menu = self.window.menuBar().addMenu("&Session")
        menu.addAction(f"Signed in: {who}").setEnabled(False)
        menu.addSeparator()
        self.lock_action = QAction("Lock", self.window)
        self.lock_action.setShortcut(QKeySequence("Ctrl+L"))
        self.lock_action.setToolTip("Lock the screen now (Ctrl+L)")
        self.lock_action.triggered.connect(self.lock_now)
        self.window.addAction(self.lock_action)
        menu.addAction(self.lock_action)
        self.sign_out_action = QAction("Sign out", self.window)
        self.sign_out_action.triggered.connect(self.sign_out)
        menu.addAction(self.sign_out_action)
        # Session > Change my password…, Tools > Users… (admin); their dialogs close on lock
        self.accounts = AccountActions(
            self.window, self.ws, menu, self.locked, self.sign_out, self.unlocked
        )
        self.two_factor_action = QAction("Two-factor sign-in…", self.window)
        self.two_factor_action.setObjectName("twoFactorAction")
        self.two_factor_action.setToolTip("Set up an authenticator app, or new recovery codes")
        self.two_factor_action.triggered.connect(self.open_two_factor)
        self.two_factor_action.setEnabled(user is not None)
        menu.addAction(self.two_factor_action)
        self.two_factor_dialog: TwoFactorDialog | None = None
        self.menu = menu
        self.user_label = QLabel(who)
        self.user_label.setObjectName("sessionUser")
        self.user_label.setToolTip("Signed-in user and role")
        self.window.statusBar().addPermanentWidget(self.user_label)

    @property
    def is_locked(self) -> bool:
        return self.cover.isVisible()

    # --- activity and the timer ------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() in _ACTIVITY and not self.ws.session.locked:
            self.ws.session.touch()
        return False

    def check(self) -> None:
        """Timer tick: lock when idle too long, or when the session was locked elsewhere."""
        if self.ws.session.lock_if_idle() or (self.ws.session.locked and not self.is_locked):
            self._show_locked("inactivity")

    def lock_now(self) -> None:
        if self.ws.session.user is None or self.ws.session.locked:
            return
        self.ws.session.lock(reason="user")
        self._show_locked("user")

    # --- hiding and showing the content ----------------------------------------------------
    def _show_locked(self, reason: str) -> None:
        if self.two_factor_dialog is not None and self.two_factor_dialog.isVisible():
            self.two_factor_dialog.close_for_lock()  # no secret or code stays on screen
        if not self.is_locked:
            self._hide_content()
        user = self.ws.session.user
        who = f"{user.username} ({user.role.value})" if user else ""
        why = "after inactivity" if reason == "inactivity" else "by the user"
        self.cover.cover(
            f"<h2>Locked</h2><p>Locked {why}. Signed in: {who}</p><p>Click to unlock.</p>"
        )
        self.locked.emit(reason)
        self.ask_unlock()

    def _hide_content(self) -> None:
        win = self.window
        central = win.centralWidget()
        docks = [d for d in win.findChildren(QDockWidget) if d.isVisible()]
        self._hidden = [w for w in (central, *docks) if w is not None and w.isVisible()]
        for widget in self._hidden:
            widget.hide()
        self._disabled = [a for a in win.findChildren(QAction) if a.isEnabled()]
        for action in self._disabled:
            action.setEnabled(False)
        win.setWindowTitle(f"{TITLE} - locked")

    def _show_content(self) -> None:
        for widget in self._hidden:
            widget.show()
        for action in self._disabled:
            action.setEnabled(True)
        self._hidden, self._disabled = [], []
        self.cover.hide()
        update_title = getattr(self.window, "_update_title", None)
        if callable(update_title):
            update_title()
        else:
            self.window.setWindowTitle(TITLE)

    # --- the second factor ----------------------------------------------------------------
    def open_two_factor(self) -> TwoFactorDialog:
        """Session > Two-factor sign-in…: enrol, or new recovery codes (jobs, not this thread)."""
        runner = getattr(self.window, "runner", None)
        self.two_factor_dialog = TwoFactorDialog(
            self.ws, runner if isinstance(runner, JobRunner) else None, self.window
        )
        self.two_factor_dialog.open()
        return self.two_factor_dialog

    # --- unlock and sign out ---------------------------------------------------------------
    def ask_unlock(self) -> LoginDialog:
        """Window-modal, non-blocking unlock dialog (the event loop keeps running)."""
        if self.dialog is not None:
            return self.dialog
        self.dialog = LoginDialog(self.ws, Mode.UNLOCK, self.window)
        self.dialog.finished.connect(self._on_dialog_finished)
        self.dialog.open()
        return self.dialog

    def _on_dialog_finished(self, _code: int) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is None:
            return
        if not self.ws.session.locked and self.ws.session.user is not None:
            self._show_content()
            self.unlocked.emit()
        elif dialog.signed_out:
            self.sign_out()
        # else: closed without unlocking: stay locked; a click on the cover asks again

    def sign_out(self) -> None:
        """Audited logout; the window closes and the app returns to the login dialog."""
        if not self.is_locked:
            self._hide_content()
            self.cover.cover("<h2>Signed out</h2>")
        self.ws.session.logout()
        self.user_label.setText("signed out")
        self.signed_out.emit()

    def stop(self) -> None:
        self.timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
