"""The operator page's session: an admin access token in a cookie, and CSRF tokens.

The cookie holds the same short-lived admin token that ``POST /api/v1/admin/session`` issues
(``amr`` = pwd + otp), so the page needs no session table and ``deps.admin`` decides exactly as
for the API (second factor required, a disabled admin refused at once). It is HttpOnly,
SameSite=Strict, scoped to ``/operator`` and Secure whenever the request came over TLS (the
scheme uvicorn takes from a trusted proxy's X-Forwarded-Proto).

CSRF: every POST form carries a token that is an HMAC of the session token's ``jti`` (or, for
the sign-in form, of a random pre-session cookie), under a key derived from the JWT secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import jwt
from fastapi import Request
from fastapi.responses import Response

from backend.auth import AuthError
from backend.deps import ApiError, BackendState, admin

COOKIE = "doctorai_operator"
PRE_COOKIE = "doctorai_operator_pre"
PATH = "/operator"


def _key(st: BackendState) -> bytes:
    return hmac.new(
        st.tokens.secret.encode(), b"doctorai operator csrf v1", hashlib.sha256
    ).digest()


def csrf_for(st: BackendState, binding: str) -> str:
    return hmac.new(_key(st), binding.encode(), hashlib.sha256).hexdigest()


def csrf_ok(st: BackendState, binding: str | None, sent: str | None) -> bool:
    if not binding or not sent:
        return False
    return hmac.compare_digest(csrf_for(st, binding), sent)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )


def pre_session(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF binding: (value, whether it is new and must be set)."""
    value = request.cookies.get(PRE_COOKIE)
    if value and 20 <= len(value) <= 64:
        return value, False
    return secrets.token_urlsafe(24), True


def signed_in(st: BackendState, request: Request) -> tuple[str, str] | None:
    """(admin name, session binding) for a valid session cookie; None otherwise."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 4096:
        return None
    try:
        p = st.tokens.principal(token)
        name = admin(p, st)
        jti = jwt.decode(token, options={"verify_signature": False}).get("jti")
    except (AuthError, ApiError, jwt.PyJWTError):
        return None
    if not isinstance(jti, str) or not jti:
        return None
    return name, jti
