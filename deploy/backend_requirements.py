"""Write deploy/backend-requirements.txt: what the backend container installs, and nothing else.

The image cannot install the project (``pip install '.[backend]'``): the project's base
dependencies are the workstation's (Qt, VTK, DICOM codecs). So the list is generated: the
pyproject ``backend`` extra, plus every distribution that the backend's code (all of backend/,
operator pages and migrations included) and the core modules it imports actually import,
each pinned at its requirements/lock.txt version. The Dockerfile installs it with the lock as
constraints. tests/deploy/test_dockerfile.py fails when the file is out of date.

    python deploy/backend_requirements.py          # rewrite the file
    python deploy/backend_requirements.py --check  # exit 1 if it differs
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "deploy" / "backend-requirements.txt"
LOCAL_PACKAGES = ("backend", "core")


def canonical(name: str) -> str:
    """PEP 503 name, so 'PyJWT', 'pyjwt' and 'Py_JWT' compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    """'psycopg[binary]==3.3.9  # why' -> 'psycopg'."""
    return canonical(re.split(r"[\[=<>!~;\s]", line.strip(), maxsplit=1)[0])


@dataclass
class Imports:
    """Top-level third-party import names, and the core modules (dotted) reached."""

    third_party: set[str] = field(default_factory=set)
    core_modules: set[str] = field(default_factory=set)


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST) -> set[str]:
    """Every absolute module name an import statement names, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def scan(root: Path = ROOT) -> Imports:
    """The imports of backend/**/*.py and, transitively, of the core modules they import."""
    out = Imports()
    stdlib = set(sys.stdlib_module_names)
    todo = sorted((root / "backend").rglob("*.py"))
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported(ast.parse(path.read_text(), str(path))):
            top = name.split(".")[0]
            if top == "core":
                found = _module_file(root, name)  # "core.sync.wire.API_PREFIX" finds nothing
                if found is None:
                    continue
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # importing a module runs its packages too
                    module = ".".join(parts[:i])
                    out.core_modules.add(module)
                    todo.append(_module_file(root, module) or found)
            elif top not in stdlib and top not in LOCAL_PACKAGES and top != "__future__":
                out.third_party.add(top)
    return out


def distributions(import_names: set[str]) -> dict[str, str]:
    """Import name -> canonical distribution name, from what this environment has installed.
    An import no installed distribution provides is an error naming it."""
    provided = packages_distributions()
    out: dict[str, str] = {}
    for name in sorted(import_names):
        dists = provided.get(name)
        if not dists:
            raise LookupError(f"no installed distribution provides the backend's import {name!r}")
        out[name] = canonical(dists[0])
    return out


def locked(root: Path = ROOT) -> dict[str, str]:
    """Canonical name -> the pinned line of requirements/lock.txt."""
    pins: dict[str, str] = {}
    for line in (root / "requirements" / "lock.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            pins[requirement_name(line)] = line.split("#")[0].strip().split(";")[0].strip()
    return pins


def backend_extra(root: Path = ROOT) -> list[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["backend"])


def generate(root: Path = ROOT) -> str:
    """The file's text: the backend extra as written in pyproject, then the imported rest."""
    pins = locked(root)
    extra = {requirement_name(r): r.split("#")[0].strip() for r in backend_extra(root)}
    imported = set(distributions(scan(root).third_party).values()) - set(extra)
    lines = [
        "# Generated by deploy/backend_requirements.py: do not edit by hand.",
        "# The backend container's direct dependencies; pip installs them with",
        "# -c requirements/lock.txt (deploy/Dockerfile).",
        "# pyproject.toml [project.optional-dependencies] backend:",
        *[extra[n] for n in sorted(extra)],
        "# imported by backend/ (and the core modules it copies), pinned as in the lock:",
    ]
    for name in sorted(imported):
        if name not in pins:
            raise LookupError(f"the backend imports {name!r} but requirements/lock.txt has no pin")
        lines.append(pins[name])
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = generate()
    if argv[:1] == ["--check"]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
