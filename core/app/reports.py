"""Use cases of a study's report: read, save a draft, sign, add an addendum, export (issue 17).

Each write does the whole job in one transaction: the actor's permission, the row (migration
0005, core.reports.store) and the audit event - DICOM Instances Accessed with ``action``
"report-draft" / "report-edit" / "report-sign" / "report-addendum" and the PS3.15 event action
(C create, U update) - naming the user, the patient, the study and the report. The report's
text never goes into the trail; its revision does.

Signing (and an addendum, which is signed when added) asks for the password again, checked by
the sign-in's own verification (``UserStore.reauthenticate``: the second factor where the
account has one or IT requires one - ``SecondFactorRequired`` then, for the dialog to ask the
code -, failed attempts counted towards the lockout; audited as "reauth-sign", not as a
sign-in). An impression that is still a model's unedited draft is signed only when the signer
confirms reviewing it (``UnreviewedDraft`` otherwise, audited). A report changed by someone else
since it was read is refused (``ReportConflict``) rather than overwritten, when the caller
passes the revision it read.

Export audits first ("Export", naming the patient, the study, each object and where it goes)
and only then writes files or sends to PACS; a write or a store that fails (OSError, a
ValueError from pydicom, PacsError) is recorded as a failed export naming what was written
before, and raised with that note, and only what succeeded is listed on the report. Who may: writing
and exporting need the radiologist's ``decide`` permission, reading needs ``view``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection

from core.app.workstation import Workstation
from core.audit.events import Actor, Participants, event
from core.audit.log import StoredEvent
from core.audit.vocabulary import EventType, Outcome
from core.reports import store
from core.reports.items import AcceptedFinding
from core.reports.model import Report, ReportError, ReportState
from core.reports.store import Exported, StoredReport
from core.security.users import Permission
from core.store.database import STORE_ERRORS
from core.store.errors import TrailUnavailableError
from core.studies import catalogue

if TYPE_CHECKING:
    import pydicom

    from core.inference.manager import ModelManager
    from core.pacs.client import PacsClient
    from core.reports.items import ImageRef

#: Writing, signing and exporting a report.
WRITE = Permission.DECIDE
#: Reading it (and the study list's report states).
READ = Permission.VIEW


StudyNotRecorded = catalogue.StudyNotRecorded  # a report of a study not recorded: refused


class ReportConflict(RuntimeError):
    """The report changed since the caller read it (another window, another user)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _patient(conn: Connection, study_uid: str) -> tuple[str, str]:
    return catalogue.patient_of(conn, study_uid, "its report")


def _who(conn: Connection, study_uid: str) -> Participants:
    patient_id, name = _patient(conn, study_uid)
    return Participants().patient(patient_id, name).study(study_uid).add("report", study_uid)


def _audit(
    ws: Workstation,
    conn: Connection,
    actor: Actor,
    report: Report,
    action: str,
    code: str,
    revision: int,
    **details: Any,
) -> StoredEvent:
    return ws.audit.append(
        event(
            EventType.INSTANCES_ACCESSED,
            actor,
            _who(conn, report.study_uid),
            action=f"report-{action}",
            event_action=code,
            state=report.state.value,
            revision=revision,
            template=report.template_id,
            **details,
        ),
        conn=conn,
    )


#: ``expected_revision`` of a caller that read the study and found no report: a report
#: someone else created since is a conflict, not something to overwrite.
NO_REPORT = -1


def _check_revision(current: StoredReport | None, expected: int | None, study_uid: str) -> None:
    have = current.revision if current is not None else None
    if expected is None or have == expected or (expected == NO_REPORT and have is None):
        return
    read = "none" if expected == NO_REPORT else f"revision {expected}"
    raise ReportConflict(
        f"the report of study '{study_uid}' changed since it was read ({read}, "
        f"now {have if have is not None else 'none'}): reload it before saving"
    )


# --- reading ---------------------------------------------------------------------------------
def get_report(ws: Workstation, study_uid: str) -> StoredReport | None:
    """The study's report, or None. Not audited on its own: the study was audited when shown."""
    ws.require(READ)
    with ws.db.engine.connect() as conn:
        return store.get(conn, study_uid)


def report_states(ws: Workstation, study_uids: Sequence[str]) -> dict[str, ReportState]:
    """Each study's report state (none, draft, signed) for the study list."""
    ws.require(READ)
    with ws.db.engine.connect() as conn:
        return store.states(conn, study_uids)


