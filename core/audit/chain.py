"""The chain: each event's hash covers the previous hash and its own canonical content, as an
HMAC-SHA-256 under the trail's chain key (core.audit.chain_key), or plain SHA-256 for the events
of a trail from before keyed chains."""

from __future__ import annotations

import hashlib
import hmac
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


def chain_hash(prev_hash: str, content: dict[str, Any], key: bytes = b"") -> str:
    """The link of one event: keyed when ``key`` is given (hmac.digest: the one-shot C path)."""
    message = (prev_hash + canonical(content)).encode("utf-8")
    if key:
        return hmac.digest(key, message, "sha256").hex()
    return hashlib.sha256(message).hexdigest()
