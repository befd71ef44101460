"""Backup and restore of the audit trail with keys sealed to IT's X25519 recovery key, on real
SQLCipher files, a real keygen and a separate keyring file per "machine"; and the attacks on
it: a tampered manifest, a flipped byte in the sealed keys, a swapped database, the wrong
private key, a restore over an existing profile, no recovery key configured."""

from __future__ import annotations

import base64
import errno
import io
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.app import backup as app_backup
from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.log import AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType
from core.security.users import PermissionDenied, Role
from core.store import backup as store_backup
from core.store.backup import BackupError
from core.store.database import open_database
from core.store.keys import SERVICE, profile_key_entries

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
PATIENT_NAME = "Doe^Jane"


@contextmanager
def machine(keyring_file: Path) -> Iterator[None]:
    """Act on another machine: a keyring of its own (keyrings.alt's file backend)."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    previous = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(keyring_file)
    keyring.set_keyring(backend)
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def _keygen(path: Path) -> str:
    from cli import main

    out = io.StringIO()
    old, sys.stdout = sys.stdout, out
    try:
        assert main(["backup", "keygen", "--private-out", str(path)]) == 0
    finally:
        sys.stdout = old
    line = next(x for x in out.getvalue().splitlines() if x.startswith("recovery_public_key"))
    return line.split("=", 1)[1].strip().strip('"')


def _profile(db_path: Path, events: int = 5) -> None:
    ws = Workstation.open(db_path)
    ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="setup")
    ws.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    for n in range(events):
        ws.record(EventType.INSTANCES_ACCESSED, Participants().patient("PID-7", PATIENT_NAME), n=n)
    ws.close()


def _backup(db_path: Path, out: Path, public: str) -> store_backup.Manifest:
    ws = Workstation.open(db_path)
    try:
        ws.session.login("admin", PASSWORD)
        return app_backup.create_backup(ws, out, public)
    finally:
        ws.close()


def _keyring_entries(target: Path) -> dict[str, str | None]:
    import keyring

    return {r: keyring.get_password(SERVICE, e) for r, e in profile_key_entries(target).items()}


@pytest.fixture
def it_key(tmp_path: Path) -> tuple[Path, str]:
    private = tmp_path / "it-recovery.pem"
    return private, _keygen(private)


@pytest.fixture
def backup_file(tmp_path: Path, it_key: tuple[Path, str]) -> Path:
    db_path = tmp_path / "a" / "doctorai.db"
    db_path.parent.mkdir()
    _profile(db_path)
    out = tmp_path / "trail.doctorai-backup"
    _backup(db_path, out, it_key[1])
    return out


def _rewrite(src: Path, dst: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    """Copy the backup zip with one member changed by ``change(bytes) -> bytes``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info.filename, change(data) if info.filename == member else data)


def test_keygen_writes_a_private_key_0600_and_prints_the_config_line(
    it_key: tuple[Path, str],
) -> None:
    private, public = it_key
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    key = store_backup.load_private_key(private)
    assert store_backup.key_fingerprint(key.public_key()) == store_backup.key_fingerprint(
        store_backup.parse_public_key(public, Path("x"), Path("config.toml"))
    )
    with pytest.raises(BackupError, match="exists already"):
        store_backup.generate_recovery_key(private)  # never overwrites IT's key


def test_backup_restores_on_another_machine_and_its_head_matches(
    tmp_path: Path, backup_file: Path, it_key: tuple[Path, str]
) -> None:
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    manifest, _sealed = store_backup.read_manifest(backup_file)
    with zipfile.ZipFile(backup_file) as z:
        assert z.namelist() == ["database.sqlcipher", "manifest.json", "keys.sealed"]
        database = z.read("database.sqlcipher")
    assert not database.startswith(b"SQLite format 3")  # still encrypted
    raw = backup_file.read_bytes()
    assert PATIENT_NAME.encode() not in raw
    assert b"PID-7" not in raw
    source = tmp_path / "a" / "doctorai.db"
    held = {role for role, value in _keyring_entries(source).items() if value}
    assert {"database", "audit-head"} <= held
    assert set(manifest.data["key_roles"]) == held  # every secret the profile has (audit-chain too)

    target = tmp_path / "b" / "restored.db"
    with machine(tmp_path / "machine-b-keyring.cfg"):
        report = app_backup.restore_backup(backup_file, it_key[0], target)
        assert report.ok, report.check.lines()
        assert report.head == manifest.head  # the restored head is the backup's head
        assert report.check.checked == manifest.event_count
        db = open_database(target)
        log = AuditLog(db)
        try:
            assert log.check().ok
            events = list(log.iter_events())
        finally:
            db.close()
    created = [e for e in events if e.details.get("action") == "backup-created"]
    assert len(created) == 1  # audit first: the backup holds its own event
    assert created[0].event_type is EventType.EXPORT
    last = events[-1]
    assert last.details["action"] == "backup-restored"
    assert last.details["backup_head_index"] == manifest.head[0]
    assert last.details["backup_head_hash"] == manifest.head[1]
    # the keys went to the restored path's entries on machine B only, the same secrets
    assert _keyring_entries(target)["database"] is None
    with machine(tmp_path / "machine-b-keyring.cfg"):
        restored = _keyring_entries(target)
    assert {r for r, v in restored.items() if v} == held
    assert all(restored[r] == _keyring_entries(source)[r] for r in held)


