"""ModelManager: load each model on first use, once, and keep the loaded set under a budget.

Loading imports the framework (seconds) and reads the weights, so it happens lazily, under a
per-model lock (two jobs asking for the same cold model load it once), outside the global lock
(loading one model never blocks using another). Models in use are pinned and never evicted
mid-prediction; the least recently used unpinned ones are closed when the budget is exceeded.

Guards (issue 18): a model is not run when

- its installed signed update no longer verifies (a file changed on disk since it was verified
  at install): ``package()`` raises ``UpdateRefusedError``; the shipped copy of the same id is
  not run in its place, because nobody chose to go back to it (``core.inference.catalog``);
- its last self-test failed: ``use()`` raises ``SelftestRefusedError`` until a new
  ``health_check`` passes.

When the self-test runs: at install (``ModelStore`` refuses a package that fails it), once per
process before a model's first run (``ensure_selftest``, called by ``core.app.model_runs``; it
costs one small sample on a model that the run loads anyway: 6-300 ms on this CPU against
0.02-7 s of loading), and whenever the user or ``doctorai selftest`` asks. Never at start-up:
opening the window loads no model.

Out of GPU memory while loading (or while running the self-test that follows the first load)
releases what was allocated, loads the model on the CPU for the rest of the session and keeps
a warning (``warnings()``) that every result of the model carries.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal

from core.heap import freeze_long_lived, thaw
from models.adapters.base import LoadedModel
from models.manifest import ModelPackage, PackageError
from models.selftest import SelftestResult

Loader = Callable[..., LoadedModel]


def estimated_bytes(package: ModelPackage) -> int:
    """Size of the package's weight file(s) on disk: the budget's estimate before loading."""
    weights = package.manifest.weights.rstrip("/")
    total = 0
    for rel in package.manifest.files:
        if rel == weights or rel.startswith(weights + "/"):
            try:
                total += (package.path / rel).stat().st_size
            except OSError:
                continue
    return total


def release_freed_memory() -> None:
    """Collect the closed models' reference cycles and hand freed heap pages back to the OS.

    Keras/TF and torch objects hold cycles, so a closed model's memory waits for the cyclic
    collector; and glibc keeps freed pages mapped until ``malloc_trim``, so without it the
    process RSS would ratchet up as models are cycled (measured: +3.4 MB over 5 rounds of the
    zoo, ``python -m benchmarks inference``). Runs when models are closed (eviction, which
    follows a load, and ``unload``). Loads freeze what is alive (core.heap), so the closed
    models' objects are thawed first, and what survives is frozen again after the collection.
    """
    import gc

    thaw()
    gc.collect()
    gc.freeze()
    if sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        if name:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(name).malloc_trim(0)


class ModelRefusedError(Exception):
    """An installed model that must not run now. ``kind``: "selftest", "verification" or
    "population"; ``reason``: what failed; ``remedy``: what the user or IT can do."""

    def __init__(self, model_id: str, kind: str, reason: str, remedy: str = "") -> None:
        self.model_id, self.kind, self.reason, self.remedy = model_id, kind, reason, remedy
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"model '{self.model_id}' is not run: {self.reason}"
        return f"{text}. {self.remedy}" if self.remedy else text

    def __str__(self) -> str:
        return self.message


class SelftestRefusedError(ModelRefusedError, RuntimeError):
    """The model's last self-test failed (its own sample no longer gives its own answer)."""

    def __init__(self, model_id: str, message: str) -> None:
        super().__init__(
            model_id,
            "selftest",
            f"its self-test failed ({message})",
            "Run the self-test again from the model manager or 'doctorai selftest' once the "
            "package or the device is mended; report it to IT if it fails again",
        )


class UnknownModelError(KeyError):
    """No usable package with this id; ``refused`` says why the ones found were refused."""

    def __init__(self, model_id: str, refused: Sequence[PackageError] = ()) -> None:
        super().__init__(model_id)
        self.refused = list(refused)

    def __str__(self) -> str:
        if self.refused:
            why = "; ".join(str(e) for e in self.refused)
            return f"model '{self.args[0]}' is installed but was refused: {why}"
        return f"no installed model package with id '{self.args[0]}'"


