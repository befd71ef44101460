"""The ``doctorai`` command line: one sub-command module per subsystem, imported on use.

Each module named in ``SUBCOMMANDS`` defines ``add_arguments(parser)`` and ``run(args) -> int``.
Only the chosen module is imported, so ``doctorai --version`` and each command start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from core import __version__

# name -> (module, one-line help). Add a line here to add a command.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("cli.inspect_cmd", "index DICOM/image files and print the study tree"),
    "render": ("cli.render_cmd", "write the 8-bit image the viewer shows for one instance"),
    "models": ("cli.models_cmd", "list, verify and import model packages"),
    "infer": ("cli.infer_cmd", "run a model on images, a feature table or text"),
    "selftest": ("cli.selftest_cmd", "devices seen and every model's health check"),
    "audit": ("cli.audit_cmd", "verify, show the head of, or export the audit trail"),
    "users": ("cli.users_cmd", "local accounts: add, list, passwd, reset, disable, role, unlock"),
    "sync": ("cli.sync_cmd", "sync results/audit now, enrol, status, model updates"),
    "pacs": ("cli.pacs_cmd", "PACS: search, retrieve, store (DICOMweb), secrets, cache"),
    "studies": ("cli.studies_cmd", "the local study database: list, search, priors of a study"),
    "backup": ("cli.backup_cmd", "back up the audit trail with sealed keys; keygen; restore"),
}


def _is_store_error(exc: BaseException) -> bool:
    """A database error escaping a command (damaged page, lock held past the wait, full disk):
    by module, so that the CLI does not import SQLAlchemy to start."""
    return type(exc).__module__.split(".")[0] in ("sqlalchemy", "sqlcipher3")


def start_logging() -> None:
    """The rotating log file (core.logs), with the settings' [logging]; a log folder that
    cannot be made is said once and the command runs on without one."""
    from core.config import ConfigError, load_settings
    from core.logs import setup_logging

    try:
        settings = load_settings().logging
    except ConfigError:
        settings = None  # the command itself reports the settings problem
    try:
        setup_logging(settings)
    except OSError as exc:
        print(f"doctorai: no log file: {exc}", file=sys.stderr)


def is_subcommand(argv: Sequence[str]) -> bool:
    return bool(argv) and argv[0] in SUBCOMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doctorai", description="DoctorAI Workstation")
    parser.add_argument("--version", action="version", version=f"doctorai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run(argv: Sequence[str]) -> int:
    """Run one sub-command; returns the process exit code."""
    name = argv[0]
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"doctorai {name}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(list(argv[1:]))
    start_logging()
    try:
        code: int = module.run(args)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (EOFError, KeyboardInterrupt):
        print(f"doctorai {name}: cancelled (no input)", file=sys.stderr)
        return 130
    except OSError as exc:  # a profile path that is a file, a full disk, a permission...
        where = f" '{exc.filename}'" if getattr(exc, "filename", None) else ""
        print(f"doctorai {name}: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not _is_store_error(exc):
            raise
        from core.paths import profile_dir
        from core.store.database import last_opened
        from core.store.errors import EXIT_STORAGE, explain_store_error

        db_path = last_opened() or profile_dir() / "doctorai.db"
        print(f"doctorai {name}: {explain_store_error(db_path, exc)}", file=sys.stderr)
        return EXIT_STORAGE
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if is_subcommand(args):
        return run(args)
    build_parser().parse_args(args)
    return 0
