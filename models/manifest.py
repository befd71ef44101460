"""The model package format: ``manifest.json`` schema, and loading a package with full checks.

A package is a folder holding ``manifest.json`` and the files it lists, each with its SHA-256.
``load_package`` refuses anything it cannot vouch for (bad schema, a hash mismatch, a missing
or unlisted file, an app that is too old) with a ``PackageError`` that names the package path,
the field or file, and the reason, so the user (and the audit trail) learn exactly what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MANIFEST_NAME = "manifest.json"
DEMO_NOTICE = "Demo model - not for clinical use"
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:[-+][0-9A-Za-z.+-]+)?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Directories that tools create next to files and that a package never loads from.
_IGNORED_DIRS = frozenset({"__pycache__"})


class PackageError(Exception):
    """A model package was refused. ``str()`` names the package path, the field/file and why."""

    def __init__(self, path: Path | str, where: str, reason: str) -> None:
        self.path = Path(path)
        self.where = where
        self.reason = reason
        super().__init__(f"model package '{self.path}' refused: {where}: {reason}")


class ManifestError(PackageError):
    """manifest.json is missing, not JSON, or does not match the schema."""


class FileIntegrityError(PackageError):
    """A listed file is missing or its SHA-256 differs, or an unlisted file is present."""


class IncompatibleAppError(PackageError):
    """The package needs a newer app than the one running."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- preprocessing steps (applied in order by models.preprocess) -----------------------------


class WindowStep(_Strict):
    """Map [center - width/2, center + width/2] (modality units) linearly to [0, 1], clipped."""

    op: Literal["window"]
    center: float
    width: float = Field(gt=0)


class AutoWindowStep(_Strict):
    """Per-image percentile window to [0, 1]; robust to 8-bit PNGs and 12-bit DICOM alike."""

    op: Literal["auto_window"]
    low_percentile: float = Field(default=0.0, ge=0, lt=100)
    high_percentile: float = Field(default=100.0, gt=0, le=100)


class ScaleStep(_Strict):
    """x * factor + offset (e.g. 8-bit RGB to [0, 1] with factor 1/255)."""

    op: Literal["scale"]
    factor: float
    offset: float = 0.0


class ResizeStep(_Strict):
    """Bilinear (antialiased) resize to [height, width]."""

    op: Literal["resize"]
    size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]


class NormalizeStep(_Strict):
    """(x - mean) / std, scalars or one value per channel."""

    op: Literal["normalize"]
    mean: float | list[float]
    std: float | list[float]


class ToChannelsStep(_Strict):
    """Make n channels: grey repeated, or RGB averaged to grey for n=1."""

    op: Literal["to_channels"]
    n: Literal[1, 3]


PreprocessStep = Annotated[
    WindowStep | AutoWindowStep | ScaleStep | ResizeStep | NormalizeStep | ToChannelsStep,
    Field(discriminator="op"),
]


class InputSpec(_Strict):
    """What the model consumes. Images: size/channels/layout; tabular: the feature names."""

    kind: Literal["image", "tabular", "text"] = "image"
    size: tuple[int, int] | None = None  # [height, width] after preprocessing
    channels: int | None = Field(default=None, ge=1, le=4)
    layout: Literal["NHWC", "NCHW"] | None = None
    dtype: Literal["float32"] = "float32"
    color: Literal["grayscale", "rgb"] | None = None  # what the image must be before preprocessing
    frames: Literal["middle", "all", "first"] = "all"  # which frames of a multi-frame/series
    preprocessing: list[PreprocessStep] = Field(default_factory=list)
    features: list[str] | None = None  # tabular: column order

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if self.kind == "image" and (self.size is None or self.channels is None or not self.layout):
            raise ValueError("image input needs size, channels and layout")
        if self.kind == "tabular" and not self.features:
            raise ValueError("tabular input needs the list of feature names")
        return self


class Calibration(_Strict):
    """How raw logits become calibrated probabilities (fit on the validation split)."""

    method: Literal["none", "temperature", "platt"] = "none"
    temperature: float = Field(default=1.0, gt=0)  # softmax(z / T) or sigmoid(z / T)
    a: float = 1.0  # platt: sigmoid(a * z + b), single-logit models only
    b: float = 0.0
    fit_on: str | None = None  # e.g. "val"


class OutputSpec(_Strict):
    """What the network emits and how to read it."""

    labels: list[str] = Field(default_factory=list)
    positive_label: str | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)
    activation: Literal["softmax", "sigmoid", "none"] = "softmax"  # applied to the raw logits
    calibrated: bool = False
    calibration: Calibration = Field(default_factory=Calibration)

    @model_validator(mode="after")
    def _consistent(self) -> OutputSpec:
        if self.positive_label is not None and self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} is not among labels")
        unknown = set(self.thresholds) - set(self.labels)
        if unknown:
            raise ValueError(f"thresholds for unknown labels {sorted(unknown)}")
        if self.calibrated and self.calibration.method == "none":
            raise ValueError("calibrated is true but calibration.method is 'none'")
        return self


