"""DIMSE for PACS without DICOMweb: C-FIND (study root) and C-GET into the same cache (pynetdicom).

A node is written as a URL in the same ``[[pacs]]`` settings table:
``dicom://CALLED_AET@host:port?calling=OUR_AET``. C-GET (not C-MOVE) because it needs no
inbound port on the workstation: the instances come back on the association we opened.
Audited like the DICOMweb path ("Query", "DICOM Instances Transferred").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.config import PacsNode
from core.pacs import audit as A
from core.pacs.audit import AuditSink
from core.pacs.cache import PacsCache
from core.pacs.client import SeriesHit, StudyHit, StudyQuery
from core.pacs.errors import PacsConfigError, PacsError
from core.pacs.retrieve import Cancel, OnInstance, RetrieveResult, _is_cancelled, record_before

DEFAULT_CALLING_AET = "DOCTORAI"


@dataclass(frozen=True)
class DimseAddress:
    host: str
    port: int
    called_aet: str
    calling_aet: str = DEFAULT_CALLING_AET


def parse_address(node: PacsNode) -> DimseAddress:
    parts = urlsplit(node.url)
    if parts.scheme != "dicom" or not parts.hostname or not parts.port or not parts.username:
        raise PacsConfigError(
            f"PACS node '{node.name}': DIMSE URL '{node.url}' must look like "
            "dicom://CALLED_AET@host:port[?calling=OUR_AET]"
        )
    calling = parse_qs(parts.query).get("calling", [DEFAULT_CALLING_AET])[0]
    return DimseAddress(parts.hostname, parts.port, parts.username, calling)


def is_dimse(node: PacsNode) -> bool:
    return node.url.startswith("dicom://")


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value) if value is not None else ""


def _count(ds: Any, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


class DimseClient:
    """C-FIND / C-GET against one node; one association per operation."""

    def __init__(self, node: PacsNode, audit: AuditSink, timeout: float = 30.0) -> None:
        self.node = node
        self.audit = audit
        self.address = parse_address(node)
        self.timeout = timeout

    def _where(self) -> str:
        a = self.address
        return f"PACS '{self.node.name}' ({a.called_aet}@{a.host}:{a.port})"

    def _associate(self, ae: Any, **kw: Any) -> Any:
        a = self.address
        assoc = ae.associate(a.host, a.port, ae_title=a.called_aet, **kw)
        if not assoc.is_established:
            raise PacsError(f"{self._where()}: association refused or server not reachable")
        return assoc

    def _ae(self) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self.address.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        return ae

    def _find(self, level: str, keys: dict[str, str], returned: tuple[str, ...]) -> list[Any]:
        from pydicom import Dataset
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelFind as FIND,
        )

        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for keyword in returned:
            setattr(ds, keyword, "")
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
        ae = self._ae()
        ae.add_requested_context(FIND)
        assoc = self._associate(ae)
        try:
            answers = []
            for status, identifier in assoc.send_c_find(ds, FIND):
                code = int(getattr(status, "Status", 0xC000)) if status else 0xC000
                if code in (0xFF00, 0xFF01) and identifier is not None:
                    answers.append(identifier)
                elif code != 0x0000:
                    raise PacsError(f"C-FIND on {self._where()} failed with status 0x{code:04X}")
            return answers
        finally:
            assoc.release()

    def _audited(self, objects: A.AuditObjects, details: dict[str, str], run: Any) -> Any:
        try:
            result = run()
        except PacsError as exc:
            self.audit(A.QUERY, A.SERIOUS_FAILURE, objects, {**details, "error": str(exc)})
            raise
        A.record_first(  # the answers are shown only once the query is on the trail
            self.audit,
            A.QUERY,
            objects,
            {**details, "matches": str(len(result))},
            f"C-FIND on PACS '{self.node.name}' refused",
        )
        return result

    def search_studies(self, query: StudyQuery) -> list[StudyHit]:
        keys = query.filters()
        returned = (
            "StudyInstanceUID",
            "PatientName",
            "PatientID",
            "IssuerOfPatientID",
            "StudyDate",
            "AccessionNumber",
            "StudyDescription",
            "ModalitiesInStudy",
            "NumberOfStudyRelatedSeries",
            "NumberOfStudyRelatedInstances",
        )
        answers = self._audited(
            [],
            {
                "node": self.node.name,
                "level": "STUDY",
                "keys": ",".join(sorted(keys)),
                "protocol": "DIMSE",
            },
            lambda: self._find("STUDY", keys, returned),
        )
        return [
            StudyHit(
                study_uid=_text(a, "StudyInstanceUID"),
                patient_name=_text(a, "PatientName"),
                patient_id=_text(a, "PatientID"),
                study_date=_text(a, "StudyDate"),
                accession=_text(a, "AccessionNumber"),
                description=_text(a, "StudyDescription"),
                modalities=tuple(m for m in _text(a, "ModalitiesInStudy").split("\\") if m),
                series_count=_count(a, "NumberOfStudyRelatedSeries"),
                instance_count=_count(a, "NumberOfStudyRelatedInstances"),
                issuer=_text(a, "IssuerOfPatientID"),
            )
            for a in answers
        ][: query.limit]

    def search_series(self, study_uid: str) -> list[SeriesHit]:
        returned = (
            "SeriesInstanceUID",
            "Modality",
            "SeriesDescription",
            "SeriesNumber",
            "NumberOfSeriesRelatedInstances",
        )
        answers = self._audited(
            [("study", study_uid)],
            {"node": self.node.name, "level": "SERIES", "protocol": "DIMSE"},
            lambda: self._find("SERIES", {"StudyInstanceUID": study_uid}, returned),
        )
        hits = [
            SeriesHit(
                study_uid,
                _text(a, "SeriesInstanceUID"),
                _text(a, "Modality"),
                _text(a, "SeriesDescription"),
                _count(a, "SeriesNumber"),
                _count(a, "NumberOfSeriesRelatedInstances"),
            )
            for a in answers
        ]
        return sorted(hits, key=lambda h: (h.number is None, h.number or 0))

    def get_series(
        self,
        cache: PacsCache,
        study_uid: str,
        series_uid: str,
        *,
        on_instance: OnInstance | None = None,
        cancel: Cancel = None,
        expected: int | None = None,
    ) -> RetrieveResult:
        """C-GET one series into the cache; each instance is handed over as it is stored."""
        from pydicom import Dataset
        from pynetdicom import StoragePresentationContexts, build_role, evt
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelGet as GET,
        )

        start = time.perf_counter()
        result = RetrieveResult(study_uid, series_uid)
        cache.series_dir(study_uid, series_uid)
        cache.prepare()
        objects: A.AuditObjects = [("study", study_uid), ("series", series_uid)]
        details = {"node": self.node.name, "direction": "retrieve", "protocol": "DIMSE"}
        cached = cache.complete_paths(study_uid, series_uid)
        if cached is not None:
            record_before(self.audit, objects, details, series_uid, from_cache=True)
            cache.touch(study_uid, series_uid)
            result.paths, result.from_cache = cached, True
            for i, path in enumerate(cached, 1):
                if on_instance is not None:
                    on_instance(path, i, len(cached))
            return result
        record_before(self.audit, objects, details, series_uid, from_cache=False)
        cache.touch(study_uid, series_uid)
        lock = threading.Lock()
        total = expected or 0

        def on_store(event: Any) -> int:
            if _is_cancelled(cancel):
                result.cancelled = True
                return 0xA700  # refused: the user cancelled
            blob = event.encoded_dataset(include_meta=True)
            sop = str(event.request.AffectedSOPInstanceUID)
            path = cache.put(study_uid, series_uid, sop, blob)
            with lock:
                result.paths.append(Path(path))
                result.bytes += len(blob)
                if result.first_instance_s is None:
                    result.first_instance_s = time.perf_counter() - start
                done = len(result.paths)
            if on_instance is not None:
                on_instance(path, done, total)
            return 0x0000

        ae = self._ae()
        ae.add_requested_context(GET)
        contexts = StoragePresentationContexts[:120]
        roles = []
        for cx in contexts:
            ae.add_requested_context(cx.abstract_syntax)
            roles.append(build_role(str(cx.abstract_syntax), scp_role=True))
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        try:
            assoc = self._associate(ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
            try:
                failed = 0
                for status, _identifier in assoc.send_c_get(ds, GET):
                    code = int(getattr(status, "Status", 0xC000)) if status else 0xC000
                    if code in (0xA702, 0xA900, 0xC000) or (code & 0xF000) == 0xC000:
                        failed += 1
                if failed and not result.cancelled and not result.paths:
                    raise PacsError(f"C-GET of series '{series_uid}' on {self._where()} failed")
            finally:
                assoc.release()
        except PacsError as exc:
            self.audit(
                A.TRANSFERRED,
                A.SERIOUS_FAILURE,
                objects,
                {**details, "instances": str(len(result.paths)), "error": str(exc)},
            )
            raise
        result.seconds = time.perf_counter() - start
        self.audit(
            A.TRANSFERRED,
            A.MINOR_FAILURE if result.cancelled else A.SUCCESS,
            objects,
            {**details, "instances": str(len(result.paths)), "bytes": str(result.bytes)},
        )
        if not result.cancelled:
            cache.mark_complete(study_uid, series_uid, len(result.paths))
            cache.evict(keep={(study_uid, series_uid)})
        return result
