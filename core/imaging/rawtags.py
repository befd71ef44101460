"""Typed access to simple header values, straight from raw bytes where possible.

Deliberately hand-written: indexing touches ~35 plain tags per file (UIDs, numbers, geometry),
and pydicom's per-element value conversion costs more than parsing the file. ASCII-only VRs
(UI, CS, DS, IS, DA, TM, AS), binary US and text in the common character sets are decoded
here. Two back-ends: ``RawTags`` over a pydicom Dataset (its raw, not yet converted elements),
``ScanTags`` over the bytes kept by ``core.imaging.scan``.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

# Specific Character Set values whose text a Python codec decodes exactly (single-valued only;
# anything else, e.g. ISO 2022 code extensions, goes through pydicom).
CODECS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}


def _split(value: bytes) -> list[str]:
    text = value.decode("ascii", "replace").rstrip("\x00 ")
    return [v.strip(" \x00") for v in text.split("\\")] if text else []


class Tags:
    """The typed accessors; subclasses supply ``strings``, ``us``, ``person_text``, ``has``."""

    def strings(self, tag: int) -> list[str]:
        raise NotImplementedError

    def us(self, tag: int) -> int | None:
        raise NotImplementedError

    def person_text(self, tag: int, keyword: str) -> str:
        raise NotImplementedError

    def has(self, tag: int) -> bool:
        raise NotImplementedError

    def text(self, tag: int) -> str:
        return "\\".join(self.strings(tag))

    def floats(self, tag: int) -> list[float]:
        out = []
        for v in self.strings(tag):
            try:
                out.append(float(v))
            except ValueError:
                continue
        return out

    def int_(self, tag: int) -> int | None:
        values = self.floats(tag)
        return int(values[0]) if values else None


class RawTags(Tags):
    """Over a pydicom Dataset: raw elements decoded here, converted ones read as they are."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._codec: str | bool | None = False  # False: not looked up yet

    def _raw(self, tag: int) -> Any:
        try:
            return self.ds.get_item(tag)
        except KeyError:
            return None

    def has(self, tag: int) -> bool:
        return tag in self.ds

    def strings(self, tag: int) -> list[str]:
        elem = self._raw(tag)
        if elem is None:
            return []
        value = elem.value
        if isinstance(elem, RawDataElement):
            return [] if value is None else _split(bytes(value))
        if value is None or value == "":
            return []
        if isinstance(value, list | tuple | MultiValue):
            return [str(v).strip() for v in value]
        return [str(value).strip()]

    def us(self, tag: int) -> int | None:
        elem = self._raw(tag)
        if elem is None:
            return None
        if isinstance(elem, RawDataElement):
            if not elem.value or len(elem.value) < 2:
                return None
            return int(struct.unpack("<H" if elem.is_little_endian else ">H", elem.value[:2])[0])
        value = elem.value
        if isinstance(value, list | tuple | MultiValue):
            value = value[0] if value else None
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def _text_codec(self) -> str | None:
        if self._codec is False:
            charsets = self.strings(0x00080005)
            self._codec = CODECS.get(
                charsets[0] if len(charsets) == 1 else ("" if not charsets else "?")
            )
        return self._codec if isinstance(self._codec, str) else None

    def person_text(self, tag: int, keyword: str) -> str:
        """Text of a charset-dependent VR (LO, SH, PN): decoded here for the common single-byte
        and UTF-8 character sets, by pydicom otherwise."""
        elem = self._raw(tag)
        if elem is None:
            return ""
        codec = self._text_codec()
        if isinstance(elem, RawDataElement) and codec is not None and elem.value is not None:
            try:
                return bytes(elem.value).decode(codec).strip(" \x00")
            except UnicodeDecodeError:
                pass
        value = self.ds.get(keyword, "")
        return "" if value is None else str(value).strip()


class ScanTags(Tags):
    """Over the raw values kept by the header scanner (little endian, known charset)."""

    def __init__(self, values: dict[int, bytes], present: frozenset[int], codec: str) -> None:
        self.values = values
        self.present = present
        self.codec = codec

    def has(self, tag: int) -> bool:
        return tag in self.values or tag in self.present

    def strings(self, tag: int) -> list[str]:
        value = self.values.get(tag)
        return [] if value is None else _split(value)

    def us(self, tag: int) -> int | None:
        value = self.values.get(tag)
        if value is None or len(value) < 2:
            return None
        return int(struct.unpack("<H", value[:2])[0])

    def person_text(self, tag: int, keyword: str) -> str:
        value = self.values.get(tag)
        if value is None:
            return ""
        return value.decode(self.codec, "replace").strip(" \x00")
