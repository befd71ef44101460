"""One backend process with the fleet routes installed (backend.fleet_api.install), configured
from the environment as ``doctorai-backend serve`` is; for the fleet's two-process tests.

``python -m tests.backend.fleet_serve DATA_DIR DB_URL PORT``
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from backend import fleet_api
from backend.app import create_app
from backend.config import settings_from_env


def main(argv: list[str]) -> int:
    data_dir, db_url, port = Path(argv[0]), argv[1], int(argv[2])
    app = create_app(settings_from_env(str(data_dir), db_url, None, 1))
    fleet_api.install(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
