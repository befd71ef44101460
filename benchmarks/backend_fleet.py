"""Shared parts of the backend throughput benchmarks (bench_backend_cpu, bench_backend_scale):
real backend processes on a throwaway PostgreSQL, their CPU and the database server's CPU read
from the OS, and load generators that run in a process of their own.

Not a benchmark itself (no ``bench_`` prefix). Entry points for the child processes:

- ``python -m benchmarks.backend_fleet serve MODE <backend serve args>``: ``python -m backend
  serve`` with the batch store chosen: ``orm`` (the per-row ORM path, today's baseline),
  ``bulk`` (backend.bulk), ``as-is`` (whatever backend.ingest wires).
- ``python -m benchmarks.backend_fleet pairs URL,URL.. CODE,CODE.. PAIRS LABEL``: one thread per
  enrol code, each a device (labelled LABEL) posting PAIRS pairs of 200 results + 200 audit
  events to URL[i % len]; JSON on stdout.
- ``python -m benchmarks.backend_fleet workstations URL,URL.. CODE,CODE.. N_RESULTS N_EVENTS
  DIR``: one workstation per code (labelled ws-i; its own SQLCipher store, outbox and
  SyncEngine) draining to the backend at URL[i % len]; JSON on stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BATCH = 200
GENESIS = "0" * 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU of a live process and its children (reaped ones included)."""
    import psutil

    p = psutil.Process(pid)
    t = p.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in p.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return float(total)


def postmaster_pid(db_url: str) -> int:
    """The PostgreSQL server process serving ``db_url`` (its port is in the URL)."""
    import psutil

    port = db_url.rsplit(":", 1)[1].split("/")[0]
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "postgres" in (p.info["name"] or "") and f"-p {port}" in cmd:
            return int(p.pid)
    raise RuntimeError(f"no PostgreSQL server process on port {port}")


@dataclass
class Backend:
    """One ``backend serve`` process; restartable on the same port after a kill -9."""

    cmd: list[str]
    env: dict[str, str]
    url: str
    proc: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Backend:
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"backend on {self.url} did not start ({self.proc.poll()})")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Fleet:
    db_url: str
    backends: list[Backend]
    state: Any  # backend.deps.BackendState on the same database, for codes and counts
    tmp: Path

    def codes(self, n: int) -> list[str]:
        from backend.auth import issue_enrol_code

        with self.state.sessions() as s:
            return [issue_enrol_code(s) for _ in range(n)]

    def count(self, sql: str) -> int:
        from sqlalchemy import text

        with self.state.engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())


@contextmanager
def fleet(tmp: Path, modes: list[str]) -> Iterator[Fleet]:
    """PostgreSQL 15 and one backend process per entry of ``modes`` (see the module doc)."""
    from backend.app import build_state
    from tests.backend import pg
    from tests.backend.conftest import base_settings

    reason = pg.unavailable_reason()
    if reason:
        raise RuntimeError(f"PostgreSQL needed: {reason}")
    with pg.postgres_server() as db_url:
        secret = "bench-" + uuid.uuid4().hex
        env = {
            **os.environ,
            "DOCTORAI_BACKEND_JWT_SECRET": secret,
            "DOCTORAI_BACKEND_RATE_PER_S": "1000000",
            "DOCTORAI_BACKEND_RATE_BURST": "1000000",
        }
        state = build_state(base_settings(tmp / "view", db_url=db_url, jwt_secret=secret))
        backends: list[Backend] = []
        try:
            for i, mode in enumerate(modes):
                port = free_port()
                cmd = [sys.executable, "-m", "benchmarks.backend_fleet", "serve", mode]
                cmd += ["--data-dir", str(tmp / f"p{i}"), "--db-url", db_url, "--port", str(port)]
                backends.append(Backend(cmd, env, f"http://127.0.0.1:{port}").start())
            yield Fleet(db_url, backends, state, tmp)
        finally:
            for b in backends:
                b.stop()
            state.engine.dispose()


