"""What the report panel and the key-image list need from the open studies: the
images of a study (to read their headers in a job), how an image is named in a report line,
and the PACS node an export may go to.

Kept apart from the panels so the jobs they start take plain values (a job never reaches back
into a widget from its worker thread).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from core.imaging.model import Instance, Series, StudyIndex

if TYPE_CHECKING:
    import pydicom

    from core.app.workstation import Workstation
    from core.pacs.client import PacsClient
    from core.reports.items import Mark

KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
#: Secondary Capture Image Storage (pydicom.uid.SecondaryCaptureImageStorage): the class an
#: image is given in a report reference when the index does not say its own.
SECONDARY_CAPTURE_CLASS = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class Located:
    """An image of the open studies: its series and instance (for opening it and naming it)."""

    series: Series
    instance: Instance

    @property
    def label(self) -> str:
        """``"series 3, image 12"``: how a report line names the image."""
        number = self.series.series_number
        series = f"series {number}" if number is not None else "series ?"
        inst = self.instance.instance_number
        image = (
            f"image {inst}" if inst is not None else f"image …{self.instance.sop_instance_uid[-6:]}"
        )
        return f"{series}, {image}"


def study_series(index: StudyIndex, study_uid: str) -> list[Series]:
    """The open series of one study."""
    return [s for _p, st, s in index.iter_series() if st.study_instance_uid == study_uid]


def locate(index: StudyIndex, sop_uids: Iterable[str]) -> dict[str, Located]:
    """The open image of each SOP Instance UID that is open (others are left out)."""
    wanted = set(sop_uids)
    found: dict[str, Located] = {}
    for _patient, _study, series in index.iter_series():
        for inst in series.instances:
            if inst.sop_instance_uid in wanted:
                found[inst.sop_instance_uid] = Located(series, inst)
    return found


def frame_label(where: Located | None, frame: int, sop_uid: str) -> str:
    """The label of one frame (frames counted from 1 for people, as DICOM does)."""
    base = where.label if where is not None else f"image …{sop_uid[-8:]}"
    multi = where is not None and where.instance.number_of_frames > 1
    return f"{base} frame {frame + 1}" if multi else base


def read_sources(paths: Sequence[str]) -> list[pydicom.Dataset]:
    """The headers of ``paths`` (no pixel data): what the DICOM builders copy patient, study
    and image references from. Worker thread: it reads files."""
    from core.imaging.sources import read_dataset

    return [read_dataset(p) for p in dict.fromkeys(paths)]


def describe_marks(marks: Sequence[Mark], located: dict[str, Located]) -> list[Mark]:
    """The marks with their images named as the report names them ("series 3, image 12")."""
    named = []
    for mark in marks:
        where = located.get(mark.image.sop_instance_uid)
        frame = (mark.image.frame or 1) - 1
        label = frame_label(where, frame, mark.image.sop_instance_uid)
        named.append(replace(mark, image=replace(mark.image, description=label)))
    return named


def pacs_node(ws: Workstation) -> tuple[str, Callable[[], PacsClient] | None, str]:
    """The first configured PACS node: (name, a client factory, why none). Reads the machine
    settings: call it from a job."""
    from core.app.pacs_audit import pacs_audit
    from core.config import ConfigError, load_settings
    from desktop.pacs_dialog import client_factory, configured_nodes

    try:
        settings = load_settings()
    except ConfigError as exc:
        return "", None, f"the settings cannot be read: {exc}"
    nodes, problem = configured_nodes(settings)
    if not nodes:
        return "", None, problem or "no PACS node is configured"
    make = client_factory(nodes, pacs_audit(ws))
    name = nodes[0].name
    return name, lambda: make(name), ""


def pacs_client(ws: Workstation, to_pacs: bool, what: str) -> PacsClient | None:
    """The client an export of ``what`` ("the report") sends with, None when it does not go
    to PACS; no node configured: ``ValueError`` saying why. A job: it reads the settings."""
    if not to_pacs:
        return None
    _name, make, why = pacs_node(ws)
    if make is None:
        raise ValueError(f"{what} cannot be sent to PACS: {why}")
    return make()


class StatusLine(Protocol):
    """The label a panel says its outcomes in (QLabel)."""

    def setText(self, text: str, /) -> None: ...
    def setStyleSheet(self, sheet: str, /) -> None: ...


REFUSED_STYLE = "color: #ff8a80;"


def say(status: StatusLine, text: str, refused: bool = False) -> bool:
    """Show ``text`` in a panel's status line (red when refused); False when refused, so a
    refusal can be returned in one line."""
    status.setStyleSheet(REFUSED_STYLE if refused else "")
    status.setText(text)
    return not refused


def failure(status: StatusLine, prefix: str) -> Callable[[BaseException], None]:
    """A job's error handler that shows ``prefix: reason`` as refused, with what the error's
    notes add (e.g. the files an export wrote before it failed)."""

    def show(exc: BaseException) -> None:
        notes = "; ".join(getattr(exc, "__notes__", ()))
        say(status, f"{prefix}: {exc}" + (f" ({notes})" if notes else ""), True)

    return show
