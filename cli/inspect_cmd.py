"""``doctorai inspect PATH... [--json]``: index files and print the study tree and per-file errors.

Exit code 0 even when some files fail: they are listed (on stderr in text mode, in ``errors``
with --json); 1 when nothing usable was found. Patient names appear in this output on purpose
(it is the user's own listing).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="DICOM/image files, folders, zip archives or DICOMDIR files",
    )
    parser.add_argument("--json", action="store_true", help="print the index as JSON")
    parser.add_argument("--workers", type=int, default=None, help="header reader threads")


def run(args: argparse.Namespace) -> int:
    from cli.profile import EXIT_NO_AUDIT, open_or_explain
    from core.app.access import index_read
    from core.imaging.index import build_index

    ws = open_or_explain("inspect")  # before any patient data is read
    if ws is None:
        return EXIT_NO_AUDIT
    try:
        with warnings.catch_warnings():
            # pydicom warns about oddities it tolerates; the per-file errors are what we report.
            warnings.simplefilter("ignore")
            index = build_index(args.paths, workers=args.workers)
        index_read(
            ws,
            index,
            command="inspect",
            paths=[str(p) for p in args.paths],
            errors=len(index.errors),
        )
    finally:
        ws.close()
    if args.json:
        json.dump(index.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_tree(index)
        for err in index.errors:
            print(f"error: '{err.path}': {err.reason}", file=sys.stderr)
        for warning in index.warnings:
            print(f"'{warning.path}': {warning.reason}", file=sys.stderr)
    if not any(True for _ in index.iter_series()):
        return 1  # nothing usable at all: every path failed, or none held an image
    return 0


def _print_tree(index: object) -> None:
    from core.imaging.model import StudyIndex

    assert isinstance(index, StudyIndex)
    n_series = 0
    for patient in index.patients.values():
        print(f"Patient {patient.name or '(no name)'} [{patient.patient_id or 'no id'}]")
        for study in patient.studies.values():
            print(
                f"  Study {study.study_date or '-'} {study.description or ''} "
                f"[{study.study_instance_uid}]"
            )
            for series in study.series.values():
                n_series += 1
                number = "-" if series.series_number is None else series.series_number
                print(
                    f"    Series {number} {series.modality or '?'} {series.description or ''}: "
                    f"{len(series.instances)} instance(s), {series.frame_count} frame(s)"
                )
    print(f"{len(index.patients)} patient(s), {n_series} series, {len(index.errors)} error(s)")
