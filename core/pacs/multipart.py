"""Split a ``multipart/related`` WADO-RS response into its DICOM parts while it streams.

Written here on purpose: dicomweb-client decodes a whole response (or parses each part into a
pydicom Dataset) before handing anything over, and requests-toolbelt's decoder also wants the
whole body. The viewer needs each instance's raw bytes the moment its part has arrived.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart Content-Type header."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary":
            return value.strip().strip('"').encode("latin-1")
    raise ValueError(f"no multipart boundary in Content-Type '{content_type}'")


def iter_parts(chunks: Iterable[bytes], boundary: bytes) -> Iterator[bytes]:
    """Yield each part's body (headers stripped) as soon as its closing delimiter arrives."""
    delim = b"--" + boundary
    sep = b"\r\n" + delim
    buf = bytearray()
    pos = 0  # where the current part's headers start, once the first delimiter was seen
    started = False
    search_from = 0
    for chunk in chunks:
        buf += chunk
        if not started:
            at = buf.find(delim)
            if at < 0:
                continue
            started = True
            pos = at + len(delim)
            search_from = pos
        while True:
            if len(buf) - pos >= 2 and buf[pos : pos + 2] == b"--":
                return  # close delimiter
            head_end = buf.find(b"\r\n\r\n", pos)
            if head_end < 0:
                break
            body_start = head_end + 4
            end = buf.find(sep, max(body_start, search_from))
            if end < 0:
                search_from = max(body_start, len(buf) - len(sep))
                break
            yield bytes(buf[body_start:end])
            pos = end + len(sep)
            search_from = pos
            if pos > (1 << 20):  # drop consumed bytes so the buffer stays one part long
                del buf[:pos]
                pos = search_from = 0
    if started and len(buf) - pos >= 2 and buf[pos : pos + 2] != b"--":
        raise ValueError("multipart response ended before its closing boundary (truncated)")
