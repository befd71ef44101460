"""The signed update channel: a TUF repository whose metadata lives in the database.

Keys sit in ``<data_dir>/keys`` (one ed25519 key per top-level role). Root and targets keys
belong offline in production; snapshot and timestamp must be online because timestamp.json is
re-signed every few hours (it expires after one day, so a frozen mirror is noticed). Metadata rows
are kept for every version so consistent-snapshot clients can fetch ``N.targets.json`` by number.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# documented import paths; the packages re-export without __all__, hence the ignores
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from tuf.api.metadata import (  # type: ignore[attr-defined]
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from backend.config import Settings
from backend.db import TufMetadata, TufTarget
from backend.db_lock import sqlite_write_lock
from backend.storage import Storage

ROLES = ("root", "targets", "snapshot", "timestamp")
#: pg_advisory_xact_lock key taken by every signer of new metadata ("DAITUF" as an integer)
SIGNING_LOCK_KEY = 0x444149545546


class TufError(Exception):
    """Keys missing, repository not initialised, or a target that cannot be published."""


def init_keys(keys_dir: Path) -> dict[str, str]:
    """Generate one ed25519 key per role; refuses to overwrite existing keys."""
    existing = [r for r in ROLES if (keys_dir / f"{r}.key").exists()]
    if existing:
        raise TufError(f"keys already exist in '{keys_dir}' for {existing}; refusing to overwrite")
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    ids = {}
    for role in ROLES:
        signer = CryptoSigner.generate_ed25519()
        fd = os.open(keys_dir / f"{role}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(signer.private_bytes)
        ids[role] = signer.public_key.keyid
    return ids


def load_signer(keys_dir: Path, role: str) -> CryptoSigner:
    """One role's key: a server holding only the online keys can still re-sign timestamps."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    path = keys_dir / f"{role}.key"
    if not path.exists():
        raise TufError(
            f"TUF {role} key '{path}' not found; run 'doctorai-backend keys init' first "
            "(or point DOCTORAI_BACKEND_KEYS_DIR at the keys)"
        )
    private = load_pem_private_key(path.read_bytes(), None)
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def _expiry(seconds: int) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


