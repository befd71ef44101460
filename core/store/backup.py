"""Backup files of a profile's encrypted database, and putting one back on another machine.

Why: the database key lives only in the OS keyring under an entry named after the database's
absolute path, so a copied file alone cannot be opened anywhere else. A backup therefore
carries the keys too, sealed to hospital IT's X25519 recovery key, and only IT's private key
opens them.

The copy is made ONLINE with SQLite's backup API through sqlcipher3, in one step: the step
holds one read transaction on the source (WAL: a snapshot; writers carry on meanwhile), so the
copy is one committed state of the whole file. The copy is keyed with the database's own key,
so it stays encrypted page by page. ``VACUUM INTO`` and ``sqlcipher_export`` also keep the copy
encrypted with SQLCipher 4 (checked); on a 100,000-event trail VACUUM INTO was within 25 % of
the backup API either way across four runs and sqlcipher_export slower (benchmarks/
bench_backup.py, which also compares the whole backup with a plain file copy). The backup API
keeps the page layout as it is, with no rebuild of the B-trees.

The copy is then checked (it opens with the key and every page passes SQLCipher's HMAC check)
before it is packed. SQLite's quick_check is left to the trail
check after a restore: the backup API copies pages, not rows, so the copy's B-trees are the
source's, and quick_check doubled the time of the check here.

The backup file is a ZIP archive (stored, not compressed: the pages are ciphertext) with three
members, in this order (the database first: its SHA-256 is taken while it is packed)::

    database.sqlcipher  the encrypted copy (rollback-journal mode: one self-contained file)
    manifest.json       UTF-8 JSON, no patient data: format, format_version, created_at,
                        workstation_id, schema_revision, event_count, head_index, head_hash
                        (the copy's chain head), database_size, database_sha256, key_roles,
                        recipient (SHA-256 of IT's public key), scheme
    keys.sealed         JSON: ephemeral_public_key, nonce, ciphertext (base64). The plaintext
                        is JSON {role: secret} of the profile's keyring entries (roles of
                        core.store.keys.profile_key_entries). Sealed with an ephemeral X25519
                        key agreement with IT's public key, HKDF-SHA256 (salt: ephemeral
                        public key + recipient public key) and AES-256-GCM whose associated
                        data is manifest.json's exact bytes: a changed manifest (and, through
                        database_sha256, a swapped database) fails the tag.

Anyone with IT's public key can seal a backup of their own making; what the seal proves is
that a genuine backup was not altered. The backend's anchoring of the chain is the check
against a wholly forged trail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlcipher3

from core.store.database import _connect
from core.store.keys import SERVICE, profile_key_entries

FORMAT = "doctorai-backup"
FORMAT_VERSION = 1
SCHEME = "X25519-HKDF-SHA256-AES-256-GCM"
MANIFEST = "manifest.json"
SEALED = "keys.sealed"
DATABASE = "database.sqlcipher"
_HKDF_INFO = b"doctorai backup keys v1"
_CHUNK = 1 << 20

#: Exit codes: a set-up problem (no recovery key, wrong private key, refused overwrite) and a
#: storage problem (damaged backup file, full disk), as core.store.errors.EXIT_STORAGE.
EXIT_SETUP = 2
EXIT_STORAGE = 3


class BackupError(Exception):
    """A backup could not be made or restored: names the file and the cause."""

    def __init__(
        self, path: Path, reason: str, *, exit_code: int = EXIT_SETUP, what: str = "backup"
    ) -> None:
        self.path = path
        self.reason = reason
        self.exit_code = exit_code
        super().__init__(f"{what} '{path}': {reason}")


@dataclass(frozen=True)
class Manifest:
    """What a backup says about its copy (authenticated by the sealed keys' tag)."""

    raw: bytes
    data: dict[str, Any] = field(hash=False)

    @property
    def head(self) -> tuple[int, str]:
        return int(self.data["head_index"]), str(self.data["head_hash"])

    @property
    def event_count(self) -> int:
        return int(self.data["event_count"])


# --- IT's recovery key ---------------------------------------------------------------------


def generate_recovery_key(private_out: Path) -> str:
    """Write a new X25519 private key (PEM, PKCS#8, mode 0600) to ``private_out`` and return
    the public key as base64 of its 32 raw bytes (``backup.recovery_public_key``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(private_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(
            private_out, "the file exists already; not overwritten", what="private key file"
        ) from None
    except OSError as exc:
        raise BackupError(
            private_out, f"cannot write it ({exc.strerror or exc})", what="private key file"
        ) from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str | None, out: Path, config: Path) -> Any:
    """IT's public key from the config value; BackupError (naming the backup file ``out`` and
    the ``config`` file) when missing or malformed."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    if not text:
        raise BackupError(
            out,
            f"no recovery key is configured: IT sets backup.recovery_public_key in the machine "
            f"config '{config}' (made with 'doctorai backup keygen'); nothing was written",
        )
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise BackupError(
            out,
            f"backup.recovery_public_key in '{config}' is not base64 of a 32-byte X25519 public "
            "key; nothing was written",
        ) from exc


