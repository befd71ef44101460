"""``doctorai --selftest``: the installation check IT runs after a silent install.

Run as a subprocess, exactly as IT would (it creates its own QApplication, offscreen)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.gpu import torch_gpu_missing

REPO = Path(__file__).resolve().parents[2]
CHEST_CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"


def run_selftest(*args: str, model: str | None = None) -> tuple[int, dict]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    if model:
        env["DOCTORAI_SELFTEST_MODEL"] = model
    proc = subprocess.run(
        [sys.executable, "-m", "desktop.launcher", "--selftest", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_selftest_passes_on_a_real_dicom_and_zoo_model() -> None:
    manifest = REPO / "models" / "zoo" / "chest-xray-pneumonia" / "manifest.json"
    assert manifest.is_file(), f"the committed zoo model is missing: {manifest}"
    code, report = run_selftest(str(CHEST_CR))
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, report
    assert report["ok"]
    assert checks["qt"]["detail"]["platform"] == "offscreen"
    assert checks["qt"]["detail"]["encoded_bytes"]["JPEG"] > 0
    assert checks["dicom"]["detail"]["transfer_syntax"] == "1.2.840.10008.1.2.4.91"  # JPEG 2000
    assert checks["dicom"]["detail"]["shape"][0] > 1000
    assert checks["sqlcipher"]["detail"]["cipher_version"].startswith("4.")
    model = checks["model"]["detail"]
    assert model["framework"] == "torch"
    # the default device is "auto": the GPU where torch itself sees one (tests/gpu.py)
    assert model["device"] == ("cuda:0" if torch_gpu_missing() is None else "cpu")
    assert "matches" in model["stored_sample"]
    probs = model["dicom_prediction"]
    assert set(probs) == {"normal", "pneumonia"}
    assert abs(sum(probs.values()) - 1.0) < 1e-3


def test_selftest_reports_each_failure_and_exits_nonzero(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.dcm"
    code, report = run_selftest(str(missing), model="no-such-model")
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 1
    assert not report["ok"]
    assert checks["qt"]["ok"]  # one failure does not hide the others
    assert str(missing) in checks["dicom"]["error"]
    assert "no model 'no-such-model'" in checks["model"]["error"]