class TufRepository:
    """Publishes new signed versions of the four top-level roles into the database."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self._signers: dict[str, CryptoSigner] = {}

    def signer(self, role: str) -> CryptoSigner:
        if role not in self._signers:
            self._signers[role] = load_signer(self.settings.keys_dir, role)
        return self._signers[role]

    # --- reading -----------------------------------------------------------------------------

    @staticmethod
    def latest_version(session: Session, role: str) -> int:
        v = session.scalar(select(func.max(TufMetadata.version)).where(TufMetadata.role == role))
        return int(v or 0)

    @staticmethod
    def get(session: Session, role: str, version: int | None = None) -> bytes | None:
        if version is None:
            version = TufRepository.latest_version(session, role)
        row = session.get(TufMetadata, (role, version))
        return row.body if row else None

    # --- writing -----------------------------------------------------------------------------

    @staticmethod
    def lock_signing(session: Session) -> None:
        """Hold the signing lock until this transaction ends, so one process at a time reads
        the newest versions and adds the next (two tasks read version N and both wrote N+1:
        an IntegrityError on (role, version)). PostgreSQL: a transaction-scoped advisory lock
        (re-entrant within the transaction). SQLite: a no-op write takes the database's write
        lock, which other processes wait for (busy timeout) just the same."""
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SIGNING_LOCK_KEY})
        else:
            sqlite_write_lock(session, TufMetadata)

    def _store(self, session: Session, md: Metadata[Any]) -> bytes:
        md.signatures.clear()
        md.sign(self.signer(md.signed.type))
        body = md.to_bytes()
        session.add(TufMetadata(role=md.signed.type, version=md.signed.version, body=body))
        session.flush()
        return body

    def bootstrap(self, session: Session) -> bytes:
        """Create root v1 (and empty targets/snapshot/timestamp) unless a root exists."""
        existing = self.get(session, "root")
        if existing is not None:
            return existing
        root = Root(expires=_expiry(self.settings.root_expiry_s), consistent_snapshot=True)
        for role in ROLES:
            root.add_key(self.signer(role).public_key, role)
        body = self._store(session, Metadata(root))
        self.publish(session)
        return body

    def _targets(self, session: Session) -> Targets:
        targets = Targets(
            version=self.latest_version(session, "targets") + 1,
            expires=_expiry(self.settings.targets_expiry_s),
        )
        for row in session.scalars(select(TufTarget).order_by(TufTarget.target_path)):
            targets.targets[row.target_path] = TargetFile(
                length=row.length,
                hashes={"sha256": row.sha256},
                path=row.target_path,
                unrecognized_fields={"custom": row.custom} if row.custom else None,
            )
        return targets

    def publish(self, session: Session) -> int:
        """Sign new targets, snapshot and timestamp from the current target rows."""
        if self.get(session, "root") is None:
            raise TufError("TUF repository has no root; run 'doctorai-backend keys init'")
        self.lock_signing(session)
        targets = self._targets(session)
        self._store(session, Metadata(targets))
        snapshot = Snapshot(
            version=self.latest_version(session, "snapshot") + 1,
            expires=_expiry(self.settings.snapshot_expiry_s),
            meta={"targets.json": MetaFile(version=targets.version)},
        )
        self._store(session, Metadata(snapshot))
        self.publish_timestamp(session)
        return targets.version

    def publish_timestamp(self, session: Session, expires: datetime | None = None) -> int:
        """Re-sign timestamp.json over the newest snapshot (run periodically: it expires fast)."""
        self.lock_signing(session)
        snap_version = self.latest_version(session, "snapshot")
        snap = self.get(session, "snapshot", snap_version)
        if snap is None:
            raise TufError("no snapshot.json published yet")
        ts = Timestamp(
            version=self.latest_version(session, "timestamp") + 1,
            expires=expires or _expiry(self.settings.timestamp_expiry_s),
            snapshot_meta=MetaFile(
                version=snap_version,
                length=len(snap),
                hashes={"sha256": hashlib.sha256(snap).hexdigest()},
            ),
        )
        self._store(session, Metadata(ts))
        return ts.version

    @classmethod
    def timestamp_expiry(cls, session: Session) -> datetime | None:
        """When the newest timestamp.json expires (None: nothing published yet)."""
        body = cls.get(session, "timestamp")
        if body is None:
            return None
        return Metadata[Timestamp].from_bytes(body).signed.expires

    def timestamp_expires_soon(self, session: Session) -> bool:
        expires = self.timestamp_expiry(session)
        if expires is None:
            return False
        return expires - datetime.now(UTC) < timedelta(seconds=self.settings.timestamp_expiry_s / 2)

    def resign_timestamp_if_due(self, session: Session) -> int | None:
        """Re-sign timestamp.json when half its life is over; the new version, or None when
        another process re-signed it first (checked again under the signing lock)."""
        if not self.timestamp_expires_soon(session):
            return None
        self.lock_signing(session)
        if not self.timestamp_expires_soon(session):
            session.rollback()
            return None
        version = self.publish_timestamp(session)
        session.commit()
        return version

    def put_target_bytes(
        self, session: Session, target_path: str, data: bytes, custom: dict[str, Any]
    ) -> TufTarget:
        """Store bytes as a target (content-addressed) and list it; publish() signs it."""
        fd, tmp = tempfile.mkstemp(prefix="tuf-target-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return self.put_target_file(session, target_path, Path(tmp), custom)
        finally:
            os.unlink(tmp)

    def put_target_file(
        self, session: Session, target_path: str, path: Path, custom: dict[str, Any]
    ) -> TufTarget:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        sha = digest.hexdigest()
        key = f"targets/{sha}"
        self.storage.put_file(key, path)
        row = session.get(TufTarget, target_path)
        if row is None:
            row = TufTarget(target_path=target_path)
            session.add(row)
        row.sha256, row.length, row.storage_key, row.custom = sha, path.stat().st_size, key, custom
        session.flush()
        return row

    def root_json_for_installer(self, session: Session) -> bytes:
        """The trust anchor shipped with the installer: the newest root, pretty-printed."""
        body = self.get(session, "root")
        if body is None:
            raise TufError("TUF repository has no root yet")
        return json.dumps(json.loads(body), indent=2, sort_keys=True).encode()


def find_target(session: Session, url_path: str) -> TufTarget | None:
    """Resolve a consistent-snapshot URL ``dir/<sha256>.<name>`` to its target row."""
    directory, _, base = url_path.rpartition("/")
    sha, dot, name = base.partition(".")
    if not dot or len(sha) != 64:
        return None
    row = session.get(TufTarget, f"{directory}/{name}" if directory else name)
    if row is None or row.sha256 != sha:
        return None
    return row
