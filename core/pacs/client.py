"""DICOMweb against one PACS node: QIDO-RS search, streamed WADO-RS retrieve, STOW-RS store.

Stores go through ``dicomweb-client``. Searches are plain requests: dicomweb-client
percent-encodes the ``*`` of wildcard matches, which some servers (Orthanc 1.10) then match
literally; ``*`` is legal in a query string, so it is sent as is. A retrieve streams the
multipart response itself (core.pacs.multipart) so each instance is usable on arrival. Every
search is audited as "Query" (what was asked, how many answers; failure outcomes too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from core.config import PacsNode
from core.pacs import audit as A
from core.pacs.audit import AuditSink
from core.pacs.cache import check_uid
from core.pacs.errors import PacsAuthError, PacsError
from core.pacs.multipart import boundary_of, iter_parts
from core.pacs.nodes import make_session

if TYPE_CHECKING:
    import pydicom
    import requests
    from dicomweb_client import DICOMwebClient

WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
STUDY_FIELDS = (
    "IssuerOfPatientID",  # priors match Patient ID and issuer (core.studies.priors)
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_FIELDS = ("SeriesDescription", "NumberOfSeriesRelatedInstances", "SeriesNumber")


@dataclass(frozen=True)
class StudyQuery:
    """What the search dialog asks for; empty fields do not filter."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    date_from: date | None = None
    date_to: date | None = None
    modality: str = ""
    limit: int = 200

    def filters(self) -> dict[str, str]:
        f: dict[str, str] = {}
        if self.patient_name:
            name = self.patient_name.strip()
            f["PatientName"] = name if any(c in name for c in "*?") else f"*{name}*"
        if self.patient_id:
            f["PatientID"] = self.patient_id.strip()
        if self.accession:
            f["AccessionNumber"] = self.accession.strip()
        if self.date_from or self.date_to:
            lo = self.date_from.strftime("%Y%m%d") if self.date_from else ""
            hi = self.date_to.strftime("%Y%m%d") if self.date_to else ""
            f["StudyDate"] = f"{lo}-{hi}"
        if self.modality:
            f["ModalitiesInStudy"] = self.modality.strip().upper()
        return f


@dataclass(frozen=True)
class StudyHit:
    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    accession: str
    description: str
    modalities: tuple[str, ...]
    series_count: int | None
    instance_count: int | None
    issuer: str = ""  # Issuer of Patient ID ("" when the study has none)


@dataclass(frozen=True)
class SeriesHit:
    study_uid: str
    series_uid: str
    modality: str
    description: str
    number: int | None
    instance_count: int | None


def _values(item: dict[str, Any], tag: str) -> list[Any]:
    return list(item.get(tag, {}).get("Value", []))


def _first(item: dict[str, Any], tag: str) -> str:
    vals = _values(item, tag)
    if not vals:
        return ""
    v = vals[0]
    if isinstance(v, dict):  # PN: {"Alphabetic": "Doe^John"}
        return str(v.get("Alphabetic", ""))
    return str(v)


def _int(item: dict[str, Any], tag: str) -> int | None:
    v = _first(item, tag)
    try:
        return int(v)
    except ValueError:
        return None


