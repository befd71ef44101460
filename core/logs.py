"""The application's log files: rotating, private to the user, and free of patient data.

``setup_logging`` runs once at start (the window's and the CLI's); records go to
``<log dir>/doctorai.log`` (``core.paths.log_dir``), rotated at ``[logging] max_bytes`` with
``backups`` old files, the folder 0700 and each file 0600.

Logs are read by IT and support, so nothing in them may identify a patient. Our own log calls
name files and studies by digest, never by path or tag value; ``PhiFormatter`` is the net under
them for what a library or an exception message carries: every absolute path outside the
installed code becomes ``<file #digest>`` (folders are often named after the patient), and the
identifying values of the studies opened in this process (names, IDs, birth dates, accession
numbers, noted by the indexer through ``note_identifiers``) become ``<redacted>``. The terminal
is the user's own: warnings shown there keep their paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.config import LogSettings

LOG_FILE = "doctorai.log"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
QUIET = ("alembic", "PIL", "urllib3", "matplotlib", "h5py", "filelock", "asyncio")
MAX_NOTED = 20_000  # identifying values remembered (a long session); the oldest go first
_MIN_LEN = 3  # shorter values (initials, "M") would redact ordinary words

# An absolute POSIX path (a space inside one is followed by more of it: "/d/Jane Doe/1.dcm"), a
# Windows drive or UNC path, or a file: URL. Not a URL's path (after "host:port" or "https:").
_PATH = re.compile(
    r"""file:///?[^\s'"<>|]+"""
    r"""|(?<![\w.~:/])/(?:[^\s'"<>|:;,(){}\[\]]|\s(?=[^\s/'"]*/))+"""
    r"""|\b[A-Za-z]:\\(?:[^\s'"<>|:;,]|\s(?=[^\s\\'"]*\\))+"""
    r"""|\\\\[^\s'"<>|]+"""
)

_lock = threading.Lock()
_noted: dict[str, None] = {}  # insertion-ordered set
_pattern: re.Pattern[str] | None = None
_handlers: list[logging.Handler] = []  # ours on the root logger: the file first


def digest(value: str | os.PathLike[str]) -> str:
    """A short, stable stand-in for a path or identifier in a log line."""
    return hashlib.sha256(os.fspath(value).encode("utf-8", "surrogatepass")).hexdigest()[:12]


def note_identifiers(values: Iterable[str]) -> None:
    """Values that identify a patient (from a header just read): never written to a log."""
    global _pattern
    fresh = []
    for value in values:
        value = str(value or "").strip()
        for variant in {value, value.replace("^", " ").strip(), *value.split("^")}:
            variant = variant.strip()
            if len(variant) >= _MIN_LEN and variant not in _noted:
                fresh.append(variant)
    if not fresh:
        return
    with _lock:
        for v in fresh:
            _noted[v] = None
        while len(_noted) > MAX_NOTED:
            _noted.pop(next(iter(_noted)))
        _pattern = None


def _identifiers() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _noted:
            longest_first = sorted(_noted, key=len, reverse=True)
            # whole values only (not next to another letter or digit): a patient "Pat" must not
            # turn "patient" into "<redacted>ient"; "_" and punctuation still separate
            # ("JANCT000_ct" is redacted)
            alternatives = "|".join(map(re.escape, longest_first))
            _pattern = re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)
        return _pattern


def _code_roots() -> tuple[str, ...]:
    """Where the installed code lives: paths there (tracebacks) are kept as they are."""
    here = Path(__file__).resolve().parents[1]
    roots = {str(here), sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(sorted((os.path.join(r, "") for r in roots if r), key=len, reverse=True))


def scrub(text: str) -> str:
    """``text`` without patient-identifying paths or values."""
    if not text:
        return text
    roots = _code_roots()

    def path(m: re.Match[str]) -> str:
        found = m.group(0)
        bare = found.removeprefix("file://")
        if bare.startswith(roots) or bare in ("/", "//"):
            return found
        return f"<file #{digest(bare)}>"

    text = _PATH.sub(path, text)
    pattern = _identifiers()
    return pattern.sub("<redacted>", text) if pattern is not None else text


class PhiFormatter(logging.Formatter):
    """Formats a record, then rewrites the whole text (message, arguments, traceback, stack)
    through ``scrub``. A formatter, not a filter that rewrites the record: the record is shared
    by every handler, and the user's own terminal (``_Terminal``) must show the file a warning
    names, not its ``<file #digest>`` (which only the log file's readers need)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            text = super().format(record)
        except Exception:  # noqa: BLE001 - a bad format string: log what it was, scrubbed
            text = f"{record.msg!r} % {record.args!r}"
        return scrub(text)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Each log file (also after a rotation) is created 0600."""

    def _open(self) -> Any:
        def opener(path: str, flags: int) -> int:
            return os.open(path, flags, 0o600)

        stream = open(  # noqa: SIM115 - the handler owns and closes it
            self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors, opener=opener
        )
        os.chmod(self.baseFilename, 0o600)
        return stream

    def handleError(self, record: logging.LogRecord) -> None:
        """A log file that cannot be written (a full disk, a removed folder) is said once on
        the terminal, in one line, and the file is then left alone: the log is never what
        makes a command fail or print a traceback over its own clear message."""
        if getattr(self, "_failed", False):
            return
        self._failed = True
        exc = sys.exc_info()[1]
        with contextlib.suppress(Exception):
            sys.stderr.write(f"note: the log file '{self.baseFilename}' cannot be written: {exc}\n")


class _Terminal(logging.Handler):
    """Warnings on whatever ``sys.stderr`` is at the time, as Python's last-resort handler."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)


def setup_logging(settings: LogSettings | None = None, *, stderr_warnings: bool = True) -> Path:
    """Configure the root logger (again only when the log folder changed); returns the file.

    ``stderr_warnings`` keeps warnings on the terminal as Python shows them unconfigured (the
    terminal is the user's own; the file is what others read)."""
    from core.config import LogSettings
    from core.paths import log_dir

    settings = settings or LogSettings()
    path = log_dir() / LOG_FILE
    if _handlers and Path(getattr(_handlers[0], "baseFilename", "")) == path:
        return path
    stop_logging()
    handler = PrivateRotatingFileHandler(
        path, maxBytes=settings.max_bytes, backupCount=settings.backups, encoding="utf-8"
    )
    handler.setFormatter(PhiFormatter(FORMAT))
    _handlers.append(handler)
    if stderr_warnings:
        terminal = _Terminal(logging.WARNING)
        terminal.setFormatter(logging.Formatter("%(message)s"))
        _handlers.append(terminal)
    root = logging.getLogger()
    for h in _handlers:
        root.addHandler(h)
    root.setLevel(getattr(logging, settings.level))
    if settings.level != "DEBUG":  # libraries' chatter (migrations, plugins) stays out
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    from core import __version__

    logging.getLogger(__name__).info(
        "DoctorAI %s (pid %d) logging at %s", __version__, os.getpid(), settings.level
    )
    return path


def stop_logging() -> None:
    """Undo ``setup_logging`` (tests; a process that starts over)."""
    root = logging.getLogger()
    while _handlers:
        h = _handlers.pop()
        root.removeHandler(h)
        h.close()
    logging.captureWarnings(False)