def load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackupError(
            path, f"cannot be read ({exc.strerror or exc})", what="private key file"
        ) from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BackupError(
            path, "is not an unencrypted PEM private key", what="private key file"
        ) from exc
    if not isinstance(key, X25519PrivateKey):
        raise BackupError(
            path,
            "is not an X25519 private key ('doctorai backup keygen' makes one)",
            what="private key file",
        )
    return key


def _raw_public(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    raw: bytes = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def key_fingerprint(public_key: Any) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()


def _aead_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_HKDF_INFO)
    return hkdf.derive(shared)


def seal(secrets_by_role: dict[str, str], recipient: Any, manifest_raw: bytes) -> bytes:
    """The keys.sealed member: ``secrets_by_role`` encrypted to ``recipient``, bound to the
    manifest."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ephemeral = X25519PrivateKey.generate()
    eph_pub = _raw_public(ephemeral.public_key())
    key = _aead_key(ephemeral.exchange(recipient), eph_pub, _raw_public(recipient))
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, json.dumps(secrets_by_role).encode(), manifest_raw)
    return json.dumps(
        {
            "ephemeral_public_key": base64.b64encode(eph_pub).decode(),
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode(),
        }
    ).encode()


def unseal(sealed: bytes, private_key: Any, manifest: Manifest, path: Path) -> dict[str, str]:
    """The keyring secrets; BackupError naming a wrong private key or an altered file."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ours = key_fingerprint(private_key.public_key())
    if manifest.data.get("recipient") != ours:
        raise BackupError(
            path,
            f"its keys are sealed to another recovery key (fingerprint "
            f"{str(manifest.data.get('recipient'))[:16]}...), not to this private key "
            f"({ours[:16]}...): use IT's private key that matches the backup.recovery_public_key "
            "in force when the backup was made",
        )
    try:
        box = json.loads(sealed)
        eph_pub = base64.b64decode(box["ephemeral_public_key"], validate=True)
        nonce = base64.b64decode(box["nonce"], validate=True)
        ciphertext = base64.b64decode(box["ciphertext"], validate=True)
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        key = _aead_key(shared, eph_pub, _raw_public(private_key.public_key()))
        plain = AESGCM(key).decrypt(nonce, ciphertext, manifest.raw)
        secrets_by_role = json.loads(plain)
    except (InvalidTag, ValueError, KeyError, TypeError) as exc:
        raise BackupError(
            path,
            "the sealed keys do not open: the manifest or the sealed keys were altered or "
            "damaged (the seal authenticates both); refused, nothing was written",
            exit_code=EXIT_STORAGE,
        ) from exc
    if not isinstance(secrets_by_role, dict) or "database" not in secrets_by_role:
        raise BackupError(path, "the sealed keys hold no database key", exit_code=EXIT_STORAGE)
    return {str(k): str(v) for k, v in secrets_by_role.items()}


# --- the online copy -----------------------------------------------------------------------


def _profile_secrets(db_path: Path) -> dict[str, str]:
    """The profile's keyring secrets by role (the database key is required)."""
    import keyring

    found: dict[str, str] = {}
    for role, entry in profile_key_entries(db_path).items():
        value = keyring.get_password(SERVICE, entry)
        if value:
            found[role] = value
    if "database" not in found:
        raise BackupError(db_path, "the keyring holds no key for this database")
    return found


def _copy_online(db_path: Path, key: str, copy: Path) -> None:
    """One backup-API step over the whole file: one consistent snapshot, still encrypted."""
    src = _connect(db_path, key)
    dst = _connect(copy, key)
    try:
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal
    finally:
        dst.close()
        src.close()


