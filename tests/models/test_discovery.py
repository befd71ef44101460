"""Package discovery: a user folder cannot silently shadow a shipped model; bad ones are listed."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.discovery import discover, package_dirs
from tests.models.conftest import ALL_MODELS, ZOO


def test_duplicate_id_reported_and_first_wins(tmp_path: Path) -> None:
    user = tmp_path / "user-models"
    shutil.copytree(ZOO / "tabular-breast-cancer", user / "copy")
    (user / "broken").mkdir()
    (user / "broken" / "manifest.json").write_text("[]")
    packages, errors = discover([ZOO, user])
    ids = [p.id for p in packages]
    assert set(ALL_MODELS) <= set(ids)
    assert ids.count("tabular-breast-cancer") == 1
    by_path = {e.path: e for e in errors}
    assert "duplicate of" in by_path[user / "copy"].reason
    assert "JSON object" in by_path[user / "broken"].reason
    kept = next(p for p in packages if p.id == "tabular-breast-cancer")
    assert kept.path == ZOO / "tabular-breast-cancer"


def test_package_dirs_accepts_a_package_itself_and_skips_missing(tmp_path: Path) -> None:
    found = package_dirs([ZOO / "breast-ultrasound", tmp_path / "nope"])
    assert found == [ZOO / "breast-ultrasound"]
