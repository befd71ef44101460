"""Installed model versions under ``<profile>/models``: staged, checked, switched atomically.

Layout::

    <profile>/models/.staging/<tmp>/          downloads and unpacking, never loaded from
    <profile>/models/<id>/<version>/          one verified package per version
    <profile>/models/<id>/current             {"version", "previous", "pinned"}, replaced atomically
    <profile>/models/<id>/shadow              {"version", "rollout_id"}: run, never shown

A new version is unpacked and checked entirely inside ``.staging`` (package hashes, the
package's own self-test), moved next to the others with one rename, and becomes the one in
use when ``current`` is replaced (``os.replace``, atomic on every platform). A crash at any
point leaves the previous ``current`` valid. The previous version stays for one-click rollback.
A rollout in shadow mode installs its candidate the same way (verified, self-tested) but points
``shadow`` at it instead: the workstation runs it beside the shown model and only reports it.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

POINTER = "current"
SHADOW = "shadow"
STAGING = ".staging"
MAX_UNPACKED_BYTES = 8 * 2**30
MAX_MEMBERS = 10_000

HealthCheck = Callable[[Path], tuple[bool, str]]
_P = TypeVar("_P")


class ModelInstallError(Exception):
    """A package that cannot be installed, or a rollback that cannot be done; names why."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(f"model {model_id!r}: {reason}; the installed model is unchanged")
        self.model_id, self.reason = model_id, reason


@dataclass(frozen=True)
class Pointer:
    version: str
    previous: str | None = None
    pinned: bool = False


@dataclass(frozen=True)
class ShadowPointer:
    version: str
    rollout_id: int


def default_health_check(package_dir: Path) -> tuple[bool, str]:
    """Load the package on the CPU and run its own self-test sample through it."""
    from models.adapters import load_model
    from models.manifest import load_package
    from models.selftest import run_selftest

    package = load_package(package_dir)
    model = load_model(package, "cpu")
    try:
        result = run_selftest(package, model)
    finally:
        model.close()
    return result.ok, result.message


