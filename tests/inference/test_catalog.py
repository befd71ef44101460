"""The catalogue of installed packages: zoo + configured folders + profile, refusals listed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.inference.catalog import load_catalog, model_roots
from models.discovery import ZOO_DIR

REPO = Path(__file__).resolve().parents[2]


def _copy(package: str, dest: Path) -> Path:
    target = dest / package
    shutil.copytree(ZOO_DIR / package, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_roots_follow_settings_and_profile(tmp_path: Path) -> None:
    extra = tmp_path / "site-models"
    extra.mkdir()
    config = Path(tmp_path / "machine-config.toml")
    config.write_text(f'[inference]\nmodel_dirs = ["{extra.as_posix()}"]\n')
    roots = model_roots()
    assert roots == [ZOO_DIR, extra, tmp_path / "profile" / "models"]


def test_tampered_and_broken_packages_are_listed_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    tampered = _copy("tabular-breast-cancer", folder)
    weights = tampered / json.loads((tampered / "manifest.json").read_text())["weights"]
    weights.write_bytes(weights.read_bytes() + b" ")
    broken = folder / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    catalog = load_catalog([ZOO_DIR, folder])
    # the zoo's own copy of the tabular model wins (first id), the tampered duplicate and
    # the broken manifest are refused with their paths
    assert "tabular-breast-cancer" in catalog.ids()
    assert catalog.get("tabular-breast-cancer").path == ZOO_DIR / "tabular-breast-cancer"
    refused = {str(e.path): str(e) for e in catalog.errors}
    assert str(broken) in refused
    assert "broken" in refused[str(broken)]
    only_tampered = load_catalog([folder])
    assert only_tampered.ids() == []
    messages = " ".join(str(e) for e in only_tampered.errors)
    assert "tabular-breast-cancer" in messages
    assert "sha" in messages.lower() or "hash" in messages.lower()


def test_applicable_by_modality() -> None:
    catalog = load_catalog([ZOO_DIR])
    assert [p.id for p in catalog.applicable("CR")] == ["chest-xray-pneumonia"]
    assert [p.id for p in catalog.applicable("dx")] == ["chest-xray-pneumonia"]
    assert [p.id for p in catalog.applicable("US")] == ["breast-ultrasound"]
    assert catalog.applicable("CT") == []
    assert catalog.applicable("") == []  # the tabular and text models never apply to images


def test_catalog_never_imports_a_framework() -> None:
    code = (
        "import sys\n"
        "from core.inference.catalog import load_catalog\n"
        "c = load_catalog()\n"
        "assert len(c.packages) >= 7, c.ids()\n"
        "print(sorted(k for k in ('torch','tensorflow','keras','xgboost','transformers','sklearn')"
        " if k in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


def test_colour_models_do_not_apply_to_greyscale_images() -> None:
    from core.inference.catalog import load_catalog

    catalog = load_catalog(verify_hashes=False)
    colour = {"lung-colon-histopathology", "skin-lesion"}
    assert colour <= {p.id for p in catalog.applicable("OT")}  # colour unknown: all listed
    assert colour <= {p.id for p in catalog.applicable("OT", is_color=True)}
    assert not colour & {p.id for p in catalog.applicable("OT", is_color=False)}


def test_a_greyscale_image_into_a_colour_model_is_refused_by_name() -> None:
    import numpy as np

    from core.inference.catalog import load_catalog
    from models.preprocess import PreprocessError, preprocess_image

    package = load_catalog(verify_hashes=False).get("lung-colon-histopathology")
    assert package is not None
    with pytest.raises(PreprocessError, match="made for colour \\(RGB\\) images; this one is grey"):
        preprocess_image(np.zeros((64, 64), np.float32), package.manifest.input, package.id)
    rgb = preprocess_image(np.zeros((64, 64, 3), np.float32), package.manifest.input, package.id)
    assert rgb.shape == (3, 32, 32)