class UpdateRefusedError(UnknownModelError, ModelRefusedError):
    """The installed signed update (or imported version) of the model fails verification now:
    it is refused, and so is the model (the shipped version is not run silently in its place).
    ``imported``: where an imported version came from (its remedy is another import, not the
    signed channel), None for a signed update."""

    def __init__(self, model_id: str, error: PackageError, shipped: ModelPackage | None) -> None:
        from core.inference.catalog import imported_from

        UnknownModelError.__init__(self, model_id, [error])
        version = error.path.name  # the store's folder of the version in use
        self.imported = imported_from(error.path)
        instead = (
            f"the shipped version {shipped.version} is not run in its place"
            if shipped is not None
            else "no other version is installed"
        )
        what = "imported version" if self.imported else "signed update"
        reason = (
            f"its installed {what} {version} failed verification ({error.where}: "
            f"{error.reason}; in '{error.path}'); {instead}"
        )
        if self.imported:
            source = self.imported.get("name", "its source")
            remedy = (
                f"A file of the imported package changed on disk after it was checked at import: "
                f"report it to IT. An administrator can import '{source}' again "
                f"('doctorai models import PATH --user NAME'; the same version replaces the "
                f"changed copy)"
            )
        else:
            remedy = (
                f"A file of the update changed on disk after it was verified at install: report "
                f"it to IT. An administrator can reinstall the update ('doctorai sync models "
                f"--force {model_id}') or go back to the previous version ('doctorai sync "
                f"rollback {model_id}')"
            )
        ModelRefusedError.__init__(self, model_id, "verification", reason, remedy)
        self.error = error
        self.shipped = shipped

    def __str__(self) -> str:
        return self.message


@dataclass
class HealthRecord:
    ok: bool
    message: str
    checked_at: float
    duration_ms: float


@dataclass
class ModelStatus:
    """One row of the model manager view."""

    model_id: str
    name: str
    version: str
    framework: str
    modalities: list[str]
    demo_notice: str | None
    path: str
    loaded: bool
    device: str | None  # the framework's device name while loaded
    device_setting: str  # auto | cpu | gpu: what the next load asks for
    memory_bytes: int
    load_ms: float | None
    health: HealthRecord | None
    refused: str | None = None  # why the model is not run now (its self-test failed)
    warnings: list[str] = field(default_factory=list)  # e.g. on the CPU after a GPU OOM


@dataclass
class _Entry:
    model: LoadedModel
    load_ms: float
    pins: int = 0
    memory: int = 0


