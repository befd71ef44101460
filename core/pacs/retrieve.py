"""Retrieve a series into the cache, handing over each instance as soon as it is on disk.

The viewer opens the first arrived instance at once and the rest as they come, so a radiologist
sees an image long before a 400-slice series has finished. One streamed WADO-RS request per
series (no per-instance round trips); a series already complete in the cache is not fetched
again.

Audit first: "Begin Transferring DICOM Instances" is recorded before the first byte is fetched,
and "DICOM Instances Accessed" before a series already in the cache is handed over; when the
trail cannot record it the retrieve is refused (``AuditRefusedError``), nothing is written to
the cache nor shown. The end of each transfer is recorded as "DICOM Instances Transferred"
with its outcome, also when it fails.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.pacs import audit as A
from core.pacs.cache import PacsCache
from core.pacs.client import PacsClient
from core.pacs.errors import PacsError

if TYPE_CHECKING:
    from core.pacs.dimse import DimseClient

# (path, instances done, instances expected or 0 when the server did not say)
OnInstance = Callable[[Path, int, int], None]
Cancel = Callable[[], bool] | threading.Event | None


@dataclass
class RetrieveResult:
    study_uid: str
    series_uid: str
    paths: list[Path] = field(default_factory=list)
    from_cache: bool = False
    cancelled: bool = False
    bytes: int = 0
    seconds: float = 0.0
    first_instance_s: float | None = None  # time until the first instance was on disk


def _is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def sop_uid_of(blob: bytes) -> str:
    """The SOP Instance UID of one Part 10 file (reads the header only)."""
    from core.imaging.sources import read_dicom  # a deflated part is inflated bounded

    ds, _ = read_dicom(io.BytesIO(blob), stop_before_pixels=True)
    uid = str(getattr(ds, "SOPInstanceUID", ""))
    if not uid:
        raise ValueError("a retrieved part has no SOP Instance UID")
    return uid


def record_before(
    sink: A.AuditSink,
    objects: A.AuditObjects,
    details: dict[str, str],
    series_uid: str,
    *,
    from_cache: bool,
) -> None:
    """The retrieve's first audit event, before anything is fetched or handed over (raises
    ``AuditRefusedError`` when the trail cannot take it)."""
    event = A.ACCESSED if from_cache else A.BEGIN_TRANSFER
    extra = {"source": "pacs-cache"} if from_cache else {}
    A.record_first(
        sink,
        event,
        objects,
        {**details, **extra},
        f"retrieve of series '{series_uid}' from PACS '{details['node']}' refused",
    )


def retrieve_series(
    client: PacsClient | DimseClient,
    cache: PacsCache,
    study_uid: str,
    series_uid: str,
    *,
    on_instance: OnInstance | None = None,
    cancel: Cancel = None,
    expected: int | None = None,
) -> RetrieveResult:
    """Fetch one series (or take it from the cache); ``on_instance`` runs in this thread."""
    if not isinstance(client, PacsClient):  # a DIMSE node: C-GET
        return client.get_series(
            cache, study_uid, series_uid, on_instance=on_instance, cancel=cancel, expected=expected
        )
    start = time.perf_counter()
    result = RetrieveResult(study_uid, series_uid)
    cache.series_dir(study_uid, series_uid)  # validates both UIDs before any request
    cache.prepare()  # the cache's key, before the PACS is asked for anything
    objects: A.AuditObjects = [("study", study_uid), ("series", series_uid)]
    details = {"node": client.node.name, "direction": "retrieve"}
    cached = cache.complete_paths(study_uid, series_uid)
    if cached is not None:
        record_before(client.audit, objects, details, series_uid, from_cache=True)
        cache.touch(study_uid, series_uid)
        result.paths, result.from_cache = cached, True
        for i, path in enumerate(cached, 1):
            if on_instance is not None:
                on_instance(path, i, len(cached))
        result.seconds = time.perf_counter() - start
        return result
    record_before(client.audit, objects, details, series_uid, from_cache=False)
    cache.touch(study_uid, series_uid)
    total = expected or 0
    try:
        for blob in client.stream_series(study_uid, series_uid):
            if _is_cancelled(cancel):
                result.cancelled = True
                break
            try:
                sop = sop_uid_of(blob)
            except Exception as exc:  # pydicom raises many types on bad bytes
                raise PacsError(
                    f"PACS '{client.node.name}' sent a part of series '{series_uid}' that is "
                    f"not DICOM: {exc}"
                ) from exc
            path = cache.put(study_uid, series_uid, sop, blob)
            result.paths.append(path)
            result.bytes += len(blob)
            if result.first_instance_s is None:
                result.first_instance_s = time.perf_counter() - start
            if on_instance is not None:
                on_instance(path, len(result.paths), total)
    except PacsError as exc:
        result.seconds = time.perf_counter() - start
        client.audit(
            A.TRANSFERRED,
            A.SERIOUS_FAILURE,
            objects,
            {**details, "instances": str(len(result.paths)), "error": str(exc)},
        )
        raise
    result.seconds = time.perf_counter() - start
    outcome = A.MINOR_FAILURE if result.cancelled else A.SUCCESS
    client.audit(
        A.TRANSFERRED,
        outcome,
        objects,
        {
            **details,
            "instances": str(len(result.paths)),
            "bytes": str(result.bytes),
            **({"cancelled": "true"} if result.cancelled else {}),
        },
    )
    if not result.cancelled:
        cache.mark_complete(study_uid, series_uid, len(result.paths))
        cache.evict(keep={(study_uid, series_uid)})
    return result


def retrieve_study(
    client: PacsClient | DimseClient,
    cache: PacsCache,
    study_uid: str,
    *,
    on_instance: OnInstance | None = None,
    cancel: Cancel = None,
) -> list[RetrieveResult]:
    """Every series of a study, largest first (the one the viewer opens first)."""
    series = client.search_series(study_uid)
    series.sort(key=lambda s: -(s.instance_count or 0))
    results = []
    for hit in series:
        if _is_cancelled(cancel):
            break
        results.append(
            retrieve_series(
                client,
                cache,
                study_uid,
                hit.series_uid,
                on_instance=on_instance,
                cancel=cancel,
                expected=hit.instance_count,
            )
        )
    return results
