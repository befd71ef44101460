"""TensorFlow ships its own plain SQLite. Once the Keras adapter has loaded TensorFlow, the
encrypted database must still open in the same process (it read as "not a database" when
TensorFlow's sqlite3_* symbols were bound first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.adapters import keras_adapter

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import subprocess, sys
from models.adapters.keras_adapter import _import_tf
_import_tf()
create = "from core.store.database import open_database; open_database().close()"
subprocess.run([sys.executable, "-c", create], check=True)  # another process writes the file
from core.store.database import open_database
from sqlalchemy import text
db = open_database()
with db.engine.connect() as conn:
    print("tables", conn.execute(text("SELECT count(*) FROM sqlite_master")).scalar())
db.close()
"""


@pytest.mark.skipif(not keras_adapter.is_available(), reason="tensorflow/keras not installed")
def test_database_opens_after_tensorflow_loaded() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tables" in proc.stdout
