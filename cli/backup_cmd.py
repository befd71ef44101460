"""``doctorai backup keygen|create|restore``: a backup of the encrypted audit trail with its
keys sealed to IT's recovery key, and its restore on another machine or path.

Exit codes: 0 done; 1 the restored trail fails its check, or a sign-in was refused; 2 a set-up
problem (no recovery key configured, wrong private key, the target exists); 3 a storage
problem (a damaged backup file, a full disk). Never a traceback for any of these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    keygen = sub.add_parser("keygen", help="make IT's recovery key pair")
    keygen.add_argument("--private-out", required=True, metavar="FILE", help="private key file")
    create = sub.add_parser("create", help="back up the profile's database and its keys")
    create.add_argument("--out", required=True, metavar="FILE", help="the backup file to write")
    create.add_argument("--admin", required=True, metavar="NAME", help="the admin who backs up")
    create.add_argument(
        "--admin-password-stdin",
        action="store_true",
        help="read --admin's password from standard input",
    )
    create.add_argument("--db", metavar="FILE", help="database file (default: the profile's)")
    restore = sub.add_parser("restore", help="restore a backup with IT's private key")
    restore.add_argument("file", metavar="FILE", help="the backup file")
    restore.add_argument("--private-key", required=True, metavar="KEYFILE")
    restore.add_argument(
        "--to", metavar="PROFILE_DB_PATH", help="where to put the database (default: profile's)"
    )
    restore.add_argument(
        "--force",
        action="store_true",
        help="move an existing database and its keys aside (renamed with a timestamp)",
    )


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from core.store.backup import BackupError

    try:
        if args.action == "keygen":
            return _keygen(Path(args.private_out))
        if args.action == "create":
            return _create(args)
        return _restore(args)
    except BackupError as exc:
        _error(exc)
        return exc.exit_code


def _keygen(private_out: Path) -> int:
    from core.paths import machine_config_path
    from core.store.backup import generate_recovery_key

    public = generate_recovery_key(private_out)
    print(f"wrote IT's recovery private key to '{private_out}' (mode 0600): keep it offline")
    print(f"add to the machine config ({machine_config_path()}):")
    print("[backup]")
    print(f'recovery_public_key = "{public}"')
    return 0


def _create(args: argparse.Namespace) -> int:
    from cli.profile import finish, sign_in_as
    from core.app.backup import create_backup
    from core.app.workstation import Workstation
    from core.config import ConfigError, load_settings
    from core.paths import machine_config_path
    from core.security.users import PermissionDenied
    from core.store.backup import parse_public_key
    from core.store.errors import DatabaseError

    out = Path(args.out)
    try:
        settings = load_settings()
    except ConfigError as exc:
        _error(exc)
        return 2
    key = settings.backup.recovery_public_key
    parse_public_key(key, out, machine_config_path())  # refused before the profile is opened
    try:
        ws = Workstation.open_for_cli(Path(args.db) if args.db else None, settings.security)
    except DatabaseError as exc:
        _error(f"'doctorai backup create' needs the audit trail and it cannot be opened: {exc}")
        return 2
    try:
        if not sign_in_as(ws, args.admin, args.admin_password_stdin):
            return 1
        try:
            manifest = create_backup(ws, out, key)
        except PermissionDenied as exc:
            _error(exc)
            return 2
        except DatabaseError as exc:
            _error(exc)
            return 3
    finally:
        finish(ws)
    index, digest = manifest.head
    print(
        f"wrote backup '{out}': {manifest.event_count} events, head #{index} {digest}, "
        f"keys sealed to recovery key {manifest.data['recipient'][:16]}..."
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from core.app.backup import restore_backup
    from core.paths import profile_dir
    from core.store.errors import DatabaseError

    target = Path(args.to) if args.to else profile_dir() / "doctorai.db"
    try:
        report = restore_backup(Path(args.file), Path(args.private_key), target, force=args.force)
    except DatabaseError as exc:
        _error(f"the restored database '{target}' cannot be opened: {exc}")
        return 3
    if report.moved_aside is not None:
        print(
            f"moved the existing database and its keyring entries aside to '{report.moved_aside}'"
        )
    print(f"restored '{args.file}' to '{report.target}'")
    for ok, line in report.check.lines():
        print(line, file=sys.stdout if ok else sys.stderr)
    index, digest = report.manifest.head
    if not report.head_matches:
        _error(
            f"the restored head #{report.head[0]} {report.head[1]} is not the backup's head "
            f"#{index} {digest}"
        )
    if not report.ok:
        print(f"FAILED: the restored trail '{report.target}' does not verify", file=sys.stderr)
        return 1
    print(f"ok: {report.check.checked} events, chain intact, head #{index} {digest} as backed up")
    return 0
