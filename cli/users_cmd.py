"""``doctorai users``: local accounts (the first one must be the admin).

``add``, ``list``, ``reset``, ``disable``, ``enable``, ``role`` and ``unlock`` act as an admin who
signs in with ``--admin NAME``; ``passwd`` changes one's own password (``--user NAME``) and is the
one command an account whose password must be changed may run. Passwords are read from the
terminal (never from the command line, where ``ps`` and shell history would see them), or from
standard input, one per line, with ``--password-stdin`` / ``--admin-password-stdin``: the admin's
password first, then the account's.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.security.users import AccountInfo

ROLES = ["radiologist", "technologist", "admin", "auditor"]


def _admin_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--admin",
        metavar="NAME",
        required=required,
        default=None,
        help="the admin who acts (the password is asked for)",
    )
    parser.add_argument(
        "--admin-password-stdin",
        action="store_true",
        help="read --admin's password from standard input (its first line)",
    )


def _password_stdin(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read {what} from standard input (after --admin's password when that comes "
        "from standard input too)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    _password_stdin(add, "the new password")
    _admin_arguments(add, required=False)
    ls = sub.add_parser(
        "list", help="accounts: role, state, last sign-in, failed attempts, 2FA (admin)"
    )
    _admin_arguments(ls, required=False)
    pw = sub.add_parser("passwd", help="change your own password (asks the current one)")
    pw.add_argument("username", nargs="?", default=None, metavar="NAME")
    pw.add_argument("--user", metavar="NAME", default=None, help="the account (or NAME)")
    _password_stdin(
        pw,
        "the current password, the two-factor code when the account has one, then the new "
        "password, one per line",
    )
    reset = sub.add_parser("reset", help="set a temporary password, changed at next sign-in")
    reset.add_argument("username")
    _password_stdin(reset, "the temporary password")
    _admin_arguments(reset)
    for name, text in (
        ("disable", "disable an account (no sign-in; its history stays)"),
        ("enable", "enable a disabled account"),
        ("unlock", "end a lockout after failed sign-ins"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("username")
        _admin_arguments(p)
    role = sub.add_parser("role", help="give an account another role")
    role.add_argument("username")
    role.add_argument("role", choices=ROLES)
    _admin_arguments(role)
    from cli.mfa_cmd import add_parser as add_mfa_parser

    add_mfa_parser(sub)  # users mfa enrol|status|recovery-codes|remove (cli.mfa_cmd)


def _new_password(name: str, from_stdin: bool, prompt: str = "new password") -> str | None:
    """A new password, typed twice at the terminal; None (said why) when the two differ."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(f"{prompt} for '{name}': ")
    if getpass.getpass("again: ") != password:
        print("error: the passwords differ", file=sys.stderr)
        return None
    return password


def _table(accounts: list[AccountInfo]) -> str:
    from core.security.users import AccountInfo

    head = tuple(h.upper() for h in AccountInfo.HEADINGS)
    rows = [a.cells() for a in accounts]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    )


def _passwd(ws: Workstation, args: argparse.Namespace) -> int:
    """Sign in as the account (its second factor too, when it has one; a forced change is the
    one thing allowed), then change the password; standard input: current, [code,] new."""
    from cli.mfa_cmd import login_with_second_factor
    from core.app.accounts import change_own_password
    from core.security.users import AuthError

    name = args.user or args.username
    if not name:
        print("error: whose password? doctorai users passwd --user NAME", file=sys.stderr)
        return 2
    if args.password_stdin:
        current = sys.stdin.readline().rstrip("\n")
    else:
        current = getpass.getpass(f"current password for '{name}': ")
    try:
        login_with_second_factor(ws, name, current, args.password_stdin)
        new = _new_password(name, args.password_stdin)
        if new is None:
            return 1
        change_own_password(ws, current, new)
    except (AuthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"password of '{name}' changed")
    return 0


def _admin_action(ws: Workstation, args: argparse.Namespace) -> int:
    from core.app import accounts
    from core.security.users import Role

    name = args.username
    if args.action == "reset":
        password = _new_password(name, args.password_stdin, "temporary password")
        if password is None:
            return 1
        accounts.reset_password(ws, name, password)
        print(f"password of '{name}' reset: it must be changed at the next sign-in")
    elif args.action in ("disable", "enable"):
        accounts.set_disabled(ws, name, args.action == "disable")
        print(f"'{name}' {args.action}d")
    elif args.action == "role":
        accounts.set_role(ws, name, Role(args.role))
        print(f"'{name}' is now {args.role} (from its next sign-in)")
    else:
        accounts.unlock_account(ws, name)
        print(f"'{name}' unlocked")
    return 0


def _add(ws: Workstation, args: argparse.Namespace) -> int:
    from core.app.accounts import add_account
    from core.security.users import Role

    password = _new_password(args.username, args.password_stdin, "password")
    if password is None:
        return 1
    add_account(ws, args.username, password, Role(args.role))
    print(f"created '{args.username}' ({args.role})")
    return 0


def run(args: argparse.Namespace) -> int:
    from cli.profile import finish, open_or_explain, sign_in_as
    from core.app.accounts import list_accounts
    from core.security.users import PermissionDenied

    if args.action == "mfa":
        from cli.mfa_cmd import run as run_mfa

        return run_mfa(args)
    ws = open_or_explain("users")
    if ws is None:
        return 2
    try:
        if args.action == "passwd":
            return _passwd(ws, args)
        if not ws.users.has_users():
            if args.action == "list":
                print(
                    "no accounts yet: the first one ('doctorai users add NAME --role admin', or "
                    "the first start of the window) must be an admin"
                )
                return 0
            if args.action != "add":
                print("error: no accounts yet: add the first admin", file=sys.stderr)
                return 2
        else:
            if not args.admin:
                what = "lists" if args.action == "list" else "creates new ones"
                print(
                    f"error: accounts exist already: an admin {what} "
                    "(--admin NAME; the password is asked for)",
                    file=sys.stderr,
                )
                return 2
            if not sign_in_as(ws, args.admin, args.admin_password_stdin):
                return 1
        try:
            if args.action == "list":
                print(_table(list_accounts(ws)))
                return 0
            if args.action == "add":
                return _add(ws, args)
            return _admin_action(ws, args)
        except PermissionDenied as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        finish(ws)
