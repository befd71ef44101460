"""Display order of the frames of an enhanced multi-frame image (CT/MR): along the slice normal.

Enhanced files may store frames in any order; each frame's place in space is in its
PlanePositionSequence (per-frame functional groups). A file can also hold several stacks in one
(e.g. magnitude and field map, echoes, time points) whose frames share positions: sorting all
frames by position would interleave them. So frames are grouped by their Dimension Index Values
without the spatial dimensions (In-Stack Position Number, Image Position), groups keep the order
in which they first appear, and only frames within a group are sorted by position. If a group
still has two frames at one position (a stack the dimensions do not tell apart), the order is
ambiguous and the file order is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Dimension Index Pointers that say "where in the stack": dropped from the group key.
SPATIAL_POINTERS = frozenset(
    {
        0x00209057,  # In-Stack Position Number
        0x00200032,  # Image Position (Patient)
        0x00201041,  # Slice Location
    }
)
GroupKey = tuple[str, ...]


def frame_order(
    positions: Sequence[Sequence[float]] | None,
    orientation: Sequence[float] | None,
    groups: Sequence[GroupKey] | None = None,
) -> tuple[int, ...] | None:
    """File frame numbers in display order, or None when the file order is kept (no geometry,
    already in order, or ambiguous; see module docstring)."""
    if positions is None or orientation is None or len(positions) < 2 or len(orientation) != 6:
        return None
    n = len(positions)
    keys: Sequence[GroupKey] = groups if groups is not None and len(groups) == n else [()] * n
    o = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(o[:3], o[3:])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        return None
    normal /= norm
    dist = [round(float(np.dot(np.asarray(p, dtype=np.float64), normal)), 4) for p in positions]
    rank: dict[GroupKey, int] = {}
    seen: set[tuple[GroupKey, float]] = set()
    for key, d in zip(keys, dist, strict=True):
        rank.setdefault(key, len(rank))
        if (key, d) in seen:
            return None
        seen.add((key, d))
    order = sorted(range(n), key=lambda f: (rank[keys[f]], dist[f], f))
    return None if order == list(range(n)) else tuple(order)


def group_keys(ds: Any, frames: int) -> list[GroupKey] | None:
    """Per frame, its Dimension Index Values without the spatial dimensions (``ds`` a pydicom
    Dataset); else its Stack ID and Temporal Position Index; None without per-frame groups."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame or len(per_frame) < frames:
        return None
    spatial: set[int] = set()
    for i, item in enumerate(ds.get("DimensionIndexSequence") or []):
        pointer = item.get("DimensionIndexPointer")
        if pointer is not None and int(pointer) in SPATIAL_POINTERS:
            spatial.add(i)
    keys: list[GroupKey] = []
    for f in range(frames):
        content = per_frame[f].get("FrameContentSequence")
        fc = content[0] if content else None
        values = fc.get("DimensionIndexValues") if fc is not None else None
        if values is not None:
            vals = list(values) if isinstance(values, Sequence) else [values]
            keys.append(tuple(str(v) for i, v in enumerate(vals) if i not in spatial))
        elif fc is not None:
            keys.append((str(fc.get("StackID", "")), str(fc.get("TemporalPositionIndex", ""))))
        else:
            keys.append(())
    return keys