class Metrics(_Strict):
    """The validation figures the package shipped with (never claim more than was measured)."""

    dataset: str
    split: str
    n: int = Field(ge=1)
    data_ref: str  # how models.evaluate regenerates the data, e.g. "medmnist:pneumoniamnist:val"
    auc: float | None = None
    accuracy: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    ece: float | None = None
    sensitivity_ci: tuple[float, float] | None = None  # 95% bootstrap interval
    specificity_ci: tuple[float, float] | None = None
    threshold_method: str | None = None  # how the operating point was chosen, and on what data
    scores: dict[str, float] = Field(default_factory=dict)  # other figures (e.g. text metrics)
    note: str | None = None


class Population(_Strict):
    """Whom and what the model was trained for, checked against the DICOM header before a run
    (core.inference.applicability). An empty list or None means "not restricted"."""

    age_years: tuple[float, float] | None = None  # inclusive [min, max] at acquisition
    sexes: list[Literal["M", "F", "O"]] = Field(default_factory=list)
    body_parts: list[str] = Field(default_factory=list)  # BodyPartExamined codes, e.g. CHEST
    view_positions: list[str] = Field(default_factory=list)  # ViewPosition, e.g. PA, AP
    modalities: list[str] = Field(default_factory=list)
    photometric: list[str] = Field(default_factory=list)  # e.g. MONOCHROME1, MONOCHROME2
    pixel_spacing_mm: tuple[float, float] | None = None  # inclusive range of the row spacing
    on_mismatch: Literal["warn", "refuse"] = "warn"  # outside: a visible warning, or no run
    # an input whose header cannot tell (a PNG, an unreadable header, a missing attribute):
    # None = the same as on_mismatch, so a refusing manifest is not bypassed by a plain image
    on_unknown: Literal["warn", "refuse"] | None = None
    note: str | None = None  # shown with a mismatch, e.g. "trained on children aged 1-5"


class OodSpec(_Strict):
    """Out-of-distribution reference: statistics of the model's own features on its training
    data, in ``reference`` (a file of the package), and the score above which a result is
    flagged, chosen on validation data (models.ood)."""

    method: Literal["mahalanobis", "energy"]
    reference: str  # e.g. "ood.npz"; listed in files
    layer: str | None = None  # the feature layer, framework-specific name
    threshold: float
    fit_on: str  # e.g. "train (features), val (threshold)"
    validation: dict[str, float] = Field(default_factory=dict)  # e.g. {"own_val_flagged": 0.05}


class Selftest(_Strict):
    """A sample input (before preprocessing) and the probabilities the package must produce."""

    input: str
    expected: str
    tolerance: float = Field(default=1e-4, gt=0)


class HeatmapSpec(_Strict):
    method: Literal["gradcam"]
    target_layer: str


