"""The ONNX Runtime adapter on real .onnx files: refusals, devices, outputs, segmentation.

Classifiers come from the zoo through the exporter; the segmentation graphs are written here
with onnx.helper (a 1x1 convolution with known weights), so the expected softmax is computed
independently in numpy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")

from models.adapters import get_adapter, load_model
from models.adapters import onnx_adapter as adapter
from models.adapters.base import ModelLoadError
from models.devices import DeviceError
from models.manifest import MANIFEST_NAME, ModelPackage, load_package, write_manifest
from models.postprocess import probabilities
from models.preprocess import preprocess_batch
from models.selftest import run_selftest
from models.training.export_onnx import ExportError, export_package, main
from tests.gpu import onnxruntime_gpu_missing
from tests.models.conftest import ZOO
from tests.models.onnx_exports import exported

CHEST = "chest-xray-pneumonia"


@pytest.fixture(scope="module")
def chest(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    return exported(CHEST, tmp_path_factory)


def _batch(package: ModelPackage) -> np.ndarray:
    raw = np.load(package.file(package.manifest.selftest.input))  # type: ignore[union-attr]
    return preprocess_batch(list(raw), package.manifest.input, package.id)


def _copy_with_weights(package: ModelPackage, dest: Path, weights: bytes) -> ModelPackage:
    """The package copied to ``dest`` with model.onnx replaced and the hashes rewritten, so
    only the adapter (not the hash check) can notice what is wrong with the file."""
    shutil.copytree(package.path, dest)
    (dest / "model.onnx").write_bytes(weights)
    data = package.manifest.model_dump(mode="json", exclude={"files"})
    (dest / MANIFEST_NAME).unlink()
    write_manifest(dest, data)
    return load_package(dest)


def test_registered_and_available_without_importing_onnxruntime() -> None:
    assert get_adapter("onnx").REQUIREMENT.startswith("onnxruntime==")
    assert adapter.is_available()
    script = (
        "import sys; from models.adapters import availability, get_adapter; "
        "import models.adapters.onnx_adapter; assert availability()['onnx'][0]; "
        "get_adapter('onnx'); print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ZOO.parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # onnxruntime (about 0.3 s) loads with the first model


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda good: b"\x08\x07 this is not a protobuf" * 8, "protobuf parsing failed"),
        (lambda good: good[: len(good) // 2], "cannot load ONNX file"),
        (lambda good: b"", "cannot load ONNX file"),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_corrupt_onnx_is_refused_naming_package_file_and_reason(
    chest: ModelPackage, tmp_path: Path, damage: Any, reason: str
) -> None:
    good = (chest.path / "model.onnx").read_bytes()
    broken = _copy_with_weights(chest, tmp_path / "broken", damage(good))
    with pytest.raises(ModelLoadError) as info:
        load_model(broken, "cpu")
    text = str(info.value)
    assert f"model '{chest.id}'" in text
    assert str(broken.path / "model.onnx") in text
    assert reason.lower() in text.lower()


def test_raw_is_the_first_output_and_predict_applies_the_manifest_calibration(
    chest: ModelPackage,
) -> None:
    model = load_model(chest, "cpu")
    try:
        batch = _batch(chest)
        raw = model.raw(batch)  # type: ignore[attr-defined]
        probs = model.predict(batch)
        one_by_one = np.concatenate([model.predict(batch[i : i + 1]) for i in range(len(batch))])
        assert model.heatmap(batch) is None
        memory = model.memory_bytes()
    finally:
        model.close()
    assert raw.shape == (len(batch), 2)
    assert not np.allclose(raw.sum(axis=1), 1.0)  # logits, not probabilities
    assert chest.manifest.output.calibration.temperature != 1.0
    np.testing.assert_allclose(probs, probabilities(raw, chest.manifest.output), atol=1e-7)
    np.testing.assert_allclose(probs, one_by_one, atol=1e-6)  # dynamic batch axis
    # Weights only: 72,146 float parameters (BatchNorm folded into the convolutions).
    assert 0.9 * 72_146 * 4 < memory <= (chest.path / "model.onnx").stat().st_size


def test_selftest_passes_in_onnx_runtime(chest: ModelPackage) -> None:
    model = load_model(chest, "cpu")
    try:
        result = run_selftest(chest, model)
    finally:
        model.close()
    assert result.ok, result.message


def test_gpu_request_without_cuda_provider_is_refused_and_auto_takes_the_cpu(
    chest: ModelPackage,
) -> None:
    missing = onnxruntime_gpu_missing()
    if missing is None:
        pytest.skip("onnxruntime runs on a GPU here: the refusal cannot happen (tests/gpu)")
    assert adapter.gpu_available() is False
    with pytest.raises(DeviceError, match=f"gpu requested for model '{chest.id}'"):
        load_model(chest, "gpu")
    # The adapter itself, asked for "gpu", does not pretend: onnxruntime would quietly run
    # on its CPU provider, and the adapter refuses that naming onnxruntime and CUDA.
    with pytest.raises(DeviceError, match="onnxruntime did not start CUDAExecutionProvider"):
        adapter.load(chest, "gpu")
    model = load_model(chest, "auto")
    try:
        assert model.device == "cpu"
    finally:
        model.close()


def test_gpu_request_runs_on_cuda_where_onnxruntime_has_it(chest: ModelPackage) -> None:
    missing = onnxruntime_gpu_missing()
    if missing is not None:
        pytest.skip(missing)
    for request in ("gpu", "auto"):
        model = load_model(chest, request)
        try:
            assert model.device == "onnxruntime:CUDAExecutionProvider:0"
            assert run_selftest(chest, model).ok
        finally:
            model.close()


def test_out_of_memory_is_recognised_from_onnxruntime_errors() -> None:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    # The texts onnxruntime's CUDA provider raises (BFC arena and cudaMalloc failures).
    arena = state.RuntimeException(
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while "
        "running Conv node. Name:'/features/conv1/Conv' Status Message: "
        "/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 void* "
        "onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, "
        "onnxruntime::WaitNotificationFn) Failed to allocate memory for requested buffer of "
        "size 8589934592"
    )
    cuda = state.Fail(
        "[ONNXRuntimeError] : 1 : FAIL : CUDA failure 2: out of memory ; GPU=0 ; "
        "hostname=ws01 ; file=cuda_allocator.cc ; line=47 ; expr=cudaMalloc((void**)&p, size);"
    )
    assert adapter.is_out_of_memory(arena)
    assert adapter.is_out_of_memory(cuda)
    assert not adapter.is_out_of_memory(state.InvalidArgument("Got invalid dimensions"))
    # A provider's plain C++ error, as the CUDA provider raises while it is being created.
    assert adapter.is_out_of_memory(RuntimeError("CUDA failure 2: out of memory ; GPU=0"))
    assert not adapter.is_out_of_memory(RuntimeError("CUDA failure 100: no CUDA-capable device"))
    assert not adapter.is_out_of_memory(MemoryError())  # the host's memory: no CPU retry helps


def test_wrong_input_shape_is_an_onnxruntime_error_not_out_of_memory(chest: ModelPackage) -> None:
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    model = load_model(chest, "cpu")
    try:
        with pytest.raises(InvalidArgument, match="invalid dimensions") as info:
            model.predict(np.zeros((1, 3, 28, 28), dtype=np.float32))
    finally:
        model.close()
    assert not adapter.is_out_of_memory(info.value)


# --- segmentation contract (engineer C's models rely on it) ----------------------------------

_W = np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)  # 3 classes from 1 channel, 1x1 conv
_B = np.array([0.1, 0.3, -0.2], dtype=np.float32)


def _segmentation_package(folder: Path, layout: str) -> ModelPackage:
    from onnx import TensorProto, helper, save

    nodes, init = (
        [],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [3, 1, 1, 1], _W.ravel().tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [3], _B.tolist()),
        ],
    )
    if layout == "NHWC":  # what Keras exports: channels last in and out
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 8, 1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8, 8, 3])
        nodes += [
            helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2]),
            helper.make_node("Conv", ["xc", "w", "b"], ["yc"]),
            helper.make_node("Transpose", ["yc"], ["y"], perm=[0, 2, 3, 1]),
        ]
    else:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 8, 8])
        nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["y"]))
    graph = helper.make_graph(nodes, "seg", [x], [y], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir()
    save(model, str(folder / "model.onnx"))
    write_manifest(
        folder,
        {
            "id": f"seg-{layout.lower()}",
            "name": "1x1 conv segmenter",
            "version": "1.0.0",
            "task": "segmentation",
            "framework": "onnx",
            "input": {"kind": "image", "size": [8, 8], "channels": 1, "layout": layout},
            "output": {"labels": ["background", "a", "b"], "activation": "softmax"},
            "weights": "model.onnx",
            "files": {},
            "intended_use": "test",
            "training_data": "none",
        },
    )
    return load_package(folder)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_segmentation_predict_is_softmax_over_classes_as_nchw(tmp_path: Path, layout: str) -> None:
    package = _segmentation_package(tmp_path / layout, layout)
    pixels = np.random.default_rng(1).normal(size=(2, 8, 8)).astype(np.float32)
    batch = pixels[:, None] if layout == "NCHW" else pixels[..., None]
    model = load_model(package, "cpu")
    try:
        probs = model.predict(batch)
        raw = model.raw(batch)  # type: ignore[attr-defined]
    finally:
        model.close()
    logits = _W[:, 0][None, :, None, None] * pixels[:, None] + _B[None, :, None, None]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert probs.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert raw.shape == ((2, 3, 8, 8) if layout == "NCHW" else (2, 8, 8, 3))  # unchanged


# --- the exporter's refusals and command line -------------------------------------------------


def test_export_refuses_a_framework_it_cannot_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="model 'tabular-breast-cancer': framework 'xgboost'"):
        export_package(ZOO / "tabular-breast-cancer", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_non_empty_output_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ExportError, match="exists and is not an empty folder"):
        export_package(ZOO / CHEST, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_command_line_writes_a_package_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([CHEST, str(tmp_path / "chest")]) == 0
    said = capsys.readouterr().out
    assert f"chest-xray-pneumonia-onnx {load_package(ZOO / CHEST).version}" in said
    assert "self-test passed" in said
    package = load_package(tmp_path / "chest")
    source = load_package(ZOO / CHEST)
    assert set(package.manifest.files) == (set(source.manifest.files) - {"model.pt"}) | {
        "model.onnx"
    }
    assert main(["tabular-breast-cancer", str(tmp_path / "tab")]) == 1
    assert "framework 'xgboost' cannot be exported" in capsys.readouterr().err


def test_export_of_unreadable_weights_is_an_export_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    source = load_package(ZOO / CHEST)
    shutil.copytree(source.path, tmp_path / "src")
    (tmp_path / "src" / "model.pt").write_bytes(b"PK\x03\x04 not a TorchScript archive")
    (tmp_path / "src" / MANIFEST_NAME).unlink()
    write_manifest(tmp_path / "src", source.manifest.model_dump(mode="json", exclude={"files"}))
    out = tmp_path / "new" / "chest-onnx"
    with pytest.raises(ExportError, match="'chest-xray-pneumonia': exporting the torch model"):
        export_package(tmp_path / "src", out)
    assert list((tmp_path / "new").iterdir()) == []  # no package, no half-written work folder


def test_export_without_features_drops_the_ood_check_it_could_not_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([CHEST, str(tmp_path / "plain"), "--no-features"]) == 0
    capsys.readouterr()
    package = load_package(tmp_path / "plain")
    assert package.manifest.ood is None
    assert "ood.npz" not in package.manifest.files
    assert package.manifest.extra["onnx"]["outputs"] == ["logits"]
    model = load_model(package, "cpu")
    try:
        probs, feats = model.predict_with_features(_batch(package))
    finally:
        model.close()
    assert feats is None
    assert probs.shape[1] == 2
