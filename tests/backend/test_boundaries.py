"""The backend shares only wire schemas with the workstation: core.sync.wire and the device
status report (core.sync.status_report, pydantic only)."""

from __future__ import annotations

import ast
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[2] / "backend"
WIRE = frozenset({"core.sync.wire", "core.sync.status_report"})


def test_backend_imports_only_wire_from_core() -> None:
    offenders = []
    for path in BACKEND.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in ("desktop", "models", "PySide6") or (top == "core" and name not in WIRE):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
