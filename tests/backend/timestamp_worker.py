"""Re-sign timestamp.json N times from a process of its own, as a second backend task would.

``python -m tests.backend.timestamp_worker DATA_DIR DB_URL N START_AT`` waits until the wall
clock reaches START_AT (so two workers start together), then signs N new timestamps through
the same repository call the server's re-signing loop and ``doctorai-backend tuf-timestamp``
use, and prints one JSON line: the versions it signed and the errors it met.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from backend.app import build_state
from tests.backend.conftest import base_settings


def main(argv: list[str]) -> int:
    data_dir, db_url, n, start_at = Path(argv[0]), argv[1], int(argv[2]), float(argv[3])
    st = build_state(base_settings(data_dir, db_url=db_url))
    versions: list[int] = []
    errors: list[str] = []
    late_s = time.time() - start_at  # > 0: this process was not ready in time
    time.sleep(max(0.0, -late_s))
    for _ in range(n):
        try:
            with st.sessions() as session:
                versions.append(st.repo.publish_timestamp(session))
                session.commit()
        except Exception as exc:  # noqa: BLE001 - the test counts every kind of failure
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    st.engine.dispose()
    out = {"versions": versions, "errors": errors, "late_s": late_s}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
