"""``doctorai infer --model ID PATH... [--device auto|cpu|gpu] [--heatmap OUT.png] [--json]``.

Image models run on every image instance found under the paths (frame ``--frame``, default the
middle one); tabular models read a CSV with a header of the manifest's feature names; text
models take ``--text``. Prints scores, decisions, provenance and timings, and the guard flags
(intended population, out-of-distribution, unvalidated model, CPU fallback) in text and in
``--json``.

The text numbers images from 1 and names each one's file (and its slice in a series); the
flags name images by those numbers. ``--json`` keeps the stored result's 0-based indices
(``guards[].images``) and adds ``files``, the label of each image in the same order.
``--heatmap OUT.png`` writes one PNG per image: ``OUT.png`` for one image, ``OUT-001.png``,
``OUT-002.png``, ... for several (the paths are printed).

Exit status: 0 ran (flags or not), 1 not run (a refused model: its self-test failed, its signed
update no longer verifies, or the images are outside a population the manifest refuses; no
usable input; a failed run), 2 usage (unknown model, missing --text, permission).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.app.workstation import Workstation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="images / DICOM / CSV (tabular)")
    parser.add_argument("--model", required=True, metavar="ID")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default=None)
    parser.add_argument("--frame", type=int, default=None, help="frame of multi-frame instances")
    parser.add_argument(
        "--heatmap",
        metavar="OUT.png",
        help="write each image with its heatmap: OUT.png for one image, OUT-001.png, "
        "OUT-002.png, ... for several",
    )
    parser.add_argument("--text", action="append", default=[], help="input for text models")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON (image indices in 'guards' count from 0; the text counts from 1)",
    )
    parser.add_argument(
        "--any-modality",
        action="store_true",
        help="also run on DICOM images of modalities the model was not made for",
    )


UNKNOWN_MODALITIES = ("", "OT")  # plain images and DICOM "other": nothing to check against


def _image_inputs(
    paths: list[str],
    frame: int | None,
    modalities: list[str] | None = None,
    model_id: str = "",
    decode_to: tuple[int, int] | None = None,
) -> tuple[list[Any], list[Any], list[str], list[Any], list[str]]:
    """Frames of every image under ``paths``, their references, the problems, their indexed
    instances (for the population check) and their labels for people (file name, slice of a
    series, frame); with ``modalities``, DICOM images of another modality are left out with a
    problem naming them (a CT through a chest X-ray model would give a confident, meaningless
    answer). With ``decode_to`` (the size the model resizes to), a large JPEG 2000 frame is
    decoded at a lower resolution level (core.imaging.reduced), as in the window."""
    from core.imaging.index import build_index
    from core.imaging.pixels import PixelDecodeError
    from core.imaging.reduced import read_frame_for_model
    from core.inference.result import InputRef

    index = build_index(paths)
    problems = [f"'{e.path}': {e.reason}" for e in index.errors]
    frames, refs, instances, labels = [], [], [], []
    for _patient, _study, series in index.iter_series():
        modality = (series.modality or "").upper()
        if modalities and modality not in modalities and modality not in UNKNOWN_MODALITIES:
            problems += [
                f"'{inst.path}': modality {modality} is not one model '{model_id}' was made "
                f"for ({', '.join(modalities)}); --any-modality runs it anyway"
                for inst in series.instances
                if inst.has_pixels
            ]
            continue
        slices = [inst for inst in series.instances if inst.has_pixels]
        for position, inst in enumerate(slices, start=1):
            number = frame if frame is not None else inst.number_of_frames // 2
            try:
                frames.append(read_frame_for_model(inst, number, decode_to))
            except PixelDecodeError as exc:
                problems.append(str(exc))
                continue
            refs.append(InputRef.of(inst, number))
            instances.append(inst)
            labels.append(_label(inst, position, len(slices), number))
    return frames, refs, problems, instances, labels


def _label(inst: Any, position: int, n_slices: int, frame: int) -> str:
    """ "ct-012.dcm, slice 12 of 24": the file, and where in its series or instance it is."""
    label = Path(inst.path).name
    if n_slices > 1:
        label += f", slice {position} of {n_slices}"
    if inst.number_of_frames > 1:
        label += f", frame {frame + 1} of {inst.number_of_frames}"
    return label


def heatmap_paths(out: Path, n: int) -> list[Path]:
    """Where ``--heatmap OUT`` writes ``n`` images: OUT itself for one, OUT-001, ... for more."""
    if n == 1:
        return [out]
    suffix = out.suffix or ".png"
    return [out.with_name(f"{out.stem}-{i:03d}{suffix}") for i in range(1, n + 1)]


def _tabular_rows(paths: list[str], features: list[str]) -> list[list[float]]:
    rows: list[list[float]] = []
    for path in paths:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            for line, record in enumerate(csv.DictReader(fh), start=2):  # line 1: the header
                missing = [f for f in features if f not in record]
                if missing:
                    raise ValueError(f"'{path}' lacks feature column(s): {', '.join(missing[:5])}")
                row = []
                for f in features:
                    try:
                        row.append(float(record[f]))
                    except (TypeError, ValueError):
                        raise ValueError(
                            f"'{path}' line {line}, column '{f}': {record[f]!r} is not a number"
                        ) from None
                rows.append(row)
    return rows


def _write_heatmap(out: Path, *, frame: Any, heat: Any, floor: float) -> None:
    """The image with its heatmap, transparent at or below ``floor`` as in the window."""
    from PIL import Image

    from core.imaging.display import render
    from core.inference.heatmap import blend

    Image.fromarray(blend(render(frame), heat, floor=floor)).save(out)


def _heatmap_floor() -> float:
    """``[inference] heatmap_floor``: the floor IT set for the window, so the PNG matches it."""
    from core.config import load_settings

    return float(load_settings().inference.heatmap_floor)


def run(args: argparse.Namespace) -> int:
    from cli.profile import EXIT_NO_AUDIT, open_or_explain
    from core.security.users import PermissionDenied

    ws = open_or_explain("infer")  # before any patient data is read
    if ws is None:
        return EXIT_NO_AUDIT
    try:
        return _run(args, ws)
    except PermissionDenied as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:  # a run the trail cannot record shows nothing: cli.run explains it, exit 3
        ws.close()


def _run(args: argparse.Namespace, ws: Workstation) -> int:
    from core.app.exports import export_file
    from core.app.model_runs import audit_refusal, record_text_run, run_model
    from core.app.results import StoredResults, input_participants
    from core.inference.manager import (
        ModelRefusedError,
        SelftestRefusedError,
        UnknownModelError,
        UpdateRefusedError,
        manager_from_settings,
    )
    from core.inference.result import InputRef
    from core.security.users import Permission
    from models.preprocess import decode_size

    # who may run models, before any model is looked at or loaded for its self-test: a user
    # without the permission is told so (exit 2), not given a self-test or a refusal event
    ws.require(Permission.RUN_AI)
    manager = manager_from_settings(device=args.device)
    try:
        package = manager.package(args.model)
    except UpdateRefusedError as exc:  # its signed update no longer verifies: not run at all
        audit_refusal(StoredResults(ws), exc, [], command="infer")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except UnknownModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = package.manifest.input
    problems: list[str] = []
    for refused in manager.refusals(args.model):  # another copy, e.g. a tampered drop-in
        problems.append(
            f"{refused}; running version {package.version} from '{package.path}' instead"
        )
    health = manager.health_check(args.model)  # the package's own self-test sample, first
    if not health.ok:
        audit_refusal(
            StoredResults(ws),
            SelftestRefusedError(args.model, health.message),
            [],
            package.version,
            command="infer",
        )
        print(
            f"error: model '{args.model}' failed its self-test, so it is not run: {health.message}",
            file=sys.stderr,
        )
        manager.shutdown()
        return 1
    try:
        if spec.kind == "text":
            if not args.text:
                print(f"error: model '{args.model}' is a text model: give --text", file=sys.stderr)
                return 2
            if any(not t.strip() for t in args.text):
                print(
                    "error: --text is empty: a text model drafts from findings, give some",
                    file=sys.stderr,
                )
                return 2
            ws.require(Permission.RUN_AI)
            with manager.use(args.model) as model:
                drafts = list(model.predict(args.text))
            record_text_run(ws, package.id, package.version, len(args.text), command="infer")
            output: dict[str, Any] = {
                "model": {"id": package.id, "version": package.version},
                "inputs": args.text,
                "texts": drafts,
                "demo_notice": package.manifest.demo_notice,
            }
        else:
            if spec.kind == "tabular":
                images: list[Any] = _tabular_rows(args.paths, list(spec.features or []))
                refs = [InputRef(f"row-{i}") for i in range(len(images))]
                instances = [None] * len(images)
                labels = [f"row {i}" for i in range(1, len(images) + 1)]
            else:
                wanted = None if args.any_modality else list(package.manifest.modalities)
                # a heatmap PNG is drawn over the frame itself: decode those at full size
                decode_to = None if args.heatmap else decode_size(spec)
                images, refs, found, instances, labels = _image_inputs(
                    args.paths, args.frame, wanted, args.model, decode_to
                )
                problems += found
            if not images:
                print(f"error: no usable input for model '{args.model}'", file=sys.stderr)
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                return 1
            result = run_model(
                StoredResults(ws),
                manager,
                args.model,
                images,
                refs,
                heatmap=bool(args.heatmap),
                instances=instances,
                command="infer",
            )
            output = result.to_json()
            output["problems"] = problems
            output["files"] = labels
            if args.heatmap:
                if result.heatmaps is None:
                    problems.append(f"model '{args.model}' produces no heatmap")
                else:
                    floor, heats = _heatmap_floor(), result.heatmaps
                    written = heatmap_paths(Path(args.heatmap), len(images))
                    for i, out in enumerate(written):
                        export_file(
                            ws,
                            input_participants(output["provenance"]["inputs"][i : i + 1]),
                            out,
                            partial(_write_heatmap, frame=images[i], heat=heats[i], floor=floor),
                            command="infer --heatmap",
                        )
                    output["heatmap_pngs"] = [str(p) for p in written]
                    if len(written) == 1:
                        output["heatmap_png"] = str(written[0])
    except ModelRefusedError as exc:  # audited by run_model
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: running model '{args.model}': {exc}", file=sys.stderr)
        return 1
    finally:
        manager.shutdown()
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        _print_text(output)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def _numbers(images: list[int]) -> str:
    """0-based indices as people count them, runs joined: "image 2", "images 1, 3-24"."""
    runs: list[list[int]] = []
    for number in sorted({i + 1 for i in images}):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    shown = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"image {shown}" if len(images) == 1 else f"images {shown}"


def _print_text(output: dict[str, Any]) -> None:
    """The result for people: images numbered from 1 and named by file, flags by those
    numbers, each image's line marked with the flags about it."""
    model = output["model"]
    print(
        f"{model['id']} {model['version']}"
        + (f"  [{output['demo_notice']}]" if output.get("demo_notice") else "")
    )
    if output.get("texts"):
        for text in output["texts"]:
            print(f"  {text}")
        return
    guards = output.get("guards") or []
    for guard in guards:
        images = guard.get("images")
        which = f" [{_numbers(images)}]" if images else ""
        print(f"  {guard['kind']} flag{which}: {guard['message']}")
    for warning in output.get("warnings") or []:
        print(f"  warning: {warning}")
    prov = output["provenance"]
    files = output["files"]  # set by _run, one label per image
    for i, (label, scores, decision) in enumerate(
        zip(files, output["scores"], output["decisions"], strict=True)
    ):
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        kinds = sorted({g["kind"] for g in guards if i in (g.get("images") or [])})
        marks = f"  [flagged: {', '.join(kinds)}]" if kinds else ""
        print(f"  image {i + 1} ({label}): {decision}  ({shown}){marks}")
    for i, path in enumerate(output.get("heatmap_pngs") or []):
        print(f"  heatmap of image {i + 1}: {path}")
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in prov["timings_ms"].items())
    print(f"  device {prov['device']}; {timings}")
