"""Backend on loopback: batched vs one-item result uploads; TUF-verified vs plain download.

Baselines measured in the same run: one POST per item (what batching replaces) and a plain HTTP GET
of the same package (what TUF verification adds to).
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

N_BATCHED = 10_000
N_SINGLE = 1_000  # one request each; enough for a stable rate without minutes of runtime
BATCH = 500
PACKAGE_MB = 64


def _item() -> dict[str, object]:
    return {
        "client_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC).isoformat(),
        "model_id": "bench",
        "model_version": "1.0",
        "decision": "accepted",
        "latency_ms": 100.0,
        "summary": {"label": "x", "score": 0.5},
    }


def main() -> None:
    from tuf.ngclient import Updater

    from backend.catalogue import add_model
    from core.sync.tuf_fetch import HttpxFetcher, download_verified
    from tests.backend.conftest import LiveServer, base_settings

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        live = LiveServer(base_settings(tmp / "data", rate_per_s=1e6, rate_burst=10**6)).start()
        try:
            ws = live.workstation()
            items = [_item() for _ in range(N_BATCHED)]
            t0 = time.perf_counter()
            for i in range(0, N_BATCHED, BATCH):
                ws.post("/results:batch", {"items": items[i : i + BATCH]}).raise_for_status()
            batched = N_BATCHED / (time.perf_counter() - t0)
            singles = [_item() for _ in range(N_SINGLE)]
            t0 = time.perf_counter()
            for it in singles:
                ws.post("/results:batch", {"items": [it]}).raise_for_status()
            single = N_SINGLE / (time.perf_counter() - t0)
            print(
                f"results upload: batched ({BATCH}/request) {batched:,.0f} items/s; "
                f"one per request {single:,.0f} items/s; ratio {batched / single:.1f}x "
                "(goal >= 5x)"
            )

            pkg_dir = tmp / "pkg"
            pkg_dir.mkdir()
            (pkg_dir / "manifest.json").write_text('{"id": "bench", "version": "1.0"}')
            rng = random.Random(0)  # random bytes: gzip cannot shrink them, like real weights
            with (pkg_dir / "weights.bin").open("wb") as fh:
                for _ in range(PACKAGE_MB):
                    fh.write(rng.randbytes(1 << 20))
            with live.state.sessions() as s:
                pkg = add_model(s, live.state.repo, pkg_dir)
                root = live.state.repo.get(s, "root", 1)
            assert root is not None

            def plain_get() -> float:
                t0 = time.perf_counter()
                with httpx.stream(
                    "GET", f"{live.api}/models/bench/1.0/file", headers=ws.http.headers
                ) as r:
                    n = sum(len(c) for c in r.iter_bytes(1 << 20))
                assert n == pkg.length
                return time.perf_counter() - t0

            def verified_get(k: int) -> float:
                (tmp / f"m{k}").mkdir()
                (tmp / f"t{k}").mkdir()
                t0 = time.perf_counter()
                # what ModelUpdater does: metadata through a fetcher without a token, the
                # package through download_verified (hashed while written) with the device's
                # token (targets go to enrolled workstations only)
                with httpx.Client() as http:
                    up = Updater(
                        str(tmp / f"m{k}"),
                        f"{live.url}/tuf/metadata/",
                        str(tmp / f"t{k}"),
                        f"{live.url}/tuf/targets/",
                        fetcher=HttpxFetcher(http),
                        bootstrap=root,
                    )
                    up.refresh()
                    info = up.get_targetinfo(pkg.target_path)
                    assert info is not None
                    download_verified(
                        HttpxFetcher(http, lambda _renew: ws.tokens["access_token"]),
                        f"{live.url}/tuf/targets/",
                        info,
                        tmp / f"t{k}" / "package",
                    )
                return time.perf_counter() - t0

            plain = min(plain_get() for _ in range(3))
            verified = min(verified_get(k) for k in range(3))
            mb = pkg.length / 2**20
            print(
                f"package download ({mb:.0f} MiB): plain GET {mb / plain:,.0f} MiB/s; "
                f"TUF refresh+verified download {mb / verified:,.0f} MiB/s; "
                f"time ratio {verified / plain:.2f}x (goal <= 1.5x; best of 3 each)"
            )
        finally:
            live.stop()


if __name__ == "__main__":
    main()
