"""Where the workstation keeps its state: one profile directory, and the machine-wide config
file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "DoctorAI"


def profile_dir() -> Path:
    """The profile directory: ``DOCTORAI_HOME`` if set, else the platform's user data dir.

    Everything the workstation writes (settings, encrypted database, caches, staged models)
    lives below it, so one variable moves or isolates a whole installation (tests, demos).
    """
    env = os.environ.get("DOCTORAI_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine_config_path() -> Path:
    """The machine-wide config file that hospital IT manages.

    ``DOCTORAI_MACHINE_CONFIG`` overrides it (tests, non-standard installs).
    """
    env = os.environ.get("DOCTORAI_MACHINE_CONFIG")
    if env:
        return Path(env)
    if sys.platform == "win32":
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return Path(base) / APP_NAME / "config.toml"
    if sys.platform == "darwin":
        return Path("/Library/Application Support") / APP_NAME / "config.toml"
    return Path("/etc/doctorai/config.toml")


def user_config_path() -> Path:
    return profile_dir() / "config.toml"
