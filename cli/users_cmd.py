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
    add.add_argument(
        "--role", required=True, choices=["radiologist", "technologist", "admin", "auditor"]
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the new password (first line) from standard input; with "
        "--admin-password-stdin the admin's password comes first",
    )
    add.add_argument(
        "--admin",
        metavar="NAME",
        default=None,
        help="the admin who creates it (needed once any account exists)",
    )
    add.add_argument(
        "--admin-password-stdin",
        action="store_true",
        help="read --admin's password from standard input",
    )
    sub.add_parser("list", help="list accounts and roles")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from cli.profile import finish, open_or_explain, sign_in_as
    from core.app.accounts import add_account
    from core.security.users import PermissionDenied, Role
    from core.store.schema import users

    ws = open_or_explain("users")
    if ws is None:
        return 2
    try:
        if args.action == "list":
            with ws.db.engine.connect() as conn:
                accounts = conn.execute(select(users.c.username, users.c.role)).fetchall()
            for row in accounts:
                print(f"{row.username}\t{row.role}")
            if not accounts:
                print(
                    "no accounts yet: the first one ('doctorai users add NAME --role admin', or "
                    "the first start of the window) must be an admin"
                )
            return 0
        if ws.users.has_users():
            if not args.admin:
                print(
                    "error: accounts exist already: an admin creates new ones "
                    "(--admin NAME; the password is asked for)",
                    file=sys.stderr,
                )
                return 2
            if not sign_in_as(ws, args.admin, args.admin_password_stdin):
                return 1
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for '{args.username}': ")
            if getpass.getpass("again: ") != password:
                print("error: the passwords differ", file=sys.stderr)
                return 1
        try:
            add_account(ws, args.username, password, Role(args.role))
        except PermissionDenied as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"created '{args.username}' ({args.role})")
        return 0
    finally:
        finish(ws)
