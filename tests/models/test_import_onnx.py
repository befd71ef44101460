"""Importing an ONNX file with its description: a torch CNN exported here, imported into the
profile by an admin, runs through the model manager with the torch model's scores; what the
importer cannot describe is refused with the missing piece named."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from core.app.model_import import import_model
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.inference.manager import ModelManager
from core.inference.model_store import ModelStore
from core.inference.pipeline import run_images
from core.inference.result import InputRef
from core.paths import profile_dir
from models.importers import ModelImportError, prepare
from models.manifest import load_package
from models.preprocess import preprocess_batch
from tests.models.import_fixtures import (
    ONNX_DESCRIPTION,
    PASSWORD,
    onnx_source,
    profile_with_users,
    torch_probabilities,
)

pytest.importorskip("torch", reason="the test model is made with torch (the 'ai' extra)")
pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")


def _images(n: int = 5) -> list[np.ndarray]:
    """Grey frames of another size than the network's, so window and resize both work."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:70, 0:64]
    return [
        (rng.random((70, 64)) * 300 + (yy * (i + 1)) % 90 + 500 * (xx > 20 + 4 * i)).astype(
            np.float32
        )
        for i in range(n)
    ]


def test_onnx_import_runs_through_the_manager_with_the_torch_scores(tmp_path: Path) -> None:
    path, torch_model = onnx_source(tmp_path / "src")
    profile_with_users()
    ws = Workstation.open()
    try:
        ws.session.login("admin", PASSWORD)
        done = import_model(ws, ModelStore(profile_dir() / "models"), path)
        events = [
            e
            for e in ws.audit.iter_events(event_type=EventType.MODEL_INSTALLED)
            if e.details.get("action") == "imported"
        ]
    finally:
        ws.close()
    assert (done.model_id, done.version, done.kind) == ("hospital-chest", "1.0.0", "onnx")
    (event,) = events
    assert (event.user, event.details["source"]) == ("admin", "onnx")
    assert {"kind": "model", "id": "hospital-chest@1.0.0"}.items() <= event.objects[0].items()

    package = load_package(done.path)
    assert package.manifest.framework == "onnx"
    assert package.manifest.output.thresholds == {"pneumonia": 0.4}
    assert package.manifest.population is not None
    assert package.manifest.population.age_years == (18, 90)
    assert package.manifest.selftest is not None

    images = _images()
    manager = ModelManager([package], device="cpu")
    refs = [InputRef(f"1.2.3.{i}") for i in range(len(images))]
    result = run_images(manager, package.id, images, refs, heatmap=False, batch_size=2)
    expected = torch_probabilities(
        torch_model, preprocess_batch(images, package.manifest.input, package.id)
    )
    assert result.probabilities.shape == (5, 2)
    assert float(np.max(np.abs(result.probabilities - expected))) < 1e-5
    assert result.provenance.framework == "onnx"
    manager.shutdown()


def _refusal(tmp_path: Path, description: str) -> ModelImportError:
    path, _ = onnx_source(tmp_path / "src", description)
    with pytest.raises(ModelImportError) as caught:
        prepare(path)
    return caught.value


def test_missing_labels_are_refused_naming_the_field_and_file(tmp_path: Path) -> None:
    text = ONNX_DESCRIPTION.replace("labels: [normal, pneumonia]\n", "")
    error = _refusal(tmp_path, text)
    assert "'labels' is missing" in str(error)
    assert "model.yaml" in str(error)


def test_input_size_that_disagrees_with_the_graph_is_refused(tmp_path: Path) -> None:
    text = ONNX_DESCRIPTION.replace("size: [28, 28]\n  layout", "size: [32, 32]\n  layout")
    text = text.replace("{op: resize, size: [28, 28]}", "{op: resize, size: [32, 32]}")
    error = _refusal(tmp_path, text)
    assert "input 'image'" in str(error)
    assert "[?, 1, 28, 28]" in str(error)
    assert "input.size [32, 32]" in str(error)


def test_channels_and_output_width_are_checked_against_the_graph(tmp_path: Path) -> None:
    three = ONNX_DESCRIPTION.replace("channels: 1\n  color: grayscale", "channels: 3\n  color: rgb")
    three = three.replace("{op: to_channels, n: 1}", "{op: to_channels, n: 3}")
    assert "input.channels 3" in str(_refusal(tmp_path / "a", three))
    labels = ONNX_DESCRIPTION.replace("[normal, pneumonia]", "[normal, pneumonia, other]")
    error = _refusal(tmp_path / "b", labels)
    assert "output 'logits'" in str(error)
    assert "3 label(s)" in str(error)


def test_a_fixed_batch_axis_is_refused(tmp_path: Path) -> None:
    from tests.models.import_fixtures import export_onnx, small_cnn

    path = export_onnx(small_cnn(), tmp_path / "fixed.onnx", dynamic=False)
    (tmp_path / "fixed.yaml").write_text(ONNX_DESCRIPTION, encoding="utf-8")
    with pytest.raises(ModelImportError, match="batch axis is fixed at 1"):
        prepare(path)


def test_no_description_says_where_it_looked(tmp_path: Path) -> None:
    path, _ = onnx_source(tmp_path / "src")
    (tmp_path / "src" / "model.yaml").unlink()
    with pytest.raises(ModelImportError, match="--describe FILE"):
        prepare(path)
    other = tmp_path / "desc.json"
    other.write_text('{"id": "x"}', encoding="utf-8")
    with pytest.raises(ModelImportError, match="'name' is missing") as caught:
        prepare(path, other)
    assert "desc.json" in str(caught.value)


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a graph at all")
    (tmp_path / "model.yaml").write_text(ONNX_DESCRIPTION, encoding="utf-8")
    with pytest.raises(ModelImportError, match=r"not an ONNX model|onnx\.checker"):
        prepare(tmp_path / "model.onnx")


def test_channels_last_graph_imports_with_the_torch_scores(tmp_path: Path) -> None:
    """An NHWC graph (as Keras exports): its layout is checked and the package runs."""
    import torch

    from models.adapters import load_model
    from tests.models.import_fixtures import small_cnn

    class ChannelsLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_cnn()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.net(x.permute(0, 3, 1, 2))
            return out

    net = ChannelsLast().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.zeros(1, 28, 28, 1),),
            str(tmp_path / "nhwc.onnx"),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    text = ONNX_DESCRIPTION.replace("layout: NCHW", "layout: NHWC")
    (tmp_path / "nhwc.yaml").write_text(text, encoding="utf-8")
    package = prepare(tmp_path / "nhwc.onnx").build(tmp_path / "pkg")
    assert package.manifest.input.layout == "NHWC"
    batch = preprocess_batch(_images(3), package.manifest.input, package.id)
    assert batch.shape == (3, 28, 28, 1)
    model = load_model(package, "cpu")
    expected = torch_probabilities(net, batch)
    assert float(np.max(np.abs(model.predict(batch) - expected))) < 1e-5
    model.close()
    wrong = text.replace("layout: NHWC", "layout: NCHW")
    (tmp_path / "nhwc.yaml").write_text(wrong, encoding="utf-8")
    with pytest.raises(ModelImportError, match=r"\[\?, 28, 28, 1\] \(NCHW\) has 28 channel"):
        prepare(tmp_path / "nhwc.onnx")
