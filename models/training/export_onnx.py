"""Export a zoo classifier (torch or Keras) to a verified ONNX model package.

    python -m models.training.export_onnx ZOO_PACKAGE OUT_DIR

ZOO_PACKAGE is a package folder or the id of one under models/zoo. The new package (id
``<source id>-onnx``, framework "onnx", weights ``model.onnx``) keeps the source's labels,
thresholds, calibration, preprocessing, intended population, metrics and self-test, so the app
treats it exactly as the source; it is written only if it loads in ONNX Runtime and its
self-test passes, and the exporter prints the largest score difference against the native
adapter on the self-test sample.

The graph has the batch axis dynamic, the raw logits as first output ("logits") and, for
classifiers, the pooled penultimate features as a second output ("features", the same tensor
the native adapters give models.ood), so an exported package keeps its OOD reference. There is
no Grad-CAM in ONNX Runtime, so the exported manifest declares no heatmap.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.manifest import ModelPackage, PackageError, load_package, write_manifest

OPSET = 17  # pinned: ONNX Runtime 1.31 runs it on CPU and CUDA; raise with a parity re-check
LOGITS = "logits"
FEATURES = "features"
ZOO = Path(__file__).resolve().parents[1] / "zoo"
SUPPORTED = ("torch", "keras")


class ExportError(RuntimeError):
    """The package cannot be exported, or the export failed its checks (names model and why)."""


@dataclass(frozen=True)
class ExportResult:
    package: ModelPackage
    selftest_diff: float  # max |ONNX - native| probability on the self-test sample
    exporter: str


def _example(package: ModelPackage, batch: int = 2) -> np.ndarray:
    spec = package.manifest.input
    assert spec.size is not None  # image input (checked by export_package)
    assert spec.channels is not None
    h, w, c = spec.size[0], spec.size[1], spec.channels
    shape = (batch, c, h, w) if spec.layout == "NCHW" else (batch, h, w, c)
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _export_torch(package: ModelPackage, target: Path, with_features: bool) -> str:
    """The TorchScript-based exporter: the zoo's .pt files are TorchScript, which torch.export
    (the dynamo exporter) cannot trace. A wrapper returns (logits, pooled features) through the
    module's features/classify split (the torch adapter's Grad-CAM convention)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(  # type: ignore[no-untyped-call]
            str(package.file(package.manifest.weights)), map_location="cpu"
        )
    module.eval()
    split = with_features and hasattr(module, "features") and hasattr(module, "classify")
    if split:
        from models.training.onnx_torch_features import scripted

        net = scripted(module)
    else:
        net = module
    names = [LOGITS, FEATURES] if split else [LOGITS]
    with warnings.catch_warnings():
        # "legacy TorchScript-based ONNX export" and "no signature found" notices: this is the
        # route that exists for TorchScript; parity is checked after export.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.from_numpy(_example(package)),),
            str(target),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=names,
            dynamic_axes={n: {0: "batch"} for n in ["input", *names]},
        )
    return f"torch.onnx (TorchScript) {torch.__version__}"


def _export_keras(package: ModelPackage, target: Path, with_features: bool) -> str:
    """Keras 3's own ONNX export (tf2onnx underneath) of the model, or of a two-output model
    giving (logits, the input of the last layer) as the keras adapter defines features."""
    import warnings

    from models.adapters.keras_adapter import _import_tf

    _import_tf()
    import keras
    import tf2onnx

    model = keras.saving.load_model(
        str(package.file(package.manifest.weights)), compile=False, safe_mode=True
    )
    net = model
    if with_features:
        feats = model.layers[-1].input
        if len(feats.shape) == 4:
            feats = keras.layers.GlobalAveragePooling2D()(feats)
        elif len(feats.shape) != 2:
            feats = keras.layers.Flatten()(feats)
        net = keras.Model(model.inputs, [model.outputs[0], feats])
    net([_example(package)], training=False)  # Keras exports only a model that has been called
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # keras' tf2onnx numpy-2 patch
        net.export(str(target), format="onnx", opset_version=OPSET, verbose=False)
    return f"keras {keras.__version__} + tf2onnx {tf2onnx.__version__}"


def _name_outputs(target: Path, names: list[str]) -> None:
    """Give the graph's outputs our fixed names (Keras calls them e.g. 'Identity:0') through
    Identity nodes, check the graph and save it again."""
    import onnx
    from onnx import helper

    model = onnx.load(str(target))
    outputs = list(model.graph.output)
    if len(outputs) != len(names):
        raise ExportError(f"exported graph has {len(outputs)} outputs, expected {len(names)}")
    for out, name in zip(outputs, names, strict=True):
        if out.name != name:
            model.graph.node.append(helper.make_node("Identity", [out.name], [name]))
            out.name = name
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def _manifest(package: ModelPackage, exporter: str, outputs: list[str]) -> dict[str, Any]:
    m = package.manifest
    # From the verified manifest in memory, not the file again (it may change meanwhile).
    data = m.model_dump(mode="json", exclude={"files", "heatmap"})
    ood = data.get("ood")
    if ood is not None and ood.get("layer") not in (None, FEATURES, LOGITS):
        data.pop("ood")  # a framework-specific layer the graph does not give
    elif ood is not None and ood.get("layer") is None and FEATURES not in outputs:
        data.pop("ood")
    data.update(
        id=f"{m.id}-onnx"[:64],
        name=f"{m.name} (ONNX)",
        framework="onnx",
        weights="model.onnx",
        extra={
            **m.extra,
            "onnx": {
                "opset": OPSET,
                "exporter": exporter,
                "outputs": outputs,
                "exported_from": {
                    "id": m.id,
                    "version": m.version,
                    "framework": m.framework,
                    "package_hash": package.package_hash,
                },
            },
        },
    )
    return data


