"""The hash chain: each event's hash covers the previous hash and its own canonical content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64  # the same genesis the backend anchors on (core.sync.wire.GENESIS_HASH)


def canonical(content: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 text kept as is."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(content)).encode("utf-8")).hexdigest()
