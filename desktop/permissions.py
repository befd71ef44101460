"""Controls the signed-in role may not use: disabled, and the reason visible where it is.

One rule for the whole window: a menu action the role may not use is disabled (greyed by the
style sheet's :disabled rules) and its text says who may use it ("Audit trail… (admin or
auditor only)"), because menus never show tooltips; a panel's disabled buttons get a visible
label under them saying why (the AI panel's "Your role (admin) may not run AI models.").
"""

from __future__ import annotations

from PySide6.QtGui import QAction

from core.security.users import ROLE_PERMISSIONS, Permission, User


def allowed_roles(permission: Permission) -> list[str]:
    """The roles that have ``permission``, in core.security.users' order."""
    return [role.value for role, granted in ROLE_PERMISSIONS.items() if permission in granted]


def only_for(permission: Permission) -> str:
    """'admin or auditor only': who may use a control gated by ``permission``."""
    roles = allowed_roles(permission)
    if not roles:
        return "no role may"
    who = roles[0] if len(roles) == 1 else f"{', '.join(roles[:-1])} or {roles[-1]}"
    return f"{who} only"


def gate_action(action: QAction, user: User | None, permission: Permission) -> bool:
    """Enable ``action`` for a user with ``permission``; otherwise disable it and put who may
    use it into its text (and status tip: the status bar shows it while the menu is open).
    Returns whether it is allowed."""
    base = action.property("baseText") or action.text()
    action.setProperty("baseText", base)
    allowed = user is not None and user.can(permission)
    action.setEnabled(allowed)
    if allowed:
        action.setText(base)
        return True
    who = f"your role ({user.role.value})" if user is not None else "nobody signed in"
    action.setText(f"{base} ({only_for(permission)})")
    reason = f"{base.rstrip('…')}: {only_for(permission)}; {who} may not use it"
    action.setToolTip(reason)
    action.setStatusTip(reason)
    return False
