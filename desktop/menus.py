"""Finding the window's top-level menus, for the feature modules that add actions to them."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMenu


def find_menu(window: Any, title: str) -> QMenu | None:
    """The menu bar's menu called ``title`` ("Tools" finds "&Tools"), or None."""
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and action.text().replace("&", "") == title:
            return menu
    return None