@dataclass
class _Meta:
    health: HealthRecord | None = None
    forced_cpu: bool = False
    load_count: int = 0
    warnings: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelManager:
    """Thread-safe registry of installed packages and the models currently loaded."""

    changed = Signal(str)  # model id whose status changed (loaded, evicted, health checked)

    def __init__(
        self,
        packages: list[ModelPackage],
        *,
        budget_bytes: int = 4096 * 2**20,
        device: str = "auto",
        device_overrides: dict[str, str] | None = None,
        loader: Loader | None = None,
        package_errors: list[PackageError] | None = None,
        blocked: dict[str, PackageError] | None = None,
        shipped: dict[str, ModelPackage] | None = None,
    ) -> None:
        self._packages = {p.id: p for p in packages if p.id not in (blocked or {})}
        self.package_errors = list(package_errors or [])
        # models whose installed signed update fails verification, and their shipped copies
        self.blocked = dict(blocked or {})
        self._shipped = dict(shipped or {})
        self.budget_bytes = budget_bytes
        self.device = device
        self._overrides = dict(device_overrides or {})
        self._loader = loader
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._meta = {pid: _Meta() for pid in self._packages}
        self._lock = threading.RLock()

    # -- catalogue ---------------------------------------------------------------------------
    def packages(self) -> list[ModelPackage]:
        return list(self._packages.values())

    def package(self, model_id: str) -> ModelPackage:
        if model_id in self.blocked:
            raise UpdateRefusedError(
                model_id, self.blocked[model_id], self._shipped.get(model_id)
            ) from None
        try:
            return self._packages[model_id]
        except KeyError:
            raise UnknownModelError(model_id, self.refusals(model_id)) from None

    def refused_models(self) -> dict[str, ModelRefusedError]:
        """Every model that is installed but not run now, with the reason and the remedy:
        a signed update that fails verification, a failed self-test (model manager view)."""
        out: dict[str, ModelRefusedError] = {}
        for model_id, error in self.blocked.items():
            out[model_id] = UpdateRefusedError(model_id, error, self._shipped.get(model_id))
        for model_id, meta in self._meta.items():
            if meta.health is not None and not meta.health.ok:
                out[model_id] = SelftestRefusedError(model_id, meta.health.message)
        return out

    def refusal(self, model_id: str) -> ModelRefusedError | None:
        """Why ``model_id`` would be refused now, or None (an unknown id is None too); the
        same answer as ``refused_models`` (a failed self-test first), built for this id only:
        an update refusal reads its package's files, and the view asks once per row."""
        meta = self._meta.get(model_id)
        if meta is not None and meta.health is not None and not meta.health.ok:
            return SelftestRefusedError(model_id, meta.health.message)
        error = self.blocked.get(model_id)
        if error is not None:
            return UpdateRefusedError(model_id, error, self._shipped.get(model_id))
        return None

    def warnings(self, model_id: str) -> list[str]:
        """What every result of the model must say about how it ran (a CPU fallback)."""
        meta = self._meta.get(model_id)
        return list(meta.warnings) if meta else []

    def refusals(self, model_id: str) -> list[PackageError]:
        """The packages of ``model_id`` that were refused (a signed update that no longer
        verifies, a tampered copy): the folder is named after the id, or after its version
        inside a folder named after the id (the store of signed updates)."""
        return [e for e in self.package_errors if model_id in (e.path.name, e.path.parent.name)]

    def applicable(self, modality: str, is_color: bool | None = None) -> list[ModelPackage]:
        """Image models whose manifest lists this DICOM modality (and colour, when known)."""
        from core.inference.catalog import applicable

        return applicable(self._packages.values(), modality, is_color)

    # -- devices -------------------------------------------------------------------------------
    def device_setting(self, model_id: str) -> str:
        """What this model asks for: its override, else the global setting ("cpu" after OOM)."""
        if self._meta[self.package(model_id).id].forced_cpu:
            return "cpu"
        return self._overrides.get(model_id, self.device)

    def device_override(self, model_id: str) -> str | None:
        return self._overrides.get(model_id)

    def set_device_override(self, model_id: str, device: str | None) -> None:
        """Per-model device ("auto", "cpu", "gpu"; None = follow the global setting).

        The model reloads on its new device at next use (now, if it is idle)."""
        meta = self._meta[self.package(model_id).id]
        if device is None:
            self._overrides.pop(model_id, None)
        else:
            self._overrides[model_id] = device
        meta.forced_cpu = False
        meta.warnings.clear()
        meta.health = None  # a self-test speaks for one device: run again on the new one
        self.unload(model_id)
        self.changed.emit(model_id)

    # -- loading -----------------------------------------------------------------------------
    def _load(self, package: ModelPackage, meta: _Meta) -> LoadedModel:
        from models.adapters import load_model

        loader: Loader = self._loader or load_model
        if meta.forced_cpu:  # after an out-of-GPU-memory error the CPU wins over any override
            return loader(package, "cpu", model_override=None)
        override = self._overrides.get(package.id)
        try:
            return loader(package, self.device, model_override=override)
        except Exception as exc:
            if (override or self.device) == "cpu" or not is_oom(package, exc):
                raise
        # Out of GPU memory while loading: what the failed load allocated is garbage now
        release_freed_memory()
        _empty_gpu_caches()
        model = loader(package, "cpu", model_override=None)
        self._note_cpu_fallback(package.id, meta, "while loading")
        return model

    def _note_cpu_fallback(self, model_id: str, meta: _Meta, when: str) -> None:
        meta.forced_cpu = True
        note = (
            f"model '{model_id}' ran out of GPU memory {when}; it runs on the CPU for the rest "
            "of this session"
        )
        if note not in meta.warnings:
            meta.warnings.append(note)

    @contextmanager
    def use(self, model_id: str) -> Iterator[LoadedModel]:
        """The loaded model, pinned against eviction for the duration of the block. Refused
        (``SelftestRefusedError``) while the model's last self-test is a failure."""
        health = self._meta[self.package(model_id).id].health
        if health is not None and not health.ok:
            raise SelftestRefusedError(model_id, health.message)
        with self._use(model_id) as model:
            yield model

    @contextmanager
    def _use(self, model_id: str) -> Iterator[LoadedModel]:
        package = self.package(model_id)
        meta = self._meta[model_id]
        with meta.lock:
            with self._lock:
                entry = self._entries.get(model_id)
            if entry is None:
                self._evict(incoming=estimated_bytes(package))  # make room before, not after
                start = time.perf_counter()
                model = self._load(package, meta)
                entry = _Entry(
                    model, (time.perf_counter() - start) * 1000, memory=model.memory_bytes()
                )
                meta.load_count += 1
                with self._lock:
                    self._entries[model_id] = entry
                # The framework's modules and the model live until the model is closed: out of
                # the collector's full walks, which otherwise stall the GUI (core.heap).
                freeze_long_lived()
                self.changed.emit(model_id)
            with self._lock:
                entry.pins += 1
                self._entries.move_to_end(model_id)
        self._evict()
        try:
            yield entry.model
        finally:
            with self._lock:
                entry.pins -= 1
            self._evict()

    def load_ms(self, model_id: str) -> float | None:
        with self._lock:
            entry = self._entries.get(model_id)
            return entry.load_ms if entry else None

    def load_count(self, model_id: str) -> int:
        return self._meta[self.package(model_id).id].load_count

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def loaded_bytes(self) -> int:
        with self._lock:
            return sum(e.memory for e in self._entries.values())

    def _evict(self, incoming: int = 0) -> None:
        """Close least recently used unpinned models until the loaded set (plus ``incoming``
        bytes about to be loaded) fits the budget."""
        victims: list[tuple[str, _Entry]] = []
        with self._lock:
            total = incoming + sum(e.memory for e in self._entries.values())
            for model_id in list(self._entries):  # least recently used first
                if total <= self.budget_bytes:
                    break
                entry = self._entries[model_id]
                if entry.pins:
                    continue
                del self._entries[model_id]
                total -= entry.memory
                victims.append((model_id, entry))
        for model_id, entry in victims:
            entry.model.close()
            self.changed.emit(model_id)
        if victims:
            release_freed_memory()

    def unload(self, model_id: str) -> bool:
        """Close a model now unless it is in use; returns whether it was unloaded."""
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is None or entry.pins:
                return False
            del self._entries[model_id]
        entry.model.close()
        release_freed_memory()  # its objects were frozen after its load (core.heap)
        self.changed.emit(model_id)
        return True

    def fall_back_to_cpu(self, model_id: str) -> None:
        """After an out-of-GPU-memory error: reload this model on the CPU from now on."""
        self._meta[model_id].forced_cpu = True
        deadline = time.monotonic() + 30
        while not self.unload(model_id) and model_id in self.loaded_ids():
            if time.monotonic() > deadline:  # still pinned by another job: it keeps its GPU copy
                return
            time.sleep(0.01)

    def preload(self, model_ids: list[str]) -> list[str]:
        """Load the listed models (call from a background job); returns the problems, if any."""
        problems = []
        for model_id in model_ids:
            try:
                with self.use(model_id):
                    pass
            except Exception as exc:  # noqa: BLE001 - a bad preload entry must not stop the others
                problems.append(f"preloading model '{model_id}': {exc}")
        return problems

    # -- health --------------------------------------------------------------------------------
    def ensure_selftest(self, model_id: str) -> HealthRecord:
        """The model's self-test of this session, run now if it has not run yet (loading the
        model, which its run needs anyway); raises ``SelftestRefusedError`` if it failed."""
        meta = self._meta[self.package(model_id).id]
        record = meta.health
        if record is None:
            with self._use(model_id):  # a load that fails (device, weights) says so itself
                pass
            record = self.health_check(model_id)
        if not record.ok:
            raise SelftestRefusedError(model_id, record.message)
        return record

    def health_check(self, model_id: str) -> HealthRecord:
        """Run the package's own self-test sample and compare with its stored expected output
        (also when the last one failed: this is how a mended model is let run again). Out of
        GPU memory during it counts as out of memory while loading: the CPU takes over."""
        self.package(model_id)  # an unknown or refused id raises, it has no health
        start = time.perf_counter()
        try:
            outcome = self._selftest(model_id)
            record = HealthRecord(
                outcome.ok, outcome.message, time.time(), (time.perf_counter() - start) * 1000
            )
        except Exception as exc:  # noqa: BLE001 - a failing model is a health result, not a crash
            record = HealthRecord(
                False,
                f"{type(exc).__name__}: {exc}",
                time.time(),
                (time.perf_counter() - start) * 1000,
            )
        self._meta[model_id].health = record
        self.changed.emit(model_id)
        return record

    def _selftest(self, model_id: str) -> SelftestResult:
        from models.selftest import run_selftest

        package = self.package(model_id)
        meta = self._meta[model_id]
        with self._use(model_id) as model:
            try:
                return run_selftest(package, model)
            except Exception as exc:
                if model.device == "cpu" or not is_oom(package, exc):
                    raise
        self.fall_back_to_cpu(model_id)
        self._note_cpu_fallback(model_id, meta, "while loading (its self-test)")
        with self._use(model_id) as model:
            return run_selftest(package, model)

    def status(self) -> list[ModelStatus]:
        rows = []
        with self._lock:
            for package in self._packages.values():
                entry = self._entries.get(package.id)
                m = package.manifest
                rows.append(
                    ModelStatus(
                        model_id=package.id,
                        name=m.name,
                        version=m.version,
                        framework=m.framework,
                        modalities=list(m.modalities),
                        demo_notice=m.demo_notice,
                        path=str(package.path),
                        loaded=entry is not None,
                        device=entry.model.device if entry else None,
                        device_setting=self.device_setting(package.id),
                        memory_bytes=entry.memory if entry else 0,
                        load_ms=entry.load_ms if entry else None,
                        health=self._meta[package.id].health,
                        refused=_refused_text(self._meta[package.id].health),
                        warnings=list(self._meta[package.id].warnings),
                    )
                )
        return rows

    def shutdown(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.model.close()


def _refused_text(health: HealthRecord | None) -> str | None:
    if health is None or health.ok:
        return None
    return f"self-test failed: {health.message}"


def is_oom(package: ModelPackage, exc: BaseException) -> bool:
    """The framework's own out-of-GPU-memory errors (its adapter says which)."""
    from models.adapters import get_adapter

    try:
        adapter = get_adapter(package.manifest.framework, model_id=package.id)
    except Exception:  # noqa: BLE001 - no adapter: nothing is an OOM of it
        return False
    return bool(adapter.is_out_of_memory(exc))


def _empty_gpu_caches() -> None:
    """Hand the blocks a failed GPU load cached back to the driver (torch keeps them)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    with contextlib.suppress(Exception):
        if cuda is not None and cuda.is_available():
            cuda.empty_cache()


def manager_from_settings(device: str | None = None, **kwargs: Any) -> ModelManager:
    """The manager over every installed package (shipped zoo, configured folders, profile).

    ``device`` is the global ``--device`` override. The models of
    ``settings.inference.preload`` are loaded by ``preload`` from a background job (the
    window's; the CLI loads on first use only).
    """
    from core.config import load_settings
    from core.inference.catalog import load_catalog

    settings = load_settings()
    catalog = load_catalog(verify_hashes=True)  # refuse tampered packages
    return ModelManager(
        catalog.packages,
        budget_bytes=settings.inference.memory_budget_mb * 2**20,
        device=device or settings.inference.device,
        package_errors=catalog.errors,
        blocked=catalog.blocked,
        shipped=catalog.shipped,
        **kwargs,
    )
