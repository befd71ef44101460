"""Turn models made elsewhere into verified model packages: an ONNX file with its description,
or a MONAI bundle folder. ``prepare`` reads and checks without running anything;
``ImportPlan.build`` writes, runs once for the self-test, and verifies the package."""

from __future__ import annotations

from pathlib import Path

from models.importers.errors import ModelImportError
from models.importers.plan import ImportPlan

__all__ = ["ImportPlan", "ModelImportError", "prepare"]


def prepare(source: Path, describe: Path | None = None) -> ImportPlan:
    """The plan for ``source``: a ``.onnx`` file, or a MONAI bundle folder (``configs/``)."""
    if source.is_dir():
        if describe is not None:
            raise ModelImportError(
                source, "--describe", "a MONAI bundle describes itself (configs/metadata.json)"
            )
        from models.importers.monai_bundle import prepare_bundle

        return prepare_bundle(source)
    if source.suffix.lower() == ".onnx" and source.is_file():
        from models.importers.onnx_source import prepare_onnx

        return prepare_onnx(source, describe)
    if not source.exists():
        raise ModelImportError(source, "path", "not found")
    raise ModelImportError(
        source, "path", "expected an .onnx file or a MONAI bundle folder (with configs/)"
    )
