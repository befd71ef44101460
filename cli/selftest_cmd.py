"""``doctorai selftest [--json] [--device ...]``: frameworks and GPUs seen, every model's health.

Each installed model runs its package's own self-test sample and is compared with the expected
output stored in the package. Exit 1 when any model fails (the installer's ``--selftest`` adds
the Qt, DICOM and SQLCipher checks on top, see desktop/selftest.py).

The same self-test also runs when a signed update is installed (a failing one is not installed)
and once per session before a model's first run (a failing model is then refused, by the window
and by ``doctorai infer``: core.inference.manager). A model whose installed signed update no
longer verifies is listed as failed with the reason and what IT can do, and written to the
profile's audit trail as a Security Alert (as the window does when it finds the models).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.inference.manager import ModelManager


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default=None)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--models", nargs="*", metavar="ID", help="only these models")
    parser.add_argument(
        "--open", metavar="PATH", help="also decode and render this DICOM/image file"
    )


def open_and_render(path: str) -> dict[str, Any]:
    """Decode one file with the installed decoders and render it as the viewer would.

    Never raises: a file that cannot be opened is a failed check with the reason."""
    import time

    start = time.perf_counter()
    try:
        from core.imaging.display import render
        from core.imaging.header import read_header
        from core.imaging.pixels import read_frame

        instance = read_header(path, require_uids=False).instance
        frame = read_frame(instance, instance.number_of_frames // 2)
        image = render(frame)
    except Exception as exc:  # noqa: BLE001 - a self-test reports the failure, never crashes
        return {
            "path": path,
            "ok": False,
            "message": f"cannot open '{path}': {type(exc).__name__}: {exc}",
            "seconds": round(time.perf_counter() - start, 3),
        }
    return {
        "path": path,
        "ok": True,
        "transfer_syntax": instance.transfer_syntax_uid,
        "shape": list(image.shape),
        "mean_grey": round(float(image.mean()), 2),
        "seconds": round(time.perf_counter() - start, 3),
    }


def _frameworks(used: set[str]) -> dict[str, Any]:
    """Per framework: installed, and whether it sees a GPU (asked only for frameworks in use)."""
    from models.adapters import availability, get_adapter

    seen: dict[str, Any] = {}
    for framework, (installed, requirement) in availability().items():
        row: dict[str, Any] = {"installed": installed, "requirement": requirement}
        if installed and framework in used:
            try:
                row["gpu"] = bool(get_adapter(framework).gpu_available())
            except Exception as exc:  # noqa: BLE001 - a broken framework is a finding, not a crash
                row["error"] = f"{type(exc).__name__}: {exc}"
        seen[framework] = row
    return seen


def record_alerts(manager: ModelManager) -> str | None:
    """A Security Alert in the profile's trail per model whose installed signed update no
    longer verifies (core.app.model_runs.record_refused_updates). The profile is opened only
    when there is one to record; a trail that cannot be opened is said, not raised."""
    if not manager.blocked:
        return None
    from cli.profile import open_or_explain
    from core.app.model_runs import record_refused_updates

    ws = open_or_explain("selftest")
    if ws is None:
        return "the refused signed updates could not be recorded in the audit trail"
    try:
        record_refused_updates(ws, manager)
    finally:
        ws.close()
    return None


def run(args: argparse.Namespace) -> int:
    from core.inference.manager import manager_from_settings

    manager = manager_from_settings(device=args.device)
    unrecorded = record_alerts(manager)
    # the blocked ones too: a signed update that no longer verifies is a failure to report
    wanted = args.models or [p.id for p in manager.packages()] + sorted(manager.blocked)
    models: list[dict[str, Any]] = []
    try:
        for model_id in wanted:
            try:
                package = manager.package(model_id)
            except KeyError as exc:
                models.append({"id": model_id, "ok": False, "message": str(exc)})
                continue
            record = manager.health_check(model_id)
            status = next(s for s in manager.status() if s.model_id == model_id)
            models.append(
                {
                    "id": model_id,
                    "version": package.version,
                    "framework": package.manifest.framework,
                    "device": status.device,
                    "ok": record.ok,
                    "message": record.message,
                    "seconds": round(record.duration_ms / 1000, 3),
                }
            )
            manager.unload(model_id)
        frameworks = _frameworks({p.manifest.framework for p in manager.packages()})
    finally:
        manager.shutdown()
    refused = [str(e) for e in manager.package_errors]
    ok = all(m["ok"] for m in models) and not refused and not unrecorded
    report: dict[str, Any] = {
        "ok": ok,
        "frameworks": frameworks,
        "models": models,
        "refused_packages": refused,
    }
    if unrecorded:
        report["audit_problem"] = unrecorded
    if args.open:
        opened = open_and_render(args.open)
        report["open"] = opened
        report["ok"] = ok = ok and bool(opened["ok"])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, row in frameworks.items():
            gpu = {True: "GPU visible", False: "no GPU"}.get(row.get("gpu"), "not checked")
            print(f"{name:13s} {'installed' if row['installed'] else 'MISSING'}  {gpu}")
        for m in models:
            print(f"{'ok  ' if m['ok'] else 'FAIL'} {m['id']} ({m.get('device')}): {m['message']}")
        for r in refused:
            print(f"FAIL {r}")
        if unrecorded:
            print(f"FAIL {unrecorded}")
        if args.open:
            o = report["open"]
            detail = f"{o['shape']} in {o['seconds']} s" if o["ok"] else o["message"]
            print(f"{'ok  ' if o['ok'] else 'FAIL'} open {o['path']}: {detail}")
    return 0 if ok else 1
