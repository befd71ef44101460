"""A rollout's report and its guards: device-level statistics from SQL aggregates, the
sequential test's running always-valid p-value, and guardrails that pause or roll back.

Every computation of the report is a *look*: its always-valid p-values are stored as a
``rollout_events`` row (kind ``look``) so the next look continues the running minimum, and a
guardrail breach pauses the rollout (or rolls it back, per its design) and is stored as
``guardrail_breach`` + ``paused``/``rolled_back`` events. ``check_rollouts`` runs the same on
every active rollout: the function a scheduler calls (say hourly).

How to read the report: see ``format_report`` and README ("Rollout statistics").
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.db import Rollout, RolloutEvent
from backend.rollout_assign import (
    ACTIVE,
    BASELINE,
    Arm,
    RolloutError,
    arms_of,
    lock_rollout,
    pause,
    record_event,
)
from backend.rollout_sql import DeviceRow, device_rows, shadow_agreement, window_end
from backend.rollout_stats import (
    DEFAULT_ALPHA,
    DeviceUnits,
    always_valid_p,
    difference_test,
    holm,
    latency_test,
    ratio_estimate,
)

logger = logging.getLogger("doctorai.backend.rollout")

DEFAULT_TAU = 0.05  # mixture sd of the mSPRT: differences in acceptance of about 5 points
DEFAULT_MIN_DEVICES = 5
GUARDRAIL_KEYS = {
    "max_latency_p95_ms": "median over the arm's devices of each device's latency p95",
    "max_rejection_increase": "candidate rejection rate minus the baseline's (0..1)",
    "max_error_rate": "share of the arm's results that carry an error (0..1)",
    "min_devices": "devices an arm needs before its guardrails are judged",
}
ON_BREACH = ("pause", "rollback")


def validate_design(design: dict[str, Any] | None) -> dict[str, Any]:
    """The rollout's design with defaults filled in; ValueError naming the bad field."""
    d = dict(design or {})
    unknown = set(d) - {"alpha", "tau", "guardrails", "on_breach"}
    if unknown:
        raise ValueError(f"rollout design: unknown fields {sorted(unknown)}")
    alpha = d.setdefault("alpha", DEFAULT_ALPHA)
    tau = d.setdefault("tau", DEFAULT_TAU)
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"rollout design: alpha {alpha!r} must lie strictly between 0 and 1")
    if not isinstance(tau, int | float) or not tau > 0:
        raise ValueError(f"rollout design: tau {tau!r} must be a positive number")
    g = dict(d.get("guardrails") or {})
    bad = set(g) - set(GUARDRAIL_KEYS)
    if bad:
        raise ValueError(f"rollout guardrails: unknown fields {sorted(bad)}")
    for key, value in g.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"rollout guardrail {key}: {value!r} must be a number >= 0")
    g.setdefault("min_devices", DEFAULT_MIN_DEVICES)
    d["guardrails"] = g
    on_breach = d.setdefault("on_breach", "pause")
    if on_breach not in ON_BREACH:
        raise ValueError(f"rollout design: on_breach {on_breach!r} must be one of {ON_BREACH}")
    return d


def _units(rows: list[DeviceRow]) -> DeviceUnits:
    return DeviceUnits(
        decided=np.array([r.n_decided for r in rows], dtype=float),
        accepted=np.array([r.n_accepted for r in rows], dtype=float),
        latency_median=np.array(
            [np.nan if r.latency_p50_ms is None else r.latency_p50_ms for r in rows], dtype=float
        ),
    )


