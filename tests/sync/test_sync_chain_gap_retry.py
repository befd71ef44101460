"""A gap the backend reports as ordering (issue 19, defect 6) is retried by the sync engine:
when the earlier events land meanwhile (another batch of this workstation still in flight on
another server process), the batch goes through with no Security Alert on either side."""

from __future__ import annotations

import json

from backend.db import SecurityAlert as ServerAlert
from core.audit.log import _wire_payload
from core.sync.client import SyncClient
from core.sync.engine import BackoffPolicy, SecurityAlert, SyncEngine
from core.sync.errors import ChainGapError
from core.sync.wire import BatchResponse
from tests.backend.conftest import LiveServer
from tests.sync.conftest import LocalStore, enrolled_client, viewed

FAST = BackoffPolicy(base_s=0.02, cap_s=0.2, max_attempts=5)


class _EarlierBatchLandsLate:
    """The real client; when the server first answers audit_chain_gap, the missing earlier
    event arrives (sent by the same real client), as a batch racing on another process would."""

    def __init__(self, client: SyncClient, earlier: dict[str, object]) -> None:
        self.client, self.earlier = client, earlier
        self.gaps = 0
        self.retry_after: list[float | None] = []

    def post_batch(self, endpoint: str, body: bytes, key: str) -> BatchResponse:
        try:
            return self.client.post_batch(endpoint, body, key)
        except ChainGapError as exc:
            self.gaps += 1
            self.retry_after.append(exc.retry_after)
            if self.gaps == 1:
                late = json.dumps({"events": [self.earlier]}, default=str).encode()
                self.client.post_batch("audit-events:batch", late, "earlier-batch")
            raise


def test_a_gap_filled_meanwhile_is_retried_without_alert(
    server: LiveServer, store: LocalStore
) -> None:
    client = enrolled_client(server)
    device_id = client.credentials.require_device().device_id
    first = store.audit.append(viewed(0), sync=False)  # index 0 travels in "another batch"
    store.audit.append(viewed(1))
    store.audit.append(viewed(2))
    sender = _EarlierBatchLandsLate(client, _wire_payload(first))
    alerts: list[SecurityAlert] = []
    report = SyncEngine(store.outbox, sender, backoff=FAST, on_alert=alerts.append).sync_once()
    assert sender.gaps == 1
    assert sender.retry_after == [1.0]  # the server said when to try again
    assert report.ok, report
    assert report.retries == 1
    assert report.sent == 2
    assert alerts == []
    assert store.outbox.count_unsent() == 0
    with server.state.sessions() as s:
        assert s.query(ServerAlert).filter_by(device_id=device_id).count() == 0
