"""Tools > Users…: the admin's account list and actions (add, reset password, disable/enable,
change role, unlock), and Session > Change my password… for every signed-in account.

The use cases in core.app.accounts check the permission, do the work and audit it; this module
only collects input and shows results. Every call runs as a ``JobRunner`` job (argon2 and SQL
never on the GUI thread); a refusal (no permission, the last admin, a weak password) is shown in
the dialog in plain words. The dialog closes when the session locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.app import accounts
from core.app.workstation import Workstation
from core.security.users import AccountInfo, Permission, Role, local_time
from desktop.change_password import REFUSED, ChangePasswordDialog, password_field, plain
from desktop.permissions import gate_action
from desktop.workers import ErrorSink, JobContext, JobRunner

COLUMNS = list(AccountInfo.HEADINGS)
ROLES = [r.value for r in Role]


def _call(_ctx: JobContext, use_case: Callable[..., Any], *args: Any) -> Any:
    return use_case(*args)


class AccountForm(QDialog):
    """Input for Add (name, role, password), Reset password (password) or Change role (role)."""

    def __init__(
        self, title: str, parent: QWidget, *, name: bool, role: str | None, password: bool
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("accountForm")
        self.setMinimumWidth(380)
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setObjectName("accountName")
        self.role = QComboBox()
        self.role.addItems(ROLES)
        self.password = password_field("accountPassword")
        self.confirm = password_field("accountConfirm")
        if name:
            form.addRow("User name", self.name)
        if role is not None:
            self.role.setCurrentText(role)
            form.addRow("Role", self.role)
        if password:
            form.addRow("Password", self.password)
            form.addRow("Repeat password", self.confirm)
        self.has_password = password
        self.message = QLabel("")
        self.message.setStyleSheet(REFUSED)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(self.message)
        col.addWidget(buttons)

    def submit(self) -> None:
        if self.has_password and self.password.text() != self.confirm.text():
            self.message.setText("The two passwords differ.")
            return
        self.accept()


class UserAdminDialog(QDialog):
    """The account table and its actions; ``busy`` while a job runs (buttons off)."""

    refreshed = Signal()

    def __init__(self, ws: Workstation, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.runner = runner
        self.accounts: list[AccountInfo] = []
        self.busy = False
        self.form: AccountForm | None = None
        self.setWindowTitle("DoctorAI Workstation - Users")
        self.setObjectName("userAdminDialog")
        self.resize(860, 420)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("accountsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.add_button = QPushButton("Add…")
        self.reset_button = QPushButton("Reset password…")
        self.disable_button = QPushButton("Disable")
        self.role_button = QPushButton("Change role…")
        self.unlock_button = QPushButton("Unlock")
        self.refresh_button = QPushButton("Refresh")
        close = QPushButton("Close")
        self.add_button.clicked.connect(self._ask_add)
        self.reset_button.clicked.connect(self._ask_reset)
        self.disable_button.clicked.connect(self.toggle_disabled)
        self.role_button.clicked.connect(self._ask_role)
        self.unlock_button.clicked.connect(self.unlock)
        self.refresh_button.clicked.connect(self.refresh)
        close.clicked.connect(self.close)
        self._buttons = [
            self.add_button,
            self.reset_button,
            self.disable_button,
            self.role_button,
            self.unlock_button,
            self.refresh_button,
        ]
        row = QHBoxLayout()
        for button in self._buttons:
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(close)
        self.message = QLabel("")
        self.message.setObjectName("userAdminMessage")
        self.message.setWordWrap(True)
        col = QVBoxLayout(self)
        col.addWidget(self.table, 1)
        col.addLayout(row)
        col.addWidget(self.message)
        self._update_buttons()
        self.refresh()

    # --- running use cases -----------------------------------------------------------------
    def _run(
        self,
        what: str,
        use_case: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
    ) -> None:
        self._set_busy(True)
        self.runner.start(
            what,
            _call,
            use_case,
            self.ws,
            *args,
            on_result=lambda value: self._finished(on_done, value),
            on_error=self._failed,
        )

    def _finished(self, on_done: Callable[[Any], None], value: Any) -> None:
        self._set_busy(False)
        on_done(value)

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self._say(plain(exc), refused=True)

    def _say(self, text: str, refused: bool = False) -> None:
        self.message.setStyleSheet(REFUSED if refused else "")
        self.message.setText(text)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    def _change(self, what: str, use_case: Callable[..., Any], *args: Any, done: str) -> None:
        """A change, then the list again with ``done`` said."""

        def after(_value: object) -> None:
            self._say(done)
            self.refresh(keep_message=True)

        self._run(what, use_case, *args, on_done=after)

    # --- the list --------------------------------------------------------------------------
    def refresh(self, keep_message: bool = False) -> None:
        if not keep_message:
            self._say("")
        self._run("List accounts", accounts.list_accounts, on_done=self._show)

    def _show(self, listed: list[AccountInfo]) -> None:
        chosen = self.selected()
        self.accounts = listed
        self.table.setRowCount(len(listed))
        for r, a in enumerate(listed):
            for c, text in enumerate(a.cells()):
                item = QTableWidgetItem(text)
                if c == 2 and a.state == "locked":
                    item.setToolTip(f"locked until {local_time(a.locked_until)}")
                self.table.setItem(r, c, item)
        names = [a.username for a in listed]
        if chosen is not None and chosen.username in names:
            self.table.selectRow(names.index(chosen.username))
        self._update_buttons()
        self.refreshed.emit()

    def selected(self) -> AccountInfo | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.accounts):
            return None
        return self.accounts[rows[0].row()]

    def select(self, username: str) -> None:
        names = [a.username for a in self.accounts]
        self.table.selectRow(names.index(username))

    def _update_buttons(self) -> None:
        a = self.selected()
        for button in self._buttons:
            button.setEnabled(not self.busy)
        for button in (self.reset_button, self.disable_button, self.role_button):
            button.setEnabled(not self.busy and a is not None)
        self.disable_button.setText("Enable" if a is not None and a.disabled else "Disable")
        self.unlock_button.setEnabled(
            not self.busy and a is not None and (a.state == "locked" or a.failed_logins > 0)
        )

    # --- the actions (also called by tests with their values) ------------------------------
    def add_account(self, username: str, password: str, role: Role) -> None:
        self._change(
            "Add account",
            accounts.add_account,
            username,
            password,
            role,
            done=f"Added '{username}' ({role.value}).",
        )

    def reset_password(self, username: str, password: str) -> None:
        self._change(
            "Reset password",
            accounts.reset_password,
            username,
            password,
            done=f"Password of '{username}' reset: it must be changed at the next sign-in.",
        )

    def toggle_disabled(self) -> None:
        a = self.selected()
        if a is None:
            return
        verb = "enabled" if a.disabled else "disabled"
        self._change(
            "Disable account" if not a.disabled else "Enable account",
            accounts.set_disabled,
            a.username,
            not a.disabled,
            done=f"'{a.username}' {verb}.",
        )

    def set_role(self, username: str, role: Role) -> None:
        self._change(
            "Change role",
            accounts.set_role,
            username,
            role,
            done=f"'{username}' is now {role.value} (from the next sign-in).",
        )

    def unlock(self) -> None:
        a = self.selected()
        if a is not None:
            self._change(
                "Unlock account",
                accounts.unlock_account,
                a.username,
                done=f"'{a.username}' unlocked.",
            )

    # --- input forms (window-modal, non-blocking) -------------------------------------------
    def _open_form(self, form: AccountForm, on_ok: Callable[[AccountForm], None]) -> None:
        self.form = form
        form.accepted.connect(lambda: on_ok(form))
        form.open()

    def _ask_add(self) -> None:
        form = AccountForm(
            "Add account", self, name=True, role=Role.RADIOLOGIST.value, password=True
        )
        self._open_form(
            form,
            lambda f: self.add_account(
                f.name.text().strip(), f.password.text(), Role(f.role.currentText())
            ),
        )

    def _ask_reset(self) -> None:
        a = self.selected()
        if a is not None:
            form = AccountForm(
                f"Reset the password of '{a.username}'", self, name=False, role=None, password=True
            )
            self._open_form(form, lambda f: self.reset_password(a.username, f.password.text()))

    def _ask_role(self) -> None:
        a = self.selected()
        if a is not None:
            form = AccountForm(
                f"Role of '{a.username}'", self, name=False, role=a.role.value, password=False
            )
            self._open_form(form, lambda f: self.set_role(a.username, Role(f.role.currentText())))


class AccountActions(QObject):
    """Tools > Users… (admins only; greyed with the reason for others) and Session > Change my
    password… (anyone signed in); the dialogs they open close when the session locks."""

    def __init__(
        self,
        window: QMainWindow,
        ws: Workstation,
        session_menu: QMenu,
        locked: SignalInstance | None = None,
        sign_out: Callable[[], None] | None = None,
        unlocked: SignalInstance | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.ws = ws
        runner = getattr(window, "runner", None)
        self.runner: JobRunner = (
            runner if isinstance(runner, JobRunner) else JobRunner(ErrorSink(self), self)
        )
        self.users_dialog: UserAdminDialog | None = None
        self.password_dialog: ChangePasswordDialog | None = None
        user = ws.session.user
        self.users_action = QAction("Users…", window)
        self.users_action.setObjectName("usersAction")
        self.users_action.triggered.connect(self.open_users)
        gate_action(self.users_action, user, Permission.MANAGE_USERS)
        menus = getattr(window, "menus", None)
        tools = menus.tools if menus is not None else session_menu
        tools.addSeparator()
        tools.addAction(self.users_action)
        self.password_action = QAction("Change my password…", window)
        self.password_action.setObjectName("changePasswordAction")
        self.password_action.triggered.connect(self.change_password)
        self.password_action.setEnabled(user is not None)
        session_menu.addAction(self.password_action)
        if locked is not None:
            locked.connect(self.close_dialogs)
        self._sign_out = sign_out
        if unlocked is not None:  # a lock closed the forced change: it comes back
            unlocked.connect(self.force_change)
        if user is not None and user.must_change_password:
            # the sign-in flow should have asked already; if not, nothing before the change
            QTimer.singleShot(0, self.force_change)

    def open_users(self) -> UserAdminDialog:
        if self.users_dialog is None:
            self.users_dialog = UserAdminDialog(self.ws, self.runner, self.window)
        else:
            self.users_dialog.refresh()
        self.users_dialog.show()
        self.users_dialog.raise_()
        return self.users_dialog

    def change_password(self) -> ChangePasswordDialog:
        self.password_dialog = ChangePasswordDialog(self.ws, self.runner, self.window)
        self.password_dialog.open()
        return self.password_dialog

    def force_change(self) -> ChangePasswordDialog | None:
        """The forced change (reset by an admin, or too old): change it or be signed out."""
        user = self.ws.session.user
        if user is None or not user.must_change_password:
            return None
        dialog = ChangePasswordDialog(self.ws, self.runner, self.window, forced=True)
        self.password_dialog = dialog

        def finished(_code: int) -> None:
            if dialog.signed_out and self._sign_out is not None:
                self._sign_out()

        dialog.finished.connect(finished)
        dialog.open()
        return dialog

    def close_dialogs(self, *_reason: object) -> None:
        """Locked: nothing of the accounts stays on screen, nothing can act in its name."""
        for dialog in (self.users_dialog, self.password_dialog):
            if dialog is not None and dialog.isVisible():
                dialog.done(QDialog.DialogCode.Rejected)
        if self.users_dialog is not None and self.users_dialog.form is not None:
            self.users_dialog.form.close()