def _arm_summary(arm: Arm, rows: list[DeviceRow]) -> dict[str, Any]:
    from scipy.stats import t as student_t

    u = _units(rows)
    est = ratio_estimate(u.decided, u.accepted)
    ci_low = ci_high = None
    if est.rate is not None and est.variance is not None:
        half = float(student_t.ppf(0.975, est.n_devices - 1)) * math.sqrt(est.variance)
        ci_low, ci_high = max(0.0, est.rate - half), min(1.0, est.rate + half)
    n_results = sum(r.n_results for r in rows)
    n_decided = int(u.decided.sum())
    n_accepted = int(u.accepted.sum())
    n_errors = sum(r.n_errors for r in rows)
    p50s = [r.latency_p50_ms for r in rows if r.latency_p50_ms is not None]
    p95s = [r.latency_p95_ms for r in rows if r.latency_p95_ms is not None]
    return {
        "arm": arm.name,
        "version": arm.version,
        "weight": arm.weight,
        "n_devices": len(rows),
        "n_devices_decided": est.n_devices,
        "n_results": n_results,
        "n_decided": n_decided,
        "n_accepted": n_accepted,
        "acceptance_rate": est.rate,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "rejection_rate": None if n_decided == 0 else (n_decided - n_accepted) / n_decided,
        "n_errors": n_errors,
        "error_rate": None if n_results == 0 else n_errors / n_results,
        "latency_p50_ms": float(np.median(p50s)) if p50s else None,
        "latency_p95_ms": float(np.median(p95s)) if p95s else None,
        "n_version_mismatch": sum(r.n_version_mismatch for r in rows),
    }


def _last_look(session: Session, rollout_id: int) -> dict[str, Any]:
    row = session.scalar(
        select(RolloutEvent)
        .where(RolloutEvent.rollout_id == rollout_id, RolloutEvent.kind == "look")
        .order_by(RolloutEvent.id.desc())
        .limit(1)
    )
    return dict(row.detail) if row is not None else {}


def _sequential(
    comparisons: dict[str, dict[str, Any]], previous: dict[str, Any], alpha: float, tau: float
) -> dict[str, Any]:
    """Always-valid p-value per candidate (running minimum over looks), Bonferroni over the
    candidates: a boundary is crossed when it falls to alpha / (K - 1)."""
    level = alpha / max(1, len(comparisons))
    arms: dict[str, Any] = {}
    for name, comp in comparisons.items():
        acc = comp["acceptance"]
        prev = (previous.get("arms") or {}).get(name, {}).get("p_always_valid")
        p = prev
        if acc.get("se") is not None and acc["se"] > 0:
            p = always_valid_p(prev, acc["difference"], acc["se"] ** 2, tau)
        arms[name] = {
            "p_always_valid": p,
            "crossed": p is not None and p <= level,
        }
    return {
        "method": "mSPRT (normal mixture), always-valid p-value, Bonferroni over candidates",
        "alpha": alpha,
        "tau": tau,
        "level_per_candidate": level,
        "looks_before": int(previous.get("look", 0)),
        "arms": arms,
        "boundary_crossed": any(a["crossed"] for a in arms.values()),
    }


def _breaches(arms: dict[str, dict[str, Any]], guardrails: dict[str, Any]) -> list[dict[str, Any]]:
    """Guardrails judged on each candidate arm that has enough devices (point estimates: a
    guardrail is a fast trip wire, not a significance test)."""
    base = arms[BASELINE]
    min_dev = int(guardrails.get("min_devices", DEFAULT_MIN_DEVICES))
    out = []
    for name, arm in arms.items():
        if name == BASELINE or arm["n_devices"] < min_dev:
            continue
        checks = [
            ("max_latency_p95_ms", arm["latency_p95_ms"]),
            ("max_error_rate", arm["error_rate"]),
        ]
        if arm["rejection_rate"] is not None and base["rejection_rate"] is not None:
            checks.append(
                ("max_rejection_increase", arm["rejection_rate"] - base["rejection_rate"])
            )
        for key, value in checks:
            limit = guardrails.get(key)
            if limit is not None and value is not None and value > limit:
                out.append({"arm": name, "guardrail": key, "value": value, "limit": limit})
    return out