# --- writing ---------------------------------------------------------------------------------
def save_draft(
    ws: Workstation,
    study_uid: str,
    *,
    findings: str,
    impression: str,
    template_id: str | None = None,
    expected_revision: int | None = None,
) -> StoredReport:
    """Create the study's draft or save an edit of it (a signed report: ``ReportError``).
    ``expected_revision``: the revision the caller read (``NO_REPORT``: it read none); another
    writer's change since is refused (``ReportConflict``); None: not checked."""
    actor = ws.require(WRITE)
    with ws.db.transaction() as conn:
        current = store.get(conn, study_uid)
        _check_revision(current, expected_revision, study_uid)
        if current is None:
            patient_id, _name = _patient(conn, study_uid)
            report = Report.draft(
                study_uid,
                actor.user,
                patient_id=patient_id,
                template_id=template_id or "",
                findings=findings,
                impression=impression,
            )
            stored = _audit(ws, conn, actor, report, "draft", "C", 0)
            store.insert_report(conn, report, stored.index)
            return StoredReport(report, 0, ())
        report = current.report.edit(
            findings=findings, impression=impression, template_id=template_id
        )
        revision = current.revision + 1
        stored = _audit(ws, conn, actor, report, "edit", "U", revision)
        store.update_report(conn, report, revision, stored.index)
        return StoredReport(report, revision, current.exported)


def _verify_signer(ws: Workstation, actor: Actor, password: str, code: str | None) -> None:
    """The password (and second factor) again, through the sign-in's own check and lockout,
    audited as a re-authentication for signing ("reauth-sign"), not as a sign-in."""
    ws.users.reauthenticate(actor.user, password, code, purpose="sign")


class UnreviewedDraft(ReportError):
    """The impression is still the model's unedited draft and the signer has not confirmed
    reviewing it."""


def review_refusal(unedited_model_draft: bool, reviewed: bool) -> str | None:
    """The rule, in one place (the sign dialog asks it too, before the password): why an
    impression may not be signed yet, or None."""
    if unedited_model_draft and not reviewed:
        return (
            "the impression is a model's draft that nobody has edited: review it and confirm "
            "so before signing"
        )
    return None


def _require_review(
    ws: Workstation, actor: Actor, study_uid: str, unedited_model_draft: bool, reviewed: bool
) -> None:
    """A model's words are never signed unseen: an unedited drafted impression needs the
    signer's confirmation that it was reviewed; a refusal is audited (no text in the trail)."""
    why = review_refusal(unedited_model_draft, reviewed)
    if why is None:
        return
    with ws.db.transaction() as conn:
        ws.audit.append(
            event(
                EventType.INSTANCES_ACCESSED,
                actor,
                _who(conn, study_uid),
                Outcome.MINOR_FAILURE,
                action="report-sign",
                event_action="U",
                reason="unreviewed model draft",
            ),
            conn=conn,
        )
    raise UnreviewedDraft(f"study '{study_uid}': {why}")


def sign_report(
    ws: Workstation,
    study_uid: str,
    password: str,
    second_factor: str | None = None,
    *,
    expected_revision: int | None = None,
    unedited_model_draft: bool = False,
    reviewed: bool = False,
) -> StoredReport:
    """Sign the study's draft as the signed-in radiologist, after re-entering the password.
    ``unedited_model_draft``: the impression is a model's draft as it gave it (the caller
    knows what the drafter returned); then ``reviewed`` (the signer confirmed reviewing it)
    is required, else ``UnreviewedDraft``, audited, before the password is even checked."""
    actor = ws.require(WRITE)
    _require_review(ws, actor, study_uid, unedited_model_draft, reviewed)
    _verify_signer(ws, actor, password, second_factor)
    with ws.db.transaction() as conn:
        current = store.get(conn, study_uid)
        if current is None:
            raise ReportError(f"study '{study_uid}' has no report to sign; save a draft first")
        _check_revision(current, expected_revision, study_uid)
        report = current.report.sign(actor.user, at=_now())
        revision = current.revision + 1
        stored = _audit(
            ws,
            conn,
            actor,
            report,
            "sign",
            "U",
            revision,
            reviewed_model_draft=unedited_model_draft,
        )
        store.update_report(conn, report, revision, stored.index)
        return StoredReport(report, revision, current.exported)


