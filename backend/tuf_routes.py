"""TUF repository over HTTP: ``/tuf/metadata/`` (versioned roles) and ``/tuf/targets/``.

``/tuf/metadata/`` is public on purpose: it is signed, not secret (hashes, lengths, versions
and expiry of what is published), the TUF client verifies all of it, and a refresh must work
before a workstation has signed in. ``/tuf/targets/`` serves the packages themselves, which may
be licensed and are the hospital's asset: like ``/api/v1/models``, only an enrolled workstation
whose device is not revoked (the revoked flag read per request, ``fleet_api.active_device``) or
an admin gets them; anyone else gets 401 in the API's error shape before any file is looked up.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from backend.auth import Principal
from backend.deps import ApiError, BackendState, admin, db_session, principal, state
from backend.downloads import serve
from backend.fleet_api import active_device
from backend.storable import INT32_MAX
from backend.tuf_repo import TufRepository, find_target

router = APIRouter(prefix="/tuf", tags=["tuf"])
# ASCII digits, at most 10 of them (TufMetadata.version is an Integer column): a longer number
# went to int() (over 4300 digits: ValueError) or to the database (overflow): a 500 either way
_VERSIONED = re.compile(r"^(?:([0-9]{1,10})\.)?(root|targets|snapshot|timestamp)\.json$")
MAX_TARGET_PATH = 1024  # target paths are at most 512 characters, plus the hash prefix


def target_reader(
    p: Principal = Depends(principal),  # noqa: B008
    st: BackendState = Depends(state),  # noqa: B008
) -> str:
    """Who may download targets: an admin (``deps.admin``'s checks, MFA included) or an
    enrolled, non-revoked workstation (``active_device``: the role check, the per-device rate
    limit and the revoked flag read per request). ``principal`` already refused a missing,
    forged or expired token with 401."""
    if p.role == "admin":
        return admin(p, st)
    return active_device(p, st)


@router.get("/metadata/{name}")
def metadata(name: str, session: Session = Depends(db_session)) -> Response:  # noqa: B008
    m = _VERSIONED.fullmatch(name)
    version = int(m.group(1)) if m and m.group(1) else None
    if m is None or (m.group(2) == "timestamp" and m.group(1)) or (version or 0) > INT32_MAX:
        raise ApiError(404, "not_found", f"no TUF metadata named {name[:200]!r}")
    body = TufRepository.get(session, m.group(2), version)
    if body is None:
        raise ApiError(404, "not_found", f"TUF metadata {name!r} does not exist")
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/targets/{path:path}")
@router.head("/targets/{path:path}", include_in_schema=False)
def target(
    path: str,
    request: Request,
    # first: a refused token never reaches the database's target lookup or the file
    _reader: str = Depends(target_reader),
    session: Session = Depends(db_session),  # noqa: B008
    st: BackendState = Depends(state),  # noqa: B008
) -> Response:
    printable = path.isprintable() and len(path) <= MAX_TARGET_PATH
    row = find_target(session, path) if printable else None  # no NUL to PostgreSQL
    if row is None:
        raise ApiError(404, "not_found", f"no TUF target at {path[:200]!r}")
    custom = row.custom or {}
    if custom.get("kind") == "model" and request.method == "GET":
        st.metrics.downloads.labels(custom.get("model_id", "?"), custom.get("version", "?")).inc()
    return serve(
        request, st.storage, row.storage_key, row.length, row.sha256, "application/octet-stream"
    )
