"""Migration 0004 on a real SQLCipher profile: a profile from before it gains the annotation
and key-image tables on its next opening, keeping its trail; the downgrade removes them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from core.annotations.model import AcquiredImage, Annotation, Kind
from core.app import annotations as app
from core.app.workstation import Workstation
from core.store.database import MIGRATIONS
from tests.annotations.conftest import PASSWORD, add_users, show_ct


def _alembic(ws: Workstation, revision: str, up: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ws.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.upgrade if up else command.downgrade)(config, revision)


def test_a_profile_from_before_0004_gains_the_annotation_tables(tmp_path: Path) -> None:
    db = tmp_path / "ws.db"
    ws = Workstation.open(db)
    add_users(ws)
    ws.session.login("dr-a", PASSWORD)
    shown = show_ct(ws)
    head = ws.audit.chain_head()
    _alembic(ws, "0003", up=False)
    tables = set(inspect(ws.db.engine).get_table_names())
    assert not {"annotations", "key_images"} & tables
    assert "studies" in tables  # 0003's tables stay
    ws.close()

    ws = Workstation.open(db)  # opening migrates to the newest revision
    try:
        inspector = inspect(ws.db.engine)
        assert {"annotations", "key_images"} <= set(inspector.get_table_names())
        assert "ux_key_images_active" in {i["name"] for i in inspector.get_indexes("key_images")}
        assert ws.audit.chain_head()[0] >= head[0]
        ws.session.login("dr-a", PASSWORD)
        inst = shown.instances[0]
        image = AcquiredImage(inst.sop_instance_uid, 0, inst.pixel_spacing)
        a = app.create_annotation(
            ws, Annotation(Kind.PROBE, [(1, 1)], image, shown.study_uid, shown.series_uid)
        )
        assert app.list_annotations(ws, shown.study_uid) == [a]
        assert ws.audit.verify().ok
    finally:
        ws.close()