def report(
    session: Session,
    rollout_id: int,
    *,
    repo: Any = None,
    actor: str = "report",
    record_look: bool = True,
    enforce: bool = True,
) -> dict[str, Any]:
    """The rollout's report; a look is recorded and guardrails enforced unless told not to.

    ``repo`` (the TUF repository) is needed only for a rollback on breach; without it a breach
    pauses instead. Commits what it records."""
    ro = session.get(Rollout, rollout_id)
    if ro is None:
        raise RolloutError(f"rollout {rollout_id} does not exist")
    design = validate_design(ro.design)
    arms = arms_of(session, ro)
    rows = device_rows(session, ro)
    by_arm: dict[str, list[DeviceRow]] = {a.name: [] for a in arms}
    for r in rows:
        by_arm.setdefault(r.arm, []).append(r)
    summaries = {a.name: _arm_summary(a, by_arm[a.name]) for a in arms}
    base_units = _units(by_arm[BASELINE])
    base_est = ratio_estimate(base_units.decided, base_units.accepted)
    comparisons: dict[str, dict[str, Any]] = {}
    for a in arms:
        if a.name == BASELINE:
            continue
        u = _units(by_arm[a.name])
        comparisons[a.name] = {
            "acceptance": difference_test(base_est, ratio_estimate(u.decided, u.accepted)),
            "latency": latency_test(base_units.latency_median, u.latency_median),
        }
    alpha = float(design["alpha"])
    for metric in ("acceptance", "latency"):
        adjusted = holm([c[metric]["p_value"] for c in comparisons.values()], alpha)
        for c, adj in zip(comparisons.values(), adjusted, strict=True):
            c[metric].update(adj)
    if (record_look or enforce) and ro.status == ACTIVE:
        # the aggregates above were read without a lock (seconds at millions of results); the
        # look number, the running p-value and the status are read again under the row lock,
        # so two concurrent looks are numbered one after the other and act on one status
        session.commit()  # end the read-only transaction: the lock starts a fresh one
        locked = lock_rollout(session, ro.id)
        if locked is None:
            raise RolloutError(f"rollout {rollout_id} does not exist")
        ro = locked
    previous = _last_look(session, ro.id)
    sequential = _sequential(comparisons, previous, alpha, float(design["tau"]))
    breaches = _breaches(summaries, design["guardrails"])
    action = None
    if record_look and ro.status == ACTIVE:
        record_event(
            session,
            ro.id,
            "look",
            {
                "look": sequential["looks_before"] + 1,
                "arms": {
                    k: {"p_always_valid": v["p_always_valid"]}
                    for k, v in sequential["arms"].items()
                },
                "devices": {k: v["n_devices"] for k, v in summaries.items()},
            },
            actor,
        )
    if enforce and breaches and ro.status == ACTIVE:
        action = _enforce(session, ro, repo, design["on_breach"], breaches, actor)
    session.commit()
    shadow = None
    if ro.shadow:
        got = shadow_agreement(session, ro)
        shadow = _agreement(got["n"], got["agreed"])
    end = window_end(ro)
    return {
        "rollout": {
            "id": ro.id,
            "model_id": ro.model_id,
            "split": ro.split,
            "shadow": ro.shadow,
            "status": ro.status,
            "created_at": ro.created_at.isoformat(),
            "window_end": None if end is None else end.isoformat(),
            "design": design,
        },
        "unit": "device (results of assigned devices, by assigned arm)",
        "arms": summaries,
        "comparisons": comparisons,
        "comparison": comparisons.get("candidate") or next(iter(comparisons.values()), None),
        "sequential": sequential,
        "guardrails": {"limits": design["guardrails"], "breaches": breaches, "action": action},
        "shadow_agreement": shadow,
    }


def _agreement(n: int, k: int) -> dict[str, Any]:
    from scipy.stats import binomtest

    if n == 0:
        return {"n": 0, "agreed": 0, "rate": None, "ci_low": None, "ci_high": None}
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return {"n": n, "agreed": k, "rate": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high)}


def _enforce(
    session: Session,
    ro: Rollout,
    repo: Any,
    on_breach: str,
    breaches: list[dict[str, Any]],
    actor: str,
) -> str | None:
    """Pause or roll back once. The caller (``report``) holds the row lock and has re-read
    ``ro`` under it, active, so two processes judging the same breach, or a breach and an
    admin's promote, act once."""
    record_event(session, ro.id, "guardrail_breach", {"breaches": breaches}, actor)
    logger.warning("rollout %s guardrail breach: %s", ro.id, breaches)
    if on_breach == "rollback" and repo is not None:
        from backend.catalogue import close_rollout

        close_rollout(session, repo, ro.id, promote_arm=None, actor=actor, commit=False)
        return "rolled_back"
    pause(session, ro, actor, {"breaches": breaches})
    return "paused"


