"""Serving stored artefacts with single-range HTTP Range support, so downloads can resume.

Written here rather than with Starlette's FileResponse because artefacts may live in S3.
Multi-range requests (``bytes=0-1,5-9``) are answered with the whole file, as RFC 9110 allows.
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from backend.storage import Storage

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) inclusive, None for the whole file, or "unsatisfiable"."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
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
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
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