def add_addendum(
    ws: Workstation,
    study_uid: str,
    text: str,
    password: str,
    second_factor: str | None = None,
) -> StoredReport:
    """Append a signed addendum to the signed report (the password again, as for signing)."""
    actor = ws.require(WRITE)
    _verify_signer(ws, actor, password, second_factor)
    with ws.db.transaction() as conn:
        current = store.get(conn, study_uid)
        if current is None:
            raise ReportError(f"study '{study_uid}' has no report to add an addendum to")
        report = current.report.add_addendum(text, actor.user, at=_now())
        revision = current.revision + 1
        stored = _audit(ws, conn, actor, report, "addendum", "U", revision)
        store.update_report(conn, report, revision, stored.index)
        return StoredReport(report, revision, current.exported)


def accepted_findings(ws: Workstation, study_uid: str) -> list[AcceptedFinding]:
    """The study's AI results whose latest verdict is "accepted", one line's worth per result
    and decided label (the report's "insert accepted AI findings"). A read, not audited: the
    decisions were audited when made."""
    ws.require(READ)
    found: list[AcceptedFinding] = []
    for stored in ws.results.list_for_study(study_uid):
        if stored.latest_decision != "accepted":
            continue
        decisions = [str(d) for d in stored.payload.get("decisions", [])]
        scores = stored.payload.get("scores", [])
        for label in dict.fromkeys(decisions):
            picked = [i for i, d in enumerate(decisions) if d == label]
            values = [
                float(scores[i][label]) for i in picked if i < len(scores) and label in scores[i]
            ]
            where = f" on {len(picked)} of {len(decisions)} images" if len(decisions) > 1 else ""
            model = f"{stored.model_id} {stored.model_version}"
            found.append(AcceptedFinding(model, label + where, max(values) if values else None))
    return found


# --- the impression drafter ------------------------------------------------------------------
#: The text model that drafts an impression from the findings (models/zoo/report-drafter).
DRAFTER = "report-drafter"


@dataclass(frozen=True)
class ImpressionDraft:
    """A drafted impression for the radiologist to edit: never saved or signed by itself."""

    text: str
    model_id: str
    version: str
    notice: str  # shown with the draft: a demonstration model's words, not a radiologist's


def draft_impression(
    ws: Workstation, manager: ModelManager, study_uid: str, findings: str, model_id: str = DRAFTER
) -> ImpressionDraft:
    """Draft the impression from ``findings`` with the text model (load it on first use: call
    from a worker). Audited as a Model Run naming the patient, the study, the report and the
    model; the texts stay out of the trail. Nothing is stored: the draft goes to the editor."""
    actor = ws.require(Permission.RUN_AI)
    if not findings.strip():
        raise ReportError("the findings are empty: the drafter drafts an impression from them")
    package = manager.package(model_id)
    if package.manifest.input.kind != "text":
        raise ReportError(f"model '{model_id}' is not a text model; it cannot draft a report")
    with ws.db.engine.connect() as conn:
        who = _who(conn, study_uid)
    manager.ensure_selftest(model_id)  # a drafter that fails its own sample drafts nothing
    with manager.use(model_id) as model:
        # LoadedModel types predict() for image arrays; a text model's adapter takes strings
        drafts = list(cast(Any, model).predict([findings]))
    if len(drafts) != 1 or not isinstance(drafts[0], str):
        raise ReportError(f"model '{model_id}' returned {len(drafts)} drafts for one findings text")
    version = package.manifest.version
    ws.audit.append(
        event(
            EventType.MODEL_RUN,
            actor,
            who.add("model", f"{model_id}@{version}"),
            action="report-draft-impression",
            texts=1,
        )
    )
    demo = package.manifest.demo_notice
    notice = (
        f"Drafted by a demonstration model ({model_id} {version}): {demo}. Edit before signing."
        if demo
        else f"Drafted by model {model_id} {version}. Edit before signing."
    )
    return ImpressionDraft(drafts[0].strip(), model_id, version, notice)


# --- export ----------------------------------------------------------------------------------
def _previous_sr(exported: Sequence[Exported], study_uid: str) -> pydicom.Dataset | None:
    """The last SR this report was exported as (its UIDs), for Predecessor Documents."""
    import pydicom

    srs = [e for e in exported if e.kind == "SR" and e.sop_instance_uid]
    if not srs:
        return None
    last = srs[-1]
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR, as built here
    ds.SOPInstanceUID = last.sop_instance_uid
    ds.SeriesInstanceUID = last.series_instance_uid
    ds.StudyInstanceUID = study_uid
    return ds


