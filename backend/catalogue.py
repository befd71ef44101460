"""Model packages, channels and rollouts: the admin side of the signed update channel.

Which version a workstation should run is itself a signed TUF target, ``channels/<model>.json``,
so promote and rollback reach workstations only through metadata they can verify.
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db import ModelPackage, Rollout, utcnow
from backend.rollout_assign import (
    OPEN_STATUSES,
    RolloutError,
    add_arms,
    arms_of,
    lock_rollout,
    pause,
    record_event,
)
from backend.rollout_monitor import format_report as format_report  # re-export: the CLI
from backend.rollout_monitor import validate_design
from backend.tuf_repo import TufRepository
from core.sync.wire import ChannelFile

ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"  # a model id or version
_ID = re.compile(ID_PATTERN)


class CatalogueError(Exception):
    """A package or rollout request that cannot be honoured; the message names the thing."""


def read_manifest(package_dir: Path) -> dict[str, Any]:
    path = package_dir / "manifest.json"
    if not path.is_file():
        raise CatalogueError(f"model package '{package_dir}' has no manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"'{path}' is not valid JSON: {exc}") from exc
    for key in ("id", "version"):
        value = manifest.get(key) if isinstance(manifest, dict) else None
        if not isinstance(value, str) or not _ID.match(value):
            raise CatalogueError(f"'{path}': field {key!r} missing or not a plain identifier")
    return dict(manifest)


def build_archive(package_dir: Path, out: Path) -> None:
    """A reproducible .tar.gz (sorted names, zeroed times/owners): same folder, same hash."""
    files = sorted(p for p in package_dir.rglob("*") if p.is_file() and not p.is_symlink())
    with (
        out.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in files:
            info = tarfile.TarInfo(path.relative_to(package_dir).as_posix())
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as fh:
                tar.addfile(info, fh)


def channel_path(model_id: str) -> str:
    return f"channels/{model_id}.json"


def package_path(model_id: str, version: str) -> str:
    return f"models/{model_id}/{model_id}-{version}.tar.gz"


def set_channel(
    session: Session,
    repo: TufRepository,
    model_id: str,
    version: str,
    rollout: dict[str, Any] | None = None,
) -> None:
    body = (
        ChannelFile(
            model_id=model_id,
            version=version,
            target_path=package_path(model_id, version),
            rollout=rollout,
        )
        .model_dump_json()
        .encode()
    )
    repo.put_target_bytes(session, channel_path(model_id), body, {"kind": "channel"})


def add_model(session: Session, repo: TufRepository, package_dir: Path) -> ModelPackage:
    """Archive, store and sign a package; the first version of a model also becomes its channel."""
    if not package_dir.is_dir():
        raise CatalogueError(f"model package '{package_dir}' is not a directory")
    manifest = read_manifest(package_dir)
    model_id, version = manifest["id"], manifest["version"]
    if session.scalar(
        select(ModelPackage).where(
            ModelPackage.model_id == model_id, ModelPackage.version == version
        )
    ):
        raise CatalogueError(f"model {model_id!r} version {version!r} is already published")
    first = session.scalar(select(ModelPackage).where(ModelPackage.model_id == model_id)) is None
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "package.tar.gz"
        build_archive(package_dir, archive)
        target = repo.put_target_file(
            session,
            package_path(model_id, version),
            archive,
            {"kind": "model", "model_id": model_id, "version": version},
        )
    pkg = ModelPackage(
        model_id=model_id,
        version=version,
        sha256=target.sha256,
        length=target.length,
        target_path=target.target_path,
        storage_key=target.storage_key,
        manifest=manifest,
    )
    session.add(pkg)
    if first:
        set_channel(session, repo, model_id, version)
    repo.publish(session)
    session.commit()
    return pkg


def _package(session: Session, model_id: str, version: str) -> ModelPackage:
    pkg = session.scalar(
        select(ModelPackage).where(
            ModelPackage.model_id == model_id, ModelPackage.version == version
        )
    )
    if pkg is None:
        raise CatalogueError(f"model {model_id!r} version {version!r} is not in the catalogue")
    return pkg


def get_rollout(session: Session, rollout_id: int) -> Rollout:
    ro = session.get(Rollout, rollout_id)
    if ro is None:
        raise CatalogueError(f"rollout {rollout_id} does not exist")
    return ro


def get_locked_rollout(session: Session, rollout_id: int) -> Rollout:
    """The rollout, row-locked for this transaction (its status re-read under the lock)."""
    ro = lock_rollout(session, rollout_id)
    if ro is None:
        raise CatalogueError(f"rollout {rollout_id} does not exist")
    return ro


def create_rollout(
    session: Session,
    repo: TufRepository,
    model_id: str,
    baseline: str,
    candidate: str,
    split: float,
    shadow: bool = False,
    *,
    more_candidates: list[tuple[str, float]] | None = None,
    design: dict[str, Any] | None = None,
    actor: str = "",
) -> Rollout:
    """A rollout of ``candidate`` at ``split`` (and optionally more candidates with their
    shares) against ``baseline``; the baseline keeps what the candidates leave.

    ``design``: alpha, tau and guardrails (backend.rollout_monitor.validate_design)."""
    if not 0.0 <= split <= 1.0:
        raise CatalogueError(f"traffic split {split} must lie between 0 and 1")
    candidates = [(candidate, split), *(more_candidates or [])]
    for version in (baseline, *(v for v, _w in candidates)):
        _package(session, model_id, version)
    try:
        checked = validate_design(design)
    except ValueError as exc:
        raise CatalogueError(str(exc)) from exc
    active = session.scalar(
        select(Rollout).where(Rollout.model_id == model_id, Rollout.status.in_(OPEN_STATUSES))
    )
    if active is not None:
        raise CatalogueError(f"model {model_id!r} already has {active.status} rollout {active.id}")
    ro = Rollout(
        model_id=model_id,
        baseline_version=baseline,
        candidate_version=candidate,
        split=split,
        shadow=shadow,
        design=checked,
    )
    session.add(ro)
    session.flush()
    try:
        arms = add_arms(session, ro, baseline, candidates)
    except RolloutError as exc:
        session.rollback()
        raise CatalogueError(str(exc)) from exc
    set_channel(
        session,
        repo,
        model_id,
        baseline,
        rollout={
            "id": ro.id,
            "candidate": candidate,
            "split": split,
            "shadow": shadow,
            "candidate_target_path": package_path(model_id, candidate),
            # K arms: every candidate version and its package (workstations of today read
            # only the first candidate above)
            "candidates": {
                a.version: package_path(model_id, a.version) for a in arms if a.position > 0
            },
        },
    )
    record_event(
        session,
        ro.id,
        "created",
        {"arms": [{"name": a.name, "version": a.version, "weight": a.weight} for a in arms]},
        actor,
    )
    repo.publish(session)
    session.commit()
    return ro


def close_rollout(
    session: Session,
    repo: TufRepository,
    rollout_id: int,
    promote_arm: str | None,
    actor: str = "",
    commit: bool = True,
) -> Rollout:
    """Promote an arm's version (``promote_arm``) or roll back to the baseline (None); the
    channel is re-signed and the change stored as a rollout event. Active or paused only.

    The rollout's row is locked first (then the channel's target, then the signing lock: the
    order of every status change) and its status re-read, so a promote racing an automatic
    rollback on another process either waits and then finds it closed, or wins outright."""
    ro = get_locked_rollout(session, rollout_id)
    if ro.status not in OPEN_STATUSES:
        raise CatalogueError(f"rollout {rollout_id} is already {ro.status}")
    arms = {a.name: a for a in arms_of(session, ro)}
    if promote_arm is None:
        version, status = arms["baseline"].version, "rolled_back"
    else:
        if promote_arm not in arms or promote_arm == "baseline":
            names = sorted(n for n in arms if n != "baseline")
            raise CatalogueError(
                f"rollout {rollout_id} has no candidate arm {promote_arm!r} (arms: {names})"
            )
        version, status = arms[promote_arm].version, "promoted"
    set_channel(session, repo, ro.model_id, version)
    ro.status, ro.closed_at = status, utcnow()
    record_event(session, ro.id, status, {"version": version}, actor)
    repo.publish(session)
    if commit:
        session.commit()
    return ro


def promote(
    session: Session,
    repo: TufRepository,
    rollout_id: int,
    arm: str | None = None,
    actor: str = "",
) -> Rollout:
    """Promote the candidate (``arm`` names which one when there are several)."""
    if arm is None:  # the row locked first here too: the lock is the transaction's first step
        ro = get_locked_rollout(session, rollout_id)
        names = [a.name for a in arms_of(session, ro)]
        candidates = [n for n in names if n != "baseline"]
        if len(candidates) != 1:
            raise CatalogueError(
                f"rollout {rollout_id} has {len(candidates)} candidates: name the arm to promote"
            )
        arm = candidates[0]
    return close_rollout(session, repo, rollout_id, arm, actor)


def rollback(session: Session, repo: TufRepository, rollout_id: int) -> Rollout:
    return close_rollout(session, repo, rollout_id, None)


def pause_rollout(session: Session, rollout_id: int, actor: str, by: str) -> Rollout:
    """Pause (admin, CLI): the row locked and its status re-read first; committed."""
    ro = get_locked_rollout(session, rollout_id)
    try:
        pause(session, ro, actor, {"by": by})
    except RolloutError as exc:
        session.rollback()
        raise CatalogueError(str(exc)) from exc
    session.commit()
    return ro
