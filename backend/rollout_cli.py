"""``doctorai-backend rollout ...``: create (K arms, guardrails), report, plan, pause, promote,
rollback, check. backend.cli mounts it with ``add_parser(sub, common)``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from backend.rollout_stats import devices_per_arm


def _candidate(text: str) -> tuple[str, float]:
    version, _, share = text.rpartition(":")
    try:
        value = float(share)
    except ValueError:
        value = -1.0
    if not version or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"candidate {text!r}: expected VERSION:SHARE with a share between 0 and 1"
        )
    return version, value


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rollout", help="model rollouts")
    rs = p.add_subparsers(dest="action", required=True)
    c = rs.add_parser("create", parents=[common], help="start a rollout (2 or more arms)")
    c.add_argument("model")
    c.add_argument("baseline")
    c.add_argument("candidate", nargs="?", help="one candidate version (with --split)")
    c.add_argument("--split", type=float, default=0.1, help="share on the candidate (0..1)")
    c.add_argument(
        "--arm",
        type=_candidate,
        action="append",
        default=[],
        metavar="VERSION:SHARE",
        help="a candidate arm (repeat for several); the baseline keeps the rest",
    )
    c.add_argument("--shadow", action="store_true", help="candidate runs, results not shown")
    c.add_argument("--alpha", type=float, default=0.05)
    c.add_argument("--max-latency-p95-ms", type=float)
    c.add_argument("--max-rejection-increase", type=float)
    c.add_argument("--max-error-rate", type=float)
    c.add_argument("--min-devices", type=int, default=5)
    c.add_argument("--on-breach", choices=("pause", "rollback"), default="pause")
    r = rs.add_parser("report", parents=[common], help="device-level report (a look)")
    r.add_argument("id", type=int)
    r.add_argument("--json", action="store_true")
    r.add_argument("--no-look", action="store_true", help="do not record a look or enforce")
    for name in ("pause", "rollback"):
        rs.add_parser(name, parents=[common]).add_argument("id", type=int)
    pr = rs.add_parser("promote", parents=[common])
    pr.add_argument("id", type=int)
    pr.add_argument("--arm", help="which candidate arm (when there are several)")
    rs.add_parser("check", parents=[common], help="judge every active rollout now")
    pl = rs.add_parser("plan", help="devices needed per arm")
    pl.add_argument("--baseline-rate", type=float, required=True)
    pl.add_argument("--min-difference", type=float, required=True)
    pl.add_argument("--alpha", type=float, default=0.05)
    pl.add_argument("--power", type=float, default=0.8)
    pl.add_argument("--icc", type=float, default=0.0)
    pl.add_argument("--results-per-device", type=float, default=1.0)
    pl.add_argument("--candidates", type=int, default=1)
    p.set_defaults(func=run)


def _plan(args: argparse.Namespace) -> int:
    try:
        plan = devices_per_arm(
            args.baseline_rate,
            args.min_difference,
            args.alpha,
            args.power,
            args.icc,
            args.results_per_device,
            args.candidates,
        )
    except ValueError as exc:
        print(f"cannot plan: {exc}")
        return 2
    print(
        f"{plan['devices_per_arm']} devices per arm ({plan['results_per_arm']} results; "
        f"design effect {plan['design_effect']:.2f}, alpha per comparison "
        f"{plan['alpha_per_comparison']:.3g})"
    )
    return 0


def _channel_version(session: Any, ro: Any) -> str:
    """The version a closed rollout left on its channel (its last promoted/rolled_back event)."""
    from sqlalchemy import select

    from backend.db import RolloutEvent

    with_version = (
        select(RolloutEvent.detail)
        .where(
            RolloutEvent.rollout_id == ro.id,
            RolloutEvent.kind.in_(("promoted", "rolled_back")),
        )
        .order_by(RolloutEvent.id.desc())
        .limit(1)
    )
    detail = session.scalar(with_version) or {}
    return str(detail.get("version", "?"))


def run(args: argparse.Namespace) -> int:
    """Run one ``rollout`` action; CatalogueError reaches backend.cli's handler."""
    if args.action == "plan":
        return _plan(args)
    from backend import catalogue
    from backend.cli import _state
    from backend.rollout_assign import RolloutError
    from backend.rollout_monitor import check_rollouts, format_report, report

    st = _state(args)
    if args.action == "check":
        for rid, action in check_rollouts(st.sessions, st.repo).items():
            print(f"rollout {rid}: {action or 'no action'}")
        return 0
    with st.sessions() as session:
        if args.action == "create":
            arms = list(args.arm)
            if args.candidate:
                arms.insert(0, (args.candidate, args.split))
            if not arms:
                raise catalogue.CatalogueError("name a candidate version or --arm VERSION:SHARE")
            limits = {
                "max_latency_p95_ms": args.max_latency_p95_ms,
                "max_rejection_increase": args.max_rejection_increase,
                "max_error_rate": args.max_error_rate,
                "min_devices": args.min_devices,
            }
            ro = catalogue.create_rollout(
                session,
                st.repo,
                args.model,
                args.baseline,
                arms[0][0],
                arms[0][1],
                args.shadow,
                more_candidates=arms[1:],
                design={
                    "alpha": args.alpha,
                    "guardrails": {k: v for k, v in limits.items() if v is not None},
                    "on_breach": args.on_breach,
                },
                actor="cli",
            )
            shares = ", ".join(f"{v} {w:.0%}" for v, w in arms)
            print(
                f"rollout {ro.id}: {ro.model_id} {ro.baseline_version} -> {shares}"
                f"{' (shadow)' if ro.shadow else ''}"
            )
        elif args.action == "report":
            try:
                rep = report(
                    session,
                    args.id,
                    repo=st.repo,
                    actor="cli",
                    record_look=not args.no_look,
                    enforce=not args.no_look,
                )
            except RolloutError as exc:
                raise catalogue.CatalogueError(str(exc)) from exc
            print(json.dumps(rep, indent=2) if args.json else format_report(rep))
        elif args.action == "pause":
            ro = catalogue.pause_rollout(session, args.id, "cli", "cli")
            print(f"rollout {ro.id} paused: every workstation is served {ro.baseline_version}")
        elif args.action == "promote":
            ro = catalogue.promote(session, st.repo, args.id, args.arm, "cli")
            version = _channel_version(session, ro)
            print(f"rollout {ro.id} promoted: channel {ro.model_id} -> {version}")
        else:
            ro = catalogue.rollback(session, st.repo, args.id)
            print(f"rollout {ro.id} rolled back: channel {ro.model_id} -> {ro.baseline_version}")
    return 0