def _refused(
    tmp_path: Path, backup_file: Path, private: Path, match: str, code: int
) -> BackupError:
    target = tmp_path / "b" / "restored.db"
    with machine(tmp_path / "machine-b-keyring.cfg"):
        with pytest.raises(BackupError, match=match) as info:
            app_backup.restore_backup(backup_file, private, target)
        assert not target.exists()
        assert not target.with_name("restored.db.head").exists()
        assert set(_keyring_entries(target).values()) == {None}  # nothing written
    assert info.value.exit_code == code
    return info.value


def test_a_tampered_manifest_is_refused(
    tmp_path: Path, backup_file: Path, it_key: tuple[Path, str]
) -> None:
    # the attack: claim an older head (hide the newest events) in an otherwise genuine backup
    def older_head(raw: bytes) -> bytes:
        data = json.loads(raw)
        data["head_index"] -= 1
        data["event_count"] -= 1
        return json.dumps(data, indent=2, sort_keys=True).encode()

    forged = tmp_path / "forged.zip"
    _rewrite(backup_file, forged, "manifest.json", older_head)
    _refused(tmp_path, forged, it_key[0], "manifest or the sealed keys were altered", 3)


def test_a_flipped_byte_in_the_sealed_keys_is_refused(
    tmp_path: Path, backup_file: Path, it_key: tuple[Path, str]
) -> None:
    def flip(raw: bytes) -> bytes:
        box = json.loads(raw)
        ct = bytearray(base64.b64decode(box["ciphertext"]))
        ct[5] ^= 0x01
        box["ciphertext"] = base64.b64encode(bytes(ct)).decode()
        return json.dumps(box).encode()

    forged = tmp_path / "flipped.zip"
    _rewrite(backup_file, forged, "keys.sealed", flip)
    _refused(tmp_path, forged, it_key[0], "sealed keys were altered or damaged", 3)


