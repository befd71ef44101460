"""TensorFlow ships its own plain SQLite. Once the Keras adapter has loaded TensorFlow, the
encrypted database must still open in the same process (it read as "not a database" when
TensorFlow's sqlite3_* symbols were bound first)."""

from __future__ import annotations

import os
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


_PLAIN_FIRST = """
import os, sys
from pathlib import Path
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow  # directly, before sqlcipher3: TF's plain SQLite takes SQLite's symbols
from core.store.database import open_database
from core.store.errors import DatabaseError
path = Path(sys.argv[1])
try:
    open_database(path).close()
except DatabaseError as exc:
    print("refused:", exc)
print("exists:", path.exists(), "plain:", path.exists() and path.read_bytes()[:16] == b"SQLite format 3\\x00")
"""


@pytest.mark.skipif(not keras_adapter.is_available(), reason="tensorflow/keras not installed")
def test_plain_sqlite_in_sqlciphers_place_is_refused(tmp_path: Path) -> None:
    """The attack on confidentiality by load order: TensorFlow imported before the database
    module (not through the adapter). SQLCipher's PRAGMA key would be silently ignored and the
    audit trail written in clear; instead the open is refused, naming why, and no plaintext
    database exists. Before: the file was created as plain SQLite."""
    db = tmp_path / "doctorai.db"
    proc = subprocess.run(
        [sys.executable, "-c", _PLAIN_FIRST, str(db)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "DOCTORAI_HOME": str(tmp_path / "p")},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused:" in proc.stdout, proc.stdout
    assert "SQLCipher is not active" in proc.stdout, proc.stdout
    assert "plain: True" not in proc.stdout, proc.stdout