def check_rollouts(sessions: sessionmaker[Session], repo: Any = None) -> dict[int, str | None]:
    """Judge every active rollout now (a look + guardrails): what a scheduler calls.

    Returns rollout id -> the action taken (``paused``, ``rolled_back`` or None); a failing
    rollout is logged and does not stop the others."""
    with sessions() as session:
        ids = list(session.scalars(select(Rollout.id).where(Rollout.status == ACTIVE)))
    out: dict[int, str | None] = {}
    for rid in ids:
        try:
            with sessions() as session:
                rep = report(session, rid, repo=repo, actor="guardrail-check")
            out[rid] = rep["guardrails"]["action"]
        except Exception:  # one broken rollout must not stop the others' checks
            logger.exception("rollout %s: periodic check failed", rid)
            out[rid] = None
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def format_report(rep: dict[str, Any]) -> str:
    """Plain-text report: one line per arm, one per comparison, then monitoring and guards."""
    ro = rep["rollout"]
    lines = [
        f"rollout {ro['id']} model {ro['model_id']!r} "
        f"{'shadow ' if ro['shadow'] else ''}status {ro['status']} "
        f"(unit of analysis: device)"
    ]
    for arm in rep["arms"].values():
        rate = (
            "n/a"
            if arm["acceptance_rate"] is None
            else f"{arm['acceptance_rate']:.1%}"
            + (
                ""
                if arm["ci_low"] is None
                else f" (95% CI {arm['ci_low']:.1%}-{arm['ci_high']:.1%})"
            )
        )
        lat = (
            "n/a"
            if arm["latency_p50_ms"] is None
            else f"p50 {arm['latency_p50_ms']:.0f} ms, p95 {arm['latency_p95_ms']:.0f} ms"
        )
        lines.append(
            f"  {arm['arm']:<11} v{arm['version']}: devices={arm['n_devices']} "
            f"n={arm['n_results']} decided={arm['n_decided']} accepted {rate}; "
            f"latency {lat}; errors {_pct(arm['error_rate'])}"
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
    for name, comp in rep["comparisons"].items():
        acc = comp["acceptance"]
        if acc["p_value"] is None:
            lines.append(f"  {name} acceptance difference: not tested ({acc['reason']})")
        else:
            verdict = "SIGNIFICANT" if acc["significant"] else "not significant"
            lines.append(
                f"  {name} acceptance difference: {acc['difference']:+.1%} "
                f"(95% CI {acc['ci_low']:+.1%} to {acc['ci_high']:+.1%}), "
                f"p={acc['p_value']:.3g}, Holm-adjusted {acc['p_adjusted']:.3g}: {verdict}"
            )
        lat = comp["latency"]
        if lat["p_value"] is not None:
            verdict = "SIGNIFICANT" if lat["significant"] else "not significant"
            lines.append(
                f"  {name} latency (device medians, Mann-Whitney): "
                f"p={lat['p_value']:.3g}, Holm-adjusted {lat['p_adjusted']:.3g}: {verdict}"
            )
    seq = rep["sequential"]
    lines.append(
        f"  sequential test (always valid, alpha {seq['alpha']}): "
        + ("BOUNDARY CROSSED" if seq["boundary_crossed"] else "no boundary crossed")
        + "".join(
            f"; {k} p={v['p_always_valid']:.3g}"
            for k, v in seq["arms"].items()
            if v["p_always_valid"] is not None
        )
    )
    g = rep["guardrails"]
    if g["breaches"]:
        lines.append(
            "  GUARDRAIL BREACH: "
            + "; ".join(
                f"{b['arm']} {b['guardrail']} {b['value']:.4g} > {b['limit']}"
                for b in g["breaches"]
            )
            + (f" -> {g['action']}" if g["action"] else "")
        )
    else:
        lines.append("  guardrails: none breached")
    return "\n".join(lines)
