"""``doctorai users add|list``: local accounts (the first one must be the admin).

Passwords are read from the terminal (never from the command line, where ``ps`` and shell
history would see them), or from standard input with ``--password-stdin`` for scripted set-up.
"""

from __future__ import annotations

import argparse
import getpass
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--role", required=True,
                     choices=["radiologist", "technologist", "admin", "auditor"])
    add.add_argument("--password-stdin", action="store_true")
    add.add_argument("--by", default=None, help="who creates it (default: the OS user)")
    sub.add_parser("list", help="list accounts and roles")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from core.audit.log import AuditLog
    from core.config import ConfigError, load_settings
    from core.security.users import Role, UserStore
    from core.store.database import open_database
    from core.store.errors import DatabaseError
    from core.store.schema import users

    try:
        db = open_database()
        settings = load_settings()
    except (DatabaseError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        store = UserStore(AuditLog(db), settings.security)
        if args.action == "list":
            with db.engine.connect() as conn:
                accounts = conn.execute(select(users.c.username, users.c.role)).fetchall()
            for row in accounts:
                print(f"{row.username}\t{row.role}")
            if not accounts:
                print("no accounts yet: the first one ('doctorai users add NAME --role admin', or "
                      "the first start of the window) must be an admin")
            return 0
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for '{args.username}': ")
            if getpass.getpass("again: ") != password:
                print("error: the passwords differ", file=sys.stderr)
                return 1
        try:
            store.create_user(args.username, password, Role(args.role),
                              by=args.by or getpass.getuser())
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"created '{args.username}' ({args.role})")
        return 0
    finally:
        db.close()
