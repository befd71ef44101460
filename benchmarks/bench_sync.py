"""Workstation sync on loopback: the engine draining an outbox vs one bare POST per item, and a
TUF-verified model download (ModelUpdater, our fetcher) vs a plain HTTP download of the file.

Baselines measured in the same run against the same live backend (uvicorn in this process):
- 10,000 items queued in the workstation's own encrypted database (SQLCipher, core.store: half
  results through core.store.outbox.enqueue_many, half audit events chained and queued by
  core.audit's AuditLog.append_many) and drained by SyncEngine from its StoreOutbox (batches,
  idempotency keys, marking rows sent, every write durable) vs the same payloads, read from
  that outbox, POSTed one per request with a bare keep-alive httpx client (nothing read from or
  marked in a database, no retries);
- a 200 MiB package (random bytes, so gzip cannot shrink it): TUF refresh + verified download
  to a file vs a plain streamed GET of the same target to a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx

N_ITEMS = 10_000
# One bare POST per item runs at ~40/s here (4 minutes for all 10,000); the rate is steady, so
# by default it is measured on the first N_BARE payloads. BENCH_SYNC_BARE=10000 runs them all.
N_BARE = int(os.environ.get("BENCH_SYNC_BARE", "2000"))
PACKAGE_MB = int(os.environ.get("BENCH_SYNC_PACKAGE_MB", "200"))


def _drain(live: object, tmp: Path) -> tuple[float, float, float]:
    from core.sync.engine import BackoffPolicy, SyncEngine
    from tests.sync.conftest import LocalStore, enrolled_client, queue

    # engine: the encrypted outbox -> batches
    store = LocalStore.open(tmp / "workstation.db")
    t0 = time.perf_counter()
    queue(store, N_ITEMS // 2, N_ITEMS // 2)
    queue_s = time.perf_counter() - t0
    items = [(row.kind, dict(row.payload)) for row in store.outbox.fetch_unsent(N_ITEMS)]
    assert len(items) == N_ITEMS
    client = enrolled_client(live)  # type: ignore[arg-type]
    engine = SyncEngine(store.outbox, client, batch_size=500, backoff=BackoffPolicy(max_attempts=3))
    t0 = time.perf_counter()
    report = engine.sync_once()
    engine_s = time.perf_counter() - t0
    assert report.ok, report.error
    assert store.outbox.count_unsent() == 0
    client.close()
    store.close()

    # baseline: the same payloads, one bare POST each (another device, so the audit events
    # extend a chain of their own on the server)
    bare = enrolled_client(live)  # type: ignore[arg-type]
    token = bare.access_token()
    encoded = [
        ("results:batch", json.dumps({"items": [p]}).encode())
        if kind == "result"
        else ("audit-events:batch", json.dumps({"events": [p]}).encode())
        for kind, p in items
    ]
    with httpx.Client(base_url=bare.api, headers={"Authorization": f"Bearer {token}"}) as http:
        t0 = time.perf_counter()
        for ep, body in encoded[:N_BARE]:
            r = http.post(
                f"/{ep}",
                content=body,
                headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
            )
            r.raise_for_status()
        bare_s = time.perf_counter() - t0
    bare.close()
    return N_ITEMS / engine_s, min(N_BARE, N_ITEMS) / bare_s, N_ITEMS / queue_s


def _download(live: object, tmp: Path) -> tuple[float, float, int]:
    import random

    from backend.catalogue import add_model, set_channel
    from core.sync.model_update import ModelUpdater
    from tests.sync.conftest import enrolled_client

    pkg_dir = tmp / "pkg"
    pkg_dir.mkdir()
    rng = random.Random(0)
    with (pkg_dir / "weights.bin").open("wb") as fh:
        for _ in range(PACKAGE_MB):
            fh.write(rng.randbytes(1 << 20))
    (pkg_dir / "manifest.json").write_text('{"id": "bench-model", "version": "1.0.0"}')
    st = live.state  # type: ignore[attr-defined]
    with st.sessions() as s:
        pkg = add_model(s, st.repo, pkg_dir)
        set_channel(s, st.repo, "bench-model", "1.0.0")
        st.repo.publish(s)
        s.commit()
        root = st.repo.root_json_for_installer(s)
    url = f"{live.url}/tuf/targets/models/bench-model/{pkg.sha256}.bench-model-1.0.0.tar.gz"  # type: ignore[attr-defined]
    # targets go to enrolled workstations only: both downloads carry this device's token
    client = enrolled_client(live)  # type: ignore[arg-type]
    auth = {"Authorization": f"Bearer {client.access_token()}"}

    def plain(k: int) -> float:
        out = tmp / f"plain-{k}.tar.gz"
        t0 = time.perf_counter()
        with httpx.Client(headers=auth) as http, http.stream("GET", url) as r, out.open("wb") as fh:
            r.raise_for_status()
            for chunk in r.iter_raw(1 << 20):
                fh.write(chunk)
        took = time.perf_counter() - t0
        assert out.stat().st_size == pkg.length
        out.unlink()
        return took

    def verified(k: int) -> float:
        profile = tmp / f"profile-{k}"
        t0 = time.perf_counter()
        up = ModelUpdater(live.url, root, profile, access_token=client.access_token)  # type: ignore[attr-defined]
        got = up._download(pkg.target_path, profile / "pkg.tar.gz", 2**40, "bench")
        took = time.perf_counter() - t0
        up.close()
        assert got.stat().st_size == pkg.length
        got.unlink()
        return took

    try:
        plain_s = min(plain(k) for k in range(3))
        verified_s = min(verified(k) for k in range(3))
    finally:
        client.close()
    return plain_s, verified_s, pkg.length


def main() -> None:
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    from tests.backend.conftest import LiveServer, base_settings

    previous = keyring.get_keyring()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        # the enrolment secrets and the database key go to a keyring file in the temp folder,
        # chosen explicitly (the store refuses an implicit plaintext keyring), never to the
        # developer's keyring
        os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
        os.environ["XDG_DATA_HOME"] = str(tmp / "keyring")
        keyring.set_keyring(PlaintextKeyring())
        live = LiveServer(base_settings(tmp / "data", rate_per_s=1e6, rate_burst=10**6)).start()
        try:
            engine_rate, bare_rate, queue_rate = _drain(live, tmp)
            print(
                f"outbox drain ({N_ITEMS:,} items: results + audit events, queued in the "
                f"encrypted store at {queue_rate:,.0f} items/s): SyncEngine over the SQLCipher "
                f"outbox {engine_rate:,.0f} items/s; one bare POST per item {bare_rate:,.0f} "
                f"items/s (first {min(N_BARE, N_ITEMS):,} of the same payloads); "
                f"ratio {engine_rate / bare_rate:.1f}x (goal >= 5x)",
                flush=True,
            )
            plain_s, verified_s, length = _download(live, tmp)
            mb = length / 2**20
            print(
                f"model download ({mb:.0f} MiB): plain HTTP GET to file {mb / plain_s:,.0f} MiB/s; "
                f"TUF refresh + verified download {mb / verified_s:,.0f} MiB/s; "
                f"time ratio {verified_s / plain_s:.2f}x (goal <= 1.5x; best of 3 each)"
            )
        finally:
            live.stop()
            keyring.set_keyring(previous)


if __name__ == "__main__":
    main()
