"""Two backend processes on one PostgreSQL, as two ECS tasks behind a load balancer (issue 19,
defect 6): two batches of one device arriving at once on different processes are ordering,
not an attack. The later batch may be told to retry (409 ``audit_chain_gap`` with
Retry-After); no Security Alert is recorded for it, and every event is stored once. A real
fork (same index, another hash) is still refused and alerted."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from backend.db import AuditEvent, Device, Result, SecurityAlert
from core.sync.wire import GENESIS_HASH
from tests.backend import pg
from tests.backend.conftest import result_item
from tests.backend.two_process import Fleet, backend_processes

_reason = pg.unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with backend_processes(tmp_path_factory.mktemp("two")) as f:
        yield f


class Device2:
    """One workstation holding a token that both processes accept (shared JWT secret)."""

    def __init__(self, fleet: Fleet) -> None:
        r = httpx.post(f"{fleet.api(0)}/enrol", json={"code": fleet.enrol_code(), "label": "x"})
        r.raise_for_status()
        self.device_id, secret = r.json()["device_id"], r.json()["device_secret"]
        r = httpx.post(
            f"{fleet.api(1)}/token", json={"device_id": self.device_id, "device_secret": secret}
        )
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        self.http = [httpx.Client(base_url=fleet.api(i), headers=auth, timeout=30) for i in (0, 1)]
        self.chain: list[dict[str, Any]] = []

    def events(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            prev = self.chain[-1]["hash"] if self.chain else GENESIS_HASH
            ev = {
                "event_id": uuid.uuid4().hex,
                "index": len(self.chain),
                "prev_hash": prev,
                "created_at": datetime.now(UTC).isoformat(),
                "type": "viewed",
                "actor": "dr-a",
                "data": {"n": len(self.chain)},
            }
            ev["hash"] = hashlib.sha256(
                (prev + json.dumps(ev, sort_keys=True)).encode()
            ).hexdigest()
            self.chain.append(ev)
            out.append(ev)
        return out

    def post(self, proc: int, path: str, body: dict[str, Any], key: str) -> httpx.Response:
        return self.http[proc].post(path, json=body, headers={"Idempotency-Key": key})

    def close(self) -> None:
        for h in self.http:
            h.close()


def _at_once(*calls: Any) -> list[httpx.Response]:
    """Run the calls in threads released together; their answers in order."""
    barrier = threading.Barrier(len(calls))
    out: list[httpx.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in out if r is not None]


def _alerts(fleet: Fleet, device_id: str) -> list[str]:
    with fleet.state.sessions() as s:
        return list(
            s.scalars(select(SecurityAlert.code).where(SecurityAlert.device_id == device_id))
        )


def test_concurrent_audit_batches_on_two_processes_are_ordering_not_alerts(fleet: Fleet) -> None:
    dev = Device2(fleet)
    trials, per_batch = 100, 3
    gaps = 0
    try:
        for t in range(trials):
            a, b = dev.events(per_batch), dev.events(per_batch)
            ka, kb = f"a{t}", f"b{t}"
            pa, pb = t % 2, 1 - t % 2  # each process gets the earlier batch half the time
            ra, rb = _at_once(
                lambda a=a, ka=ka, pa=pa: dev.post(pa, "/audit-events:batch", {"events": a}, ka),
                lambda b=b, kb=kb, pb=pb: dev.post(pb, "/audit-events:batch", {"events": b}, kb),
            )
            assert ra.status_code == 200, ra.text
            if rb.status_code != 200:  # it came first: told to retry, as the client does
                assert rb.status_code == 409, rb.text
                assert rb.json()["error"]["code"] == "audit_chain_gap"
                assert rb.headers.get("Retry-After"), "a gap must say when to retry"
                gaps += 1
                rb = dev.post(pb, "/audit-events:batch", {"events": b}, kb)
            assert rb.status_code == 200, rb.text
        print(f"{trials} concurrent pairs: {gaps} later batches arrived first and were retried")
        assert _alerts(fleet, dev.device_id) == []
        with fleet.state.sessions() as s:
            rows = s.execute(
                select(AuditEvent.index, AuditEvent.hash).where(
                    AuditEvent.device_id == dev.device_id
                )
            ).all()
            head = s.get(Device, dev.device_id)
            assert head is not None
        n = trials * 2 * per_batch
        assert sorted(i for i, _h in rows) == list(range(n))  # every event once
        assert {i: h for i, h in rows} == {e["index"]: e["hash"] for e in dev.chain}
        assert head.head_index == n - 1
        assert head.head_hash == dev.chain[-1]["hash"]
    finally:
        dev.close()


def test_concurrent_result_batches_with_shared_items_store_each_once(fleet: Fleet) -> None:
    """The same items in two batches on two processes at once (a retry that raced its
    original): each item stored once, no 409 conflict_retry, no alert."""
    dev = Device2(fleet)
    try:
        for t in range(30):
            items = [result_item() for _ in range(20)]
            ra, rb = _at_once(
                lambda items=items, t=t: dev.post(0, "/results:batch", {"items": items}, f"x{t}"),
                lambda items=items, t=t: dev.post(
                    1, "/results:batch", {"items": items[::-1]}, f"y{t}"
                ),
            )
            assert ra.status_code == 200, ra.text
            assert rb.status_code == 200, rb.text
            stored = set(ra.json()["stored"]) | set(rb.json()["stored"])
            assert stored == {i["client_id"] for i in items}
            assert not set(ra.json()["stored"]) & set(rb.json()["stored"])
        with fleet.state.sessions() as s:
            count = s.scalar(
                select(func.count()).select_from(Result).where(Result.device_id == dev.device_id)
            )
        assert count == 30 * 20
        assert _alerts(fleet, dev.device_id) == []
    finally:
        dev.close()


def test_a_real_fork_is_still_refused_and_alerted(fleet: Fleet) -> None:
    dev = Device2(fleet)
    try:
        first = dev.events(3)
        assert dev.post(0, "/audit-events:batch", {"events": first}, "f1").status_code == 200
        forged = json.loads(json.dumps(first[2]))
        forged["data"] = {"n": "rewritten"}
        forged["hash"] = hashlib.sha256(b"forged").hexdigest()
        r = dev.post(1, "/audit-events:batch", {"events": [forged]}, "f2")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "audit_chain_fork"
        assert "Retry-After" not in r.headers
        assert _alerts(fleet, dev.device_id) == ["audit_chain_fork"]
    finally:
        dev.close()
