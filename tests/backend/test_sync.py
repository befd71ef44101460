"""Idempotent batches and audit-chain anchoring against a live server."""

from __future__ import annotations

import httpx

from backend.db import AuditEvent, Result, SecurityAlert
from tests.backend.conftest import LiveServer, Workstation, result_item


def _count(server: LiveServer, model: type, device_id: str) -> int:
    with server.state.sessions() as s:
        return s.query(model).filter_by(device_id=device_id).count()


def test_replayed_key_returns_original_response(ws: Workstation, server: LiveServer) -> None:
    body = {"items": [result_item() for _ in range(5)]}
    first = ws.post("/results:batch", body, key="batch-1")
    assert first.status_code == 200
    assert len(first.json()["stored"]) == 5
    replay = ws.post("/results:batch", body, key="batch-1")
    assert replay.status_code == 200
    assert replay.content == first.content
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert _count(server, Result, ws.device_id) == 5


def test_same_key_different_body_refused(ws: Workstation) -> None:
    assert ws.post("/results:batch", {"items": [result_item()]}, key="k").status_code == 200
    r = ws.post("/results:batch", {"items": [result_item()]}, key="k")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"


def test_items_stored_once_across_batches(ws: Workstation, server: LiveServer) -> None:
    items = [result_item() for _ in range(6)]
    assert len(ws.post("/results:batch", {"items": items[:4]}).json()["stored"]) == 4
    r = ws.post("/results:batch", {"items": items[2:]})  # overlaps by two, new key
    assert sorted(r.json()["duplicates"]) == sorted(i["client_id"] for i in items[2:4])
    assert sorted(r.json()["stored"]) == sorted(i["client_id"] for i in items[4:])
    assert _count(server, Result, ws.device_id) == 6


def test_missing_key_and_invalid_body(ws: Workstation) -> None:
    r = ws.http.post("/results:batch", json={"items": [result_item()]})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "idempotency_key_required"
    bad = result_item(decision="maybe")
    r = ws.post("/results:batch", {"items": [bad]})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


def test_audit_chain_extends_and_dedupes(ws: Workstation, server: LiveServer) -> None:
    first = ws.make_events(3)
    r = ws.post("/audit-events:batch", {"events": first})
    assert r.status_code == 200
    assert r.json()["head"] == {"index": 2, "hash": first[-1]["hash"]}
    more = ws.make_events(2)
    # a retry that re-sends already anchored events plus new ones, under a new key
    r = ws.post("/audit-events:batch", {"events": first[1:] + more})
    assert r.status_code == 200
    assert len(r.json()["duplicates"]) == 2
    assert r.json()["head"]["index"] == 4
    assert _count(server, AuditEvent, ws.device_id) == 5


def test_rewritten_history_refused_and_alerted(ws: Workstation, server: LiveServer) -> None:
    ws.post("/audit-events:batch", {"events": ws.make_events(4)}).raise_for_status()
    # an older copy of the audit database is restored: the client forgets its last two events
    ws.chain = ws.chain[:2]
    forged = ws.make_events(1, kind="edited")
    r = ws.post("/audit-events:batch", {"events": forged})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "audit_chain_fork"
    assert err["data"]["server_head"]["index"] == 3
    with server.state.sessions() as s:
        alerts = s.query(SecurityAlert).filter_by(device_id=ws.device_id).all()
    assert [a.code for a in alerts] == ["audit_chain_fork"]
    listed = httpx.get(f"{server.api}/admin/security-alerts", headers=server.admin_headers())
    assert any(a["device_id"] == ws.device_id for a in listed.json())
    assert _count(server, AuditEvent, ws.device_id) == 4


def test_wrong_prev_hash_and_gap_refused(ws: Workstation) -> None:
    ws.post("/audit-events:batch", {"events": ws.make_events(2)}).raise_for_status()
    ev = ws.make_events(1)[0]
    r = ws.post("/audit-events:batch", {"events": [{**ev, "prev_hash": "a" * 64}]})
    assert r.status_code == 409
    gap = ws.make_events(2)[1]  # skips index 3
    r = ws.post("/audit-events:batch", {"events": [gap]})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "audit_chain_gap"


def test_metrics_show_requests_and_sync_lag(ws: Workstation, server: LiveServer) -> None:
    ws.post("/results:batch", {"items": [result_item()]}).raise_for_status()
    text = httpx.get(f"{server.url}/metrics", headers=server.admin_headers()).text
    assert "doctorai_sync_lag_seconds_bucket" in text
    assert ws.device_id not in text
    assert 'route="/api/v1/results:batch"' in text
    assert "doctorai_http_request_duration_seconds_bucket" in text


def test_openapi_published(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/v1/audit-events:batch" in spec["paths"]
    assert "AuditEventItem" in spec["components"]["schemas"]


def test_oversized_body_refused(ws: Workstation) -> None:
    r = ws.http.post(
        "/results:batch",
        content=b"x" * (33 * 2**20),
        headers={"Idempotency-Key": "big", "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_a_changed_decision_replaces_the_old_one_and_the_history_is_kept(
    ws: Workstation, server: LiveServer
) -> None:
    """Made, accepted, synced, then rejected, synced: the backend holds 'rejected' (it kept
    'accepted' when the second item was taken for a duplicate), and both decisions in order."""
    from datetime import UTC, datetime, timedelta

    from backend.db import ResultDecision

    made = result_item(decision="none")
    cid = made["client_id"]
    t0 = datetime.now(UTC)
    accepted = {**made, "decision": "accepted", "decided_at": t0.isoformat()}
    rejected = {
        **made,
        "decision": "rejected",
        "decided_at": (t0 + timedelta(minutes=2)).isoformat(),
    }
    assert ws.post("/results:batch", {"items": [made]}).json()["stored"] == [cid]
    assert ws.post("/results:batch", {"items": [accepted]}).json()["stored"] == [cid]
    assert ws.post("/results:batch", {"items": [rejected]}).json()["stored"] == [cid]
    # a late replay of the older decision neither wins nor counts twice
    assert ws.post("/results:batch", {"items": [accepted]}).json()["duplicates"] == [cid]
    with server.state.sessions() as s:
        (row,) = s.query(Result).filter_by(device_id=ws.device_id, client_id=cid).all()
        history = [
            d.decision
            for d in s.query(ResultDecision)
            .filter_by(device_id=ws.device_id, client_id=cid)
            .order_by(ResultDecision.decided_at)
        ]
    assert row.decision == "rejected"
    assert history == ["accepted", "rejected"]
