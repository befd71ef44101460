"""The profile as the CLI uses it: the workstation's use cases act as the operating-system
account (role "cli"), or as an account signed in with ``--user`` for what only some roles may do.

Commands that read patient data open the profile *before* they touch any file and refuse to run
when its audit trail cannot be written (fail closed): an unaudited read of patient data is
exactly what the trail must prevent.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.app.workstation import Workstation

#: Exit code of a command refused because its audit trail could not be opened.
EXIT_NO_AUDIT = 3


def open_or_explain(command: str) -> Workstation | None:
    """Open the profile, or print why not (with the recovery path) and return None."""
    from core.app.workstation import Workstation
    from core.config import ConfigError, load_settings
    from core.store.errors import DatabaseError

    try:
        return Workstation.open_for_cli(security=load_settings().security)
    except (DatabaseError, ConfigError) as exc:
        print(
            f"error: 'doctorai {command}' needs the audit trail and it cannot be opened: {exc}",
            file=sys.stderr,
        )
        return None


def add_sign_in_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user",
        metavar="NAME",
        default=None,
        help="act as this account (password from the terminal)",
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        dest="user_password_stdin",
        help="read --user's password from the first line of standard input",
    )


def sign_in_as(ws: Workstation, name: str, password_stdin: bool) -> bool:
    """Sign ``name`` in (audited like a sign-in in the window), the password from standard
    input's next line or the terminal; False with a message when refused."""
    from cli.mfa_cmd import login_with_second_factor
    from core.security.users import AuthError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for '{name}': ")
    try:  # the two-factor code, where needed, from the next line or the terminal likewise
        user = login_with_second_factor(ws, name, password, password_stdin)
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    if user.must_change_password:  # reset by an admin, or too old: nothing else until changed
        ws.session.logout()
        print(
            f"error: the password of {name} must be changed first: "
            f"doctorai users passwd --user {name}",
            file=sys.stderr,
        )
        return False
    return True


def sign_in(ws: Workstation, args: argparse.Namespace) -> bool:
    """Sign in as ``--user`` when given; without it the OS account acts."""
    name = getattr(args, "user", None)
    return not name or sign_in_as(ws, name, getattr(args, "user_password_stdin", False))


def finish(ws: Workstation) -> None:
    """Sign out whoever signed in (audited), then close the profile."""
    if ws.session.user is not None:
        ws.session.logout()
    ws.close()