def describe_copy(copy: Path, key: str) -> dict[str, Any]:
    """Check the copy opens and is intact; what the manifest says about it."""
    con = _connect(copy, key)
    try:
        bad = [str(r[0]) for r in con.execute("PRAGMA cipher_integrity_check")]
        if bad:
            raise BackupError(copy, f"the copy fails its page HMAC check: {bad[:3]}")
        count = con.execute("SELECT count(*) FROM audit_events").fetchone()[0]
        last = con.execute("SELECT idx, hash FROM audit_events ORDER BY idx DESC LIMIT 1")
        head = last.fetchone()
        revision = con.execute("SELECT version_num FROM alembic_version").fetchone()
        ws = con.execute("SELECT value FROM properties WHERE key = 'workstation_id'").fetchone()
    except sqlcipher3.DatabaseError as exc:
        raise BackupError(copy, f"the copy does not open with the key ({exc})") from exc
    finally:
        con.close()
    return {
        "workstation_id": ws[0] if ws else None,
        "schema_revision": revision[0] if revision else None,
        "event_count": int(count),
        "head_index": int(head[0]) if head else -1,
        "head_hash": str(head[1]) if head else "",  # an empty trail has no head
    }


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_backup(db_path: Path, out: Path, recipient: Any) -> Manifest:
    """Write ``out``: an online, checked copy of ``db_path`` plus its sealed keys (see the
    module docstring). Written beside ``out`` and renamed into place, mode 0600."""
    out = out.resolve()
    if out.exists():
        raise BackupError(out, "the file exists already; not overwritten")
    secrets_by_role = _profile_secrets(db_path)
    work: Path | None = None
    try:
        work = Path(tempfile.mkdtemp(prefix=".doctorai-backup-", dir=out.parent))  # 0700
        partial = work / "backup.zip"
        copy = work / DATABASE
        _copy_online(db_path, secrets_by_role["database"], copy)
        described = describe_copy(copy, secrets_by_role["database"])
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
                digest = _pack(archive, copy)
                data = _manifest(described, copy, digest, secrets_by_role, recipient)
                manifest = Manifest(data, json.loads(data))
                archive.writestr(MANIFEST, manifest.raw)
                archive.writestr(SEALED, seal(secrets_by_role, recipient, manifest.raw))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, out)
        _fsync_dir(out.parent)
    except OSError as exc:
        raise BackupError(
            out,
            f"could not be written ({exc.strerror or exc}); no backup file was left",
            exit_code=EXIT_STORAGE,
        ) from exc
    except sqlcipher3.DatabaseError as exc:
        raise BackupError(
            out, f"the database could not be copied ({exc})", exit_code=EXIT_STORAGE
        ) from exc
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return manifest


def _pack(archive: zipfile.ZipFile, copy: Path) -> str:
    """The database member, written from ``copy``; its SHA-256 taken on the way."""
    digest = hashlib.sha256()
    with copy.open("rb") as src, archive.open(DATABASE, "w", force_zip64=True) as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _manifest(
    described: dict[str, Any],
    copy: Path,
    digest: str,
    secrets_by_role: dict[str, str],
    recipient: Any,
) -> bytes:
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **described,
        "database_size": copy.stat().st_size,
        "database_sha256": digest,
        "key_roles": sorted(secrets_by_role),
        "scheme": SCHEME,
        "recipient": key_fingerprint(recipient),
    }
    return json.dumps(data, indent=2, sort_keys=True).encode()


# --- restore -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    """A restored profile database: what the backup said, and what was moved aside."""

    manifest: Manifest
    target: Path
    #: with --force: where the database that was at ``target`` now lies (its keys moved to
    #: that path's keyring entries, so it still opens there)
    moved_aside: Path | None = None


