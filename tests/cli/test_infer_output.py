"""``doctorai infer`` for people (issue 18 tryout): images numbered from 1 in the flags and on
each image's line, which names the file and the slice of its series and marks the flags about
it, while --json keeps 0-based indices; --heatmap writes one PNG per image and prints each
path; ``models verify --eval`` prints the manifest's intervals and threshold beside the
recomputed figures."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cli import main
from cli.infer_cmd import heatmap_paths
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType

REPO = Path(__file__).resolve().parents[2]
MR = REPO / "resources" / "sample" / "mr_brain"
BRAIN = "brain-tumour-mri"  # phantom-trained: its OOD check flags these real MR slices


def _three_slices(tmp_path: Path) -> Path:
    folder = tmp_path / "mr"
    folder.mkdir()
    for name in ("1-01.dcm", "1-02.dcm", "1-03.dcm"):
        shutil.copy(MR / name, folder / name)
    return folder


def test_heatmap_paths_one_image_keeps_the_name() -> None:
    assert heatmap_paths(Path("/x/out.png"), 1) == [Path("/x/out.png")]
    assert heatmap_paths(Path("/x/out.png"), 3) == [
        Path("/x/out-001.png"),
        Path("/x/out-002.png"),
        Path("/x/out-003.png"),
    ]


def test_infer_numbers_images_from_one_and_writes_a_heatmap_per_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("keras", reason="the brain model is a Keras model (the 'ai' extra)")
    folder = _three_slices(tmp_path)
    out = tmp_path / "heat.png"
    argv = ["infer", "--model", BRAIN, str(folder), "--device", "cpu", "--heatmap", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    (ood,) = [line for line in text.splitlines() if line.startswith("  ood flag")]
    assert ood.startswith("  ood flag [images 1-3]: ")
    lines = [line for line in text.splitlines() if line.startswith("  image ")]
    assert len(lines) == 3
    for n, line in enumerate(lines, start=1):
        assert re.match(rf"  image {n} \(1-0{n}\.dcm, slice {n} of 3\): \w+  \(", line), line
        assert line.endswith("[flagged: ood]")
    written = [tmp_path / f"heat-00{n}.png" for n in (1, 2, 3)]
    for n, path in enumerate(written, start=1):
        assert f"  heatmap of image {n}: {path}\n" in text
        assert Image.open(path).size[0] > 0
    assert not out.exists()
    ws = Workstation.open()
    try:
        exports = list(ws.audit.iter_events(event_type=EventType.EXPORT))
    finally:
        ws.close()
    assert len(exports) == 3  # one audited export per written file

    assert main([*argv[:-2], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (guard,) = [g for g in report["guards"] if g["kind"] == "ood"]
    assert guard["images"] == [0, 1, 2]  # JSON keeps the stored 0-based indices
    assert report["files"] == [f"1-0{n}.dcm, slice {n} of 3" for n in (1, 2, 3)]


def test_verify_eval_prints_the_manifest_intervals_and_threshold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("torch", reason="the breast model is a torch model (the 'ai' extra)")
    manifest = json.loads(
        (REPO / "models" / "zoo" / "breast-ultrasound" / "manifest.json").read_text()
    )
    metrics, output = manifest["metrics"], manifest["output"]
    assert main(["models", "verify", "breast-ultrasound", "--eval", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    low, high = metrics["sensitivity_ci"]
    assert (
        f"     sensitivity: manifest {metrics['sensitivity']:.4f} (95% interval {low:.4f}-"
        f"{high:.4f}), recomputed {metrics['sensitivity']:.4f}\n"
    ) in text
    low, high = metrics["specificity_ci"]
    assert f"specificity: manifest {metrics['specificity']:.4f} (95% interval {low:.4f}-" in text
    label = output["positive_label"]
    assert f"     threshold {label}: {output['thresholds'][label]:.4f}\n" in text
    assert f"     threshold chosen by: {metrics['threshold_method']}\n" in text

    assert main(["models", "verify", "breast-ultrasound", "--eval", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["operating_point"]["sensitivity"]["ci95"] == metrics["sensitivity_ci"]
    assert row["operating_point"]["threshold_method"] == metrics["threshold_method"]
