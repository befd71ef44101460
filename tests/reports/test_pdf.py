"""The signed report as PDF: the text pypdf extracts from it is what was signed."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from core.reports.header import StudyHeader
from core.reports.model import Report
from core.reports.pdf import render_pdf

AT = datetime(2026, 12, 6, 23, 40, tzinfo=UTC)


def _words(text: str) -> str:
    """Whitespace-insensitive: the PDF wraps long lines where the page ends."""
    return " ".join(text.split())


def _extract(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_text_is_the_signed_report(ct3) -> None:
    header = StudyHeader.from_dataset(ct3[0])
    long_line = "Liver: " + " ".join(f"segment-{n} unremarkable;" for n in range(40))
    report = (
        Report.draft(
            str(ct3[0].StudyInstanceUID),
            "Ada Lovelace",
            findings=f"{long_line}\nSpleen: 11 cm – normal (Ø 4 mm cyst, ±1 mm).",
            impression="No acute abnormality.\nFollow-up not required.",
            at=AT,
        )
        .sign("Ada Lovelace", at=AT)
        .add_addendum("Prior CT compared: stable.", "Grace Hopper", at=AT.replace(minute=55))
    )
    result = render_pdf(report, header)
    assert result.data.startswith(b"%PDF-")
    assert not result.replaced
    text = _words(_extract(result.data))
    for part in (report.findings, report.impression, report.addenda[0].text):
        assert _words(part) in text
    assert "Signed by Ada Lovelace on 2026-12-06 23:40 UTC" in text
    assert "Signed by Grace Hopper on 2026-12-06 23:55 UTC" in text
    assert f"Patient ID {header.patient_id}" in text
    # the order a reader expects: findings, impression, signature, addendum
    order = [
        text.index(_words(report.findings)),
        text.index(_words(report.impression)),
        text.index("Signed by Ada"),
        text.index("Addendum 1"),
    ]
    assert order == sorted(order)


def test_a_draft_is_never_printed(ct3) -> None:
    draft = Report.draft(str(ct3[0].StudyInstanceUID), "Ada", findings="x", at=AT)
    with pytest.raises(ValueError, match="is draft; only a signed report is printed"):
        render_pdf(draft, StudyHeader.from_dataset(ct3[0]))


def test_without_a_unicode_font_the_pdf_says_what_it_replaced(ct3, monkeypatch) -> None:
    import core.reports.pdf as pdf

    monkeypatch.setattr(pdf, "FONT_DIRS", ())  # a machine without DejaVu (Helvetica only)
    report = Report.draft(
        str(ct3[0].StudyInstanceUID), "Ada", findings="Cyst Ø 4 mm ≤ 5 mm", at=AT
    ).sign("Ada", at=AT)
    result = pdf.render_pdf(report, StudyHeader.from_dataset(ct3[0]))
    assert result.replaced
    assert "Cyst Ø 4 mm ? 5 mm" in _extract(result.data)  # Latin-1 kept, the rest marked
