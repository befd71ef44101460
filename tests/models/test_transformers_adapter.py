"""The transformers adapter on the real report-drafter package from the zoo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.adapters import load_model
from models.adapters import transformers_adapter as adapter
from models.adapters.transformers_adapter import Seq2SeqModel
from models.devices import DeviceError
from models.manifest import FileIntegrityError, ModelPackage, load_package
from models.report_metrics import read_jsonl, score
from tests.gpu import torch_gpu_missing

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "models" / "zoo" / "report-drafter"


@pytest.fixture(scope="module")
def package() -> ModelPackage:
    return load_package(PACKAGE)


@pytest.fixture(scope="module")
def drafter(package: ModelPackage) -> Iterator[Seq2SeqModel]:
    loaded = adapter.load(package, "cpu")
    yield loaded
    loaded.close()


def test_manifest_describes_a_demo_text_model(package: ModelPackage) -> None:
    m = package.manifest
    assert (m.task, m.framework, m.modalities, m.demo_only) == (
        "text-generation",
        "transformers",
        [],
        True,
    )
    assert m.metrics is not None
    assert m.metrics.auc is None  # a text model claims no classifier figures
    assert set(m.metrics.scores) == {"exact_match", "token_f1"}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(m.files)
    size = sum(f.stat().st_size for f in PACKAGE.rglob("*") if f.is_file())
    assert size < 20 * 1024 * 1024


def test_loads_on_cpu_and_reports_its_memory(drafter: Seq2SeqModel) -> None:
    assert drafter.device == "cpu"
    weights = (PACKAGE / "model.safetensors").stat().st_size
    # float32 parameters: the in-memory size is the weight file's size, give or take headers
    assert drafter.memory_bytes() == pytest.approx(weights, rel=0.05)
    assert drafter.heatmap([]) is None  # type: ignore[arg-type]


def test_selftest_output_matches(package: ModelPackage, drafter: Seq2SeqModel) -> None:
    assert package.manifest.selftest is not None
    source = package.file(package.manifest.selftest.input).read_text(encoding="utf-8")
    expected = package.file(package.manifest.selftest.expected).read_text(encoding="utf-8")
    assert drafter.generate([source]) == [expected]


def test_validation_metrics_reproduce_the_manifest(
    package: ModelPackage, drafter: Seq2SeqModel
) -> None:
    """`models verify --eval` path: the adapter's evaluate hook on the shipped val pairs."""
    from models.evaluate import compare, evaluate_package

    assert package.manifest.metrics is not None
    assert package.manifest.metrics.data_ref == "package:validation.jsonl"
    pairs = read_jsonl(package.file("validation.jsonl"))
    assert len(pairs) == package.manifest.metrics.n
    measured = evaluate_package(package, drafter)
    assert set(measured) == {"exact_match", "token_f1"}
    assert compare(package, measured) == []
    # an independent scoring of a slice agrees with the hook's per-pair behaviour
    drafts = drafter.predict([p.source for p in pairs[:8]])
    assert drafts == drafter.generate([p.source for p in pairs[:8]])
    assert 0.0 < score(drafts, [p.target for p in pairs[:8]]).token_f1 <= 1.0
    # a claim the model cannot reproduce is reported, naming the figure
    inflated = {**measured, "exact_match": measured["exact_match"] + 0.05}
    assert any("exact_match" in p for p in compare(package, inflated))


def test_selftest_hook_passes_on_the_shipped_package(
    package: ModelPackage, drafter: Seq2SeqModel
) -> None:
    from models.selftest import run_selftest

    result = run_selftest(package, drafter)
    assert result.ok, result.message
    assert result.max_abs_diff == 0.0


def test_selftest_hook_fails_on_a_wrong_expected_draft(
    tmp_path: Path, drafter: Seq2SeqModel
) -> None:
    from models.manifest import write_manifest
    from models.selftest import run_selftest

    copy = tmp_path / "report-drafter"
    shutil.copytree(PACKAGE, copy)
    (copy / "selftest" / "expected.txt").write_text("No acute findings.", encoding="utf-8")
    raw = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    raw.pop("files")
    write_manifest(copy, raw)  # re-hash: the package is valid, only its expectation is wrong
    result = run_selftest(load_package(copy), drafter)
    assert not result.ok
    assert 0.0 < result.max_abs_diff <= 1.0
    assert "DIFFERS" in result.message
    assert "No acute findings." in result.message