class PacsClient:
    """One node. Thread-safe enough for one search and one retrieve at a time per instance."""

    def __init__(
        self,
        node: PacsNode,
        audit: AuditSink,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.node = node
        self.audit = audit
        self.timeout = timeout
        self.session = session or make_session(node)
        self.base = node.url.rstrip("/")
        self._dw: DICOMwebClient | None = None

    @property
    def dicomweb(self) -> DICOMwebClient:
        if self._dw is None:
            from dicomweb_client import DICOMwebClient

            self._dw = DICOMwebClient(self.base, session=self.session, timeout=self.timeout)
            # its default retries any exception with back-off (30 s for a server that is down);
            # the user sees the failure at once and retries by hand instead
            self._dw.set_http_retry_params(retry=False)
        return self._dw

    def close(self) -> None:
        self.session.close()

    # --- error translation -----------------------------------------------------------------
    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        import requests

        where = f"PACS '{self.node.name}' ({self.base})"
        try:
            yield
        except requests.exceptions.SSLError as exc:
            raise PacsError(f"{what} on {where}: TLS certificate not trusted ({exc})") from exc
        except requests.exceptions.ConnectionError as exc:
            raise PacsError(f"{what} on {where}: server not reachable ({exc})") from exc
        except requests.exceptions.Timeout as exc:
            raise PacsError(f"{what} on {where}: no answer within {self.timeout} s") from exc
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            if code in (401, 403):
                raise PacsAuthError(f"{what} on {where}: access denied (HTTP {code})") from exc
            raise PacsError(f"{what} on {where}: HTTP {code} ({exc})") from exc
        except requests.exceptions.RequestException as exc:
            raise PacsError(f"{what} on {where}: {exc}") from exc
        except (ValueError, TypeError) as exc:  # malformed multipart / DICOM JSON
            raise PacsError(f"{what} on {where}: bad response ({exc})") from exc

    def _audited_query(
        self, what: str, objects: A.AuditObjects, details: dict[str, str], run: Callable[[], Any]
    ) -> Any:
        try:
            with self._errors(what):
                result = run()
        except PacsError as exc:
            self.audit(A.QUERY, A.SERIOUS_FAILURE, objects, {**details, "error": str(exc)})
            raise
        # the answers (names, IDs) are shown only once the query is on the trail
        A.record_first(
            self.audit,
            A.QUERY,
            objects,
            {**details, "matches": str(len(result))},
            f"{what} on PACS '{self.node.name}' refused",
        )
        return result

    # --- QIDO-RS ---------------------------------------------------------------------------
    def _qido(self, resource: str, params: dict[str, str], fields: Sequence[str]) -> Any:
        from urllib.parse import urlencode

        pairs = [*params.items(), *(("includefield", f) for f in fields)]
        url = f"{self.base}/{resource}"
        if pairs:
            url += "?" + urlencode(pairs, safe="*?,")
        response = self.session.get(
            url, headers={"Accept": "application/dicom+json"}, timeout=self.timeout
        )
        response.raise_for_status()
        if response.status_code == 204 or not response.content:
            return []
        data = response.json()
        if not isinstance(data, list):
            raise TypeError("QIDO-RS answer is not a JSON array")
        return data

    def search_studies(self, query: StudyQuery) -> list[StudyHit]:
        filters = query.filters()
        raw: list[dict[str, Any]] = self._audited_query(
            "study search",
            [],
            {"node": self.node.name, "level": "STUDY", "keys": ",".join(sorted(filters))},
            lambda: self._qido("studies", {**filters, "limit": str(query.limit)}, STUDY_FIELDS),
        )
        return [
            StudyHit(
                study_uid=_first(r, "0020000D"),
                patient_name=_first(r, "00100010"),
                patient_id=_first(r, "00100020"),
                study_date=_first(r, "00080020"),
                accession=_first(r, "00080050"),
                description=_first(r, "00081030"),
                modalities=tuple(str(m) for m in _values(r, "00080061")),
                series_count=_int(r, "00201206"),
                instance_count=_int(r, "00201208"),
                issuer=_first(r, "00100021"),
            )
            for r in raw
        ]

    def search_series(self, study_uid: str, series_uid: str = "") -> list[SeriesHit]:
        check_uid(study_uid, "Study Instance UID")
        filters = {"SeriesInstanceUID": check_uid(series_uid)} if series_uid else {}
        raw: list[dict[str, Any]] = self._audited_query(
            f"series search in study '{study_uid}'",
            [("study", study_uid)],
            {"node": self.node.name, "level": "SERIES"},
            lambda: self._qido(f"studies/{study_uid}/series", filters, SERIES_FIELDS),
        )
        hits = [
            SeriesHit(
                study_uid=study_uid,
                series_uid=_first(r, "0020000E"),
                modality=_first(r, "00080060"),
                description=_first(r, "0008103E"),
                number=_int(r, "00200011"),
                instance_count=_int(r, "00201209"),
            )
            for r in raw
        ]
        return sorted(hits, key=lambda h: (h.number is None, h.number or 0))

    def search_instances(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS instance level (raw DICOM JSON), e.g. to read back what was stored."""
        result: list[dict[str, Any]] = self._audited_query(
            f"instance search in series '{series_uid}'",
            [("study", study_uid), ("series", series_uid)],
            {"node": self.node.name, "level": "IMAGE"},
            lambda: self._qido(f"studies/{study_uid}/series/{series_uid}/instances", {}, ()),
        )
        return result

    # --- WADO-RS ---------------------------------------------------------------------------
    def stream_series(
        self, study_uid: str, series_uid: str, chunk_size: int = 1 << 18
    ) -> Iterator[bytes]:
        """Yield the raw bytes of each instance of a series as it arrives (as stored: no
        transcoding). Not audited here: ``core.pacs.retrieve`` audits the whole transfer."""
        check_uid(study_uid, "Study Instance UID")
        check_uid(series_uid, "Series Instance UID")
        url = f"{self.base}/studies/{study_uid}/series/{series_uid}"
        with self._errors(f"retrieve of series '{series_uid}'"):
            response = self.session.get(
                url, headers={"Accept": WADO_ACCEPT}, stream=True, timeout=self.timeout
            )
            try:
                response.raise_for_status()
                boundary = boundary_of(response.headers.get("Content-Type", ""))
                yield from iter_parts(response.iter_content(chunk_size), boundary)
            finally:
                response.close()

    def retrieve_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> pydicom.Dataset:
        """One instance as a pydicom Dataset (read-back checks, small objects such as SR)."""
        with self._errors(f"retrieve of instance '{sop_uid}'"):
            ds: pydicom.Dataset = self.dicomweb.retrieve_instance(study_uid, series_uid, sop_uid)
        return ds

    # --- STOW-RS ---------------------------------------------------------------------------
    def store(self, datasets: Sequence[pydicom.Dataset]) -> list[str]:
        """STOW-RS; returns the SOP Instance UIDs the server stored, raises if any failed."""
        with self._errors(f"store of {len(datasets)} instance(s)"):
            response = self.dicomweb.store_instances(list(datasets))
        failed = getattr(response, "FailedSOPSequence", None) or []
        if failed:
            uids = ", ".join(str(getattr(i, "ReferencedSOPInstanceUID", "?")) for i in failed)
            raise PacsError(f"PACS '{self.node.name}' refused instance(s) {uids}")
        stored = getattr(response, "ReferencedSOPSequence", None) or []
        return [str(i.ReferencedSOPInstanceUID) for i in stored]


def client_for_url(url: str, audit: AuditSink, name: str = "ad hoc") -> PacsClient:
    """A client for an unconfigured URL with no auth (CLI --url, tests, the benchmark)."""
    return PacsClient(PacsNode(name=name, url=url), audit)
