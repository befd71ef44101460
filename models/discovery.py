"""Find model packages in a list of folders (the shipped zoo first, then configured ones)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from models.manifest import MANIFEST_NAME, ModelPackage, PackageError, load_package

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


def package_dirs(roots: Iterable[Path]) -> list[Path]:
    """Folders holding a manifest.json: each root itself or its direct children."""
    found: list[Path] = []
    for root in roots:
        if (root / MANIFEST_NAME).is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.iterdir() if (p / MANIFEST_NAME).is_file())
    return found


def discover(
    roots: Iterable[Path], *, verify_hashes: bool = False
) -> tuple[list[ModelPackage], list[PackageError]]:
    """Every package under ``roots``; a refused one goes to the error list, never raises.

    A later folder does not shadow an earlier one: the first package with an id wins and the
    duplicate is reported, so a user folder cannot silently replace a shipped model.
    """
    packages: list[ModelPackage] = []
    errors: list[PackageError] = []
    seen: dict[str, Path] = {}
    for folder in package_dirs(roots):
        try:
            package = load_package(folder, verify_hashes=verify_hashes)
        except PackageError as exc:
            errors.append(exc)
            continue
        if package.id in seen:
            errors.append(PackageError(folder, "id", f"duplicate of '{seen[package.id]}'"))
            continue
        seen[package.id] = folder
        packages.append(package)
    return packages, errors
