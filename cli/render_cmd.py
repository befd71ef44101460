"""``doctorai render PATH --out FILE.png [--frame N] [--window CENTER WIDTH]``.

Writes exactly the 8-bit image the viewer paints for that instance/frame (``display.render``),
so display correctness can be compared with other DICOM renderers (e.g. DCMTK dcmj2pnm).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.app.workstation import Workstation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="one DICOM or image file (or zip::member)")
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
    ws = open_or_explain("render")  # before any patient data is read
    if ws is None:
        return EXIT_NO_AUDIT
    try:
        return _render(args, ws)
    finally:
        ws.close()


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
