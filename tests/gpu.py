"""Whether each AI framework runs on a GPU on this machine, asked of the framework itself.

Tests that touch a GPU assert the GPU behaviour where the framework sees one and the refusal
where it does not, so they hold on a workstation with a GPU and on one without. The adapters'
own ``gpu_available()`` is what those tests check, so the answer here never comes from it.
Each function returns None when the framework runs on a GPU here, or else what is missing, in
words fit for a skip reason or an assertion message ("CPU-only build" and "no device seen" are
different things: the locked torch wheel is CPU-only even on a machine with a GPU).
"""

from __future__ import annotations

import warnings
from functools import cache


@cache
def torch_gpu_missing() -> str | None:
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but sees no CUDA "
            "device (torch.cuda.is_available() is False)"
        )
    return None


@cache
def xgboost_gpu_missing() -> str | None:
    """A CUDA build of xgboost asked to train on "cuda": it says when it finds no GPU."""
    import numpy as np
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return (
            f"xgboost {xgboost.__version__} is a CPU-only build (build_info()['USE_CUDA'] is false)"
        )
    data = xgboost.DMatrix(np.zeros((2, 1), dtype=np.float32), label=[0.0, 1.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xgboost.train({"device": "cuda", "tree_method": "hist"}, data, num_boost_round=1)
    said = [str(w.message) for w in caught if "No visible GPU" in str(w.message)]
    if said:
        words = said[0][said[0].index("No visible GPU") :].strip()
        return f"xgboost {xgboost.__version__} is a CUDA build but finds no GPU ('{words}')"
    return None


@cache
def tensorflow_gpu_missing() -> str | None:
    import tensorflow as tf

    if not tf.test.is_built_with_cuda():
        return (
            f"tensorflow {tf.__version__} is a CPU-only build "
            "(tf.test.is_built_with_cuda() is False)"
        )
    if not tf.config.list_physical_devices("GPU"):
        return (
            f"tensorflow {tf.__version__} is built with CUDA but lists no GPU "
            "(tf.config.list_physical_devices('GPU') is empty)"
        )
    return None


@cache
def onnxruntime_gpu_missing() -> str | None:
    """The CUDA provider in the installed build, and a one-node graph that really runs on it
    (onnxruntime quietly falls back to its CPU provider when CUDA cannot start)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return (
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (a CPU build: "
            f"{', '.join(providers)}; the GPU build is onnxruntime-gpu)"
        )
    preload = getattr(ort, "preload_dlls", None)  # the nvidia-* wheels' CUDA 12 / cuDNN 9
    if callable(preload):
        preload()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
    if session.get_providers()[:1] != ["CUDAExecutionProvider"]:
        return (
            f"onnxruntime {ort.__version__} has the CUDA provider but a session fell back to "
            f"{', '.join(session.get_providers())} (no usable CUDA device or libraries)"
        )
    out = session.run(None, {"x": np.ones(2, dtype=np.float32)})[0]
    if not np.allclose(out, -1.0):
        return f"onnxruntime {ort.__version__} on CUDA computed {out} for -[1, 1]"
    return None


GPU_MISSING = {
    "torch": torch_gpu_missing,
    "transformers": torch_gpu_missing,  # runs on torch
    "xgboost": xgboost_gpu_missing,
    "keras": tensorflow_gpu_missing,  # Keras 3 on the TensorFlow backend
    "onnx": onnxruntime_gpu_missing,
}
