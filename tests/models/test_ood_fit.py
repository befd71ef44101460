"""models.training.fit_ood: a clean, re-runnable command that keeps the rest of the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.manifest import MANIFEST_NAME, load_package
from models.training import fit_ood
from tests.models.conftest import ZOO

MODEL = "breast-ultrasound"  # the smallest training split (546 images): a few seconds


def test_refit_reproduces_the_shipped_reference_and_keeps_other_keys(tmp_path: Path) -> None:
    folder = tmp_path / MODEL
    shutil.copytree(ZOO / MODEL, folder)
    before = json.loads((folder / MANIFEST_NAME).read_text())
    shipped_bytes = (folder / "ood.npz").read_bytes()
    assert fit_ood.main([str(folder)]) == 0
    after = json.loads((folder / MANIFEST_NAME).read_text())
    assert after["ood"] == before["ood"]  # the shipped section is what the command makes
    assert (folder / "ood.npz").read_bytes() == shipped_bytes  # byte for byte
    assert {k: v for k, v in after.items() if k != "files"} == {
        k: v for k, v in before.items() if k != "files"
    }
    load_package(folder)  # hashes right


def test_a_new_section_is_written_and_listed(tmp_path: Path) -> None:
    folder = tmp_path / MODEL
    shutil.copytree(ZOO / MODEL, folder)
    raw = json.loads((folder / MANIFEST_NAME).read_text())
    raw.pop("ood")
    (folder / "ood.npz").unlink()
    raw["files"].pop("ood.npz")
    (folder / MANIFEST_NAME).write_text(json.dumps(raw))
    section = fit_ood.fit_package(folder, method="energy", quantile=0.9)
    package = load_package(folder)
    assert package.manifest.ood is not None
    assert package.manifest.ood.method == "energy"
    assert package.manifest.ood.layer == "logits"
    assert "ood.npz" in package.manifest.files
    assert section["validation"]["own_val_flagged"] == pytest.approx(0.1, abs=0.02)
    assert package.manifest.population == load_package(ZOO / MODEL).manifest.population


def test_training_data_is_derived_from_the_validation_reference() -> None:
    assert fit_ood.train_ref(load_package(ZOO / MODEL)) == "medmnist:breastmnist:train"
    brain = load_package(ZOO / "brain-tumour-mri")
    assert fit_ood.train_ref(brain) == "phantom:brain:seed=301:n=2000"
    tabular = load_package(ZOO / "tabular-breast-cancer")
    with pytest.raises(fit_ood.FitOodError, match="tabular-breast-cancer"):
        fit_ood.fit_package(ZOO / "tabular-breast-cancer")
    assert tabular.manifest.ood is None
