"""One study's report: findings, impression, its state, who wrote and who signed it, addenda.

Immutable on purpose: every change returns a new ``Report``, so what was signed is a value that
the SR, the PDF and the store all receive unchanged, and a signed report cannot be edited by
accident through a shared reference. After signing, the only change is an addendum, itself
signed by its author when it is added (a new part; the signed text is never touched).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from core.reports.items import AcceptedFinding, KeyImage, Mark

MAX_SECTION_CHARS = 60_000  # an SR TEXT value is UT (2**32 - 2); a report this long is an error


class ReportState(StrEnum):
    """What the study list shows per study."""

    NONE = "none"
    DRAFT = "draft"
    SIGNED = "signed"


class ReportError(ValueError):
    """A report change that is not allowed (editing a signed report, signing an empty one)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime | None) -> datetime:
    """Times are stored in UTC; a naive time is refused rather than guessed."""
    at = at or _now()
    if at.tzinfo is None:
        raise ReportError("report times must carry a time zone (a naive datetime was given)")
    return at.astimezone(UTC)


def _section(name: str, text: str) -> str:
    if len(text) > MAX_SECTION_CHARS:
        raise ReportError(f"the {name} has {len(text)} characters; at most {MAX_SECTION_CHARS}")
    if "\x00" in text:
        raise ReportError(f"the {name} contains a NUL character")
    return text


@dataclass(frozen=True)
class Addendum:
    """Text added after signing; signed by its author when added."""

    text: str
    author: str
    signed_at: datetime


@dataclass(frozen=True)
class Report:
    """The report of one study (``state`` NONE is the study's report before anyone wrote)."""

    study_uid: str
    patient_id: str = ""
    template_id: str = ""
    findings: str = ""
    impression: str = ""
    state: ReportState = ReportState.NONE
    author: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    signer: str = ""
    signed_at: datetime | None = None
    addenda: tuple[Addendum, ...] = ()

    def __post_init__(self) -> None:
        if not self.study_uid:
            raise ReportError("a report needs the Study Instance UID of its study")
        if self.state is ReportState.SIGNED and (not self.signer or self.signed_at is None):
            raise ReportError("a signed report needs its signer and signing time")

    # --- drafting ---------------------------------------------------------------------------
    @classmethod
    def draft(
        cls,
        study_uid: str,
        author: str,
        *,
        patient_id: str = "",
        template_id: str = "",
        findings: str = "",
        impression: str = "",
        at: datetime | None = None,
    ) -> Report:
        """A new draft, usually from a template's default text."""
        when = _aware(at)
        if not author:
            raise ReportError("a draft needs its author")
        return cls(
            study_uid=study_uid,
            patient_id=patient_id,
            template_id=template_id,
            findings=_section("findings", findings),
            impression=_section("impression", impression),
            state=ReportState.DRAFT,
            author=author,
            created_at=when,
            updated_at=when,
        )

    def _require_editable(self, what: str) -> None:
        if self.state is ReportState.SIGNED:
            raise ReportError(
                f"cannot {what}: the report of study '{self.study_uid}' is signed; "
                "add an addendum instead"
            )

    def edit(
        self,
        *,
        findings: str | None = None,
        impression: str | None = None,
        template_id: str | None = None,
        at: datetime | None = None,
    ) -> Report:
        """The draft with new text (a report in state NONE becomes a draft)."""
        self._require_editable("edit the report")
        when = _aware(at)
        return replace(
            self,
            findings=_section("findings", self.findings if findings is None else findings),
            impression=_section(
                "impression", self.impression if impression is None else impression
            ),
            template_id=self.template_id if template_id is None else template_id,
            state=ReportState.DRAFT,
            created_at=self.created_at or when,
            updated_at=when,
        )

    def insert_lines(
        self,
        items: Iterable[Mark | KeyImage | AcceptedFinding | str],
        *,
        section: str = "findings",
        at: datetime | None = None,
    ) -> Report:
        """Measurements, key images and accepted AI findings appended as one line each."""
        lines = [item if isinstance(item, str) else item.text for item in items]
        if section not in ("findings", "impression"):
            raise ReportError(f"unknown report section '{section}' (findings or impression)")
        current = self.findings if section == "findings" else self.impression
        text = "\n".join([current.rstrip("\n"), *lines] if current.strip() else lines)
        return self.edit(**{section: text}, at=at)

    # --- signing ----------------------------------------------------------------------------
    def sign(self, signer: str, *, at: datetime | None = None) -> Report:
        """The signed report; the caller has re-verified the signer's password first."""
        self._require_editable("sign the report again")
        if not signer:
            raise ReportError("signing needs the signer's name")
        if not self.findings.strip() and not self.impression.strip():
            raise ReportError(f"the report of study '{self.study_uid}' is empty; nothing to sign")
        when = _aware(at)
        return replace(
            self,
            state=ReportState.SIGNED,
            signer=signer,
            signed_at=when,
            author=self.author or signer,
            created_at=self.created_at or when,
            updated_at=when,
        )

    def add_addendum(self, text: str, author: str, *, at: datetime | None = None) -> Report:
        """A signed report with one more signed addendum."""
        if self.state is not ReportState.SIGNED:
            raise ReportError("an addendum is added to a signed report only; edit the draft")
        if not text.strip():
            raise ReportError("an addendum needs text")
        if not author:
            raise ReportError("an addendum needs its author")
        when = _aware(at)
        part = Addendum(text=_section("addendum", text), author=author, signed_at=when)
        return replace(self, addenda=(*self.addenda, part), updated_at=when)
