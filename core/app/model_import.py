"""Use case: import a model made elsewhere (an ONNX file with its description, a MONAI bundle)
into the profile's models folder.

It changes what the radiologists' results may come from, so a person needs the manage-models
permission, as for installing or rolling back a signed update (core.app.model_admin). The
package is built and verified by models.importers in the store's staging area, then installed
by ``ModelStore.install`` (the same staging, hash check, self-test and atomic switch as a
signed update), and the import is audited in the importing user's name.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType
from core.inference.model_store import ModelInstallError, ModelStore, Pointer
from core.security.users import Permission


@dataclass(frozen=True)
class ImportedModel:
    model_id: str
    version: str
    kind: str  # "onnx" | "monai-bundle"
    path: Path  # the installed package folder
    previous: str | None
    notes: list[str]


def _refuse_installed(store: ModelStore, model_id: str, version: str, others: list[Path]) -> None:
    """Refuse an id+version already installed, and an id that a package outside the store
    (the shipped zoo, IT's folders) provides: the import would silently replace it."""
    from models.discovery import package_dirs
    from models.manifest import PackageError, read_manifest

    if (store.root / model_id / version).is_dir():
        raise ModelInstallError(
            model_id, f"version {version} is already installed (give the import a new version)"
        )
    for folder in package_dirs(others):
        try:
            manifest, _ = read_manifest(folder)
        except PackageError:
            continue
        if manifest.id == model_id:
            raise ModelInstallError(
                model_id,
                f"a package with this id is already installed at '{folder}' "
                f"(version {manifest.version}): give the imported model another id",
            )


def import_model(
    ws: Workstation,
    store: ModelStore,
    source: Path,
    *,
    describe: Path | None = None,
    other_roots: list[Path] | None = None,
) -> ImportedModel:
    """Build, verify and install ``source``; raises PermissionDenied, ModelImportError
    (what the importer cannot describe, naming the piece and the file) or ModelInstallError.
    ``other_roots``: the folders of packages not managed by ``store`` (default: the app's)."""
    from models.importers import prepare

    actor = ws.require(Permission.MANAGE_MODELS)
    plan = prepare(source, describe)
    if other_roots is None:
        from core.inference.catalog import model_roots

        managed = {p.resolve() for p in store.current_package_dirs()}
        other_roots = [r for r in model_roots() if r.resolve() not in managed]
    other_roots = [r for r in other_roots if r.resolve() != store.root.resolve()]
    _refuse_installed(store, plan.id, plan.version, other_roots)
    stage = store.new_staging_dir()
    try:
        package = plan.build(stage / "package")
        archive = stage / "package.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(package.path, arcname=".")
        pointer: Pointer = store.install(plan.id, plan.version, archive)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    ws.record(
        EventType.MODEL_INSTALLED,
        Participants().add("model", f"{plan.id}@{plan.version}"),
        action="imported",
        source=plan.kind,
        source_name=source.name,
        imported_by=actor.user,
        previous=pointer.previous,
    )
    return ImportedModel(
        plan.id,
        plan.version,
        plan.kind,
        store.root / plan.id / plan.version,
        pointer.previous,
        list(plan.notes),
    )
