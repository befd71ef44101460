"""An ONNX file and its description -> an import plan, after checking that they agree.

The graph is checked with ``onnx.checker`` (full check, with shape inference); its one image
input must be float32 of rank 4 whose channels and spatial size match the description's
layout (a symbolic dimension accepts any), and its first output must be as wide as the
labels: (N, K) for a classifier, (N, K, h, w) for segmentation (K = 1 for a two-label
sigmoid). Nothing here runs the graph; ``ImportPlan.build`` does, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.adapters.base import module_available
from models.importers.description import (
    Description,
    find_description,
    manifest_fields,
    read_description,
)
from models.importers.errors import ModelImportError
from models.importers.plan import ImportPlan, check_manifest

WEIGHTS = "model.onnx"
ONNX_REQUIREMENT = "onnx==1.23.2"
_FLOAT = 1  # onnx.TensorProto.FLOAT


def _dims(value_info: Any) -> list[int | None]:
    """A tensor's dimensions; None for a symbolic or unknown one."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _show(dims: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _load_checked(path: Path) -> Any:
    if not module_available("onnx"):
        raise ModelImportError(
            path,
            "onnx",
            f"checking an ONNX graph needs the onnx package (pip install '{ONNX_REQUIREMENT}')",
        )
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelImportError(path, "graph", f"not an ONNX model: {exc}") from exc
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise ModelImportError(
            path,
            "graph",
            f"weights kept in external data files (e.g. tensor '{external[0]}'): save the "
            "model as one file (onnx.save(..., save_as_external_data=False))",
        )
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ModelImportError(path, "onnx.checker", str(exc).strip().splitlines()[0]) from exc
    return model


def check_graph(model: Any, desc: Description, path: Path) -> tuple[list[int | None], str]:
    """Refuse a graph whose input or output disagrees with the description; returns the
    input's dims and name."""
    initialised = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initialised]
    if len(inputs) != 1:
        names = ", ".join(f"'{i.name}'" for i in inputs) or "none"
        raise ModelImportError(path, "graph inputs", f"expected one image input, found {names}")
    (inp,) = inputs
    dims = _dims(inp)
    spec = desc.input
    if inp.type.tensor_type.elem_type != _FLOAT:
        raise ModelImportError(path, f"input '{inp.name}'", "must be float32")
    if len(dims) != 4:
        raise ModelImportError(
            path, f"input '{inp.name}'", f"shape {_show(dims)} is not a 4-D image batch"
        )
    if spec.layout == "NCHW":
        channels, spatial = dims[1], dims[2:4]
    else:
        channels, spatial = dims[3], dims[1:3]
    size = list(spec.size or ())
    if channels is not None and channels != spec.channels:
        raise ModelImportError(
            path,
            f"input '{inp.name}'",
            f"shape {_show(dims)} ({spec.layout}) has {channels} channel(s), but the "
            f"description says input.channels {spec.channels}",
        )
    if any(g is not None and g != d for g, d in zip(spatial, size, strict=True)):
        raise ModelImportError(
            path,
            f"input '{inp.name}'",
            f"shape {_show(dims)} ({spec.layout}) takes {_show(spatial)} pixels, but the "
            f"description says input.size {size}",
        )
    _check_output(model, desc, path)
    return dims, inp.name


def _check_output(model: Any, desc: Description, path: Path) -> None:
    out = model.graph.output[0]
    dims = _dims(out)
    n_labels = len(desc.labels)
    rank = 4 if desc.task == "segmentation" else 2
    if desc.task == "segmentation" and desc.activation != "softmax":
        # models.adapters.onnx_adapter gives segmentation probabilities by a softmax over K
        raise ModelImportError(
            path, "activation", f"a segmentation model must declare softmax, not {desc.activation}"
        )
    channel_axis = 3 if rank == 4 and desc.input.layout == "NHWC" else 1
    width = dims[channel_axis] if len(dims) > channel_axis else None
    binary_single = width == 1 and n_labels == 2 and desc.activation == "sigmoid"
    if len(dims) != rank or (width is not None and width != n_labels and not binary_single):
        layout = "(N, K, h, w)" if rank == 4 else "(N, K)"
        raise ModelImportError(
            path,
            f"output '{out.name}'",
            f"shape {_show(dims)}, but a {desc.task} model with {n_labels} label(s) "
            f"{desc.labels} must give {layout} with K = {n_labels}",
        )


def prepare_onnx(path: Path, describe: Path | None = None) -> ImportPlan:
    """Check ``path`` and its description and plan the package (nothing is written)."""
    description_file = find_description(path, describe)
    desc = read_description(description_file)
    model = _load_checked(path)
    dims, input_name = check_graph(model, desc, path)
    manifest = {
        **manifest_fields(desc),
        "framework": "onnx",
        "weights": WEIGHTS,
        "min_app_version": "0.1.0",
        "extra": {"onnx_input": input_name, "onnx_opset": _opset(model)},
    }
    check_manifest(manifest, description_file, "description")
    notes = [f"description: {description_file.name}"]
    if dims[0] is not None:  # the app batches images (models.adapters.onnx_adapter's contract)
        raise ModelImportError(
            path,
            f"input '{input_name}'",
            f"the batch axis is fixed at {dims[0]}: export the model with a dynamic batch axis "
            f"(torch.onnx.export(..., dynamic_axes={{'{input_name}': {{0: 'batch'}}}}))",
        )
    return ImportPlan(
        kind="onnx",
        source=path,
        manifest=manifest,
        files={WEIGHTS: path, f"import/{description_file.name}": description_file},
        notes=notes,
    )


def _opset(model: Any) -> int | None:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