def _fsync_dir(path: Path) -> None:
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / STAGING

    # --- reading -----------------------------------------------------------------------------

    def _read_pointer(
        self, model_id: str, name: str, what: str, parse: Callable[[Any], _P]
    ) -> _P | None:
        """A pointer file parsed (None when absent); an unreadable one is an error naming it."""
        path = self.root / model_id / name
        try:
            return parse(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelInstallError(model_id, f"{what} file '{path}' is unreadable: {exc}") from exc

    def pointer(self, model_id: str) -> Pointer | None:
        return self._read_pointer(
            model_id,
            POINTER,
            "pointer",
            lambda raw: Pointer(str(raw["version"]), raw.get("previous"), bool(raw.get("pinned"))),
        )

    def shadow(self, model_id: str) -> ShadowPointer | None:
        """The rollout candidate this workstation runs in shadow mode for ``model_id``."""
        return self._read_pointer(
            model_id,
            SHADOW,
            "shadow pointer",
            lambda raw: ShadowPointer(str(raw["version"]), int(raw["rollout_id"])),
        )

    def _models_with(self, pointer_name: str) -> list[str]:
        """Ids of the models whose folder holds the pointer file ``pointer_name``."""
        if not self.root.is_dir():
            return []
        return [
            child.name
            for child in sorted(self.root.iterdir())
            if not child.name.startswith(".") and (child / pointer_name).is_file()
        ]

    def shadow_package_dirs(self) -> list[tuple[Path, int]]:
        """(package folder, rollout id) of every model with a shadow version installed."""
        out: list[tuple[Path, int]] = []
        for model_id in self._models_with(SHADOW):
            ptr = self.shadow(model_id)
            if ptr is not None:
                out.append((self.root / model_id / ptr.version, ptr.rollout_id))
        return out

    def current_version(self, model_id: str) -> str | None:
        ptr = self.pointer(model_id)
        return None if ptr is None else ptr.version

    def current_dir(self, model_id: str) -> Path | None:
        ptr = self.pointer(model_id)
        return None if ptr is None else self.root / model_id / ptr.version

    def installed(self) -> dict[str, Pointer]:
        out: dict[str, Pointer] = {}
        for model_id in self._models_with(POINTER):
            ptr = self.pointer(model_id)
            if ptr is not None:
                out[model_id] = ptr
        return out

    def current_package_dirs(self) -> list[Path]:
        """The folder in use for every installed model (for model discovery)."""
        return [self.root / mid / p.version for mid, p in self.installed().items()]

    def current_state(self) -> tuple[list[Path], dict[str, ModelInstallError]]:
        """The folder in use of every installed model, and the models whose ``current``
        pointer cannot be read. One damaged pointer costs its own model's update only, not
        every model's."""
        dirs: list[Path] = []
        damaged: dict[str, ModelInstallError] = {}
        for model_id in self._models_with(POINTER):
            try:
                ptr = self.pointer(model_id)
            except ModelInstallError as exc:
                damaged[model_id] = exc
                continue
            if ptr is not None:
                dirs.append(self.root / model_id / ptr.version)
        return dirs, damaged

    # --- writing -----------------------------------------------------------------------------

    def _write_pointer(self, model_id: str, ptr: Pointer) -> None:
        data = {"version": ptr.version, "previous": ptr.previous, "pinned": ptr.pinned}
        self._write_json(model_id, POINTER, data)

    def _write_json(self, model_id: str, name: str, data: Mapping[str, object]) -> None:
        folder = self.root / model_id
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
        _fsync_dir(folder)

    def _kept(self, model_id: str) -> set[str]:
        """Versions still referenced: in use, kept for rollback, running in shadow."""
        keep: set[str] = set()
        ptr = self.pointer(model_id)
        if ptr is not None:
            keep |= {ptr.version, *([ptr.previous] if ptr.previous else [])}
        shadow = self.shadow(model_id)
        if shadow is not None:
            keep.add(shadow.version)
        return keep

    def new_staging_dir(self) -> Path:
        self.staging.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.staging, prefix="stage-"))

    def _unpack(self, model_id: str, archive: Path, dest: Path) -> None:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                if len(members) > MAX_MEMBERS:
                    raise ModelInstallError(model_id, f"package has {len(members)} entries")
                total = sum(m.size for m in members)
                if total > MAX_UNPACKED_BYTES:
                    raise ModelInstallError(model_id, f"package unpacks to {total} bytes")
                tar.extractall(dest, filter="data")  # refuses links/paths outside dest
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ModelInstallError(model_id, f"package archive cannot be unpacked: {exc}") from exc

    def _verified_in_place(
        self, model_id: str, version: str, archive: Path, health_check: HealthCheck, reuse: bool
    ) -> None:
        """Unpack, verify and self-test ``archive`` in staging, then move it to its version
        folder (``reuse``: a folder of this version already kept stays as it is)."""
        from models.manifest import PackageError, load_package

        stage = self.new_staging_dir()
        try:
            unpacked = stage / "package"
            self._unpack(model_id, archive, unpacked)
            try:
                package = load_package(unpacked)
            except PackageError as exc:
                raise ModelInstallError(
                    model_id, f"package check failed: {exc.reason} ({exc.where})"
                ) from exc
            if (package.id, package.version) != (model_id, version):
                raise ModelInstallError(
                    model_id,
                    f"package contains {package.id!r} {package.version!r}, "
                    f"but the signed channel says {model_id!r} {version!r}",
                )
            try:
                ok, message = health_check(unpacked)
            except Exception as exc:  # noqa: BLE001 - any failure of the check refuses the package
                ok, message = False, f"{type(exc).__name__}: {exc}"
            if not ok:
                raise ModelInstallError(
                    model_id, f"version {version} failed its self-test: {message}"
                )
            folder = self.root / model_id
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / version
            if reuse and final.is_dir() and version in self._kept(model_id):
                return
            if final.exists():  # an older copy of the same version (e.g. the rollback target)
                shutil.rmtree(final)
            os.rename(unpacked, final)
            _fsync_dir(folder)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def install(
        self,
        model_id: str,
        version: str,
        archive: Path,
        health_check: HealthCheck = default_health_check,
    ) -> Pointer:
        """Install ``archive`` (verified, self-tested) and switch to it atomically."""
        self._verified_in_place(model_id, version, archive, health_check, reuse=False)
        old = self.pointer(model_id)
        ptr = Pointer(
            version,
            old.version if old and old.version != version else (old.previous if old else None),
        )
        self._write_pointer(model_id, ptr)
        self._prune(model_id, keep=self._kept(model_id))
        return ptr

    def install_shadow(
        self,
        model_id: str,
        version: str,
        archive: Path,
        rollout_id: int,
        health_check: HealthCheck = default_health_check,
    ) -> ShadowPointer:
        """Install ``archive`` as the model's shadow for ``rollout_id``: verified and
        self-tested like any update, run beside the version in use, never shown."""
        self._verified_in_place(model_id, version, archive, health_check, reuse=True)
        ptr = ShadowPointer(version, rollout_id)
        self._write_json(model_id, SHADOW, {"version": version, "rollout_id": rollout_id})
        self._prune(model_id, keep=self._kept(model_id))
        return ptr

    def _prune(self, model_id: str, keep: set[str]) -> None:
        for child in (self.root / model_id).iterdir():
            if child.is_dir() and child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)

    def rollback(self, model_id: str) -> Pointer:
        """Switch back to the previous version (verified again) and pin it until unpinned."""
        from models.manifest import PackageError, load_package

        ptr = self.pointer(model_id)
        if ptr is None:
            raise ModelInstallError(model_id, "is not installed by sync, nothing to roll back")
        if not ptr.previous:
            raise ModelInstallError(model_id, f"version {ptr.version} has no previous version kept")
        prev_dir = self.root / model_id / ptr.previous
        try:
            load_package(prev_dir)
        except PackageError as exc:
            raise ModelInstallError(
                model_id, f"previous version {ptr.previous} no longer verifies: {exc.reason}"
            ) from exc
        new = Pointer(ptr.previous, ptr.version, pinned=True)
        self._write_pointer(model_id, new)
        return new

    def clear_shadow(self, model_id: str) -> bool:
        """Stop running a shadow version (its rollout ended); True if there was one."""
        path = self.root / model_id / SHADOW
        if not path.is_file():
            return False
        path.unlink()
        _fsync_dir(path.parent)
        self._prune(model_id, keep=self._kept(model_id))
        return True

    def unpin(self, model_id: str) -> None:
        ptr = self.pointer(model_id)
        if ptr is not None and ptr.pinned:
            self._write_pointer(model_id, Pointer(ptr.version, ptr.previous, pinned=False))