def test_a_swapped_or_damaged_database_is_refused(
    tmp_path: Path, backup_file: Path, it_key: tuple[Path, str]
) -> None:
    def flip(raw: bytes) -> bytes:
        data = bytearray(raw)
        data[len(data) // 2] ^= 0xFF
        return bytes(data)

    forged = tmp_path / "swapped.zip"
    _rewrite(backup_file, forged, "database.sqlcipher", flip)
    _refused(tmp_path, forged, it_key[0], "does not match the manifest's SHA-256", 3)
    damaged = tmp_path / "truncated.zip"
    damaged.write_bytes(backup_file.read_bytes()[:2000])
    _refused(tmp_path, damaged, it_key[0], "damaged or not a DoctorAI backup", 3)


def test_the_wrong_private_key_is_refused(tmp_path: Path, backup_file: Path) -> None:
    other = tmp_path / "not-it.pem"
    _keygen(other)
    _refused(tmp_path, backup_file, other, "sealed to another recovery key", 2)
    # and one that claims to be for the other key: the manifest then fails the seal
    other_fp = store_backup.key_fingerprint(store_backup.load_private_key(other).public_key())

    def claim_other(raw: bytes) -> bytes:
        data = json.loads(raw)
        data["recipient"] = other_fp
        return json.dumps(data, indent=2, sort_keys=True).encode()

    forged = tmp_path / "claims-other.zip"
    _rewrite(backup_file, forged, "manifest.json", claim_other)
    _refused(tmp_path, forged, other, "altered", 3)


def test_a_restore_over_an_existing_profile_is_refused_and_force_moves_it_aside(
    tmp_path: Path, backup_file: Path, it_key: tuple[Path, str]
) -> None:
    with machine(tmp_path / "machine-b-keyring.cfg"):
        existing = tmp_path / "b" / "doctorai.db"
        existing.parent.mkdir()
        _profile(existing, events=2)
        before = existing.read_bytes()
        keys_before = _keyring_entries(existing)
        with pytest.raises(BackupError, match="the target profile exists") as info:
            app_backup.restore_backup(backup_file, it_key[0], existing)
        assert info.value.exit_code == 2
        assert existing.read_bytes() == before
        assert _keyring_entries(existing) == keys_before
        assert keys_before["database"] not in str(info.value)  # names entries, not secrets

        report = app_backup.restore_backup(backup_file, it_key[0], existing, force=True)
        assert report.ok
        aside = report.moved_aside
        assert aside is not None
        assert aside.read_bytes() == before
        assert _keyring_entries(aside) == keys_before  # the old profile still opens there
        old = Workstation.open(aside)
        try:
            assert old.audit.check().ok
        finally:
            old.close()


def test_a_backup_taken_while_another_thread_appends_is_consistent(
    tmp_path: Path, it_key: tuple[Path, str]
) -> None:
    db_path = tmp_path / "a" / "doctorai.db"
    db_path.parent.mkdir()
    _profile(db_path, events=1)
    ws = Workstation.open(db_path)
    ws.session.login("admin", PASSWORD)
    stop = threading.Event()
    appended = [0]

    def writer() -> None:
        while not stop.is_set():
            batch = [
                AuditEvent(EventType.INSTANCES_ACCESSED, "rad", objects=[AuditObject("study", "1")])
                for _ in range(50)
            ]
            ws.audit.append_many(batch)
            appended[0] += 50

    thread = threading.Thread(target=writer)
    thread.start()
    manifests = []
    try:
        for n in range(3):
            manifests.append(app_backup.create_backup(ws, tmp_path / f"b{n}.zip", it_key[1]))
    finally:
        stop.set()
        thread.join()
        ws.close()
    assert appended[0] > 0
    for n, manifest in enumerate(manifests):
        assert manifest.event_count == manifest.head[0] + 1
        with machine(tmp_path / f"machine-{n}.cfg"):
            report = app_backup.restore_backup(
                tmp_path / f"b{n}.zip", it_key[0], tmp_path / f"r{n}" / "doctorai.db"
            )
        assert report.ok, report.check.lines()
        assert report.head == manifest.head


def test_only_an_admin_backs_up_and_a_failed_copy_is_audited(
    tmp_path: Path, it_key: tuple[Path, str]
) -> None:
    db_path = tmp_path / "a" / "doctorai.db"
    db_path.parent.mkdir()
    _profile(db_path)
    ws = Workstation.open(db_path)
    try:
        ws.session.login("rad", PASSWORD)
        with pytest.raises(PermissionDenied):
            app_backup.create_backup(ws, tmp_path / "x.zip", it_key[1])
        assert not (tmp_path / "x.zip").exists()
        ws.session.login("admin", PASSWORD)
        out = tmp_path / "no-such-dir" / "x.zip"
        with pytest.raises(BackupError, match="could not be written") as info:
            app_backup.create_backup(ws, out, it_key[1])
        assert info.value.exit_code == 3
        tail = [e for e in ws.audit.iter_events() if e.details.get("action") == "backup-created"]
        assert [e.outcome for e in tail] == [0, 4]  # the attempt, then its failure
        assert "No such file" in tail[1].details["reason"]
    finally:
        ws.close()


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", *args],
        env={**os.environ, **env},
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_round_trip_and_refusals_without_tracebacks(tmp_path: Path) -> None:
    config = tmp_path / "machine.toml"
    a = {
        "DOCTORAI_HOME": str(tmp_path / "home-a"),
        "DOCTORAI_MACHINE_CONFIG": str(config),
        "XDG_DATA_HOME": str(tmp_path / "xdg-a"),
    }
    b = {**a, "DOCTORAI_HOME": str(tmp_path / "home-b"), "XDG_DATA_HOME": str(tmp_path / "xdg-b")}
    assert _cli(a, "users", "add", "admin", "--role", "admin", "--password-stdin",
                stdin=PASSWORD + "\n").returncode == 0  # fmt: skip
    out = tmp_path / "trail.zip"
    create = ("backup", "create", "--out", str(out), "--admin", "admin", "--admin-password-stdin")

    # no recovery key configured: refused before anything is written (no file, no event)
    head_before = _cli(a, "audit", "head").stdout
    refused = _cli(a, *create, stdin=PASSWORD + "\n")
    assert refused.returncode == 2, refused.stderr
    assert "no recovery key is configured" in refused.stderr
    assert str(out) in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".doctorai-backup-*"))
    assert _cli(a, "audit", "head").stdout == head_before

    keygen = _cli(a, "backup", "keygen", "--private-out", str(tmp_path / "it.pem"))
    assert keygen.returncode == 0, keygen.stderr
    config.write_text("\n".join(keygen.stdout.splitlines()[-2:]) + "\n")
    made = _cli(a, *create, stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "wrote backup" in made.stdout

    restore = ("backup", "restore", str(out), "--private-key", str(tmp_path / "it.pem"))
    done = _cli(b, *restore)
    assert done.returncode == 0, done.stderr
    assert "hash chain: ok" in done.stdout
    assert "as backed up" in done.stdout
    again = _cli(b, *restore)  # the profile exists now
    assert again.returncode == 2
    assert "not overwritten" in again.stderr
    assert "Traceback" not in again.stderr
    verify = _cli(b, "audit", "verify")
    assert verify.returncode == 0, verify.stderr

    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04 not really")
    bad = _cli(b, "backup", "restore", str(damaged), "--private-key", str(tmp_path / "it.pem"),
               "--to", str(tmp_path / "c" / "x.db"))  # fmt: skip
    assert bad.returncode == 3
    assert str(damaged) in bad.stderr
    assert "Traceback" not in bad.stderr


def test_profile_directory_is_0700_and_database_files_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from core.paths import profile_dir

    home = profile_dir()  # DOCTORAI_HOME of this test: created now
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    db_path = home / "doctorai.db"
    ws = Workstation.open(db_path)
    ws.record(EventType.APPLICATION_ACTIVITY, action="start")
    ws.audit.head_record.flush()
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), Path(f"{db_path}.head")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    ws.close()

    # looser ones (an older version, a copy) are tightened on open, with a log line
    home.chmod(0o755)
    db_path.chmod(0o644)
    Path(f"{db_path}.head").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="core.paths"):
        ws = Workstation.open(profile_dir() / "doctorai.db")
        ws.close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{db_path}.head").stat().st_mode) == 0o600
    assert any("tightened" in r.getMessage() for r in caplog.records)


