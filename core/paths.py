"""Where the workstation keeps its state: one profile directory, and the machine-wide config
file."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
from pathlib import Path

APP_NAME = "DoctorAI"

log = logging.getLogger(__name__)


def make_private(path: Path, mode: int, *, new: bool = False) -> None:
    """On POSIX, take group and other access away from ``path`` (the profile directory 0700,
    the database and the files beside it 0600): a looser one found is tightened, and said
    (silently for a ``new`` file this process just created)."""
    if os.name != "posix":
        return  # Windows: the profile lives under the user's own ACL'd AppData
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod(mode)
            if not new:
                log.warning("tightened '%s' from %o to %o", path, current, mode)
    except FileNotFoundError:
        return
    except OSError as exc:  # not ours to change (a shared folder named by DOCTORAI_HOME)
        log.warning("could not tighten '%s' to %o: %s", path, mode, exc.strerror or exc)


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
    new = not path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)  # umask may narrow it, never widen
    make_private(path, 0o700, new=new)
    return path


def log_dir() -> Path:
    """The application's log folder (0700): ``DOCTORAI_LOG_DIR`` if set; else ``logs`` in the
    profile when ``DOCTORAI_HOME`` moves it; else the platform's user log dir."""
    env = os.environ.get("DOCTORAI_LOG_DIR")
    if env:
        path = Path(env).expanduser()
    elif os.environ.get("DOCTORAI_HOME"):
        path = profile_dir() / "logs"
    else:
        import platformdirs

        path = Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a folder IT made, not ours to change: as it is
        path.chmod(0o700)
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
