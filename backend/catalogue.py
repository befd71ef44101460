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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db import ModelPackage, Result, Rollout, utcnow
from backend.rollout import agreement, arm_stats, compare
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


def create_rollout(
    session: Session,
    repo: TufRepository,
    model_id: str,
    baseline: str,
    candidate: str,
    split: float,
    shadow: bool = False,
) -> Rollout:
    if not 0.0 <= split <= 1.0:
        raise CatalogueError(f"traffic split {split} must lie between 0 and 1")
    _package(session, model_id, baseline)
    _package(session, model_id, candidate)
    active = session.scalar(
        select(Rollout).where(Rollout.model_id == model_id, Rollout.status == "active")
    )
    if active is not None:
        raise CatalogueError(f"model {model_id!r} already has active rollout {active.id}")
    ro = Rollout(
        model_id=model_id,
        baseline_version=baseline,
        candidate_version=candidate,
        split=split,
        shadow=shadow,
    )
    session.add(ro)
    session.flush()
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
        },
    )
    repo.publish(session)
    session.commit()
    return ro


def _close(session: Session, repo: TufRepository, rollout_id: int, promote: bool) -> Rollout:
    ro = get_rollout(session, rollout_id)
    if ro.status != "active":
        raise CatalogueError(f"rollout {rollout_id} is already {ro.status}")
    version = ro.candidate_version if promote else ro.baseline_version
    set_channel(session, repo, ro.model_id, version)
    ro.status, ro.closed_at = ("promoted" if promote else "rolled_back"), utcnow()
    repo.publish(session)
    session.commit()
    return ro


def promote(session: Session, repo: TufRepository, rollout_id: int) -> Rollout:
    return _close(session, repo, rollout_id, promote=True)


def rollback(session: Session, repo: TufRepository, rollout_id: int) -> Rollout:
    return _close(session, repo, rollout_id, promote=False)


def report(session: Session, rollout_id: int) -> dict[str, Any]:
    """Per arm: results, acceptance with a 95% CI, latency p50/p95; and the significance tests."""
    ro = get_rollout(session, rollout_id)
    arms = {}
    raw: dict[str, list[float]] = {}
    for arm, version in (("baseline", ro.baseline_version), ("candidate", ro.candidate_version)):
        q = select(Result.decision, Result.latency_ms).where(
            Result.model_id == ro.model_id,
            Result.model_version == version,
            Result.received_at >= ro.created_at,
        )
        if ro.closed_at is not None:
            q = q.where(Result.received_at <= ro.closed_at)
        rows = session.execute(q).all()
        raw[arm] = [float(r[1]) for r in rows]
        arms[arm] = arm_stats(arm, version, [r[0] for r in rows], raw[arm])
    shadow = None
    if ro.shadow:
        summaries = session.scalars(
            select(Result.summary).where(
                Result.rollout_id == ro.id,
                Result.shadow.is_(True),
                Result.model_version == ro.candidate_version,
            )
        )
        flags = [
            s["agrees_with_shown"]
            for s in summaries
            if isinstance(s, dict) and isinstance(s.get("agrees_with_shown"), bool)
        ]
        shadow = agreement(flags)
    return {
        "rollout": {
            "id": ro.id,
            "model_id": ro.model_id,
            "split": ro.split,
            "shadow": ro.shadow,
            "status": ro.status,
        },
        "arms": {k: asdict(v) for k, v in arms.items()},
        "shadow_agreement": shadow,
        "comparison": compare(
            arms["baseline"], arms["candidate"], raw["baseline"], raw["candidate"]
        ),
    }


def format_report(rep: dict[str, Any]) -> str:
    ro = rep["rollout"]
    lines = [
        f"rollout {ro['id']} model {ro['model_id']!r} split {ro['split']:.0%} "
        f"{'shadow ' if ro['shadow'] else ''}status {ro['status']}"
    ]
    for arm in rep["arms"].values():
        rate = (
            "n/a"
            if arm["acceptance_rate"] is None
            else f"{arm['acceptance_rate']:.1%} (95% CI {arm['ci_low']:.1%}-{arm['ci_high']:.1%})"
        )
        lat = (
            "n/a"
            if arm["latency_p50_ms"] is None
            else f"p50 {arm['latency_p50_ms']:.0f} ms, p95 {arm['latency_p95_ms']:.0f} ms"
        )
        lines.append(
            f"  {arm['arm']:<9} v{arm['version']}: n={arm['n_results']} "
            f"decided={arm['n_decided']} accepted {rate}; latency {lat}"
        )
    agree = rep.get("shadow_agreement")
    if agree is not None:
        lines.append(
            "  shadow agreement with the shown model: "
            + (
                "n/a (no shadow results yet)"
                if agree["rate"] is None
                else f"{agree['rate']:.1%} (95% CI {agree['ci_low']:.1%}-{agree['ci_high']:.1%}) "
                f"of {agree['n']} results"
            )
        )
    acc = rep["comparison"]["acceptance"]
    if acc["p_value"] is None:
        lines.append(f"  acceptance difference: not testable ({acc.get('reason', '')})")
    else:
        verdict = "SIGNIFICANT" if acc["significant"] else "not significant"
        lines.append(f"  acceptance difference: {verdict} ({acc['test']}, p={acc['p_value']:.3g})")
    lat = rep["comparison"]["latency"]
    if lat["p_value"] is not None:
        verdict = "SIGNIFICANT" if lat["significant"] else "not significant"
        lines.append(f"  latency difference: {verdict} (Mann-Whitney U, p={lat['p_value']:.3g})")
    return "\n".join(lines)
