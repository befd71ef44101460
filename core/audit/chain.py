"""The hash chain: each event's hash covers the previous hash and its own canonical content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.sync.wire import GENESIS_HASH  # the genesis the backend anchors on: one constant

__all__ = ["GENESIS_HASH", "canonical", "chain_hash"]


# One encoder for every call: json.dumps(..., sort_keys=True, ...) builds a new one each time,
# and this runs several times per audit event on the append path. Same output as dumps.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(content: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 text kept as is."""
    return _ENCODER.encode(content)


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(content)).encode("utf-8")).hexdigest()
