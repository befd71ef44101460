"""What an importer found (``ImportPlan``) and how it becomes a verified model package.

An importer reads a foreign model (an ONNX file and its description, a MONAI bundle) without
running it and says what the package will hold; ``ImportPlan.build`` then copies the files,
writes the hashed manifest, runs the model once through its adapter on a generated sample to
store the self-test pair, and loads the finished folder with ``load_package`` and the
self-test, so only a package the app can vouch for leaves the importer.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from models.adapters.base import LoadedModel, ModelLoadError
from models.importers.errors import ModelImportError, describe_validation
from models.importers.sample import sample_images
from models.manifest import Manifest, ModelPackage, PackageError, load_package

_PLACEHOLDER_HASH = "0" * 64


def check_manifest(manifest: dict[str, Any], source: Path, where: str) -> Manifest:
    """Validate a manifest before anything is copied (files filled with placeholders), so a
    bad id, version or step is reported against the file the importer read it from."""
    refs = [manifest["weights"]]
    try:
        return Manifest.model_validate(
            {**manifest, "files": dict.fromkeys(refs, _PLACEHOLDER_HASH)}
        )
    except ValidationError as exc:
        raise ModelImportError(source, where, describe_validation(exc)) from exc


@dataclass
class ImportPlan:
    """A foreign model mapped to a manifest; ``files``: package path -> file to copy."""

    kind: str  # "onnx" | "monai-bundle": recorded in the manifest and the audit event
    source: Path
    manifest: dict[str, Any]
    files: dict[str, Path]
    notes: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.manifest["id"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def build(self, dest: Path) -> ModelPackage:
        """Write the package into the new folder ``dest`` and verify it; raises
        ModelImportError naming what failed (the folder is left for the caller to remove)."""
        from models.package_files import finish_package

        dest.mkdir(parents=True)
        for rel, src in self.files.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        (dest / "SOURCES.md").write_text(self._sources_text(), encoding="utf-8")
        manifest = {
            **self.manifest,
            "extra": {
                **self.manifest.get("extra", {}),
                "imported_from": {"kind": self.kind, "name": self.source.name},
                "import_notes": list(self.notes),
            },
        }
        inputs = sample_images(check_manifest(manifest, self.source, "manifest").input)
        expected = self._run_once(dest, manifest, inputs)
        try:
            finish_package(dest, manifest, inputs, expected, dest / "SOURCES.md")
        except ValidationError as exc:
            raise ModelImportError(self.source, "manifest", describe_validation(exc)) from exc
        return self._verify(dest)

    def _sources_text(self) -> str:
        notes = "".join(f"- {note}\n" for note in self.notes) or "- none\n"
        return (
            f"# Imported model\n\nImported from a {self.kind} ('{self.source.name}') by "
            "`doctorai models import`. The self-test pair was made by running the imported "
            "network once on a generated sample (models/importers/sample.py).\n\n"
            f"## Mapping notes\n\n{notes}"
        )

    def _run_once(
        self, dest: Path, manifest: dict[str, Any], inputs: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """The network's probabilities on ``inputs``: the package as written so far (no
        self-test yet), loaded through its adapter on the CPU."""
        from models.manifest import write_manifest
        from models.preprocess import preprocess_batch

        write_manifest(dest, manifest)
        package = self._verify(dest, selftest=False)
        model = self._load(package)
        try:
            batch = preprocess_batch(list(inputs), package.manifest.input, package.id)
            probs = np.asarray(model.predict(batch), dtype=np.float32)
        except Exception as exc:
            raise ModelImportError(
                self.source, "first run", f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            model.close()
        if not np.all(np.isfinite(probs)):
            raise ModelImportError(self.source, "first run", "the network returned NaN or inf")
        if package.manifest.output.activation == "none" and (probs.min() < 0 or probs.max() > 1):
            raise ModelImportError(
                self.source,
                "output activation",
                f"outputs span [{probs.min():.3g}, {probs.max():.3g}], not probabilities, and "
                "no softmax or sigmoid is declared",
            )
        (dest / "manifest.json").unlink()
        return probs

    def _load(self, package: ModelPackage) -> LoadedModel:
        """The package's network on the CPU; a file its framework cannot read is refused."""
        from models.adapters import FrameworkUnavailableError, load_model

        try:
            return load_model(package, "cpu")
        except (ModelLoadError, FrameworkUnavailableError) as exc:
            raise ModelImportError(self.source, "loading the network", str(exc)) from exc

    def _verify(self, dest: Path, *, selftest: bool = True) -> ModelPackage:
        try:
            package = load_package(dest)
        except PackageError as exc:
            raise ModelImportError(self.source, "package", str(exc)) from exc
        if not selftest:
            return package
        from models.selftest import run_selftest

        model = self._load(package)
        try:
            result = run_selftest(package, model)
        finally:
            model.close()
        if not result.ok:
            raise ModelImportError(self.source, "self-test", result.message)
        return package

    def summary(self) -> dict[str, Any]:
        """What the plan will install, for a confirmation or a JSON answer."""
        return {
            "id": self.id,
            "version": self.version,
            "kind": self.kind,
            "task": self.manifest["task"],
            "labels": self.manifest["output"]["labels"],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        return json.dumps(self.summary())
