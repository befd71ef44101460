"""Migration 0003 on a real SQLCipher profile: a profile made before it gains the study tables
on its next opening, keeping what it held; the downgrade removes them again."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from core.app.workstation import Workstation
from core.store.database import MIGRATIONS


def _alembic(ws: Workstation, revision: str, up: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ws.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.upgrade if up else command.downgrade)(config, revision)


def test_a_profile_from_before_0003_gains_the_study_tables(tmp_path: Path) -> None:
    db = tmp_path / "ws.db"
    ws = Workstation.open_for_cli(db)
    head = ws.audit.chain_head()
    _alembic(ws, "0002", up=False)
    assert "studies" not in inspect(ws.db.engine).get_table_names()
    ws.close()

    ws = Workstation.open_for_cli(db)  # opening migrates to the newest revision
    try:
        tables = set(inspect(ws.db.engine).get_table_names())
        assert {"studies", "series"} <= tables
        assert ws.audit.chain_head()[0] >= head[0]  # the trail is kept
        assert ws.audit.verify().ok
    finally:
        ws.close()