def _copy_listed(package: ModelPackage, out: Path, manifest: dict[str, Any]) -> None:
    """Every file of the source but its weights (self-test, SOURCES.md, the OOD reference
    when the exported manifest keeps the OOD check)."""
    m = package.manifest
    skip = {m.weights} | ({m.ood.reference} if m.ood and not manifest.get("ood") else set())
    for rel in m.files:
        if rel in skip:
            continue
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package.path / rel, dest)


def _verify(exported: ModelPackage, source: ModelPackage) -> float:
    """Self-test in ONNX Runtime, and the largest difference from the native adapter."""
    from models.adapters import load_model
    from models.adapters.onnx_adapter import load
    from models.preprocess import preprocess_batch
    from models.selftest import run_selftest

    model = load(exported, "cpu")
    result = run_selftest(exported, model)
    if not result.ok:
        raise ExportError(
            f"model '{exported.id}': self-test in ONNX Runtime failed: {result.message}"
        )
    spec = source.manifest.selftest
    assert spec is not None  # run_selftest passed, so there is one
    raw = np.load(source.file(spec.input), allow_pickle=False)
    batch = preprocess_batch(list(raw), source.manifest.input, source.id)
    native = load_model(source, "cpu")
    try:
        diff = float(np.max(np.abs(model.predict(batch) - native.predict(batch))))
    finally:
        native.close()
        model.close()
    return diff


def export_package(source: Path | str, out: Path | str, *, features: bool = True) -> ExportResult:
    """Export ``source`` into ``out`` (which must not exist or be empty) and verify it."""
    package = load_package(source)
    m = package.manifest
    if m.framework not in SUPPORTED:
        raise ExportError(
            f"model '{m.id}': framework '{m.framework}' cannot be exported "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    if m.input.kind != "image" or m.task not in ("classification", "segmentation"):
        raise ExportError(
            f"model '{m.id}': only image classifiers and segmenters are exported "
            f"(this is a {m.input.kind} {m.task} model)"
        )
    if m.selftest is None:
        raise ExportError(f"model '{m.id}': ships no self-test, so an export cannot be verified")
    target_dir = Path(out)
    if target_dir.exists() and (not target_dir.is_dir() or any(target_dir.iterdir())):
        raise ExportError(f"output '{target_dir}' exists and is not an empty folder")
    with_features = features and m.task == "classification"
    outputs = [LOGITS, FEATURES] if with_features else [LOGITS]
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{m.id}-onnx-", dir=target_dir.parent))
    try:
        try:
            exporter = (_export_torch if m.framework == "torch" else _export_keras)(
                package, work / "model.onnx", with_features
            )
            _name_outputs(work / "model.onnx", outputs)
        except ImportError as exc:
            raise ExportError(
                f"model '{m.id}': the {m.framework} exporter needs '{exc.name}' "
                "(pip install the 'ai' extra: onnx, tf2onnx)"
            ) from exc
        except (RuntimeError, ValueError, TypeError, OSError) as exc:
            raise ExportError(
                f"model '{m.id}': exporting the {m.framework} model to ONNX failed: {exc}"
            ) from exc
        data = _manifest(package, exporter, outputs)
        _copy_listed(package, work, data)
        write_manifest(work, data)
        diff = _verify(load_package(work), package)
        if target_dir.exists():
            target_dir.rmdir()
        work.rename(target_dir)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return ExportResult(load_package(target_dir), diff, exporter)


def _resolve(source: str) -> Path:
    path = Path(source)
    return path if path.is_dir() or os.sep in source else ZOO / source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.training.export_onnx", description=__doc__.splitlines()[0]
    )
    parser.add_argument("source", help="a model package folder, or a zoo id")
    parser.add_argument("out", type=Path, help="new package folder (absent or empty)")
    parser.add_argument(
        "--no-features", action="store_true", help="logits only (no OOD feature output)"
    )
    args = parser.parse_args(argv)
    try:
        result = export_package(_resolve(args.source), args.out, features=not args.no_features)
    except (ExportError, PackageError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    pkg = result.package
    print(
        f"{pkg.id} {pkg.version} -> {pkg.path} (opset {OPSET}, {result.exporter}); "
        f"self-test passed; max |ONNX - native| on the self-test sample {result.selftest_diff:.2e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
