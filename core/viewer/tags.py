"""The DICOM header of one instance as rows for the tag browser (runs in a worker).

Rows are flat with a depth so any view (tree, table, text) can show nested sequences.
Identifying values are masked when asked to (the viewer's hide-PHI toggle).
"""

from __future__ import annotations

from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from core.imaging.sources import read_dataset
from core.viewer.phi import HIDDEN, is_phi_element

MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class TagRow:
    tag: str  # "(0010,0010)"
    keyword: str  # "PatientName", or the private/unknown description
    vr: str
    value: str
    depth: int  # 0 for top-level elements, +1 inside each sequence item


def _value_text(elem: pydicom.DataElement) -> str:
    try:
        if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
            size = len(elem.value) if elem.value is not None else 0
            return f"<{size} bytes>"
        text = str(elem.value)
    except (OSError, ValueError) as exc:  # a deferred value whose source is gone
        return f"<not read: {type(exc).__name__}>"
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _rows(ds: Dataset, depth: int, hide_phi: bool, out: list[TagRow]) -> None:
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        name = elem.keyword or elem.name
        if elem.VR == "SQ":
            out.append(TagRow(tag, name, "SQ", f"{len(elem.value)} item(s)", depth))
            for i, item in enumerate(elem.value):
                out.append(TagRow("", f"Item {i + 1}", "", "", depth + 1))
                _rows(item, depth + 2, hide_phi, out)
            continue
        hide = (
            hide_phi
            and bool(elem.value)
            and is_phi_element(elem.tag.group, elem.keyword, str(elem.VR), elem.tag.is_private)
        )
        value = HIDDEN if hide else _value_text(elem)
        out.append(TagRow(tag, name, str(elem.VR), value, depth))


def header_rows(path: str, hide_phi: bool = False) -> list[TagRow]:
    """All header elements (file meta first) of the file at ``path``.

    Raises ``ValueError`` naming the file when it is not a readable DICOM header.
    Deferred (large) values are shown as their size, never loaded.
    """
    ds = read_dataset(path, stop_before_pixels=True)  # follows archive.zip::member paths
    rows: list[TagRow] = []
    if ds.file_meta is not None:
        _rows(ds.file_meta, 0, hide_phi, rows)
    _rows(ds, 0, hide_phi, rows)
    return rows
