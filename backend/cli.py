"""``doctorai-backend``: serve the API and run admin tasks (codes, keys, models, rollouts)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.config import ConfigError, Settings, settings_from_env

if TYPE_CHECKING:
    from fastapi import FastAPI

    from backend.deps import BackendState


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from_env(args.data_dir, args.db_url, args.storage_url)


def _state(args: argparse.Namespace) -> BackendState:
    from backend.app import build_state

    return build_state(_settings(args))


def app_from_env() -> FastAPI:
    """One uvicorn worker's app (``serve --workers N``): the settings ``serve`` exported."""
    from backend.app import create_app
    from backend.ops import configure_logging

    configure_logging()
    return _with_background_tasks(create_app(settings_from_env()))


def _with_background_tasks(app: FastAPI) -> FastAPI:
    """A served app's periodic work: retention, and the rollouts' guardrail check (each runs in
    one process at a time across the deployment, under its own advisory lock)."""
    from backend import background, retention, rollout_schedule

    app = background.attach(app, retention.purge_periodically)
    return background.attach(app, rollout_schedule.check_periodically)


def _export(settings: Settings) -> None:
    """What the worker processes read back in :func:`app_from_env`."""
    os.environ["DOCTORAI_BACKEND_DATA_DIR"] = str(settings.data_dir)
    os.environ["DOCTORAI_BACKEND_WORKERS"] = str(settings.workers)
    if settings.db_url:
        os.environ["DOCTORAI_BACKEND_DB_URL"] = settings.db_url
    if settings.storage_url:
        os.environ["DOCTORAI_BACKEND_STORAGE_URL"] = settings.storage_url


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve with uvicorn: one process, or ``--workers N`` sharing the database, the rate
    limits (rows in it) and the metrics (prometheus_client multiprocess files)."""
    import uvicorn

    from backend.ops import MULTIPROC_ENV, configure_logging, prepare_multiprocess_dir

    settings = settings_from_env(args.data_dir, args.db_url, args.storage_url, args.workers)
    settings.require_shared_secret()
    forwarded = (
        args.forwarded_allow_ips
        if args.forwarded_allow_ips is not None
        else settings.forwarded_allow_ips
    )
    proxy: dict[str, Any] = {"proxy_headers": bool(forwarded) or args.proxy_headers}
    if forwarded:
        proxy["forwarded_allow_ips"] = forwarded
    configure_logging()
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_config": None,
        "access_log": False,
        **proxy,
    }
    if settings.workers == 1:
        from backend.app import create_app

        uvicorn.run(_with_background_tasks(create_app(settings)), **common)
        return 0
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics_dir = Path(os.environ.get(MULTIPROC_ENV) or settings.data_dir / "metrics-multiproc")
    prepare_multiprocess_dir(metrics_dir)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    _export(settings)
    uvicorn.run("backend.cli:app_from_env", factory=True, workers=settings.workers, **common)
    return 0


def cmd_keys_init(args: argparse.Namespace) -> int:
    from backend.tuf_repo import init_keys

    settings = _settings(args)
    ids = init_keys(settings.keys_dir)
    st = _state(args)
    with st.sessions() as session:
        st.repo.bootstrap(session)
        session.commit()
        root = st.repo.root_json_for_installer(session)
    out = settings.data_dir / "root.json"
    out.write_bytes(root)
    for role, keyid in ids.items():
        print(f"{role:<9} key {keyid}")
    print(f"trusted root metadata for the installer: {out}")
    return 0


def cmd_enrol_code(args: argparse.Namespace) -> int:
    from backend.auth import issue_enrol_code

    st = _state(args)
    with st.sessions() as session:
        print(
            issue_enrol_code(session, ttl_s=int(args.days * 86400), uses=args.uses, note=args.note)
        )
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    """Break-glass only while admin MFA is on: a token without a second factor, recorded."""
    from backend.admins import AdminError, record

    settings = _settings(args)
    if settings.admin_mfa and not settings.admin_break_glass:
        raise AdminError(
            "admin-token is off while DOCTORAI_BACKEND_ADMIN_MFA is on: admins sign in with "
            "POST /api/v1/admin/session (name, password, TOTP code). For an emergency only, "
            "IT may set DOCTORAI_BACKEND_ADMIN_BREAK_GLASS=1 on this host and the server"
        )
    st = _state(args)
    code = "admin_break_glass_token" if settings.admin_mfa else "admin_cli_token"
    with st.sessions() as session:
        record(session, args.name, code, minutes=args.minutes)
        session.commit()
    if settings.admin_mfa:
        print(
            "doctorai-backend: break-glass admin token (no second factor); "
            "recorded as a security alert",
            file=sys.stderr,
        )
    amr = ["break-glass"] if settings.admin_mfa else ["cli"]
    print(st.tokens.access(args.name, role="admin", ttl_s=int(args.minutes * 60), amr=amr))
    return 0


def _read_password(name: str) -> str:
    """Twice from the terminal (not echoed), or the first two lines of a pipe."""
    from backend.admins import AdminError

    if sys.stdin.isatty():
        first = getpass.getpass(f"password for backend admin {name}: ")
        second = getpass.getpass("the same password again: ")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
        second = sys.stdin.readline().rstrip("\r\n")
    if first != second:
        raise AdminError("the two passwords differ; nothing was changed")
    return first


def cmd_admin(args: argparse.Namespace) -> int:
    """Backend admin accounts: add (password + TOTP QR), confirm, recovery codes, disable."""
    import segno

    from backend import admins

    st = _state(args)
    with st.sessions() as session:
        if args.action == "add":
            admins.check_new(args.name, "x" * admins.MIN_PASSWORD_LEN)  # before asking
            uri = admins.create(session, st.admin_keys, args.name, _read_password(args.name))
            print(f"backend admin {args.name} added (not confirmed yet).")
            print("Scan this QR code with the authenticator app, or enter the URI:")
            segno.make(uri, error="m").terminal(out=sys.stdout, compact=True)
            print(uri)
            print(f"Then run: doctorai-backend admin confirm {args.name} CODE")
        elif args.action == "confirm":
            codes = admins.confirm(session, st.admin_keys, args.name, args.code)
            print(
                f"backend admin {args.name} confirmed. Recovery codes (each works once; "
                "keep them offline, they are not shown again):"
            )
            print("\n".join(codes))
        elif args.action == "recovery-codes":
            codes = admins.new_recovery_codes(session, st.admin_keys, args.name)
            print(f"new recovery codes for {args.name} (the old ones no longer work):")
            print("\n".join(codes))
        else:
            admins.disable(session, args.name)
            print(f"backend admin {args.name} disabled")
    return 0


def cmd_add_model(args: argparse.Namespace) -> int:
    from backend.catalogue import add_model

    st = _state(args)
    with st.sessions() as session:
        pkg = add_model(session, st.repo, Path(args.package_dir))
        print(
            f"published {pkg.model_id} {pkg.version}: {pkg.target_path} "
            f"({pkg.length} bytes, sha256 {pkg.sha256})"
        )
    return 0


def cmd_tuf_timestamp(args: argparse.Namespace) -> int:
    st = _state(args)
    with st.sessions() as session:
        version = st.repo.publish_timestamp(session)
        session.commit()
    print(f"timestamp.json version {version} signed")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the database to the newest schema revision (every server also does at start)."""
    from sqlalchemy import create_engine

    from backend import migrate

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_db_url)
    try:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine, args.revision)
        after = migrate.current_revision(engine)
    finally:
        engine.dispose()
    print(f"backend database: revision {before or 'none'} -> {after}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """One retention round now (servers also run one every DOCTORAI_BACKEND_PURGE_EVERY_S)."""
    from datetime import UTC, datetime

    from backend.retention import purge_once

    st = _state(args)
    try:
        counts = purge_once(st, datetime.now(UTC))
    finally:
        st.engine.dispose()
    if counts is None:
        print("another backend process is purging now; nothing done")
        return 0
    print(" ".join(f"{name}={n}" for name, n in counts.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", help="keys, artefacts, SQLite (env DOCTORAI_BACKEND_DATA_DIR)"
    )
    common.add_argument("--db-url", help="SQLAlchemy URL (env DOCTORAI_BACKEND_DB_URL)")
    common.add_argument(
        "--storage-url", help="s3://bucket/prefix or a directory (env DOCTORAI_BACKEND_STORAGE_URL)"
    )
    parser = argparse.ArgumentParser(prog="doctorai-backend", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", parents=[common], help="run the API with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--proxy-headers",
        action="store_true",
        help="believe X-Forwarded-For from 127.0.0.1 (a proxy on this host)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        help="comma-separated addresses/networks of the load balancers whose X-Forwarded-For "
        "names the client (env DOCTORAI_BACKEND_FORWARDED_ALLOW_IPS; default: none)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes (env DOCTORAI_BACKEND_WORKERS; more than 1 needs "
        "DOCTORAI_BACKEND_JWT_SECRET)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "migrate", parents=[common], help="upgrade the database schema (Alembic) to the newest"
    )
    p.add_argument("--revision", default="head", help="target revision (default head)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "purge", parents=[common], help="delete what is past retention (DOCTORAI_BACKEND_*_DAYS)"
    )
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("keys", parents=[common], help="TUF signing keys")
    p.add_argument("action", choices=["init"])
    p.set_defaults(func=cmd_keys_init)

    p = sub.add_parser("enrol-code", parents=[common], help="issue an enrolment code")
    p.add_argument("--days", type=float, default=7.0, help="validity (default 7 days)")
    p.add_argument(
        "--uses", type=int, default=1, help="workstations this code may enrol (default 1)"
    )
    p.add_argument("--note", default="", help="what the code is for (shown in the code list)")
    p.set_defaults(func=cmd_enrol_code)

    p = sub.add_parser("admin", help="backend admin accounts (password + TOTP)")
    acts = p.add_subparsers(dest="action", required=True)
    for name, helptext in (
        ("add", "add an admin: asks the password twice, prints the TOTP QR code"),
        ("confirm", "confirm with a code from the app; prints the recovery codes"),
        ("recovery-codes", "replace an admin's recovery codes"),
        ("disable", "disable an admin"),
    ):
        a = acts.add_parser(name, parents=[common], help=helptext)
        a.add_argument("name")
        if name == "confirm":
            a.add_argument("code")
    p.set_defaults(func=cmd_admin)

    p = sub.add_parser(
        "admin-token",
        parents=[common],
        help="break-glass: an admin token without a second factor "
        "(only with DOCTORAI_BACKEND_ADMIN_BREAK_GLASS=1 while admin MFA is on)",
    )
    p.add_argument("--name", default="admin")
    p.add_argument("--minutes", type=float, default=60.0)
    p.set_defaults(func=cmd_admin_token)

    p = sub.add_parser("add-model", parents=[common], help="publish a model package folder")
    p.add_argument("package_dir")
    p.set_defaults(func=cmd_add_model)

    p = sub.add_parser("tuf-timestamp", parents=[common], help="re-sign timestamp.json now")
    p.set_defaults(func=cmd_tuf_timestamp)

    from backend import rollout_cli

    rollout_cli.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from backend.admins import AdminError
    from backend.catalogue import CatalogueError
    from backend.storage import StorageError
    from backend.tuf_repo import TufError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (
        AdminError,
        CatalogueError,
        TufError,
        StorageError,
        OSError,
        SQLAlchemyError,
        ConfigError,
        ValueError,
    ) as exc:
        print(f"doctorai-backend: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
