"""``doctorai render PATH --out FILE.png [--frame N] [--window CENTER WIDTH]``, and with
``--plane axial|coronal|sagittal [--index N] [--slab mip|minip|avg:MM]`` a reformat of a series.

Writes exactly the 8-bit image the viewer paints for that instance/frame (``display.render``),
so display correctness can be compared with other DICOM renderers (e.g. DCMTK dcmj2pnm). With
``--plane``, PATH is a series (a folder, or files of one series) and the image is the viewer's
reformat of it (``core.viewer.reformat``: square pixels in mm, head at the top, the patient's
right on the image's left; default index the middle), through the same display pipeline. A
series whose geometry would be drawn distorted (missing slices, irregular spacing, ...) is
refused with the series and the cause. Either way the Export is audited before the file exists.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.imaging.model import Series


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        metavar="PATH",
        help="one DICOM or image file (or zip::member); with --plane a series folder",
    )
    parser.add_argument("--out", required=True, metavar="FILE.png", help="PNG to write")
    parser.add_argument("--frame", type=int, default=0, help="frame number, from 0 (default 0)")
    parser.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("CENTER", "WIDTH"),
        help="window center and width (default: the file's own, else full range)",
    )
    parser.add_argument("--invert", action="store_true", help="invert the displayed image")
    parser.add_argument(
        "--plane",
        choices=("axial", "coronal", "sagittal"),
        help="reformat the series in PATH in this plane (square pixels in mm)",
    )
    parser.add_argument(
        "--index", type=int, help="with --plane: plane number from 0 (default: the middle)"
    )
    parser.add_argument(
        "--slab",
        metavar="KIND:MM",
        help="with --plane: thick slab, KIND mip, minip or avg, MM its thickness (e.g. mip:10)",
    )
    parser.add_argument(
        "--series", metavar="UID", help="with --plane: the series to use when PATH holds several"
    )


def run(args: argparse.Namespace) -> int:
    from math import isfinite

    from cli.profile import EXIT_NO_AUDIT, open_or_explain

    if args.window is not None and not all(isfinite(v) for v in args.window):
        # argparse's float() accepts "nan" and "inf"; either would paint a black image
        center, width = args.window
        print(
            f"error: --window needs finite numbers, got center {center:g} width {width:g}",
            file=sys.stderr,
        )
        return 2
    if args.window is not None and args.window[1] <= 0:
        print(f"error: window width must be positive, got {args.window[1]:g}", file=sys.stderr)
        return 2
    problem = _plane_argument_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    ws = open_or_explain("render")  # before any patient data is read
    if ws is None:
        return EXIT_NO_AUDIT
    try:
        if args.plane is not None:
            return _render_plane(args, ws)
        return _render(args, ws)
    finally:
        ws.close()


def _plane_argument_problem(args: argparse.Namespace) -> str:
    """What is wrong with the reformat options ('' when nothing): said before any work."""
    if args.plane is None:
        extra = [o for o, v in (("--index", args.index), ("--slab", args.slab)) if v is not None]
        if args.series is not None:
            extra.append("--series")
        return f"{', '.join(extra)} need(s) --plane" if extra else ""
    if args.frame != 0:
        return "--frame is for one instance; with --plane use --index"
    if args.index is not None and args.index < 0:
        return f"--index must be 0 or more, got {args.index}"
    if args.slab is not None:
        from core.viewer.reformat import parse_slab

        try:
            parse_slab(args.slab)
        except ValueError as exc:
            return f"--slab: {exc}"
    if Path(args.out).suffix.lower() != ".png":
        return f"--out '{args.out}' must be a .png file"
    return ""


def _render(args: argparse.Namespace, ws: Workstation) -> int:
    from PIL import Image

    if Path(args.out).suffix.lower() != ".png":
        # lossless only: a JPEG would change the grey levels a reader compares
        print(f"error: --out '{args.out}' must be a .png file", file=sys.stderr)
        return 2

    from cli.profile import EXIT_NO_AUDIT
    from core.app.exports import export_file
    from core.audit.events import Participants
    from core.imaging.display import render
    from core.imaging.header import HeaderError, read_header
    from core.imaging.pixels import PixelDecodeError, read_frame
    from core.store.errors import TrailUnavailableError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            instance = read_header(args.path, require_uids=False).instance
            frame = read_frame(instance, args.frame)
    except (HeaderError, PixelDecodeError) as exc:
        print(f"error: cannot render '{args.path}': {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot read '{args.path}': {exc.strerror or exc}", file=sys.stderr)
        return 1
    window = (args.window[0], args.window[1]) if args.window is not None else None
    invert = (not frame.invert) if args.invert else None
    image = render(frame, window=window, invert=invert)
    out = Path(args.out)
    try:
        export_file(
            ws,
            Participants().instances([instance]),
            out,
            lambda p: Image.fromarray(image).save(p, format="PNG"),
            command="render",
            frame=args.frame,
        )
    except OSError as exc:
        print(f"error: cannot write '{out}': {exc.strerror or exc}", file=sys.stderr)
        return 1
    except TrailUnavailableError as exc:  # the Export event could not be written: no file
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_AUDIT
    print(
        f"wrote '{out}' ({image.shape[1]}x{image.shape[0]}"
        f"{' RGB' if image.ndim == 3 else ''}, frame {args.frame})"
    )
    return 0


def _pick_series(path: str, wanted: str | None) -> Series | str:
    """The one series in PATH with images (or ``--series``), else what to tell the user."""
    from core.imaging.index import build_index

    index = build_index([path])
    found = [se for _, _, se in index.iter_series() if any(i.has_pixels for i in se.instances)]
    if wanted is not None:
        found = [se for se in found if se.series_instance_uid == wanted]
        if not found:
            return f"no series '{wanted}' with images in '{path}'"
    if not found:
        why = f" ({index.errors[0].path}: {index.errors[0].reason})" if index.errors else ""
        return f"no series with images in '{path}'{why}"
    if len(found) > 1:
        listed = ", ".join(
            f"{se.series_instance_uid} ({se.modality} {se.description})".replace(" )", ")")
            for se in found
        )
        return f"'{path}' holds {len(found)} series; pick one with --series UID: {listed}"
    return found[0]


def _render_plane(args: argparse.Namespace, ws: Workstation) -> int:
    """``--plane``: the viewer's reformat of a series, audited as an Export."""
    from PIL import Image

    from cli.profile import EXIT_NO_AUDIT
    from core.app.exports import export_file
    from core.audit.events import Participants
    from core.imaging.display import render
    from core.imaging.geometry import GeometryError
    from core.imaging.volume import SeriesLoadError
    from core.store.errors import TrailUnavailableError
    from core.viewer.reformat import Reformat, load_series_volume, parse_slab

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = _pick_series(args.path, args.series)
        if isinstance(series, str):
            print(f"error: {series}", file=sys.stderr)
            return 1
        try:
            volume = load_series_volume(series)
        except (GeometryError, SeriesLoadError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:  # colour or mixed-size series
            print(f"error: cannot reformat: {exc}", file=sys.stderr)
            return 1
    reformat = Reformat(volume, args.plane)
    index = reformat.default_index if args.index is None else args.index
    if index >= reformat.count:
        print(
            f"error: --index {index} is outside this series' {args.plane} planes "
            f"0..{reformat.count - 1}",
            file=sys.stderr,
        )
        return 2
    slab = parse_slab(args.slab) if args.slab is not None else None
    frame = reformat.frame(index, slab)
    window = (args.window[0], args.window[1]) if args.window is not None else None
    image = render(frame, window=window, invert=(not frame.invert) if args.invert else None)
    out = Path(args.out)
    try:
        export_file(
            ws,
            Participants().instances(i for i in series.instances if i.has_pixels),
            out,
            lambda p: Image.fromarray(image).save(p, format="PNG"),
            command="render",
            plane=args.plane,
            index=index,
            slab=args.slab or "",
        )
    except OSError as exc:
        print(f"error: cannot write '{out}': {exc.strerror or exc}", file=sys.stderr)
        return 1
    except TrailUnavailableError as exc:  # the Export event could not be written: no file
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_AUDIT
    tilt = volume.geometry.tilt_degrees
    for note in volume.notes:  # resampled spacing, localizers left out: said, never silent
        print(f"note: {note}")
    print(
        f"wrote '{out}' ({image.shape[1]}x{image.shape[0]}, {args.plane} {index} of "
        f"{reformat.count}, {reformat.pixel_size:.3g} mm pixels"
        f"{f', slab {args.slab}' if args.slab else ''}"
        f"{f', gantry tilt {tilt:.1f} deg corrected' if tilt >= 0.05 else ''})"
    )
    return 0
