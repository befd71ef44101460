"""``doctorai sync``: one sync pass, status, enrolment, signed model updates and rollback.

    doctorai sync [--once]             send queued results and audit events now (one pass)
    doctorai sync status [--json]      server, enrolment, queue length, installed models
    doctorai sync enrol CODE           enrol this workstation with a one-time code from an admin
    doctorai sync models [ID...]       install the signed channel's version of each model
    doctorai sync rollback ID          switch a model back to its previous version (pins it)

Exit status: 0 done, 1 refused or offline (nothing lost; try again), 2 setup problem,
3 SECURITY ALERT (the server's audit anchor does not match this workstation's history).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from cli.profile import add_sign_in_arguments, finish

OK, FAILED, SETUP, ALERT = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one sync pass, then exit (default)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    st = sub.add_parser("status", help="server, enrolment, queue and installed models")
    st.add_argument("--json", action="store_true", help="print JSON")
    en = sub.add_parser("enrol", help="enrol this workstation with a one-time code")
    en.add_argument("code")
    en.add_argument("--label", default="", help="name shown to admins (default: host name)")
    mo = sub.add_parser("models", help="install signed model updates")
    mo.add_argument("ids", nargs="*", metavar="ID", help="model ids (default: all known)")
    mo.add_argument("--force", action="store_true", help="reinstall, and override a pin")
    add_sign_in_arguments(mo)
    rb = sub.add_parser("rollback", help="switch a model back to its previous version")
    rb.add_argument("id", metavar="ID")
    add_sign_in_arguments(rb)


def run(args: argparse.Namespace) -> int:
    from core.config import ConfigError, load_settings
    from core.store.errors import DatabaseError
    from core.sync.credentials import CredentialError
    from core.sync.errors import SyncConfigError, SyncError

    try:
        settings = load_settings()
        action = args.action or "once"
        return int(_ACTIONS[action](settings, args))
    except (ConfigError, SyncConfigError, CredentialError, DatabaseError) as exc:
        print(f"doctorai sync: {exc}", file=sys.stderr)
        return SETUP
    except SyncError as exc:
        print(f"doctorai sync: {exc}", file=sys.stderr)
        return FAILED


def _once(settings: Any, _args: argparse.Namespace) -> int:
    """One pass of the workstation's sync use case (as the window runs it): enrols with a
    configured code, sends, keeps the last success, audits a Security Alert."""
    from cli.profile import open_or_explain
    from core.app.sync import SyncSession
    from core.sync.client import check_server_url

    check_server_url(settings.sync.server_url)  # a SyncConfigError names what to set
    ws = open_or_explain("sync")
    if ws is None:
        return SETUP
    session = SyncSession(ws, settings, check_models=False)
    try:
        outcome = session.run_pass()
    finally:
        session.close()
        ws.close()
    for alert in session.alerts:
        print(alert.message, file=sys.stderr)
    report = outcome.report
    if session.alerts or (report is not None and report.alert is not None):
        return ALERT
    if report is None:
        print(f"doctorai sync: {session.status.snapshot.last_error}", file=sys.stderr)
        return SETUP if outcome.stopped else FAILED
    print(
        f"sent {report.sent} item(s) in {report.batches} batch(es); {report.remaining} still queued"
    )
    if report.error:
        print(f"doctorai sync: {report.error}", file=sys.stderr)
        return FAILED
    return OK


def _status(settings: Any, args: argparse.Namespace) -> int:
    from core.inference.model_store import ModelStore
    from core.paths import profile_dir
    from core.store.errors import DatabaseError
    from core.sync.client import check_server_url
    from core.sync.credentials import CredentialStore

    url = settings.sync.server_url
    info: dict[str, Any] = {"server_url": url, "device_id": None, "queue_length": None}
    if url:
        creds = CredentialStore(check_server_url(url)).device()
        info["device_id"] = creds.device_id if creds else None
    from core.store import open_outbox

    try:
        outbox = open_outbox()
        try:
            info["queue_length"] = outbox.count_unsent()
        finally:
            outbox.db.close()
    except DatabaseError as exc:
        info["queue_error"] = str(exc)
    store = ModelStore(profile_dir() / "models")
    info["models"] = {
        mid: {"version": p.version, "previous": p.previous, "pinned": p.pinned}
        for mid, p in store.installed().items()
    }
    for folder, rollout_id in store.shadow_package_dirs():
        entry = info["models"].setdefault(
            folder.parent.name, {"version": None, "previous": None, "pinned": False}
        )
        entry["shadow"] = {"version": folder.name, "rollout_id": rollout_id}
    if args.json:
        print(json.dumps(info, indent=2))
        return OK
    print(f"server:     {url or 'not configured (sync.server_url)'}")
    print(f"enrolled:   {'yes, device ' + info['device_id'] if info['device_id'] else 'no'}")
    queue = info["queue_length"]
    print(f"queued:     {queue if queue is not None else 'unknown - ' + info['queue_error']}")
    for mid, m in info["models"].items():
        extra = (f", previous {m['previous']}" if m["previous"] else "") + (
            ", pinned" if m["pinned"] else ""
        )
        if "shadow" in m:
            sh = m["shadow"]
            extra += f", shadow {sh['version']} (rollout {sh['rollout_id']}, not shown)"
        print(f"model:      {mid} {m['version'] or 'shipped version'}{extra}")
    return OK


def _enrol(settings: Any, args: argparse.Namespace) -> int:
    import socket

    from core.sync.service import make_client

    client = make_client(settings)
    try:
        creds = client.enrol(args.code, args.label or socket.gethostname())
    finally:
        client.close()
    print(
        f"enrolled with {client.server_url} as device {creds.device_id} "
        "(credentials stored in the OS keyring)"
    )
    return OK


def _as_admin(args: argparse.Namespace) -> Any:
    """The profile, signed in as ``--user`` (managing models needs the manage-models
    permission, as in the window); None after printing why not."""
    from cli.profile import open_or_explain, sign_in

    ws = open_or_explain("sync")
    if ws is None:
        return None
    if not args.user:
        print("error: changing installed models needs an admin: give --user NAME", file=sys.stderr)
        ws.close()
        return None
    if not sign_in(ws, args):
        ws.close()
        return None
    return ws


def _models(settings: Any, args: argparse.Namespace) -> int:
    from core.app.model_admin import install_update
    from core.security.users import PermissionDenied
    from core.sync.model_update import ModelUpdateError
    from core.sync.service import make_client, make_updater, models_to_update

    ws = _as_admin(args)
    if ws is None:
        return SETUP
    client = make_client(settings)
    updater = make_updater(settings, client)
    status = OK
    try:
        ids = list(args.ids) or models_to_update(client, updater)
        for model_id in ids:
            try:
                print(install_update(ws, updater, model_id, force=args.force).message)
            except ModelUpdateError as exc:
                print(f"doctorai sync: {exc}", file=sys.stderr)
                status = FAILED
    except PermissionDenied as exc:
        print(f"doctorai sync: {exc}", file=sys.stderr)
        status = SETUP
    finally:
        updater.close()
        client.close()
        finish(ws)
    return status


def _rollback(_settings: Any, args: argparse.Namespace) -> int:
    from core.app.model_admin import rollback_model
    from core.inference.model_store import ModelInstallError, ModelStore
    from core.paths import profile_dir
    from core.security.users import PermissionDenied

    ws = _as_admin(args)
    if ws is None:
        return SETUP
    try:
        ptr = rollback_model(ws, ModelStore(profile_dir() / "models"), args.id)
    except PermissionDenied as exc:
        print(f"doctorai sync: {exc}", file=sys.stderr)
        return SETUP
    except ModelInstallError as exc:
        print(f"doctorai sync: {exc}", file=sys.stderr)
        return FAILED
    finally:
        finish(ws)
    print(
        f"{args.id} rolled back to {ptr.version} (pinned; 'doctorai sync models {args.id} "
        f"--force --user NAME' returns to the channel's version)"
    )
    return OK


_ACTIONS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "once": _once,
    "status": _status,
    "enrol": _enrol,
    "models": _models,
    "rollback": _rollback,
}
