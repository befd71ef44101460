"""Which model packages are installed, which were refused, and which apply to a series.

Packages live in the zoo shipped with the app, the folders named in
``settings.inference.model_dirs`` and ``<profile>/models`` (in that priority order). A refused
package (bad manifest, hash mismatch, too new) is listed with its reason: a broken package must
be visible to the user, yet never stop the others from loading.

One refusal blocks more than its package: a signed update in use (``<profile>/models/<id>/
<version>`` named by ``current``) that fails verification blocks the model (``blocked``). The
shipped copy of the same id would otherwise win silently, undoing a choice the centre made
(and the update may have been what fixed it); IT decides instead: reinstall or roll back.
A model imported by ``doctorai models import`` lives in the same store and is blocked the same
way, but its remedy is another import (``imported_from`` tells the two apart).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.manifest import ModelPackage, PackageError

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    """The installed packages (first id wins) and the refused ones with their errors."""

    packages: list[ModelPackage] = field(default_factory=list)
    errors: list[PackageError] = field(default_factory=list)
    # model id -> why its signed update in use is refused; such a model does not run at all
    blocked: dict[str, PackageError] = field(default_factory=dict)
    shipped: dict[str, ModelPackage] = field(default_factory=dict)  # the copies not run instead

    def ids(self) -> list[str]:
        return [p.id for p in self.packages]

    def get(self, model_id: str) -> ModelPackage | None:
        return next((p for p in self.packages if p.id == model_id), None)

    def applicable(self, modality: str, is_color: bool | None = None) -> list[ModelPackage]:
        """Image models whose manifest lists this DICOM modality (none for an empty one)."""
        return applicable(self.packages, modality, is_color)


def applicable(
    packages: Iterable[ModelPackage], modality: str, is_color: bool | None = None
) -> list[ModelPackage]:
    """The image models among ``packages`` that declare ``modality``; with ``is_color`` known,
    not the ones made for the other kind (a colour histopathology model on a greyscale PNG)."""
    modality = modality.strip().upper()
    wanted = {True: "rgb", False: "grayscale"}.get(is_color) if is_color is not None else None
    return [
        p
        for p in packages
        if modality
        and p.manifest.input.kind == "image"
        and modality in p.manifest.modalities
        and (wanted is None or p.manifest.input.color in (None, wanted))
    ]


def imported_from(folder: Path) -> dict[str, str] | None:
    """Where an imported package came from (``extra.imported_from`` of its manifest: kind and
    source name), None for any other package. Read as plain JSON, not validated: a package
    refused for a changed file must still say it was imported, so the user is told the right
    remedy."""
    import json

    from models.manifest import MANIFEST_NAME

    try:
        raw = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    extra = raw.get("extra") if isinstance(raw, dict) else None
    origin = extra.get("imported_from") if isinstance(extra, dict) else None
    if not isinstance(origin, dict):
        return None
    return {str(k): str(v) for k, v in origin.items()}


def origin(folder: Path) -> str:
    """How the package in ``folder`` came here, in words for ``models list``: "imported",
    "signed update", "shipped" or "folder" (IT's configured folders, a drop-in)."""
    from models.discovery import ZOO_DIR

    if imported_from(folder) is not None:
        return "imported"
    if _signed_update_id(folder) is not None:
        return "signed update"
    if folder.resolve().is_relative_to(ZOO_DIR.resolve()):
        return "shipped"
    return "folder"


def model_roots() -> list[Path]:
    """Where packages are looked for, in priority order (the first package of an id wins).

    Versions installed by signed update (``doctorai sync models``) come first: the centre's
    signed channel decides which version runs, also for a model the installer shipped. Then
    the shipped zoo, IT's configured folders and packages dropped into ``<profile>/models``.
    """
    return _roots_and_damaged()[0]


def _roots_and_damaged() -> tuple[list[Path], dict[str, PackageError]]:
    """``model_roots()``, and the models whose signed-update pointer is unreadable (one
    damaged pointer costs its own model's update only, not every model's)."""
    from core.config import load_settings
    from core.inference.model_store import POINTER, ModelStore
    from core.paths import profile_dir
    from models.discovery import ZOO_DIR

    settings = load_settings()
    store = ModelStore(profile_dir() / "models")
    signed, damaged = store.current_state()
    refused = {
        model_id: PackageError(store.root / model_id / POINTER, POINTER, exc.reason)
        for model_id, exc in damaged.items()
    }
    roots = [ZOO_DIR, *(Path(d).expanduser() for d in settings.inference.model_dirs)]
    return [*signed, *roots, profile_dir() / "models"], refused


def _signed_update_id(folder: Path) -> str | None:
    """The model id when ``folder`` is the version in use of the store of signed updates
    (``<id>/<version>`` beside a ``current`` pointer naming it), else None."""
    import json

    from core.inference.model_store import POINTER

    try:
        pointer = json.loads((folder.parent / POINTER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(pointer, dict) or str(pointer.get("version")) != folder.name:
        return None
    return folder.parent.name


def _missing_updates(roots: list[Path]) -> list[PackageError]:
    """Signed updates in use whose folder or manifest is gone (discovery cannot see them)."""
    from models.manifest import MANIFEST_NAME, ManifestError

    return [
        ManifestError(root, MANIFEST_NAME, "the installed version's folder or manifest is missing")
        for root in roots
        if _signed_update_id(root) is not None and not (root / MANIFEST_NAME).is_file()
    ]


def load_catalog(roots: Iterable[Path] | None = None, *, verify_hashes: bool = True) -> Catalog:
    """Validate every package under ``roots`` (default: ``model_roots()``); never raises for a
    bad package. Hashes are checked by default so a tampered model is refused before use."""
    from models.discovery import discover

    damaged: dict[str, PackageError] = {}
    if roots is None:
        folders, damaged = _roots_and_damaged()
    else:
        folders = list(roots)
    packages, errors = discover(folders, verify_hashes=verify_hashes)
    # A damaged pointer names no version to refuse: the shipped copy runs, and the refusal is
    # listed (the window and infer say "running version ... instead"), never only logged.
    errors += [*_missing_updates(folders), *damaged.values()]
    blocked: dict[str, PackageError] = {}
    for error in errors:
        model_id = _signed_update_id(error.path)
        if model_id is not None and model_id not in blocked:
            what = "imported version" if imported_from(error.path) else "signed update"
            log.warning("model %s blocked: its %s is refused: %s", model_id, what, error)
            blocked[model_id] = error
    shipped = {p.id: p for p in packages if p.id in blocked}
    kept = [p for p in packages if p.id not in blocked]
    return Catalog(kept, errors, blocked, shipped)
