"""ONNX Runtime adapter: a ``.onnx`` file run by an ``InferenceSession``; onnxruntime on use.

Hospitals and vendors ship models as ONNX, and the zoo's own classifiers export to it
(models.training.export_onnx), so one adapter runs them all: on the CPU execution provider, or
on CUDA when the GPU build (onnxruntime-gpu) is installed and a device really works.

Graph contract: the first input takes the preprocessed batch in the manifest's layout, with a
dynamic batch axis; the first output gives the raw scores the manifest's ``output`` describes
(logits before activation and calibration). For a segmentation model that output is per-pixel
logits, (N, C, h, w) for an NCHW input and (N, h, w, C) for an NHWC one (what Keras exports).
An optional output named ``features`` gives (N, d) pooled penultimate features for the OOD
check (the exporter adds it), so an ONNX model can be guarded like its native source.
There are no gradients in ONNX Runtime, so no Grad-CAM heatmap (``heatmap`` returns None).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.adapters.base import F32, LoadedModel, ModelLoadError, module_available
from models.devices import DeviceError
from models.manifest import ModelPackage
from models.postprocess import probabilities

FRAMEWORK = "onnx"
REQUIREMENT = "onnxruntime==1.31.1 onnx==1.23.2"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
FEATURES_OUTPUT = "features"
_OOM_WORDS = (
    "out of memory",
    "failed to allocate memory",
    "cudaerrormemoryallocation",
    "cuda_error_out_of_memory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
)


def is_available() -> bool:
    return module_available("onnxruntime") and module_available("onnx")


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception classes (they derive from Exception, not RuntimeError)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names: tuple[str, ...] = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError")
    names += ("RuntimeException", "InvalidProtobuf", "InvalidGraph", "EPFail", "NotImplemented")
    return tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))


def _probe_model() -> bytes:
    """A one-node graph (y = x + 1 on four floats) to ask the CUDA provider to really run."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "probe", [x], [y])
    graph.initializer.append(one)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@cache
