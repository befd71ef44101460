"""A LiveServer in a process of its own, so a test can watch the server's memory.

``python -m tests.backend.serve_live DATA_DIR`` prints one JSON line (url, pid, an enrolment
code) and serves until its stdin is closed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.backend.conftest import LiveServer, base_settings


def main(argv: list[str]) -> int:
    live = LiveServer(base_settings(Path(argv[0])), with_keys=False).start()
    line = {"url": live.url, "pid": os.getpid(), "codes": [live.enrol_code() for _ in range(3)]}
    print(json.dumps(line), flush=True)
    sys.stdin.read()  # the test closes our stdin when it is done
    live.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