def run_client(*args: str, timeout: float = 600) -> dict[str, Any]:
    """Run a load generator of this module in a process of its own; its JSON answer."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.backend_fleet", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.decode()[-2000:]}")
    return dict(json.loads(out.stdout))


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


# --- child process: serve ------------------------------------------------------------------


def _serve(argv: list[str]) -> int:
    from backend import bulk, ingest
    from backend.cli import main

    mode, rest = argv[0], argv[1:]
    if mode == "orm":  # the named baseline: the per-row ORM path, kept as the tests' reference
        from tests.backend import orm_reference

        ingest.store_results = orm_reference.store_results_orm
        ingest.store_audit = orm_reference.store_audit_orm
    elif mode == "bulk":
        ingest.store_results = bulk.store_results
        ingest.store_audit = bulk.store_audit
    elif mode != "as-is":
        raise SystemExit(f"unknown mode {mode!r}: orm, bulk or as-is")
    return main(["serve", *rest])


# --- child process: raw batch pairs --------------------------------------------------------


def results_batch(n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "client_id": uuid.uuid4().hex,
            "created_at": now,
            "model_id": "chest-xray-pneumonia",
            "model_version": "1.0.0",
            "decision": "accepted",
            "latency_ms": 50.0,
            "summary": {"label": "pneumonia", "score": 0.5},
        }
        for _ in range(n)
    ]


def events_batch(chain: list[str], n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        prev = chain[-1] if chain else GENESIS
        ev = {
            "event_id": uuid.uuid4().hex,
            "index": len(chain),
            "prev_hash": prev,
            "created_at": datetime.now(UTC).isoformat(),
            "type": "viewed",
            "actor": "dr-a",
            "data": {"n": len(chain)},
        }
        ev["hash"] = hashlib.sha256((prev + json.dumps(ev, sort_keys=True)).encode()).hexdigest()
        chain.append(str(ev["hash"]))
        out.append(ev)
    return out


def enrol(api: str, code: str, label: str = "bench") -> dict[str, str]:
    r = httpx.post(f"{api}/enrol", json={"code": code, "label": label}, timeout=30)
    r.raise_for_status()
    dev = r.json()
    r = httpx.post(f"{api}/token", json=dev, timeout=30)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _pairs(urls: list[str], codes: list[str], pairs: int, label: str) -> dict[str, Any]:
    """Each device: PAIRS x (200 results, 200 events), prepared before the clock starts."""
    apis = [u + "/api/v1" for u in urls]
    devices = []
    for i, code in enumerate(codes):
        api = apis[i % len(apis)]
        chain: list[str] = []
        bodies = []
        for _ in range(pairs):
            items = json.dumps({"items": results_batch(BATCH)}).encode()
            bodies.append(("results:batch", items))
            events = json.dumps({"events": events_batch(chain, BATCH)}).encode()
            bodies.append(("audit-events:batch", events))
        devices.append((api, enrol(api, code, label), bodies))
    latencies: list[float] = []
    errors: list[str] = []
    start = threading.Barrier(len(devices) + 1)

    def run(api: str, auth: dict[str, str], bodies: list[tuple[str, bytes]]) -> None:
        with httpx.Client(base_url=api, headers=auth, timeout=60) as http:
            start.wait()
            for ep, body in bodies:
                t0 = time.perf_counter()
                r = http.post(
                    f"/{ep}",
                    content=body if isinstance(body, bytes) else body.encode(),
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": uuid.uuid4().hex,
                    },
                )
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=run, args=d) for d in devices]
    for t in threads:
        t.start()
    start.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "items": len(codes) * pairs * 2 * BATCH,
        "wall_s": wall,
        "latencies": latencies,
        "errors": errors,
        "client_cpu_s": cpu,
    }


# --- child process: workstations with the project's sync engine ----------------------------


def _workstations(
    urls: list[str], codes: list[str], n_results: int, n_events: int, tmp: Path
) -> dict[str, Any]:
    """One workstation per code, as production runs it: an encrypted SQLCipher store whose
    outbox holds results and chained audit events, drained by SyncEngine through SyncClient."""
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    os.environ["XDG_DATA_HOME"] = str(tmp / "keyring")
    from core.sync.client import SyncClient
    from core.sync.credentials import CredentialStore
    from core.sync.engine import BackoffPolicy, SyncEngine
    from tests.sync.conftest import LocalStore, queue

    latencies: list[float] = []
    lock = threading.Lock()

    class Timed:
        """The engine's sender with each successful POST timed."""

        def __init__(self, client: SyncClient) -> None:
            self.client = client

        def post_batch(self, endpoint: str, body: bytes, key: str) -> Any:
            t0 = time.perf_counter()
            out = self.client.post_batch(endpoint, body, key)
            with lock:
                latencies.append(time.perf_counter() - t0)
            return out

    stations = []
    for i, code in enumerate(codes):  # enrol and queue one at a time: one keyring file
        url = urls[i % len(urls)]
        client = SyncClient(url, CredentialStore(f"{url}#ws{i}"), timeout=30)
        client.enrol(code, label=f"ws-{i}")
        client.access_token()  # logged in before the threads start: one keyring file
        store = LocalStore.open(tmp / f"ws{i}.db")
        queue(store, n_results, n_events)
        stations.append((store, client))
    failures: list[str] = []
    passes = [0] * len(stations)

    def drain(k: int) -> None:
        store, client = stations[k]
        engine = SyncEngine(
            store.outbox,
            Timed(client),
            batch_size=BATCH,
            backoff=BackoffPolicy(base_s=0.2, cap_s=2.0, max_attempts=30),
        )
        deadline = time.monotonic() + 300
        while store.outbox.count_unsent() and time.monotonic() < deadline:
            passes[k] += 1
            report = engine.sync_once()
            if not report.ok:
                time.sleep(0.5)  # a workstation's scheduler tries again later
        if store.outbox.count_unsent():
            failures.append(f"workstation {k}: {store.outbox.count_unsent()} items unsent")

    threads = [threading.Thread(target=drain, args=(k,)) for k in range(len(stations))]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    for store, client in stations:
        client.close()
        store.close()
    return {
        "items": len(codes) * (n_results + n_events),
        "wall_s": wall,
        "latencies": latencies,
        "errors": failures,
        "passes": passes,
        "client_cpu_s": cpu,
    }


def _main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    if cmd == "serve":
        return _serve(rest)
    urls, codes = rest[0].split(","), rest[1].split(",")
    if cmd == "pairs":
        out = _pairs(urls, codes, int(rest[2]), rest[3])
    elif cmd == "workstations":
        out = _workstations(urls, codes, int(rest[2]), int(rest[3]), Path(rest[4]))
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