def export_objects(
    ws: Workstation,
    study_uid: str,
    objects: Sequence[tuple[str, pydicom.Dataset]],
    *,
    out_dir: Path | None = None,
    client: PacsClient | None = None,
    pdf: bytes | None = None,
) -> list[Exported]:
    """Write ``(kind, dataset)`` objects (and a PDF) into ``out_dir`` and/or STOW them to
    ``client``'s PACS, audited; recorded on the study's report when it has one."""
    from core.pacs.errors import PacsError

    actor = ws.require(WRITE)
    if out_dir is None and client is None:
        raise ValueError("an export needs a folder, a PACS, or both")
    with ws.db.engine.connect() as conn:
        who = _who(conn, study_uid)
    destinations: list[str] = []
    for kind, ds in objects:
        who.series(str(ds.SeriesInstanceUID)).add("instance", str(ds.SOPInstanceUID), kind)
    files = [out_dir / f"{kind}_{ds.SOPInstanceUID}.dcm" for kind, ds in objects] if out_dir else []
    pdf_path = out_dir / f"report_{study_uid}.pdf" if out_dir and pdf is not None else None
    for path in (*files, *([pdf_path] if pdf_path else [])):
        who.add("file", str(path.resolve()))
        destinations.append(str(path))
    if client is not None:
        who.add("node", client.node.name)
        destinations.append(f"pacs:{client.node.name}")
    kinds = ",".join([k for k, _ in objects] + (["PDF"] if pdf is not None else []))
    details: dict[str, Any] = {"action": "report-export", "kinds": kinds}
    try:
        ws.audit.append(event(EventType.EXPORT, actor, who, **details))
    except STORE_ERRORS as exc:
        cause = getattr(exc, "orig", None) or exc
        raise TrailUnavailableError(ws.db.path, str(cause), "nothing was exported") from exc
    at = _now().isoformat()
    done: list[Exported] = []
    try:
        for path, (kind, ds) in zip(files, objects, strict=False):
            ds.save_as(path, enforce_file_format=True)
            done.append(_exported(kind, str(path), at, ds))
        if pdf_path is not None and pdf is not None:
            pdf_path.write_bytes(pdf)
            done.append(Exported("PDF", str(pdf_path), at))
        if client is not None and objects:
            client.store([ds for _, ds in objects])
            done += [_exported(k, f"pacs:{client.node.name}", at, ds) for k, ds in objects]
    except (OSError, ValueError, PacsError) as exc:
        # ValueError: pydicom refusing to write an object (file meta, a value); the success
        # event is already in the trail, so the failure must follow it whatever broke
        outcome = Outcome.SERIOUS_FAILURE if isinstance(exc, PacsError) else Outcome.MINOR_FAILURE
        written = [e.destination for e in done]
        ws.audit.append(
            event(
                EventType.EXPORT, actor, who, outcome, **details, reason=str(exc), written=written
            )
        )
        _record(ws, study_uid, done)
        exc.add_note(
            "written before it failed: " + ", ".join(written) if written else "nothing was written"
        )
        raise
    _record(ws, study_uid, done)
    return done


def _exported(kind: str, destination: str, at: str, ds: pydicom.Dataset) -> Exported:
    return Exported(kind, destination, at, str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID))


def _record(ws: Workstation, study_uid: str, done: Sequence[Exported]) -> None:
    if not done:
        return
    with ws.db.transaction() as conn:
        if store.get(conn, study_uid) is not None:
            store.add_exported(conn, study_uid, done)


def export_report(
    ws: Workstation,
    study_uid: str,
    sources: Sequence[pydicom.Dataset],
    *,
    key_images: Sequence[ImageRef] = (),
    out_dir: Path | None = None,
    client: PacsClient | None = None,
    organization: str = "",
) -> list[Exported]:
    """The signed report as a TID 2000 SR (a new version naming the last one, after an
    addendum) and as PDF (to the folder), audited; run it in a worker (it builds and sends)."""
    from core.dicom_out.report_sr import build_report_sr
    from core.reports.header import StudyHeader
    from core.reports.pdf import render_pdf

    ws.require(WRITE)
    current = get_report(ws, study_uid)
    if current is None or current.report.state is not ReportState.SIGNED:
        state = current.report.state.value if current else "none"
        raise ReportError(f"the report of study '{study_uid}' is {state}; sign it first")
    sr = build_report_sr(
        current.report,
        sources,
        key_images,
        organization=organization,
        previous=_previous_sr(current.exported, study_uid),
    )
    pdf = render_pdf(current.report, StudyHeader.from_dataset(sources[0])).data if out_dir else None
    return export_objects(ws, study_uid, [("SR", sr)], out_dir=out_dir, client=client, pdf=pdf)
