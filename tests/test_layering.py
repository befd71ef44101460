"""The layer rules of ARCHITECTURE.md, as failing checks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "tensorflow", "keras", "transformers", "xgboost", "sklearn"}


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["core", "models"])
def test_core_and_models_never_import_qt(package: str) -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / package).rglob("*.py")
        if _all_imports(p) & {"PySide6", "PyQt5", "PyQt6", "superqt", "desktop"}
    ]
    assert offenders == []


def test_no_heavy_framework_at_module_level() -> None:
    offenders = []
    for package in ("core", "models", "desktop"):
        for p in (REPO / package).rglob("*.py"):
            if "zoo" in p.parts or "training" in p.parts:
                continue  # training scripts run standalone, never at start-up
            if _module_level_imports(p) & HEAVY:
                offenders.append(str(p.relative_to(REPO)))
    assert offenders == []


def test_startup_imports_nothing_heavy() -> None:
    code = (
        "import sys, desktop.launcher, cli, core.config;"
        f"heavy = sorted(m for m in {sorted(HEAVY | {'PySide6'})!r} if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == ""


def test_runtime_code_never_imports_the_training_scripts() -> None:
    """Installers leave models.training out (packaging/doctorai.spec): the workstation must run
    without it (the report-drafter's self-test once imported its metrics from there)."""
    offenders = []
    for package in ("core", "models", "desktop"):
        for p in (REPO / package).rglob("*.py"):
            if "training" in p.parts:
                continue
            tree = ast.parse(p.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                mods = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                )
                if any(m == "models.training" or m.startswith("models.training.") for m in mods):
                    offenders.append(str(p.relative_to(REPO)))
    assert offenders == []
