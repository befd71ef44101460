"""A provisional first image, decoded while the rest of a folder is still being indexed.

Indexing every header of a big folder takes a fifth of the whole load; the radiologist should
not stare at an empty viewport meanwhile. As soon as the file list is known, we read the header
of the *middle* file and decode one frame of it: files of a series are usually named in slice
order, so the middle file tends to be the middle slice (where the viewer starts anyway), and a
file picked at random lies in the largest series with the highest probability (the series the
viewer opens by default). The result is a one-instance ``StudyIndex`` the viewer shows at once;
the full index, sorted by geometry, replaces it when indexing finishes.

While the viewer paints that image, the indexing threads should not compete with it for the
interpreter (a paint under contention took 10-35 ms instead of 4): ``FirstImage.shown`` is an
event the viewer sets once the image is on screen; the indexing job waits for it, at most
``SHOWN_WAIT_S``, before it reads the other headers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.imaging.header import Header, read_header
from core.imaging.index import Cancel, cancel_check
from core.imaging.model import Frame, Instance, Series, StudyIndex, display_frames
from core.imaging.volume import first_slice, load_slice

MAX_TRIES = 4  # files tried before giving up (a folder of reports or scouts only)
SHOWN_WAIT_S = 0.1  # longest pause of the indexing for the first image's paint


@dataclass(frozen=True)
class FirstImage:
    """One decoded frame and the one-instance index it belongs to."""

    index: StudyIndex
    series: Series
    instance: Instance
    frame_number: int  # frame of the file (0 for single-frame files)
    frame: Frame
    # set by the viewer once the image is painted (or will not be): indexing goes on then
    shown: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def wait_shown(self, timeout: float = SHOWN_WAIT_S) -> bool:
        """Block the indexing thread until the image is on screen, or ``timeout`` seconds."""
        return self.shown.wait(timeout)


def candidates(n: int, tries: int = MAX_TRIES) -> list[int]:
    """File positions to try, best first: middle, first, last, then the quarters."""
    order: list[int] = []
    for i in (n // 2, 0, n - 1, n // 4, (3 * n) // 4):
        if 0 <= i < n and i not in order:
            order.append(i)
    return order[:tries]


def _one_instance_index(header: Header) -> StudyIndex:
    inst = header.instance
    series, study, patient = header.series, header.study, header.patient
    series.instances = [inst]
    study.series = {inst.series_instance_uid: series}
    patient.studies = {inst.study_instance_uid: study}
    return StudyIndex(patients={inst.patient_id: patient})


def first_image(files: Sequence[str], cancel: Cancel | None = None) -> FirstImage | None:
    """Decode one frame of a file in ``files`` (see module docstring), or None when none of the
    candidates is a decodable image. Never raises for a bad file: indexing reports those."""
    is_cancelled = cancel_check(cancel)
    for i in candidates(len(files)):
        if is_cancelled():
            return None
        try:
            header = read_header(files[i])
        except Exception:  # noqa: BLE001 - indexing reports this file's error with its reason
            continue
        inst = header.instance
        if not inst.has_pixels or inst.number_of_frames < 1:
            continue
        shown = display_frames(inst)
        frame_number = shown[first_slice(len(shown))]
        try:
            frame = load_slice(inst, frame_number)
        except Exception:  # noqa: BLE001 - the full load reports this file's error later
            continue
        if frame is None:
            continue
        return FirstImage(_one_instance_index(header), header.series, inst, frame_number, frame)
    return None
