"""A minimal DICOM header scanner: the fast path of indexing.

Deliberately hand-written. pydicom builds a full Dataset (every element, every sequence item)
for each header; indexing needs ~35 top-level values. This walks the top-level elements of a
little-endian file held in memory, keeps the raw bytes of the wanted tags, skips everything else
by length (sequences of undefined length by walking their items), and stops at Pixel Data.
Whatever it does not handle (big endian, deflate, enhanced multi-frame functional groups, code
extension character sets, anything odd or cut off) returns None, and the caller uses pydicom.
Tests check that both paths index every shared file identically.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from core.imaging.rawtags import CODECS

IMPLICIT_LE = "1.2.840.10008.1.2"
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
# Presence of these sends the file to pydicom (nested values are needed).
FALLBACK_TAGS = frozenset({0x52009229, 0x52009230})  # Shared / Per-frame Functional Groups
FLAG_TAGS = frozenset({0x00283000, 0x00283010})  # Modality LUT Sequence, VOI LUT Sequence
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_TAG = struct.Struct("<HH")


class _Unsupported(Exception):
    """Internal: hand the file to pydicom."""


@dataclass(frozen=True)
class Scanned:
    transfer_syntax: str
    values: dict[int, bytes]  # wanted top-level tags -> raw value bytes
    present: frozenset[int]  # FLAG_TAGS found
    pixel_tag_offset: int | None  # file offset of the Pixel Data element, None if none
    codec: str  # Python codec for charset-dependent text


def _tag(buf: bytes, pos: int) -> int:
    group, elem = _TAG.unpack_from(buf, pos)
    return int((group << 16) | elem)


def _element(buf: bytes, pos: int, implicit: bool) -> tuple[int, int, int]:
    """(tag, value offset, value length) of the element at pos."""
    if pos + 8 > len(buf):
        raise _Unsupported
    tag = _tag(buf, pos)
    if implicit or (tag >> 16) == 0xFFFE:
        return tag, pos + 8, int(_U32.unpack_from(buf, pos + 4)[0])
    vr = buf[pos + 4 : pos + 6]
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            raise _Unsupported
        return tag, pos + 12, int(_U32.unpack_from(buf, pos + 8)[0])
    return tag, pos + 8, int(_U16.unpack_from(buf, pos + 6)[0])


def _skip_undefined(buf: bytes, pos: int, implicit: bool, depth: int = 0) -> int:
    """Offset after a sequence of undefined length whose items start at pos."""
    if depth > 16:
        raise _Unsupported
    while True:
        tag, value, length = _element(buf, pos, True)
        if tag == _SEQ_END:
            return value
        if tag != _ITEM:
            raise _Unsupported
        if length != 0xFFFFFFFF:
            pos = value + length
            continue
        pos = value  # an item of undefined length: its elements until the item delimiter
        while True:
            tag, value, length = _element(buf, pos, implicit)
            if tag == _ITEM_END:
                pos = value
                break
            if length == 0xFFFFFFFF:
                pos = _skip_undefined(buf, value, implicit, depth + 1)
            else:
                pos = value + length
            if pos > len(buf):
                raise _Unsupported


def _meta(buf: bytes) -> tuple[str, int]:
    """(transfer syntax, offset of the dataset) from the File Meta Information group."""
    pos = 132
    ts = ""
    while pos + 8 <= len(buf) and _U16.unpack_from(buf, pos)[0] == 0x0002:
        tag, value, length = _element(buf, pos, False)
        if length == 0xFFFFFFFF or value + length > len(buf):
            raise _Unsupported
        if tag == 0x00020010:
            ts = buf[value : value + length].decode("ascii", "replace").strip(" \x00")
        pos = value + length
    if not ts:
        raise _Unsupported
    return ts, pos


def scan(buf: bytes, wanted: frozenset[int], whole_file: bool) -> Scanned | None:
    """Scan a header held in ``buf`` (the file's first bytes, or all of it if ``whole_file``)."""
    try:
        if buf[128:132] != b"DICM":
            return None
        ts, pos = _meta(buf)
        # Encapsulated syntaxes are explicit VR little endian too; BE and deflate go to pydicom.
        if ts in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"):
            return None
        implicit = ts == IMPLICIT_LE
        values: dict[int, bytes] = {}
        present: set[int] = set()
        pixel: int | None = None
        while pos < len(buf):
            tag, value, length = _element(buf, pos, implicit)
            if tag in _PIXEL_TAGS:
                pixel = pos
                break
            if tag in FALLBACK_TAGS or (tag >> 16) == 0xFFFE:
                return None
            if tag in FLAG_TAGS:
                present.add(tag)
            if length == 0xFFFFFFFF:
                pos = _skip_undefined(buf, value, implicit)
                continue
            end = value + length
            if end > len(buf):
                return None
            if tag in wanted:
                values[tag] = buf[value:end]
            pos = end
        if pixel is None and not whole_file:
            return None  # the header did not fit in the prefix
        charset = values.get(0x00080005, b"").decode("ascii", "replace").strip(" \x00")
        codec = CODECS.get(charset)
        if codec is None:
            return None
        return Scanned(ts, values, frozenset(present), pixel, codec)
    except (_Unsupported, struct.error):
        return None
