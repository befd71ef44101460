"""The report's life (draft, edit, sign, addenda), the lines a read inserts, and templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.reports.items import AcceptedFinding, ImageRef, ItemError, KeyImage, Mark, Value
from core.reports.model import Report, ReportError, ReportState
from core.reports.templates import (
    DEFAULT_FILE,
    TemplateError,
    load_templates,
    read_file,
    template_for,
)

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
IMG = ImageRef("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", description="series 3, image 12")


def _draft() -> Report:
    return Report.draft("1.2.3", "Dr Ada", patient_id="P1", findings="Liver: normal.", at=T0)


def test_draft_edit_sign_and_addendum_keep_what_was_signed() -> None:
    draft = _draft()
    assert draft.state is ReportState.DRAFT
    edited = draft.edit(impression="Normal study.", at=T0 + timedelta(minutes=1))
    assert (edited.findings, edited.impression) == ("Liver: normal.", "Normal study.")
    assert edited.created_at == T0
    assert edited.updated_at == T0 + timedelta(minutes=1)
    signed = edited.sign("Dr Ada", at=T0 + timedelta(minutes=2))
    assert signed.state is ReportState.SIGNED
    assert signed.signed_at == T0 + timedelta(minutes=2)
    with pytest.raises(ReportError, match="signed; add an addendum"):
        signed.edit(findings="changed")
    with pytest.raises(ReportError, match="signed"):
        signed.sign("Dr Ada")
    with pytest.raises(ReportError, match="signed"):
        signed.insert_lines(["x"])
    later = signed.add_addendum("Comparison with prior: stable.", "Dr Bo", at=T0 + timedelta(1))
    assert later.findings == signed.findings
    assert later.impression == signed.impression
    assert later.signed_at == signed.signed_at
    assert later.signer == "Dr Ada"
    assert [(a.text, a.author) for a in later.addenda] == [
        ("Comparison with prior: stable.", "Dr Bo")
    ]
    assert signed.addenda == ()  # the earlier value is untouched


def test_refusals_name_the_reason() -> None:
    with pytest.raises(ReportError, match="addendum is added to a signed report only"):
        _draft().add_addendum("x", "Dr Ada")
    with pytest.raises(ReportError, match="empty; nothing to sign"):
        Report.draft("1.2.3", "Dr Ada").sign("Dr Ada")
    with pytest.raises(ReportError, match="time zone"):
        Report.draft("1.2.3", "Dr Ada", at=datetime(2026, 1, 1))
    with pytest.raises(ReportError, match="Study Instance UID"):
        Report(study_uid="")
    with pytest.raises(ReportError, match="at most"):
        _draft().edit(findings="x" * 60_001)
    with pytest.raises(ReportError, match="needs text"):
        _draft().sign("Dr Ada").add_addendum("  ", "Dr Ada")


def test_inserted_lines_name_the_values_and_the_image() -> None:
    length = Mark("polyline", ((0, 0), (3, 4)), IMG, "L1", (Value("length", 42.25, "mm"),))
    roi = Mark(
        "ellipse",
        ((0, 5), (10, 5), (5, 0), (5, 10)),
        IMG,
        "ROI 1",
        (
            Value("mean", 45.24, "[hnsf'U]"),
            Value("sd", 3.1, "[hnsf'U]"),
            Value("area", 78.5, "mm2"),
        ),
    )
    report = _draft().insert_lines(
        [
            length,
            roi,
            KeyImage(IMG, "best view"),
            AcceptedFinding("cxr-pneumonia", "pneumonia", 0.91),
        ]
    )
    assert report.findings.split("\n") == [
        "Liver: normal.",
        "L1: Length 42.2 mm (series 3, image 12)",
        "ROI 1: Mean 45.2 HU, SD 3.1 HU, Area 78.5 mm² (series 3, image 12)",
        "Key image: series 3, image 12 - best view",
        "AI (cxr-pneumonia, accepted): pneumonia (score 0.91)",
    ]
    into_empty = Report.draft("1.2.3", "Dr Ada").insert_lines(["only"], section="impression")
    assert into_empty.impression == "only"


def test_bad_items_are_refused_with_the_reason() -> None:
    with pytest.raises(ItemError, match="ellipse mark 'E' needs 4"):
        Mark("ellipse", ((0, 0), (1, 1)), IMG, "E")
    with pytest.raises(ItemError, match="unknown mark kind 'arc'"):
        Mark("arc", ((0, 0),), IMG)
    with pytest.raises(ItemError, match="not a finite number"):
        Value("length", float("nan"), "mm")
    with pytest.raises(ItemError, match="frame number 0"):
        ImageRef("1.2", "1.2.3", frame=0)
    with pytest.raises(ItemError, match="text mark needs its text"):
        Mark("text", ((1, 1),), IMG)


def test_shipped_templates_cover_the_three_exams() -> None:
    templates = load_templates()
    assert {"chest_radiograph", "ct_abdomen", "mr_brain"} <= set(templates)
    assert template_for(templates, "DX").id == "chest_radiograph"  # type: ignore[union-attr]
    assert template_for(templates, "ct", "Abdomen").id == "ct_abdomen"  # type: ignore[union-attr]
    assert template_for(templates, "MR", "BRAIN").id == "mr_brain"  # type: ignore[union-attr]
    assert template_for(templates, "US") is None
    chest = templates["chest_radiograph"]
    assert chest.findings.startswith("Lines and tubes:")
    assert chest.impression
    report = Report.draft(
        "1.2.3",
        "Dr Ada",
        template_id=chest.id,
        findings=chest.findings,
        impression=chest.impression,
    )
    assert report.findings == chest.findings


def test_an_it_file_replaces_a_template_by_id_and_bad_files_are_named(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        '[[template]]\nid = "mr_brain"\ntitle = "MR brain (site)"\nmodalities = ["MR"]\n'
        'findings = "Site findings."\nimpression = "Site impression."\n',
        encoding="utf-8",
    )
    templates = load_templates([site])
    assert templates["mr_brain"].findings == "Site findings."
    assert len(templates) == len(read_file(DEFAULT_FILE))
    broken = tmp_path / "broken.toml"
    broken.write_text('[[template]]\nid = "x"\ntitle = "X"\nfindings = 3\nimpression = ""\n')
    with pytest.raises(TemplateError, match=r"template 1 of '.*broken.toml'.*findings"):
        load_templates([broken])
    broken.write_text("[[template]\n")
    with pytest.raises(TemplateError, match="not valid TOML"):
        read_file(broken)
    with pytest.raises(TemplateError, match="does not exist"):
        read_file(tmp_path / "missing.toml")
