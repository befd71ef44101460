"""Entry point of the ``doctorai`` command.

Sub-commands (``doctorai inspect ...``) run without Qt; anything else opens the workstation.
Qt is imported only on the GUI path, so ``doctorai --version`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import cli as core_cli
from core import __version__


def _gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doctorai",
        description="DoctorAI Workstation. Sub-commands: " + ", ".join(core_cli.SUBCOMMANDS),
    )
    parser.add_argument("--version", action="version", version=f"doctorai {__version__}")
    parser.add_argument(
        "paths", nargs="*", help="files, folders, zip archives or DICOMDIRs to open"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use a throw-away demo profile "
        "(generated accounts, printed once; signed in as the radiologist)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default=None)
    parser.add_argument(
        "--selftest",
        action="store_true",
        help="check this installation offscreen (Qt, DICOM, a zoo model); prints JSON",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if core_cli.is_subcommand(args):
        return core_cli.run(args)
    options = _gui_parser().parse_args(args)
    if options.selftest:
        from desktop.selftest import run as run_selftest

        return run_selftest(options.paths[0] if options.paths else None, device=options.device)
    from desktop.xcb_check import missing_xcb_message

    problem = missing_xcb_message()  # Qt's own message would not say which library is missing
    if problem:
        print(problem, file=sys.stderr)
        return 2
    from desktop.app import run_gui  # Qt starts here, not before

    return run_gui(options)


if __name__ == "__main__":
    sys.exit(main())