def _preload_cuda_libraries() -> None:
    """Load the CUDA 12 and cuDNN 9 libraries of the nvidia-* wheels (what onnxruntime-gpu
    needs; tensorflow[and-cuda] installs them) before the first CUDA session, because they are
    on no library path; torch's own CUDA libraries may be of another major version. Its notices
    go to stdout, so they are kept out of the app's output."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if callable(preload) and CUDA in ort.get_available_providers():
        with contextlib.redirect_stdout(io.StringIO()):
            preload()


@cache
def gpu_available() -> bool:
    """The CUDA provider is in this build AND a session on it runs a real graph on a device.

    onnxruntime lists CUDAExecutionProvider whenever the GPU build is installed, and a session
    quietly falls back to the CPU when CUDA cannot start, so the provider the probe session
    ended up with is read back rather than trusted. Cached: the answer holds for the process.
    """
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return False
    _preload_cuda_libraries()
    errors: tuple[type[BaseException], ...] = (*_ort_errors(), RuntimeError, ValueError)
    try:
        session = ort.InferenceSession(_probe_model(), providers=[CUDA], enable_fallback=0)
        if session.get_providers()[:1] != [CUDA]:
            return False
        out = session.run(None, {"x": np.zeros(4, dtype=np.float32)})[0]
    except errors:
        return False
    return bool(np.allclose(out, 1.0))


def is_out_of_memory(exc: BaseException) -> bool:
    """onnxruntime's CUDA allocation failures (BFC arena, cudaMalloc, cuBLAS/cuDNN workspaces)
    come as its generic error classes; the message says what failed."""
    if sys.modules.get("onnxruntime") is None:
        return False
    if not isinstance(exc, (*_ort_errors(), RuntimeError)):  # a provider's C++ error: plain
        return False
    text = str(exc).lower()
    return any(word in text for word in _OOM_WORDS)


def _threads() -> int:
    """One intra-op thread unless DOCTORAI_ONNX_THREADS says otherwise: the same reasoning and
    default as the torch adapter (parallelism comes from the app's worker pool)."""
    return max(0, int(os.environ.get("DOCTORAI_ONNX_THREADS", "1")))


class OnnxModel(LoadedModel):
    def __init__(self, package: ModelPackage, device: str, session: Any, param_bytes: int) -> None:
        super().__init__(package, device)
        self._session = session
        self._input = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        self._output = outputs[0]
        self._features = FEATURES_OUTPUT if FEATURES_OUTPUT in outputs[1:] else None
        self._param_bytes = param_bytes

    def _run(self, names: list[str], batch: npt.NDArray[np.float32]) -> list[Any]:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return list(self._session.run(names, {self._input: x}))

    def raw(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The first graph output, unchanged (float32)."""
        return np.asarray(self._run([self._output], batch)[0], dtype=np.float32)

    def _scores(self, raw: npt.NDArray[np.float32]) -> F32:
        manifest = self.package.manifest
        if manifest.task != "segmentation":
            return probabilities(raw, manifest.output)
        return segmentation_probabilities(raw, manifest.input.layout or "NCHW", self.id)

    def predict(self, batch: npt.NDArray[np.float32]) -> F32:
        """Classification: (N, len(labels)) calibrated probabilities, as the native adapters
        give; segmentation: (N, C, h, w) softmax probabilities over axis 1."""
        return self._scores(self.raw(batch))

    def predict_with_features(
        self, batch: npt.NDArray[np.float32], layer: str | None = None
    ) -> tuple[F32, F32 | None]:
        """Scores and OOD features from one run: ``layer`` None (or "features") is the graph's
        ``features`` output when it has one; "logits" is the raw first output."""
        if layer not in (None, FEATURES_OUTPUT, "logits"):
            raise ValueError(
                f"model '{self.id}': unknown feature layer '{layer}' "
                "(ONNX packages offer 'features' when exported with it, and 'logits')"
            )
        if layer == "logits":
            raw = self.raw(batch)
            return self._scores(raw), raw.reshape(len(raw), -1)
        if self._features is None:
            return self.predict(batch), None
        raw, feats = self._run([self._output, self._features], batch)
        return (
            self._scores(np.asarray(raw, dtype=np.float32)),
            np.asarray(feats, dtype=np.float32).reshape(len(feats), -1),
        )

    def features(self, batch: npt.NDArray[np.float32], layer: str | None = None) -> F32 | None:
        return self.predict_with_features(batch, layer)[1]

    def memory_bytes(self) -> int:
        return self._param_bytes

    def close(self) -> None:
        self._session = None


def segmentation_probabilities(raw: npt.NDArray[Any], layout: str, model_id: str) -> F32:
    """Per-pixel logits in the model's layout -> (N, C, h, w) softmax over the class axis."""
    z = np.asarray(raw, dtype=np.float32)
    if z.ndim != 4:
        raise ValueError(
            f"model '{model_id}': segmentation output must be 4-D per-pixel logits, "
            f"got shape {z.shape}"
        )
    if layout == "NHWC":
        z = np.transpose(z, (0, 3, 1, 2))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.ascontiguousarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


def initializer_bytes(path: Path) -> int:
    """Bytes of the graph's weights (its initializers), read from the file's tensor headers."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    total = 0
    for tensor in model.graph.initializer:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        total += int(np.prod(tensor.dims, dtype=np.int64)) * itemsize
    return total


def session_options() -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: a warning on stderr tells the user nothing
    return options


def load(package: ModelPackage, device: str) -> LoadedModel:
    """An InferenceSession on CUDA (device 0) for "gpu", else on the CPU provider."""
    import onnxruntime as ort

    path = package.file(package.manifest.weights)
    providers: list[Any] = [(CUDA, {"device_id": 0}), CPU] if device == "gpu" else [CPU]
    errors: tuple[type[BaseException], ...] = (*_ort_errors(), RuntimeError, ValueError, OSError)
    # On the GPU, no fallback inside onnxruntime: it would retry a failed CUDA session (an
    # out-of-memory one too) on its CPU provider, or move a session to the CPU after a failed
    # run, and print a notice; the error comes here instead, so the manager decides (and the
    # device recorded with each result stays true).
    fallback = {"enable_fallback": 0} if device == "gpu" else {}
    if device == "gpu":
        _preload_cuda_libraries()
    try:
        with warnings.catch_warnings():
            # "Specified provider ... is not in available provider names": checked below.
            warnings.simplefilter("ignore", UserWarning)
            session = ort.InferenceSession(
                str(path), session_options(), providers=providers, **fallback
            )
    except errors as exc:
        if is_out_of_memory(exc):
            raise  # the manager retries on the CPU (models.adapters.base: is_out_of_memory)
        raise ModelLoadError(
            f"model '{package.id}': cannot load ONNX file '{path}': {exc}"
        ) from exc
    if device == "gpu" and session.get_providers()[:1] != [CUDA]:
        raise DeviceError(
            f"gpu requested for model '{package.id}' but onnxruntime did not start "
            f"{CUDA} (session providers: {', '.join(session.get_providers())})"
        )
    if not session.get_inputs() or not session.get_outputs():
        raise ModelLoadError(f"model '{package.id}': ONNX file '{path}' has no input or output")
    where = f"onnxruntime:{CUDA}:0" if device == "gpu" else "cpu"
    return OnnxModel(package, where, session, initializer_bytes(path))
