"""The signed report as PDF (fpdf2: pure Python, maintained, no system libraries).

Only a signed report is printed: a PDF is what leaves the workstation, and a draft must not.
Text is set in DejaVu Sans where the system has it (any script a DICOM name may carry); without
it, in the PDF core font Helvetica, which covers Latin-1 only: other characters print as '?'
and ``render_pdf`` says so in ``PdfResult.replaced``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.reports.header import StudyHeader
from core.reports.model import Report, ReportState

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)


@dataclass(frozen=True)
class PdfResult:
    """The PDF's bytes and whether any character had to be replaced (no Unicode font)."""

    data: bytes
    replaced: bool


def _font_files() -> tuple[Path, Path] | None:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def _stamp(when: datetime | None) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if when is not None else ""


def render_pdf(report: Report, header: StudyHeader, *, title: str = "") -> PdfResult:
    """Header (patient, study), findings, impression, signer and time, then each addendum."""
    from fpdf import FPDF

    if report.state is not ReportState.SIGNED:
        raise ValueError(
            f"the report of study '{report.study_uid}' is {report.state.value}; "
            "only a signed report is printed"
        )
    pdf = FPDF(format="A4")
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(auto=True, margin=18)
    fonts = _font_files()
    replaced = False
    if fonts is not None:
        pdf.add_font("Report", "", str(fonts[0]))
        pdf.add_font("Report", "B", str(fonts[1]))
        family = "Report"
    else:
        family = "Helvetica"

    def clean(text: str) -> str:
        nonlocal replaced
        if fonts is not None:
            return text
        safe = text.encode("latin-1", "replace").decode("latin-1")
        replaced = replaced or safe != text
        return safe

    heading = title or "Diagnostic imaging report"
    pdf.set_title(clean(heading))
    pdf.set_author(clean(report.signer))
    pdf.set_creator("DoctorAI Workstation")
    pdf.add_page()
    width = pdf.epw

    def block(text: str, size: float = 10.5, style: str = "") -> None:
        pdf.set_font(family, style, size)
        for line in text.split("\n"):
            pdf.multi_cell(width, 5.5, clean(line) or " ", align="L", new_x="LMARGIN")

    block(heading, 15, "B")
    pdf.ln(2)
    for label, value in header.lines():
        pdf.set_font(family, "B", 9.5)
        pdf.cell(32, 5, clean(label))
        pdf.set_font(family, "", 9.5)
        pdf.multi_cell(width - 32, 5, clean(value), align="L", new_x="LMARGIN")
    pdf.ln(4)
    block("Findings", 12, "B")
    block(report.findings)
    pdf.ln(3)
    block("Impression", 12, "B")
    block(report.impression)
    pdf.ln(4)
    block(f"Signed by {report.signer} on {_stamp(report.signed_at)}", 9.5, "B")
    for n, part in enumerate(report.addenda, start=1):
        pdf.ln(4)
        block(f"Addendum {n}", 12, "B")
        block(part.text)
        block(f"Signed by {part.author} on {_stamp(part.signed_at)}", 9.5, "B")
    return PdfResult(data=bytes(pdf.output()), replaced=replaced)
