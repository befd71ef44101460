"""Use cases: back up the profile's audit trail (an admin), and restore one on another machine
or path (whoever holds IT's recovery private key).

Backing up follows the audit-first rule of exports: the Export event ("backup-created", naming
the file and the head before it) is durable before the file is made, so the copy carries its own
event; a copy that then fails is recorded as a failed backup. A restore puts the database and
its keys back (core.store.backup), records the restored head outside the database (the head
record), runs the full trail check and then records "backup-restored" in the restored trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.app.workstation import Workstation
from core.audit.events import Participants, event
from core.audit.head_record import HeadRecorder, head_key
from core.audit.log import TrailCheck
from core.audit.vocabulary import EventType, Outcome
from core.paths import machine_config_path
from core.security.users import Permission
from core.store import backup as store_backup
from core.store.backup import BackupError, Manifest
from core.store.database import STORE_ERRORS
from core.store.errors import TrailUnavailableError

__all__ = ["BackupError", "RestoreReport", "create_backup", "restore_backup"]


def create_backup(ws: Workstation, out: Path, recovery_public_key: str | None) -> Manifest:
    """Audit, then write the backup file ``out``; BackupError (a failure is audited too).
    ``recovery_public_key``: the machine config's backup.recovery_public_key."""
    actor = ws.require(Permission.SETTINGS)
    recipient = store_backup.parse_public_key(recovery_public_key, out, machine_config_path())
    out = out.resolve()
    if out.exists():  # before the event: a refused overwrite is no backup attempt
        raise BackupError(out, "the file exists already; not overwritten")
    index, digest = ws.audit.chain_head()
    participants = Participants().add("audit-log", ws.db.workstation_id).add("file", str(out))
    details: dict[str, Any] = {
        "action": "backup-created",
        "file": out.name,
        "head_index": index,
        "head_hash": digest,
    }
    try:
        ws.audit.append(event(EventType.EXPORT, actor, participants, **details))
    except STORE_ERRORS as exc:
        cause = getattr(exc, "orig", None) or exc
        raise TrailUnavailableError(ws.db.path, str(cause), f"'{out}' was not written") from exc
    try:
        return store_backup.create_backup(ws.db.path, out, recipient)
    except BackupError as exc:
        failed = event(
            EventType.EXPORT, actor, participants, Outcome.MINOR_FAILURE, reason=exc.reason,
            **details,
        )  # fmt: skip
        ws.audit.append(failed)
        raise


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    target: Path
    check: TrailCheck
    head: tuple[int, str]  # the restored database's head before the restore event
    moved_aside: Path | None

    @property
    def head_matches(self) -> bool:
        return self.head == self.manifest.head

    @property
    def ok(self) -> bool:
        return self.check.ok and self.head_matches


def restore_backup(
    backup_file: Path,
    private_key_file: Path,
    target: Path,
    *,
    force: bool = False,
    open_profile: Any = None,
) -> RestoreReport:
    """Restore ``backup_file`` to ``target``, check the trail, record the restore in it.

    ``open_profile(path) -> Workstation`` opens the restored profile (default: as the CLI's
    operating-system account). Raises BackupError before anything is written when the file,
    the key or the target is refused."""
    private_key = store_backup.load_private_key(private_key_file)
    restored = store_backup.restore_files(backup_file, private_key, target, force=force)
    manifest = restored.manifest
    index, digest = manifest.head
    if index >= 0:  # the head record beside the database, under the restored head key
        recorder = HeadRecorder(restored.target, head_key(restored.target, create=True)[0])
        recorder.start_at(index, digest)
        recorder.close()
    ws: Workstation = (open_profile or Workstation.open_for_cli)(restored.target)
    try:
        check = ws.audit.check()
        head = ws.audit.chain_head()
        report = RestoreReport(manifest, restored.target, check, head, restored.moved_aside)
        outcome = Outcome.SUCCESS if report.ok else Outcome.SERIOUS_FAILURE
        ws.record(
            EventType.IMPORT,
            Participants().add("audit-log", ws.db.workstation_id).add("file", backup_file.name),
            outcome,
            action="backup-restored",
            backup_created_at=manifest.data.get("created_at"),
            backup_head_index=index,
            backup_head_hash=digest,
            failed_checks=check.failed() + ([] if report.head_matches else ["backup head"]),
        )
    finally:
        ws.close()
    return report