def test_a_full_disk_while_packing_leaves_no_file_and_is_audited(
    tmp_path: Path, it_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk cannot be made here: the packing step fails as the OS fails it (ENOSPC)
    after part of the file was written."""
    db_path = tmp_path / "a" / "doctorai.db"
    db_path.parent.mkdir()
    _profile(db_path)
    real_pack = store_backup._pack

    def disk_full(archive: zipfile.ZipFile, copy: Path) -> str:
        real_pack(archive, copy)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_backup, "_pack", disk_full)
    out = tmp_path / "out" / "trail.zip"
    out.parent.mkdir()
    ws = Workstation.open(db_path)
    try:
        ws.session.login("admin", PASSWORD)
        with pytest.raises(BackupError, match="No space left on device") as info:
            app_backup.create_backup(ws, out, it_key[1])
        attempts = [e for e in ws.audit.iter_events() if e.details.get("file") == out.name]
    finally:
        ws.close()
    assert info.value.exit_code == 3
    assert str(out) in str(info.value)
    assert list(out.parent.iterdir()) == []  # neither the file nor its partial copy
    assert [e.outcome for e in attempts] == [0, 4]


def test_a_backup_from_a_newer_schema_is_refused_before_anything_is_written(
    tmp_path: Path, it_key: tuple[Path, str]
) -> None:
    db_path = tmp_path / "a" / "doctorai.db"
    db_path.parent.mkdir()
    _profile(db_path, events=1)
    key = _keyring_entries(db_path)["database"]
    assert key is not None
    con = store_backup._connect(db_path, key)
    con.execute("UPDATE alembic_version SET version_num = '0999'")  # as a newer version left it
    con.close()
    out = tmp_path / "newer.zip"
    store_backup.create_backup(db_path, out, store_backup.load_private_key(it_key[0]).public_key())
    _refused(tmp_path, out, it_key[0], "schema revision '0999'", 2)


def test_a_real_full_disk_is_said_with_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    """The backup's disk is a 64 KiB tmpfs, smaller than the database: refused with exit 3,
    naming the file and the cause, no traceback, nothing left on that disk."""
    import shutil

    small = tmp_path / "small-disk"
    small.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs as a full disk")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {made.stderr.strip()}")
    try:
        config = tmp_path / "machine.toml"
        env = {
            "DOCTORAI_HOME": str(tmp_path / "home"),
            "DOCTORAI_MACHINE_CONFIG": str(config),
        }  # the keyring file: this test's own (XDG_DATA_HOME), as _profile used it
        _profile(tmp_path / "home" / "doctorai.db", events=200)
        keygen = _cli(env, "backup", "keygen", "--private-out", str(tmp_path / "it.pem"))
        config.write_text("\n".join(keygen.stdout.splitlines()[-2:]) + "\n")
        out = small / "trail.zip"
        res = _cli(env, "backup", "create", "--out", str(out), "--admin", "admin",
                   "--admin-password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
        assert res.returncode == 3, res.stderr
        assert str(out) in res.stderr
        assert "full" in res.stderr
        assert "Traceback" not in res.stderr
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