def read_manifest(path: Path) -> tuple[Manifest, bytes]:
    """The backup's manifest and sealed keys; BackupError for a file that is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(MANIFEST)
            sealed = archive.read(SEALED)
            archive.getinfo(DATABASE)
    except FileNotFoundError:
        raise BackupError(path, "no such file") from None
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise BackupError(
            path, f"is damaged or not a DoctorAI backup ({exc})", exit_code=EXIT_STORAGE
        ) from exc
    try:
        data = _parse_manifest(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(
            path, f"its manifest is unreadable ({exc})", exit_code=EXIT_STORAGE
        ) from exc
    return Manifest(raw, data), sealed


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    if data.get("format") != FORMAT:
        raise ValueError("not a DoctorAI backup")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format version {data.get('format_version')} is not supported")
    int(data["head_index"]), str(data["head_hash"]), str(data["database_sha256"])
    return data


def side_files(db_path: Path) -> list[Path]:
    """The database and the files SQLite and the audit trail keep beside it."""
    return [db_path] + [db_path.with_name(db_path.name + s) for s in ("-wal", "-shm", ".head")]


def _existing_entries(target: Path) -> dict[str, str]:
    import keyring

    found = {}
    try:
        for role, entry in profile_key_entries(target).items():
            value = keyring.get_password(SERVICE, entry)
            if value is not None:
                found[role] = value
    except Exception as exc:  # keyring backends raise their own errors (locked, D-Bus, ...)
        raise BackupError(
            target, f"the OS keyring cannot be read ({type(exc).__name__}: {exc}); nothing written"
        ) from exc
    return found


def _check_revision(path: Path, manifest: Manifest) -> None:
    """A backup from a newer version (a schema this one does not know) is refused up front."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from core.store.database import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    revision = manifest.data.get("schema_revision")
    known = {r.revision for r in script.walk_revisions()}
    if revision not in known:
        raise BackupError(
            path,
            f"its database has schema revision {revision!r}, which this version of DoctorAI "
            f"does not know (it knows up to {script.get_current_head()!r}): restore it with the "
            "version that made it, or a newer one",
        )


def _move_aside(target: Path, old_keys: dict[str, str]) -> Path:
    """--force: the old database and its files renamed with a timestamp, its keys stored
    under the renamed path's entry names, so the old profile still opens there."""
    import keyring

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = target.with_name(f"{target.name}.replaced-{stamp}")
    for old, new in zip(side_files(target), side_files(aside), strict=True):
        if old.exists():
            os.replace(old, new)
    new_entries = profile_key_entries(aside)
    old_entries = profile_key_entries(target)
    for role, value in old_keys.items():
        keyring.set_password(SERVICE, new_entries[role], value)
    for role in old_keys:
        keyring.delete_password(SERVICE, old_entries[role])
    return aside


def restore_files(
    path: Path,
    private_key: Any,
    target: Path,
    *,
    force: bool = False,
) -> Restored:
    """Check the backup, then put its database at ``target`` and its keys in the keyring under
    ``target``'s entry names. Refuses an existing database or keyring entries unless ``force``
    (which moves them aside, never deletes them)."""
    import keyring

    manifest, sealed = read_manifest(path)
    secrets_by_role = unseal(sealed, private_key, manifest, path)
    _check_revision(path, manifest)
    target = target.resolve()
    present = [p for p in side_files(target) if p.exists()]
    old_keys = _existing_entries(target)
    if (present or old_keys) and not force:
        entries = profile_key_entries(target)
        what = [f"'{p}'" for p in present] + [f"keyring entry '{entries[r]}'" for r in old_keys]
        raise BackupError(
            path,
            f"the target profile exists ({', '.join(what[:3])}): not overwritten. Restore to "
            "another path with --to, or use --force to move the existing database and keys "
            "aside (renamed with a timestamp, nothing deleted)",
        )
    moved: Path | None = None
    work: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        work = Path(tempfile.mkdtemp(prefix=".doctorai-restore-", dir=target.parent))
        staged = work / target.name
        _extract(path, staged, manifest)
        if present or old_keys:
            moved = _move_aside(target, old_keys)
        os.replace(staged, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise BackupError(
            target, f"could not be written ({exc.strerror or exc})", exit_code=EXIT_STORAGE
        ) from exc
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    entries = profile_key_entries(target)
    try:
        for role, value in secrets_by_role.items():
            if role in entries:
                keyring.set_password(SERVICE, entries[role], value)
    except Exception as exc:  # keyring backends raise their own errors (locked, D-Bus, ...)
        raise BackupError(
            target,
            f"the database was restored but its keys could not be stored in the OS keyring "
            f"({type(exc).__name__}: {exc}); run the restore again with --force once the "
            "keyring works",
        ) from exc
    return Restored(manifest, target, moved)


def _extract(path: Path, staged: Path, manifest: Manifest) -> None:
    """The database member to ``staged`` (0600), its SHA-256 checked against the manifest."""
    digest = hashlib.sha256()
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with (
            zipfile.ZipFile(path) as archive,
            archive.open(DATABASE) as src,
            os.fdopen(fd, "wb") as dst,
        ):
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except (zipfile.BadZipFile, KeyError) as exc:
        raise BackupError(path, f"is damaged ({exc})", exit_code=EXIT_STORAGE) from exc
    if digest.hexdigest() != manifest.data["database_sha256"]:
        raise BackupError(
            path,
            "its database does not match the manifest's SHA-256 (damaged or swapped); refused",
            exit_code=EXIT_STORAGE,
        )
