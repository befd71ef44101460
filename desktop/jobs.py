"""The viewer's background job functions (run by ``JobRunner``; never on the GUI thread).

Each takes a ``JobContext`` first and checks ``ctx.cancelled`` between steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.imaging.model import Instance, Series, StudyIndex
from desktop.workers import JobContext

if TYPE_CHECKING:
    from core.viewer.tags import TagRow

THUMB_SIZE = 96


def index_job(ctx: JobContext, paths: Sequence[str], workers: int | None = None) -> StudyIndex:
    """Index headers of files/folders/zips; progress goes to ``ctx.report``."""
    from core.imaging.index import build_index

    def progress(*args: Any) -> None:
        ctx.report(args)

    return build_index(list(paths), workers=workers, progress=progress, cancel=ctx.cancel_event)


def series_job(ctx: JobContext, series: Series, workers: int | None = None) -> Iterator[Any]:
    """Yield ``(slice index, Frame)`` as slices decode; the first comes before the rest."""
    from core.imaging.volume import iter_load

    for index, frame in iter_load(series, workers=workers, cancel=ctx.cancel_event):
        if ctx.cancelled:
            return
        yield index, frame


def thumbnail(series: Series) -> npt.NDArray[np.uint8]:
    """An 8-bit thumbnail of the series' middle image, at most THUMB_SIZE on each side."""
    from PIL import Image

    from core.imaging.display import render
    from core.imaging.pixels import read_frame

    with_pixels = [i for i in series.instances if i.has_pixels]
    if not with_pixels:
        raise ValueError(f"series '{series.series_instance_uid}' has no image")
    inst = with_pixels[len(with_pixels) // 2]
    frame = read_frame(inst, inst.number_of_frames // 2 if inst.number_of_frames > 1 else 0)
    img = Image.fromarray(render(frame))
    img.thumbnail((THUMB_SIZE, THUMB_SIZE))
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def thumbnails_job(ctx: JobContext, series_list: Sequence[Series]) -> Iterator[Any]:
    """Yield ``(series uid, thumbnail or error text)`` for each series, one at a time."""
    for series in series_list:
        if ctx.cancelled:
            return
        try:
            yield series.series_instance_uid, thumbnail(series)
        except Exception as exc:  # noqa: BLE001 - one broken series must not stop the others
            yield series.series_instance_uid, f"{type(exc).__name__}: {exc}"


def header_job(ctx: JobContext, instance: Instance, hide_phi: bool) -> list[TagRow]:
    """The tag rows of one instance (plain images have no DICOM header)."""
    from core.viewer.tags import TagRow, header_rows

    if instance.is_plain_image:
        return [
            TagRow("", "File", "", instance.path, 0),
            TagRow("", "Note", "", "plain image: no DICOM header", 0),
        ]
    return header_rows(instance.path, hide_phi=hide_phi)
