"""Serving stored artefacts with single-range HTTP Range support, so downloads can resume.

Written here rather than with Starlette's FileResponse because artefacts may live in S3.
Multi-range requests (``bytes=0-1,5-9``) are answered with the whole file, as RFC 9110 allows.
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.storage import Storage

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_BEYOND = 10**18  # past any stored size


def _position(digits: str) -> int:
    """A byte position; a number of more than 18 digits is not converted but taken as past the
    end (int() of a few thousand digits is slow, and over 4300 it raises: that was a 500)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _BEYOND


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) inclusive, None for the whole file, or "unsatisfiable"."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = _position(last)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


def serve(
    request: Request, storage: Storage, key: str, size: int, sha256: str, media_type: str
) -> Response:
    etag = f'"{sha256}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag}
    wanted = parse_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != etag:
        wanted = None  # the file changed since the partial download: send it whole
    if wanted == "unsatisfiable":
        return JSONResponse(
            {
                "error": {
                    "code": "range_not_satisfiable",
                    "message": f"the requested range is outside the file ({size} bytes)",
                    "data": {"size": size},
                }
            },
            status_code=416,
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    if wanted is None:
        start, end, status = 0, size - 1, 200
    else:
        assert isinstance(wanted, tuple)
        start, end = wanted
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        storage.iter_range(key, start, end),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )
