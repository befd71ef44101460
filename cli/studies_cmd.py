"""``doctorai studies list|priors``: the local study database from the command line.

``list`` shows the studies opened last (``--recent N``) or those matching ``--search`` (name,
Patient ID or accession), ``--from``/``--to`` (study date) and ``--modality``. ``priors UID``
lists the other studies of that study's patient (same Patient ID and issuer, never by name) in
the local database and on the configured PACS nodes (``--node`` to ask some, ``--local`` to ask
none). Every list is audited as a Query, as in the window; patient names appear in the output on
purpose (it is the user's own listing).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="recent studies, or those matching a search")
    listing.add_argument("--search", default="", metavar="TEXT", help="name, Patient ID, accession")
    listing.add_argument("--from", dest="date_from", default="", metavar="YYYY-MM-DD")
    listing.add_argument("--to", dest="date_to", default="", metavar="YYYY-MM-DD")
    listing.add_argument("--modality", default="")
    listing.add_argument("--recent", type=int, default=None, metavar="N")
    listing.add_argument("--json", action="store_true")
    priors = sub.add_parser("priors", help="the other studies of the same patient")
    priors.add_argument("study", metavar="STUDY_UID")
    where = priors.add_mutually_exclusive_group()
    where.add_argument("--node", action="append", default=None, help="ask only this PACS node")
    where.add_argument("--local", action="store_true", help="the local database only")
    priors.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from cli.profile import EXIT_NO_AUDIT, open_or_explain
    from core.config import ConfigError
    from core.pacs.errors import PacsError
    from core.security.users import PermissionDenied
    from core.studies.catalogue import StudyNotFound

    if args.action == "list" and args.recent is not None and args.recent < 1:
        print("error: --recent must be 1 or more", file=sys.stderr)
        return 2
    ws = open_or_explain(f"studies {args.action}")  # before any patient data is read
    if ws is None:
        return EXIT_NO_AUDIT
    try:
        return _list(ws, args) if args.action == "list" else _priors(ws, args)
    except (StudyNotFound, PacsError, ConfigError, PermissionDenied, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        ws.close()


def _list(ws: Any, args: argparse.Namespace) -> int:
    from core.app.studies import list_studies
    from core.studies.catalogue import StudySearch

    query = StudySearch(args.search, args.date_from, args.date_to, args.modality)
    found = list_studies(ws, query, recent=args.recent)
    if args.json:
        rows = [{k: v for k, v in asdict(e).items() if k != "series"} for e in found]
        print(json.dumps(rows, indent=2))
        return 0
    for e in found:
        print(
            f"{_date(e.study_date)}  {e.patient_id:<14} {e.display_name:<24.24} "
            f"{e.accession:<12} {'/'.join(e.modalities):<7} {e.description:<24.24} "
            f"{e.source:<10} {e.study_uid}"
        )
    label = "matching" if query.keys() else "opened recently"
    print(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'} {label}", file=sys.stderr)
    return 0


def _priors(ws: Any, args: argparse.Namespace) -> int:
    from core.app.studies import find_priors, pacs_searchers
    from core.config import load_settings

    clients, problems = ([], []) if args.local else pacs_searchers(ws, load_settings(), args.node)
    found = find_priors(ws, args.study, clients)
    for problem in [*problems, *found.problems]:
        print(f"warning: {problem}", file=sys.stderr)
    if args.json:
        rows = [
            {k: v for k, v in asdict(p).items() if k != "local"} | {"local": p.local is not None}
            for p in found.priors
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for p in found.priors:
        where = p.source + (f" (also on {', '.join(p.nodes)})" if p.local and p.nodes else "")
        print(
            f"{_date(p.study_date)}  {'/'.join(p.modalities):<7} {p.description:<28.28} "
            f"{p.n_instances if p.n_instances is not None else '?':>5} img  {where:<24} "
            f"{p.study_uid}"
        )
    key = found.key
    who = f"Patient ID '{key.patient_id}'" + (f" (issuer '{key.issuer}')" if key.issuer else "")
    print(f"{len(found.priors)} prior(s) of {who}", file=sys.stderr)
    return 0


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else (value or "----------")
