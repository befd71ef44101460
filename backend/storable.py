"""Values the wire schemas let through but no database column can hold.

The wire schemas (``core.sync.wire``) bound lengths and shapes; they do not say that a string
must be storable text or an integer must fit a 64-bit column. Without these checks such values
reach the database driver and come back as a 500: a NUL byte (PostgreSQL text refuses it), a lone
surrogate (``"\\ud800"`` is valid JSON, not encodable as UTF-8), an integer past 64 bits, NaN or
infinity (not JSON; PostgreSQL's json refuses it), a date that is out of range once in UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # Integer columns (rollout ids, TUF versions)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "text must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (a lone surrogate)"
    return None


def _problems(value: Any, loc: list[str | int], out: list[dict[str, Any]]) -> None:
    msg: str | None = None
    if isinstance(value, str):
        msg = _text_problem(value)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            msg = "integer out of the 64-bit range"
    elif isinstance(value, float):
        if not math.isfinite(value):
            msg = "number must be finite"
    elif isinstance(value, datetime):
        try:
            (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            msg = "date is out of range in UTC"
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _problems(getattr(value, name), [*loc, name], out)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (key_msg := _text_problem(key)):
                out.append({"loc": [*loc, key], "msg": f"key: {key_msg}"})
            _problems(item, [*loc, str(key)], out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _problems(item, [*loc, i], out)
    if msg:
        out.append({"loc": loc, "msg": msg})


def problems(body: BaseModel) -> list[dict[str, Any]]:
    """Every unstorable value in a request body, located as FastAPI locates its errors."""
    out: list[dict[str, Any]] = []
    _problems(body, ["body"], out)
    return out
