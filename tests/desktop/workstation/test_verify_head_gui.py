"""The window's Verify reports the recorded-head check too: deleted last rows are named there,
not left at "Chain OK" (the hash chain alone is still consistent)."""

from __future__ import annotations

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from tests.desktop.workstation.helpers import PASSWORD, add_users


def test_deleted_last_rows_are_named_in_the_window(qtbot, ws: Workstation, open_window) -> None:  # type: ignore[no-untyped-def]
    add_users(ws)
    for i in range(5):
        ws.record(EventType.APPLICATION_ACTIVITY, action=f"e{i}")
    assert ws.audit.head_record.flush()
    last = ws.audit.chain_head()[0]
    with ws.db.engine.begin() as conn:  # an insider deletes the tail
        conn.exec_driver_sql(f"DELETE FROM audit_events WHERE idx >= {last - 1}")
    ws.session.login("aud", PASSWORD)
    win = open_window(ws)
    viewer = win.audit_hooks.viewer
    with qtbot.waitSignal(viewer.verified, timeout=20_000) as got:
        viewer.verify()
    assert not got.args[0].ok
    # the events written since (sign-in, start) took the deleted indices: not the recorded head
    assert "RECORDED HEAD: event #" in viewer.status.text()
    assert "is not the one recorded as the head" in viewer.status.text()
