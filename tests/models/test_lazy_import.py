"""No framework is imported until a model of that framework is used (checked in sys.modules)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = ["torch", "tensorflow", "keras", "xgboost", "transformers", "sklearn"]

SCRIPT = r"""
import json, sys
from models.adapters import availability, load_model
from models.discovery import ZOO_DIR, discover
from models.manifest import load_package
from models.preprocess import preprocess_batch
import models.evaluate, models.selftest, models.devices, models.postprocess, models.phantoms
import models.adapters.torch_adapter, models.adapters.keras_adapter, models.adapters.xgboost_adapter
import cli.models_cmd
FW = json.loads(sys.argv[2])
packages, errors = discover([ZOO_DIR])
avail = availability()
before = [m for m in FW if m in sys.modules]
pkg = load_package(ZOO_DIR / sys.argv[1])
model = load_model(pkg, "cpu")
import numpy as np
x = np.load(pkg.file(pkg.manifest.selftest.input))
model.predict(preprocess_batch(list(x) if pkg.manifest.input.kind == "image" else x,
                               pkg.manifest.input, pkg.id))
after = [m for m in FW if m in sys.modules]
print(json.dumps({"ids": sorted(p.id for p in packages),
                  "avail": {k: v[0] for k, v in avail.items()},
                  "before": before, "after": after}))
"""


def _run(model_id: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, model_id, json.dumps(FRAMEWORKS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_listing_imports_no_framework_and_xgboost_use_imports_only_xgboost() -> None:
    result = _run("tabular-breast-cancer")
    assert "chest-xray-pneumonia" in result["ids"]  # type: ignore[operator]
    assert result["avail"] == {
        "keras": True,
        "torch": True,
        "xgboost": True,
        "transformers": True,
        "onnx": True,
        "torchscript": True,
    }
    assert result["before"] == []
    after = set(result["after"])  # type: ignore[arg-type]
    assert "xgboost" in after
    assert not after & {"torch", "tensorflow", "keras", "transformers"}


def test_torch_use_imports_torch_but_not_tensorflow() -> None:
    result = _run("breast-ultrasound")
    assert result["before"] == []
    after = set(result["after"])  # type: ignore[arg-type]
    assert "torch" in after
    assert not after & {"tensorflow", "keras", "xgboost"}
