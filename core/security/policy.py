"""What an account name and a password must be.

Names: ASCII letters, digits and ``. _ - @`` only. A look-alike (Cyrillic 'а' in "admin"), an
invisible character (zero-width space) or a line break would make two accounts read the same in
``users list``, the audit trail and the sign-in dialog, or forge a line of them.

Passwords: at least ``security.password_min_length`` characters (``MIN_PASSWORD_LENGTH`` when
not given, never fewer than ``PASSWORD_LENGTH_FLOOR``), not the account name (or containing it),
not one character repeated or a keyboard run, and not one of the passwords people pick
first. The list below is ours, written by hand from the patterns every published breach list
starts with (sequences, keyboard walks, "password", seasons, the product's and a hospital's own
words); it is deliberately short: length and the other rules carry the rest.
"""

from __future__ import annotations

import re

MIN_PASSWORD_LENGTH = 10
#: Below this no setting goes: IT may lower the default, not drop it to nothing.
PASSWORD_LENGTH_FLOOR = 8
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")

_COMMON = {
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "123456789",
    "1234567890",
    "12345678910",
    "0123456789",
    "9876543210",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "zaq12wsx",
    "asdfghjkl",
    "asdfghjkl1",
    "zxcvbnm123",
    "iloveyou",
    "iloveyou1",
    "letmein123",
    "welcome1",
    "welcome123",
    "welcome2024",
    "welcome2025",
    "welcome2026",
    "changeme",
    "changeme1",
    "changeme123",
    "administrator",
    "admin12345",
    "admin123456",
    "adminadmin",
    "rootroot",
    "trustno1",
    "monkey1234",
    "dragon1234",
    "football1",
    "baseball1",
    "sunshine1",
    "princess1",
    "superman1",
    "starwars1",
    "whatever1",
    "computer1",
    "internet1",
    "abcdefghij",
    "abc1234567",
    "abcd123456",
    "aaaaaaaaaa",
    "1111111111",
    "0000000000",
    "summer2024",
    "summer2025",
    "summer2026",
    "winter2024",
    "winter2025",
    "winter2026",
    "spring2025",
    "spring2026",
    "autumn2025",
    "autumn2026",
    "hospital1",
    "hospital123",
    "hospital2026",
    "radiology1",
    "radiology123",
    "doctor1234",
    "doctorai123",
    "doctorai2026",
    "workstation",
    "workstation1",
    "secret1234",
    "mypassword",
    "letmein1234",
    "default123",
    "temp123456",
    "test123456",
    "testtest12",
    "guest12345",
    "user123456",
    "login12345",
}


def check_username(username: str) -> str:
    """The name as stored; ValueError naming what is wrong."""
    name = username.strip()
    if not _NAME.match(name):
        raise ValueError(
            "a user name needs 1 to 64 characters among ASCII letters, digits and . _ - @ "
            "(no spaces, look-alike letters, invisible or control characters)"
        )
    return name


def _keyboard_run(password: str) -> bool:
    runs = ("01234567890", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm")
    low = password.lower()
    return any(low in r or low in r[::-1] for r in runs)


def check_password(password: str, username: str, min_length: int = MIN_PASSWORD_LENGTH) -> None:
    """ValueError saying which rule the password breaks; ``min_length`` from the settings."""
    need = max(min_length, PASSWORD_LENGTH_FLOOR)
    if len(password) < need:
        raise ValueError(f"a password needs at least {need} characters")
    low, name = password.lower(), username.strip().lower()
    if name and (name in low or low in name):
        raise ValueError("a password must not be or contain the user name")
    if len(set(password)) <= 2 or _keyboard_run(password):
        raise ValueError("a password must not be one repeated character or a keyboard run")
    if low in _COMMON or low.rstrip("!.?") in _COMMON:
        raise ValueError("this password is among the first ones guessed; choose another")
