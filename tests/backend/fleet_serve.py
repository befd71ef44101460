"""One backend process with the fleet routes installed (backend.fleet_api.install), configured
from the environment as ``doctorai-backend serve`` is; for the fleet's two-process tests.

``python -m tests.backend.fleet_serve DATA_DIR DB_URL PORT``; ``FleetServer`` is the same app
in a thread of the test process (conftest's LiveServer with the fleet installed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from backend import fleet_api
from backend.app import create_app
from backend.config import Settings, settings_from_env
from tests.backend.conftest import LiveServer


class FleetServer(LiveServer):
    """A live server with the fleet routes and operator pages installed."""

    def __init__(self, settings: Settings, with_keys: bool = True) -> None:
        super().__init__(settings, with_keys)
        app = self.server.config.app
        assert isinstance(app, FastAPI)
        fleet_api.install(app)


def main(argv: list[str]) -> int:
    data_dir, db_url, port = Path(argv[0]), argv[1], int(argv[2])
    app = create_app(settings_from_env(str(data_dir), db_url, None, 1))
    fleet_api.install(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
