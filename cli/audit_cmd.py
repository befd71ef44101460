"""``doctorai audit verify|head|export``: check and export the tamper-evident audit trail."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    verify = sub.add_parser(
        "verify",
        help="walk the hash chain and run the page HMAC and SQLite integrity checks; exit 1 "
        "naming the check that failed (and the first bad index or page)",
    )
    head = sub.add_parser("head", help="print the chain head (index and hash)")
    export = sub.add_parser("export", help="export events (audited as 'Audit Log Used')")
    export.add_argument("--format", choices=["json", "csv", "dicom-xml"], default="json")
    export.add_argument("--since", help="ISO date/time, UTC (e.g. 2026-11-01)")
    export.add_argument("--out", help="file to write (default: standard output)")
    parser.add_argument("--db", help="database file (default: the profile's)")
    for action in (verify, head, export):  # `audit verify --db F` as well as `audit --db F verify`
        action.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _since(text: str) -> str:
    """An ISO date or date-time (UTC when no offset), as the stored timestamps compare."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since '{text}' is not an ISO date or date-time (e.g. 2026-11-01 or "
            "2026-11-01T08:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def run(args: argparse.Namespace) -> int:
    from core.audit.export import EXPORTERS
    from core.audit.log import AuditEvent, AuditLog, AuditObject
    from core.audit.vocabulary import EventType
    from core.store.database import open_database
    from core.store.errors import EXIT_STORAGE, DatabaseError, KeyringUnavailableError

    if args.db and not Path(args.db).is_file():
        # opening would create an empty database and report "0 events, chain intact"
        print(f"error: audit database '{args.db}' does not exist", file=sys.stderr)
        return 2
    since = None
    if getattr(args, "since", None):
        try:
            since = _since(args.since)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        db = open_database(Path(args.db) if args.db else None)
    except DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        # the keyring is a set-up problem (2); a damaged, locked or missing file is storage (3)
        return 2 if isinstance(exc, KeyringUnavailableError) else EXIT_STORAGE
    try:
        log = AuditLog(db)
        if args.action == "head":
            index, digest = log.chain_head()
            print(f"{index} {digest}")
            return 0
        if args.action == "verify":
            result = log.check()
            for ok, line in result.lines():
                print(line, file=sys.stdout if ok else sys.stderr)
            if result.ok:
                print(f"ok: {result.checked} events, chain intact, every page intact")
                return 0
            print(
                f"FAILED: {', '.join(result.failed())} ({db.path}). Keep this file for "
                "investigation and restore the database from backup.",
                file=sys.stderr,
            )
            return 1
        text = EXPORTERS[args.format](log.iter_events(since=since))
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
            print(f"wrote the audit trail ({args.format}) to '{args.out}'")
        else:
            sys.stdout.write(text)
        target = args.out or "<stdout>"
        log.append(
            AuditEvent(
                EventType.AUDIT_LOG_USED,
                user=getpass.getuser(),
                role="cli",
                objects=[AuditObject("file", target)],
                details={"format": args.format, "since": since},
            )
        )
        return 0
    finally:
        db.close()
