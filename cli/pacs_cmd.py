"""``doctorai pacs search|retrieve|store|secret|cache``: DICOMweb from the command line.

A node is named with ``--node NAME`` (the ``[[pacs]]`` tables of the settings) or given ad hoc
with ``--url`` (no auth). Every query, retrieve and store is written to the encrypted audit
trail, as in the GUI. Secrets are read from the terminal or stdin, never from the arguments.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import date
from typing import Any

from cli.profile import add_sign_in_arguments


def _node_args(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--node", help="a PACS node named in the settings")
    where.add_argument(
        "--url",
        help="a DICOMweb base URL (no authentication), or dicom://CALLED_AET@host:port for DIMSE",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    search = sub.add_parser("search", help="QIDO-RS study search")
    _node_args(search)
    search.add_argument("--patient-name", default="")
    search.add_argument("--patient-id", default="")
    search.add_argument("--accession", default="")
    search.add_argument("--from", dest="date_from", type=date.fromisoformat, metavar="YYYY-MM-DD")
    search.add_argument("--to", dest="date_to", type=date.fromisoformat, metavar="YYYY-MM-DD")
    search.add_argument("--modality", default="")
    search.add_argument("--series", action="store_true", help="also list each study's series")
    search.add_argument("--json", action="store_true")
    retrieve = sub.add_parser("retrieve", help="WADO-RS retrieve into the local cache")
    _node_args(retrieve)
    retrieve.add_argument("--study", required=True, metavar="UID")
    retrieve.add_argument("--series", metavar="UID", help="one series (default: the whole study)")
    store = sub.add_parser("store", help="STOW-RS DICOM files (e.g. exported SR/SEG)")
    _node_args(store)
    store.add_argument("files", nargs="+", metavar="FILE")
    secret = sub.add_parser("secret", help="save a node's password or token in the OS keyring")
    secret.add_argument("name", metavar="NODE")
    secret.add_argument(
        "--stdin",
        action="store_true",
        help="read it from standard input (after --user's password, if read too)",
    )
    add_sign_in_arguments(secret)
    cache = sub.add_parser("cache", help="show or purge the retrieve cache")
    cache.add_argument("--purge", action="store_true")


def _sink() -> Any:
    from core.app.pacs_audit import pacs_audit
    from core.app.workstation import Workstation

    return pacs_audit(Workstation.open_for_cli())


def _client(args: argparse.Namespace) -> Any:
    from core.config import PacsNode
    from core.pacs.client import PacsClient
    from core.pacs.dimse import DimseClient, is_dimse
    from core.pacs.nodes import get_node

    node = PacsNode(name="ad hoc", url=args.url) if args.url else get_node(args.node)
    if is_dimse(node):
        return DimseClient(node, _sink())
    return PacsClient(node, _sink())


def run(args: argparse.Namespace) -> int:
    from core.config import ConfigError
    from core.pacs.errors import PacsError
    from core.store.errors import DatabaseError

    try:
        return _ACTIONS[args.action](args)
    except (PacsError, ConfigError, DatabaseError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _search(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from core.pacs.client import StudyQuery

    client = _client(args)
    hits = client.search_studies(
        StudyQuery(
            patient_name=args.patient_name,
            patient_id=args.patient_id,
            accession=args.accession,
            date_from=args.date_from,
            date_to=args.date_to,
            modality=args.modality,
        )
    )
    rows: list[dict[str, Any]] = []
    for hit in hits:
        row = asdict(hit)
        if args.series:
            row["series"] = [asdict(s) for s in client.search_series(hit.study_uid)]
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(
            f"{row['study_date'] or '--------'}  {row['patient_id']:<16} "
            f"{row['patient_name']:<24} {'/'.join(row['modalities']):<8} "
            f"{row['instance_count'] or '?':>5} img  {row['study_uid']}"
        )
        for s in row.get("series", []):
            print(
                f"    {s['modality']:<4} {s['instance_count'] or '?':>5} img  "
                f"{s['description'] or '(no description)'}  {s['series_uid']}"
            )
    print(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'}")
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    from core.pacs.retrieve import retrieve_series, retrieve_study

    client, cache = _client(args), _cache_of_profile()
    if args.series:
        results = [retrieve_series(client, cache, args.study, args.series)]
    else:
        results = retrieve_study(client, cache, args.study)
    for r in results:
        where = r.paths[0].parent if r.paths else cache.series_dir(r.study_uid, r.series_uid)
        how = "from cache" if r.from_cache else f"{r.bytes / 1e6:.1f} MB in {r.seconds:.2f} s"
        sealed = " (encrypted; open it in the viewer)" if cache.encrypted else ""
        print(f"{r.series_uid}: {len(r.paths)} instance(s), {how} -> {where}{sealed}")
    return 0


def _store(args: argparse.Namespace) -> int:
    from core.imaging.sources import read_dicom
    from core.pacs.export import AiFinding, store_objects

    datasets = []
    for name in args.files:
        try:
            with open(name, "rb") as fh:  # a deflated file is inflated bounded
                datasets.append(read_dicom(fh, stop_before_pixels=False)[0])
        except Exception as exc:  # pydicom raises many types for broken files
            raise ValueError(f"cannot read '{name}': {exc}") from exc
    client = _client(args)
    if not hasattr(client, "store"):
        raise ValueError("storing to a DIMSE node (C-STORE) is not supported; use DICOMweb")
    # a manual store: audited as an Export with no model attached
    finding = AiFinding(
        model_id="manual",
        model_version="-",
        labels=[],
        scores={},
        decision="",
        input_sop_uids=[],
        result_id="cli-store",
    )
    stored = store_objects(client, datasets, finding)
    print(f"stored {len(stored)} instance(s) on '{client.node.name}'")
    return 0


def _secret(args: argparse.Namespace) -> int:
    """A node's secret is IT's setting: an account with the settings permission saves it."""
    from cli.profile import finish, open_or_explain, sign_in
    from core.app.settings_admin import save_pacs_secret
    from core.pacs.nodes import get_node
    from core.security.users import PermissionDenied

    node = get_node(args.name)
    ws = open_or_explain("pacs secret")
    if ws is None:
        return 3
    try:
        if not args.user:
            print("error: saving a PACS secret needs an admin: give --user NAME", file=sys.stderr)
            return 2
        if not sign_in(ws, args):
            return 1
        if args.stdin:
            value = sys.stdin.readline().rstrip("\n")
        else:
            value = getpass.getpass(
                f"{'password' if node.auth == 'basic' else 'token'} for PACS node '{node.name}': "
            )
        try:
            save_pacs_secret(ws, node, value)
        except PermissionDenied as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        finish(ws)
    print(f"saved in the OS keyring for PACS node '{node.name}'")
    return 0


def _cache_of_profile() -> Any:
    """The profile's cache as the settings make it (size limit, encryption)."""
    from core.config import load_settings
    from core.pacs.cache import PacsCache

    return PacsCache.from_settings(load_settings())


def _cache(args: argparse.Namespace) -> int:
    cache = _cache_of_profile()
    if args.purge:
        print(f"purged {cache.purge() / 2**20:.1f} MiB from {cache.root}")
        return 0
    entries = cache.entries()
    used = sum(e.size_bytes for e in entries) / 2**20
    print(
        f"{cache.root}: {len(entries)} series, {used:.1f} MiB"
        f" (limit {cache.max_bytes / 2**30:.1f} GiB, setting pacs_cache_gb;"
        f" {'AES-256-GCM encrypted' if cache.encrypted else 'NOT encrypted'}: setting"
        " pacs_cache_encrypted)"
    )
    return 0


_ACTIONS = {
    "search": _search,
    "retrieve": _retrieve,
    "store": _store,
    "secret": _secret,
    "cache": _cache,
}
