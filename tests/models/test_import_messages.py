"""What a wrong ONNX description gets told: the field, the step and the allowed ops or values,
not pydantic's words; and docs/model-import.md's example description is read by the importer's
own parser (and imported for real when torch and onnxruntime are here), so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.importers import ModelImportError, prepare
from models.importers.description import read_description
from models.importers.validation_text import STEP_EXAMPLES, step_classes
from tests.models.import_fixtures import ONNX_DESCRIPTION

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "model-import.md"


def _refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "model.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelImportError) as caught:
        read_description(path)
    return str(caught.value)


def test_bare_op_names_are_explained_with_the_allowed_ops(tmp_path: Path) -> None:
    text = ONNX_DESCRIPTION.replace(
        """  preprocessing:
    - {op: auto_window, low_percentile: 0.5, high_percentile: 99.5}
    - {op: resize, size: [28, 28]}
    - {op: normalize, mean: 0.5, std: 0.25}
    - {op: to_channels, n: 1}
""",
        "  preprocessing: [resize, normalize, {op: blur}]\n",
    )
    message = _refusal(tmp_path, text)
    assert "valid dictionary" not in message
    assert "Input should be" not in message
    assert (
        "input.preprocessing step 1: 'resize' is not a step: write each step as a mapping with "
        "its op and fields, e.g. {op: resize, size: [224, 224]}"
    ) in message
    assert "input.preprocessing step 2: 'normalize' is not a step" in message
    assert "input.preprocessing step 3: op 'blur' is not known" in message
    assert (
        "preprocessing ops and their fields: window (center, width), auto_window "
        "(low_percentile, high_percentile), scale (factor, offset), resize (size), "
        "normalize (mean, std), to_channels (n)"
    ) in message
    assert message.count("preprocessing ops and their fields") == 1


def test_fields_are_named_with_what_is_allowed(tmp_path: Path) -> None:
    text = (
        ONNX_DESCRIPTION.replace("modalities: [CR, DX]", "modality: CR")
        .replace("task: classification", "task: detection")
        .replace("  color: grayscale", "  colour: grayscale")
        .replace("{op: resize, size: [28, 28]}", "{op: resize}")
        .replace("age_years: [18, 90]", "age: [18, 90]")
    )
    message = _refusal(tmp_path, text)
    assert "'modalities' is missing" in message
    assert "'modality' is not a known field (did you mean 'modalities'?" in message
    assert "task: 'detection' is not allowed (allowed: 'classification' or 'segmentation')" in (
        message
    )
    assert "'input.colour' is not a known field (did you mean 'color'?" in message
    assert "'input.preprocessing step 2 (resize).size' is missing" in message
    assert "'population.age' is not a known field (did you mean 'age_years'?" in message


def test_a_field_at_the_wrong_level_is_pointed_to_its_place(tmp_path: Path) -> None:
    text = ONNX_DESCRIPTION.replace("  frames: first\n", "") + "frames: first\n"
    message = _refusal(tmp_path, text)
    assert "'frames' is not a known field (it belongs under 'input';" in message


def test_step_examples_name_real_fields() -> None:
    """Every example in the messages is a valid step of its op."""
    import yaml

    classes = step_classes()
    assert set(STEP_EXAMPLES) == set(classes)
    for op, example in STEP_EXAMPLES.items():
        classes[op].model_validate(yaml.safe_load(example))


def _doc_yaml() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    (block,) = blocks
    return str(block)


def test_the_documented_description_is_read_by_the_importer(tmp_path: Path) -> None:
    path = tmp_path / "hospital-chest.yaml"
    path.write_text(_doc_yaml(), encoding="utf-8")
    desc = read_description(path)
    assert (desc.id, desc.task, desc.labels) == (
        "hospital-chest",
        "classification",
        [
            "normal",
            "pneumonia",
        ],
    )
    assert [step.op for step in desc.input.preprocessing] == [
        "auto_window",
        "resize",
        "normalize",
        "to_channels",
    ]
    # every op the doc's table lists is one the importer knows, and none is missing
    table = re.findall(r"^\| `(\w+)` \|", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(table) == sorted(step_classes())


def test_the_documented_description_imports_a_real_model(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the test model is made with torch (the 'ai' extra)")
    pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")
    from tests.models.import_fixtures import export_onnx, small_cnn

    model = export_onnx(small_cnn(), tmp_path / "hospital-chest.onnx")
    (tmp_path / "hospital-chest.yaml").write_text(_doc_yaml(), encoding="utf-8")
    package = prepare(model).build(tmp_path / "package")
    assert package.id == "hospital-chest"
    assert package.manifest.population is not None
