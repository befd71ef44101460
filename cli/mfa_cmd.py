"""``doctorai users mfa``: two-factor sign-in (TOTP, RFC 6238) from the command line.

``enrol --user NAME`` shows the QR code (drawn in the terminal) and the otpauth:// URI, asks for
the first code and prints the ten recovery codes once; ``status`` and ``recovery-codes`` act for
the account itself (its password, and its code for new recovery codes); ``remove NAME --admin
ADMIN`` is an admin's reset of a lost phone. With ``--password-stdin`` the password and then the
code are read from standard input, one per line (scripts, tests). Every step is audited by core;
nothing here prints a secret except the enrolment's own, once, to the person enrolling.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.security.users import User


def add_parser(users_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``users mfa ...`` under ``doctorai users``' sub-commands."""
    mfa = users_sub.add_parser(
        "mfa", help="two-factor sign-in (TOTP): enrol, status, recovery-codes, remove"
    )
    sub = mfa.add_subparsers(dest="mfa_action", required=True)
    for name, text in (
        ("enrol", "set up an authenticator app for your account (QR code, recovery codes)"),
        ("status", "whether your account has two-factor sign-in, recovery codes left"),
        ("recovery-codes", "ten new recovery codes for your account (the old ones stop working)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--user", metavar="NAME", required=True, help="your account")
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password, then the code, one per line from standard input",
        )
    remove = sub.add_parser("remove", help="an admin removes an account's second factor")
    remove.add_argument("username", metavar="NAME")
    remove.add_argument("--admin", metavar="ADMIN", required=True, help="the admin who acts")
    remove.add_argument(
        "--admin-password-stdin",
        action="store_true",
        help="read the admin's password (then code) from standard input",
    )


def read_code(name: str, from_stdin: bool) -> str:
    """The second-factor code: the next line of standard input, or typed unseen."""
    if from_stdin:
        return sys.stdin.readline().strip()
    return getpass.getpass(f"two-factor code for '{name}' (6 digits, or a recovery code): ")


def _password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(f"password for '{name}': ")


def login_with_second_factor(ws: Workstation, name: str, password: str, from_stdin: bool) -> User:
    """Sign in, asking for the code when the account needs one (cli.profile.sign_in_as).
    Raises AuthError; an account whose role requires a second factor it lacks is told how to
    enrol."""
    from core.security.users import AuthError, SecondFactorRequired

    try:
        return ws.session.login(name, password)
    except SecondFactorRequired as needed:
        if needed.enrol:
            raise AuthError(
                f"the role of '{name}' requires two-factor sign-in: enrol first in the window "
                f"or with `doctorai users mfa enrol --user {name}`"
            ) from None
    return ws.session.login(name, password, read_code(name, from_stdin))


def _enrol(ws: Workstation, name: str, from_stdin: bool) -> int:
    from core.app.sign_in import finish_enrolment, start_enrolment
    from core.security.totp import MfaError
    from core.security.users import SecondFactorRequired

    password = _password(name, from_stdin)
    try:
        enrolment = start_enrolment(ws, name, password)
    except (SecondFactorRequired, MfaError):
        print(
            f"error: '{name}' has two-factor sign-in already: `doctorai users mfa recovery-codes "
            f"--user {name}` gives new recovery codes; for a new phone an admin runs "
            f"`doctorai users mfa remove {name} --admin ADMIN` first",
            file=sys.stderr,
        )
        return 1
    print(
        "Scan this QR code with an authenticator app (or add the key by hand), then type the "
        "code it shows.\n"
    )
    print(enrolment.qr_text())
    print(f"key: {enrolment.secret}\nURI: {enrolment.uri}\n")
    code = read_code(name, from_stdin)
    try:
        finish_enrolment(ws, enrolment, password, code)
    except MfaError as exc:
        print(f"error: {exc}; run the command again to start over", file=sys.stderr)
        return 1
    _print_codes(
        f"Two-factor sign-in is on for '{name}'. Recovery codes",
        list(enrolment.recovery_codes),
    )
    return 0


def _print_codes(title: str, codes: list[str]) -> None:
    print(
        f"{title} (each works once in place of a code; shown only now - keep them somewhere "
        "safe, away from the phone):"
    )
    for code in codes:
        print(f"  {code}")


def _status(ws: Workstation, name: str, from_stdin: bool) -> int:
    from core.app.sign_in import second_factor_required, second_factor_status
    from core.security.users import SecondFactorRequired

    password = _password(name, from_stdin)
    try:  # the password proves it is the account's owner asking; no code needed to look
        user = ws.session.login(name, password)
        role = user.role
    except SecondFactorRequired:
        role = None
    status = second_factor_status(ws, name)
    if status.enrolled:
        print(f"{name}: two-factor sign-in on; {status.recovery_codes_left} recovery code(s) left")
    else:
        needed = role is None or second_factor_required(ws, role)
        why = " (required for this role: enrol before signing in)" if needed else ""
        print(f"{name}: two-factor sign-in off{why}; `doctorai users mfa enrol --user {name}`")
    return 0


def _recovery_codes(ws: Workstation) -> int:
    from core.app.sign_in import new_recovery_codes

    codes = new_recovery_codes(ws)  # the signed-in account's
    _print_codes("New recovery codes", codes)
    return 0


def _remove(ws: Workstation, name: str) -> int:
    from core.app.sign_in import remove_second_factor

    remove_second_factor(ws, name)  # the signed-in admin's (manage-users)
    print(f"two-factor sign-in of '{name}' removed (it enrols again where its role requires)")
    return 0


def run(args: argparse.Namespace) -> int:
    from cli.profile import finish, open_or_explain, sign_in_as
    from core.security.totp import MfaError
    from core.security.users import AuthError, PermissionDenied
    from core.store.errors import EXIT_STORAGE, DatabaseError

    ws = open_or_explain("users mfa")
    if ws is None:
        return 2
    try:
        action = args.mfa_action
        if action == "enrol":
            return _enrol(ws, args.user, args.password_stdin)
        if action == "status":
            return _status(ws, args.user, args.password_stdin)
        if action == "recovery-codes":
            if not sign_in_as(ws, args.user, args.password_stdin):
                return 1
            return _recovery_codes(ws)
        if not sign_in_as(ws, args.admin, args.admin_password_stdin):
            return 1
        return _remove(ws, args.username)
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PermissionDenied as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MfaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DatabaseError as exc:
        print(f"doctorai users mfa: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    finally:
        finish(ws)
