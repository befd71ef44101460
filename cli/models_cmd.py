"""``doctorai models list [--json]``, ``doctorai models verify [ID...] [--eval]`` and
``doctorai models import PATH [--describe FILE] --user NAME``.

Model folders: versions installed by signed update, the shipped zoo, then
``inference.model_dirs`` from the settings, then ``<profile>/models``. ``list`` reads
manifests and checks hashes (no framework import), and shows each model's state (a blocked one
with its reason) and origin (imported models: "imported, not validated here"); ``verify``
checks schema and every file's SHA-256, and with ``--eval`` recomputes the validation metrics
and compares them with the manifest (printing its threshold and interval figures beside
them). Exit status 1 on any refusal or mismatch. ``import`` turns an ONNX file (with its
description) or a MONAI bundle folder into a verified package under ``<profile>/models``, as
an admin (manage-models) signed in with ``--user``; 1 when the model is refused, 2 when the
account may not.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lister = sub.add_parser("list", help="list installed model packages")
    lister.add_argument("--json", action="store_true", help="print JSON")
    verify = sub.add_parser("verify", help="check hashes/schema (and metrics with --eval)")
    verify.add_argument("ids", nargs="*", metavar="ID", help="model ids (default: all)")
    verify.add_argument(
        "--eval",
        action="store_true",
        help="recompute validation metrics and compare with the manifest",
    )
    verify.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default=None,
        help="device for --eval (default: the inference.device setting)",
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    imp = sub.add_parser(
        "import", help="import an ONNX file (with its description) or a MONAI bundle (admin)"
    )
    imp.add_argument("path", metavar="PATH", help="a .onnx file or a MONAI bundle folder")
    imp.add_argument(
        "--describe",
        metavar="FILE",
        default=None,
        help="the ONNX model's description (YAML or JSON; default: model.yaml/.json beside it)",
    )
    imp.add_argument("--json", action="store_true", help="print JSON")
    from cli.profile import add_sign_in_arguments

    add_sign_in_arguments(imp)


def run(args: argparse.Namespace) -> int:
    from core.config import ConfigError

    if args.action == "import":
        return _import(args)
    if args.action == "list":
        try:
            return _list(args.json)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        from core.inference.catalog import model_roots

        roots = model_roots()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _verify(roots, args)


IMPORTED_NOTE = "imported, not validated here"


def _row(package: Any) -> dict[str, Any]:
    from core.inference.catalog import imported_from, origin

    m = package.manifest
    source = imported_from(package.path)
    return {
        "id": m.id,
        "version": m.version,
        "framework": m.framework,
        "task": m.task,
        "modalities": m.modalities,
        "demo_only": m.demo_only,
        "notice": m.demo_notice,
        "name": m.name,
        "path": str(package.path),
        "state": "ok",
        "reason": None,
        "origin": origin(package.path),
        "imported_from": source,
        # what its results are checked against: neither, and every result says so
        "checks": {"population": m.population is not None, "ood": m.ood is not None},
        "validation": IMPORTED_NOTE if source is not None else None,
    }


def _blocked_row(model_id: str, error: Any, shipped: Any) -> dict[str, Any]:
    """A model that does not run because its installed version in the store (signed update or
    import) no longer verifies: listed with its state and reason, not left out."""
    from core.inference.catalog import imported_from, origin
    from core.inference.manager import UpdateRefusedError
    from models.manifest import PackageError, read_manifest

    refused = UpdateRefusedError(model_id, error, shipped)
    row: dict[str, Any] = {
        "id": model_id,
        "version": error.path.name,
        "framework": "?",
        "task": "?",
        "modalities": [],
        "demo_only": False,
        "notice": None,
        "name": model_id,
        "checks": {"population": False, "ood": False},
    }
    try:
        manifest, _ = read_manifest(error.path)
    except PackageError:
        pass  # the manifest itself is what changed: the reason says so
    else:
        row |= {
            "version": manifest.version,
            "framework": manifest.framework,
            "task": manifest.task,
            "modalities": manifest.modalities,
            "demo_only": manifest.demo_only,
            "notice": manifest.demo_notice,
            "name": manifest.name,
            "checks": {
                "population": manifest.population is not None,
                "ood": manifest.ood is not None,
            },
        }
    source = imported_from(error.path)
    return row | {
        "path": str(error.path),
        "state": "blocked",
        "reason": f"{refused.reason}. {refused.remedy}",
        "origin": origin(error.path),
        "imported_from": source,
        "validation": IMPORTED_NOTE if source is not None else None,
    }


def _list(as_json: bool) -> int:
    """Every model with its state (ok, or blocked and why) and origin; hashes are checked (a
    blocked model is found only so; about 50 ms for the zoo here)."""
    from core.inference.catalog import load_catalog

    catalog = load_catalog(verify_hashes=True)
    rows = [_row(p) for p in catalog.packages]
    rows += [
        _blocked_row(model_id, error, catalog.shipped.get(model_id))
        for model_id, error in sorted(catalog.blocked.items())
    ]
    blocked_errors = {id(e) for e in catalog.blocked.values()}
    errors = [e for e in catalog.errors if id(e) not in blocked_errors]
    if as_json:
        json.dump(
            {
                "models": rows,
                "errors": [{"path": str(e.path), "error": str(e)} for e in errors],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    for r in rows:
        tags = []
        if r["state"] == "blocked":
            tags.append("BLOCKED - not run")
        if r["imported_from"] is not None:
            source = r["imported_from"]
            tags.append(
                f"imported from {source.get('name', '?')} ({source.get('kind', '?')}), "
                "not validated here"
            )
        elif r["origin"] == "signed update":
            tags.append("signed update")
        if r["demo_only"]:
            tags.append("DEMO - not for clinical use")
        shown = "".join(f"  [{t}]" for t in tags)
        print(
            f"{r['id']:28} {r['version']:8} {r['framework']:12} {r['task']:15} "
            f"{','.join(r['modalities']) or '-':8} {r['path']}{shown}"
        )
        if r["reason"]:
            print(f"    blocked: {r['reason']}")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 0


def _verify(roots: list[Path], args: argparse.Namespace) -> int:
    from models.discovery import package_dirs
    from models.manifest import PackageError, load_package, read_manifest

    wanted = set(args.ids)
    results: list[dict[str, Any]] = []
    failed = False
    seen: set[str] = set()
    for folder in package_dirs(roots):
        try:
            manifest, _ = read_manifest(folder)
            if wanted and manifest.id not in wanted:
                continue
            seen.add(manifest.id)
            package = load_package(folder)
        except PackageError as exc:
            if wanted and exc.where == "manifest.json" and folder.name not in wanted:
                continue
            seen.add(folder.name)
            failed = True
            results.append({"path": str(folder), "ok": False, "problems": [str(exc)]})
            continue
        entry: dict[str, Any] = {
            "id": package.id,
            "path": str(folder),
            "ok": True,
            "package_hash": package.package_hash,
            "problems": [],
        }
        if args.eval:
            entry.update(_evaluate(package, args.device))
            failed = failed or not entry["ok"]
        results.append(entry)
    for missing in sorted(wanted - seen):
        failed = True
        results.append({"id": missing, "ok": False, "problems": [f"no model '{missing}' found"]})
    if args.json:
        json.dump({"ok": not failed, "results": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in results:
            status = "OK " if r["ok"] else "FAIL"
            extra = ""
            if "measured" in r:
                extra = " " + " ".join(f"{k}={v:.4f}" for k, v in r["measured"].items())
            print(f"{status} {r.get('id') or r.get('path')}{extra}")
            if "operating_point" in r:
                _print_operating_point(r["operating_point"], r.get("measured", {}))
            for problem in r["problems"]:
                print(f"     {problem}")
    return 1 if failed else 0


def _evaluate(package: Any, device: str | None) -> dict[str, Any]:
    from core.config import load_settings
    from models.evaluate import EvaluationError, compare, evaluate_package

    chosen = device or load_settings().inference.device
    try:
        measured = evaluate_package(package, device=chosen)
    except (EvaluationError, RuntimeError, ValueError, OSError) as exc:
        return {"ok": False, "problems": [f"model '{package.id}': evaluation failed: {exc}"]}
    problems = compare(package, measured)
    out: dict[str, Any] = {
        "ok": not problems,
        "problems": problems,
        "measured": {k: round(v, 4) for k, v in measured.items()},
    }
    operating = _operating_point(package)
    if operating:
        out["operating_point"] = operating
    return out


def _operating_point(package: Any) -> dict[str, Any]:
    """What the manifest claims of its operating point (threshold, how it was chosen, the
    sensitivity and specificity with their 95% intervals), for printing beside the figures
    recomputed here; empty when it claims none of it."""
    manifest = package.manifest
    metrics = manifest.metrics
    out: dict[str, Any] = {}
    if manifest.output.thresholds:
        out["thresholds"] = dict(manifest.output.thresholds)
    if metrics is None:
        return out
    for name in ("sensitivity", "specificity"):
        value, interval = getattr(metrics, name, None), getattr(metrics, f"{name}_ci", None)
        if value is not None and interval is not None:
            out[name] = {"manifest": value, "ci95": list(interval)}
    if metrics.threshold_method:
        out["threshold_method"] = metrics.threshold_method
    return out if any(k != "thresholds" for k in out) else {}


def _print_operating_point(op: dict[str, Any], measured: dict[str, float]) -> None:
    for name in ("sensitivity", "specificity"):
        if name in op:
            low, high = op[name]["ci95"]
            got = measured.get(name)
            again = f"{got:.4f}" if got is not None else "not recomputed"
            print(
                f"     {name}: manifest {op[name]['manifest']:.4f} "
                f"(95% interval {low:.4f}-{high:.4f}), recomputed {again}"
            )
    for label, threshold in (op.get("thresholds") or {}).items():
        print(f"     threshold {label}: {threshold:.4f}")
    if op.get("threshold_method"):
        print(f"     threshold chosen by: {op['threshold_method']}")


def _import(args: argparse.Namespace) -> int:
    from cli.profile import finish, open_or_explain, sign_in
    from core.app.model_import import import_model
    from core.inference.model_store import ModelInstallError, ModelStore
    from core.paths import profile_dir
    from core.security.users import PermissionDenied
    from models.importers import ModelImportError

    ws = open_or_explain("models import")
    if ws is None:
        return 2
    try:
        if not args.user:
            print(
                "error: importing a model needs an admin (manage-models): give --user NAME",
                file=sys.stderr,
            )
            return 2
        if not sign_in(ws, args):
            return 2
        describe = Path(args.describe) if args.describe else None
        try:
            done = import_model(
                ws, ModelStore(profile_dir() / "models"), Path(args.path), describe=describe
            )
        except PermissionDenied as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (ModelImportError, ModelInstallError) as exc:  # audited by import_model
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # e.g. the profile's models folder cannot be written
            print(f"error: cannot import '{args.path}': {exc}", file=sys.stderr)
            return 1
    finally:
        finish(ws)
    if args.json:
        row = {
            "id": done.model_id,
            "version": done.version,
            "source": done.kind,
            "path": str(done.path),
            "previous": done.previous,
            "notes": done.notes,
        }
        json.dump(row, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"imported {done.model_id} {done.version} ({done.kind}) into {done.path}")
        for note in done.notes:
            print(f"  note: {note}")
    return 0