def test_evaluate_refuses_a_data_ref_outside_the_package(
    tmp_path: Path, drafter: Seq2SeqModel
) -> None:
    from models.manifest import write_manifest

    copy = tmp_path / "report-drafter"
    shutil.copytree(PACKAGE, copy)
    raw = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    raw.pop("files")
    raw["metrics"]["data_ref"] = "medmnist:pneumoniamnist:val"
    write_manifest(copy, raw)
    with pytest.raises(adapter.ModelLoadError, match=r"report-drafter.*data_ref"):
        adapter.evaluate(load_package(copy), drafter)


def test_trained_tokenizer_round_trips_every_validation_text(
    package: ModelPackage, drafter: Seq2SeqModel
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(PACKAGE, local_files_only=True)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    for pair in read_jsonl(package.file("validation.jsonl"))[:100]:
        for text in (pair.source, pair.target):
            ids = tokenizer(text).input_ids
            assert ids[-1] == tokenizer.eos_token_id
            assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_bad_input_is_named_and_empty_input_is_fine(drafter: Seq2SeqModel) -> None:
    assert drafter.generate([]) == []
    with pytest.raises(TypeError, match=r"model 'report-drafter'.*input 1 is int"):
        drafter.generate(["modality: CT", 3])  # type: ignore[list-item]


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_tampered_file_is_refused(tmp_path: Path, name: str) -> None:
    copy = tmp_path / "report-drafter"
    shutil.copytree(PACKAGE, copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(FileIntegrityError, match=rf"'{name}'|{name}: SHA-256 mismatch"):
        load_package(copy)


def test_registry_loads_it_with_device_choice(package: ModelPackage) -> None:
    loaded = load_model(package, "cpu")
    try:
        assert isinstance(loaded, Seq2SeqModel)
        assert loaded.device == "cpu"
    finally:
        loaded.close()
    with pytest.raises(RuntimeError, match="closed"):
        loaded.generate(["x"])
    assert loaded.memory_bytes() == 0


def test_out_of_memory_is_recognised() -> None:
    import torch

    assert adapter.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried ..."))
    assert adapter.is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not adapter.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not adapter.is_out_of_memory(ValueError("out of range"))


def test_bad_manifest_option_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "report-drafter"
    shutil.copytree(PACKAGE, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["extra"]["max_new_tokens"] = "lots"
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(adapter.ModelLoadError, match=r"extra.max_new_tokens.*'lots'"):
        adapter.load(load_package(copy), "cpu")


_LAZY_AND_OFFLINE = """
import os, socket, sys
from pathlib import Path
from models.adapters import get_adapter
from models.manifest import load_package

package = load_package(Path(sys.argv[1]))
module = get_adapter("transformers", model_id=package.id)
assert module.is_available()
heavy = sorted(m for m in ("transformers", "torch", "tokenizers") if m in sys.modules)
assert heavy == [], f"imported before first use: {heavy}"

def no_network(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args}")

socket.socket.connect = no_network
socket.create_connection = no_network
loaded = module.load(package, "cpu")
assert "transformers" in sys.modules and "torch" in sys.modules
assert os.environ["HF_HUB_OFFLINE"] == "1"
print(loaded.generate([package.file("selftest/input.txt").read_text(encoding="utf-8")])[0])
"""


def test_lazy_import_and_no_network(package: ModelPackage) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LAZY_AND_OFFLINE, str(PACKAGE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = package.file("selftest/expected.txt").read_text(encoding="utf-8")
    assert result.stdout.strip().splitlines()[-1] == expected


def test_gpu_drafts_match_cpu(package: ModelPackage, drafter: Seq2SeqModel) -> None:
    missing = torch_gpu_missing()
    if missing is not None:
        pytest.skip(missing)
    assert adapter.gpu_available()
    gpu = adapter.load(package, "gpu")
    try:
        assert gpu.device == "cuda:0"
        pairs = read_jsonl(package.file("validation.jsonl"))[:16]
        assert gpu.generate([p.source for p in pairs]) == drafter.generate(
            [p.source for p in pairs]
        )
    finally:
        gpu.close()


def test_gpu_request_refused_where_torch_sees_no_gpu(package: ModelPackage) -> None:
    if torch_gpu_missing() is None:
        pytest.skip("torch runs on a CUDA device here: the refusal cannot happen")
    assert not adapter.gpu_available()
    with pytest.raises(
        DeviceError,
        match="gpu requested for model 'report-drafter' but no GPU visible to transformers",
    ):
        load_model(package, "gpu")