class Manifest(_Strict):
    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    name: str
    version: str
    task: Literal["classification", "segmentation", "text-generation", "tabular"]
    framework: Literal["keras", "torch", "xgboost", "transformers", "onnx", "torchscript"]
    modalities: list[str] = Field(default_factory=list)
    body_parts: list[str] = Field(default_factory=list)
    input: InputSpec
    output: OutputSpec
    weights: str  # the file the adapter loads (or folder, for transformers)
    files: dict[str, str]
    metrics: Metrics | None = None
    min_app_version: str = "0.0.0"
    intended_use: str
    demo_only: bool = False
    training_data: str
    selftest: Selftest | None = None
    heatmap: HeatmapSpec | None = None
    population: Population | None = None
    ood: OodSpec | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # adapter-specific options

    @field_validator("version", "min_app_version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        return value

    @field_validator("modalities")
    @classmethod
    def _modalities(cls, value: list[str]) -> list[str]:
        for code in value:
            if not re.fullmatch(r"[A-Z]{2,3}", code):
                raise ValueError(f"{code!r} is not a DICOM modality code")
        return value

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for rel, digest in value.items():
            pure = PurePosixPath(rel)
            if pure.is_absolute() or ".." in pure.parts or rel == MANIFEST_NAME or not rel:
                raise ValueError(f"file path {rel!r} must be relative, inside the package")
            if not _SHA256.match(digest):
                raise ValueError(f"sha256 of {rel!r} is not 64 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _references_listed(self) -> Manifest:
        listed = set(self.files)
        refs = [("weights", self.weights)]
        if self.ood:
            refs.append(("ood.reference", self.ood.reference))
        if self.selftest:
            refs += [
                ("selftest.input", self.selftest.input),
                ("selftest.expected", self.selftest.expected),
            ]
        for field, rel in refs:
            if rel not in listed and not any(f.startswith(rel.rstrip("/") + "/") for f in listed):
                raise ValueError(f"{field} {rel!r} is not listed in files")
        return self

    @property
    def demo_notice(self) -> str | None:
        return DEMO_NOTICE if self.demo_only else None


@dataclass(frozen=True)
class ModelPackage:
    """A verified package: its folder, parsed manifest and package hash (for provenance)."""

    path: Path
    manifest: Manifest
    package_hash: str

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> str:
        return self.manifest.version

    def file(self, rel: str) -> Path:
        """Absolute path of a file the manifest lists (refuses anything unlisted)."""
        listed = self.manifest.files
        if rel not in listed and not any(f.startswith(rel.rstrip("/") + "/") for f in listed):
            raise FileIntegrityError(self.path, rel, "file is not listed in the manifest")
        return self.path / rel


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_hash(raw: dict[str, Any]) -> str:
    """SHA-256 of the manifest as canonical JSON; covers every file through their hashes."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _version_tuple(version: str) -> tuple[int, int, int]:
    # Our own three-number compare: app and package versions are plain MAJOR.MINOR.PATCH.
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"{version!r} is not a semantic version")
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)))


def _app_version() -> str:
    """The running application's version, from its installed distribution's metadata (the
    same number pyproject.toml gives core.__version__; a test keeps them equal). Read here
    rather than imported from core: models never imports the application."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("doctorai-workstation")
    except PackageNotFoundError:
        raise RuntimeError(
            "the application is not installed ('pip install -e .' or an installer), so model "
            "packages cannot be checked against its version"
        ) from None


def read_manifest(path: Path) -> tuple[Manifest, dict[str, Any]]:
    """Parse and schema-check ``manifest.json`` only (no file hashing): cheap, for listings."""
    manifest_path = path / MANIFEST_NAME
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(path, MANIFEST_NAME, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, MANIFEST_NAME, f"cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(path, MANIFEST_NAME, "top level must be a JSON object")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or MANIFEST_NAME
        raise ManifestError(path, where, f"{first['msg']} ({exc.error_count()} error(s))") from exc
    return manifest, raw


def _package_files(path: Path) -> set[str]:
    found: set[str] = set()
    for item in path.rglob("*"):
        rel = item.relative_to(path)
        if any(part in _IGNORED_DIRS for part in rel.parts) or item.is_dir():
            continue
        found.add(rel.as_posix())
    found.discard(MANIFEST_NAME)
    return found


def verify_files(path: Path, manifest: Manifest) -> None:
    """Every listed file present with its SHA-256; nothing unlisted that could be loaded."""
    for rel, expected in sorted(manifest.files.items()):
        file_path = path / rel
        if not file_path.is_file():
            raise FileIntegrityError(path, rel, "listed file is missing")
        actual = sha256_file(file_path)
        if actual != expected:
            raise FileIntegrityError(
                path, rel, f"SHA-256 mismatch (manifest {expected[:12]}..., file {actual[:12]}...)"
            )
    unlisted = sorted(_package_files(path) - set(manifest.files))
    if unlisted:
        raise FileIntegrityError(path, unlisted[0], "file is present but not listed in manifest")


def load_package(
    path: Path | str, *, verify_hashes: bool = True, app_version: str | None = None
) -> ModelPackage:
    """Validate a package folder and return it; raise ``PackageError`` with the reason if not.

    ``verify_hashes=False`` skips the file hashing (listings; a missing file is still found,
    which costs a stat per file); loading a model must verify.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ManifestError(folder, "path", "not a directory")
    manifest, raw = read_manifest(folder)
    running = app_version or _app_version()
    if _version_tuple(manifest.min_app_version) > _version_tuple(running):
        raise IncompatibleAppError(
            folder,
            "min_app_version",
            f"package needs app {manifest.min_app_version} or newer, this is {running}",
        )
    if verify_hashes:
        verify_files(folder, manifest)
    else:
        missing = next(
            (rel for rel in sorted(manifest.files) if not (folder / rel).is_file()), None
        )
        if missing is not None:
            raise FileIntegrityError(folder, missing, "listed file is missing")
    return ModelPackage(path=folder, manifest=manifest, package_hash=canonical_hash(raw))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Manifest:
    """Fill ``files`` with the SHA-256 of every file in ``folder`` and write manifest.json.

    Used by the training scripts; validates before writing so a bad package is never shipped.
    """
    files = {rel: sha256_file(folder / rel) for rel in sorted(_package_files(folder))}
    data = {**manifest, "files": files}
    validated = Manifest.model_validate(data)
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return validated
