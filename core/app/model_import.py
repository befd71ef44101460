"""Use case: import a model made elsewhere (an ONNX file with its description, a MONAI bundle)
into the profile's models folder.

It changes what the radiologists' results may come from, so a person needs the manage-models
permission, as for installing or rolling back a signed update (core.app.model_admin). The
package is built and verified by models.importers in the store's staging area, then installed
by ``ModelStore.install`` (the same staging, hash check, self-test and atomic switch as a
signed update), and the import is audited in the importing user's name; so is a refused or
failed one (Model Installed, outcome minor failure, the reason). An import never replaces a
model that came by the signed channel or ships with the app: only another import of it (the
same version too, when the installed copy no longer verifies).
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType, Outcome
from core.inference.model_store import ModelInstallError, ModelStore, Pointer
from core.security.users import Permission

if TYPE_CHECKING:
    from models.importers import ImportPlan


@dataclass(frozen=True)
class ImportedModel:
    model_id: str
    version: str
    kind: str  # "onnx" | "monai-bundle"
    path: Path  # the installed package folder
    previous: str | None
    notes: list[str]


def _refuse_installed(store: ModelStore, model_id: str, version: str, others: list[Path]) -> None:
    """Refuse an id+version already installed, an id whose version in use in the store came
    by the signed channel (pulled from the backend: only that channel or a rollback changes
    it, an import would silently replace it), and an id that a package outside the store
    (the shipped zoo, IT's folders) provides. An imported model may be imported again under
    a new version."""
    from models.discovery import package_dirs
    from models.manifest import PackageError, read_manifest

    _refuse_same_version(store.root / model_id / version, model_id, version)
    current = store.current_dir(model_id)  # an unreadable pointer raises, naming the file
    if current is not None:
        try:
            installed, _ = read_manifest(current)
        except PackageError as exc:
            raise ModelInstallError(
                model_id,
                f"the installed version cannot be read ({exc}), so it is not replaced by an "
                "import: give the imported model another id",
            ) from exc
        if "imported_from" not in installed.extra:
            raise ModelInstallError(
                model_id,
                f"version {installed.version} of this id is installed by signed update at "
                f"'{current}': give the imported model another id",
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


def _refuse_same_version(folder: Path, model_id: str, version: str) -> None:
    """Refuse an id+version already installed while that copy verifies; an imported copy that
    no longer verifies (a file changed on disk: the model is blocked) may be imported again,
    which is the remedy the blocked model's message gives."""
    from core.inference.catalog import imported_from
    from models.manifest import PackageError, load_package

    if not folder.is_dir():
        return
    try:
        load_package(folder)  # schema and every file's SHA-256
    except PackageError:
        if imported_from(folder) is not None:
            return  # ModelStore.install replaces the changed copy with the verified one
    raise ModelInstallError(
        model_id, f"version {version} is already installed (give the import a new version)"
    )


def _audit_failure(
    ws: Workstation, source: Path, kind: str, model: str | None, error: Exception
) -> None:
    """A refused or failed import, in the trail: who tried, what, and why not."""
    participants = Participants()
    if model:
        participants.add("model", model)
    ws.record(
        EventType.MODEL_INSTALLED,
        participants,
        Outcome.MINOR_FAILURE,
        action="import-refused",
        source=kind,
        source_name=source.name,
        reason=str(error),
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
    (what the importer cannot describe, naming the piece and the file; also a file that
    cannot be copied or packed) or ModelInstallError. A refusal after the permission check
    is audited (Model Installed, outcome minor failure, the reason) before it is raised.
    ``other_roots``: the folders of packages not managed by ``store`` (default: the app's)."""
    from models.importers import ModelImportError

    actor = ws.require(Permission.MANAGE_MODELS)
    plan: ImportPlan | None = None
    try:
        plan = _plan(source, describe)
        pointer = _install(store, plan, other_roots)
    except OSError as exc:  # copying, packing: said as the import's failure, not a traceback
        error = ModelImportError(source, "writing the package", _os_reason(exc))
        _audit_failure(ws, source, _kind(plan), _model(plan), error)
        raise error from exc
    except (ModelImportError, ModelInstallError, tarfile.TarError) as exc:
        _audit_failure(ws, source, _kind(plan), _model(plan), exc)
        if isinstance(exc, tarfile.TarError):
            raise ModelImportError(source, "packing the package", str(exc)) from exc
        raise
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


def _os_reason(exc: OSError) -> str:
    """ "File too large: 'a' -> 'b'": the system's words and the file(s) it names."""
    if not exc.strerror:
        return str(exc)
    files = " -> ".join(f"'{f}'" for f in (exc.filename, exc.filename2) if f)
    return f"{exc.strerror}: {files}" if files else exc.strerror


def _kind(plan: ImportPlan | None) -> str:
    return plan.kind if plan is not None else "unknown"


def _model(plan: ImportPlan | None) -> str | None:
    return f"{plan.id}@{plan.version}" if plan is not None else None


def _plan(source: Path, describe: Path | None) -> ImportPlan:
    from models.importers import prepare

    return prepare(source, describe)


def _install(store: ModelStore, plan: ImportPlan, other_roots: list[Path] | None) -> Pointer:
    """Refuse what the import must not replace, build the package in staging, install it."""
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
        return store.install(plan.id, plan.version, archive)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
