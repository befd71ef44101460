"""Shadow mode: a rollout candidate (the real chest X-ray package under a new version) runs on
the images of a shown result and yields an upstream result item, never a shown result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from core.imaging.index import read_header
from core.imaging.pixels import read_frame
from core.inference.manager import ModelManager
from core.inference.pipeline import run_images
from core.inference.result import InputRef
from core.inference.shadow import ShadowModels
from core.sync.wire import ResultItem
from models.discovery import ZOO_DIR
from models.manifest import load_package, write_manifest

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
MODEL = "chest-xray-pneumonia"


def candidate(tmp: Path, version: str) -> Path:
    dest = tmp / f"{MODEL}-{version}"
    shutil.copytree(ZOO_DIR / MODEL, dest)
    raw = json.loads((dest / "manifest.json").read_text())
    raw["version"] = version
    raw.pop("files")
    write_manifest(dest, raw)
    return dest


@pytest.fixture(scope="module")
def cr() -> tuple[Any, InputRef]:
    inst = read_header(str(CR), require_uids=False).instance
    return read_frame(inst), InputRef(inst.sop_instance_uid, 0, inst.study_instance_uid)


def test_shadow_run_reports_agreement_with_the_shown_result(
    tmp_path: Path, cr: tuple[Any, InputRef]
) -> None:
    frame, ref = cr
    shown_manager = ModelManager([load_package(ZOO_DIR / MODEL)], device="cpu")
    shadow = ShadowModels.from_dirs([(candidate(tmp_path, "9.1.0"), 7)], device="cpu")
    try:
        shown = run_images(shown_manager, MODEL, [frame], [ref]).to_json()
        assert shadow.ids() == [MODEL]
        item = shadow.run(MODEL, [frame], [ref], shown)
        ResultItem.model_validate(item)  # what the backend accepts
        assert item["shadow"] is True
        assert item["rollout_id"] == 7
        assert (item["model_id"], item["model_version"], item["decision"]) == (
            MODEL,
            "9.1.0",
            "none",
        )
        assert item["client_id"] != shown["result_id"]
        assert item["latency_ms"] > 0
        summary = item["summary"]
        assert summary["shown_result_id"] == shown["result_id"]
        shipped = load_package(ZOO_DIR / MODEL).version
        assert summary["shown_version"] == shipped
        assert summary["decisions"] == shown["decisions"]  # same weights, same findings
        assert summary["agrees_with_shown"] is True
        sent = json.dumps(item)  # no patient data upstream: not even the image's UIDs
        assert ref.sop_instance_uid not in sent
        assert ref.study_instance_uid not in sent
        # a shown result with other findings is reported as a disagreement
        other = "normal" if shown["decisions"] == ["pneumonia"] else "pneumonia"
        flipped = {**shown, "decisions": [other]}
        assert shadow.run(MODEL, [frame], [ref], flipped)["summary"]["agrees_with_shown"] is False
        # the shown manager still runs the shipped version
        assert shown_manager.package(MODEL).version == shipped
        with pytest.raises(KeyError, match="no shadow model installed for 'skin-lesion'"):
            shadow.run("skin-lesion", [frame], [ref], shown)
    finally:
        shown_manager.shutdown()
        shadow.shutdown()


def test_tampered_shadow_package_is_refused_not_run(tmp_path: Path) -> None:
    folder = candidate(tmp_path, "1.2.0")
    weights = next(p for p in folder.iterdir() if p.suffix in (".pt", ".pth", ".ts"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    shadow = ShadowModels.from_dirs([(folder, 9)], device="cpu")
    assert shadow.ids() == []
    assert len(shadow.errors) == 1
    assert "SHA-256 mismatch" in str(shadow.errors[0])
