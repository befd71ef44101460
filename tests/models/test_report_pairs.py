"""The generated finding->impression pairs: reproducible, disjoint splits, sensible text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.report_metrics import score, token_f1
from models.training.report_pairs import (
    Findings,
    generate_pairs,
    impression,
    read_jsonl,
    render_input,
    train_val_split,
    write_jsonl,
)


def test_same_seed_same_pairs_other_seed_other_pairs() -> None:
    assert generate_pairs(50, seed=7) == generate_pairs(50, seed=7)
    assert generate_pairs(50, seed=7) != generate_pairs(50, seed=8)


def test_split_is_disjoint_and_sized() -> None:
    train, val = train_val_split(600, 100, seed=3)
    assert (len(train), len(val)) == (600, 100)
    assert not {p.source for p in train} & {p.source for p in val}


def test_impression_reads_like_a_report() -> None:
    findings = Findings(
        modality="CT",
        body_part="chest",
        finding="consolidation",
        location="right lower lobe",
        size_mm=23,
        comparison="none",
        negatives=("pleural effusion", "pneumothorax"),
    )
    assert impression(findings) == (
        "Right lower lobe consolidation, 23 mm, consistent with pneumonia. "
        "No pleural effusion or pneumothorax."
    )
    assert render_input(findings) == (
        "modality: CT; body part: chest; finding: consolidation; location: right lower lobe; "
        "size: 23 mm; comparison: none; negatives: pleural effusion, pneumothorax"
    )


@pytest.mark.parametrize(
    ("size", "advice"),
    [(4, "No routine follow-up"), (7, "Follow-up chest CT"), (15, "PET-CT or tissue sampling")],
)
def test_nodule_advice_follows_size(size: int, advice: str) -> None:
    text = impression(
        Findings(
            modality="CT",
            body_part="chest",
            finding="nodule",
            location="lingula",
            size_mm=size,
            comparison="increased",
            prior_mm=size - 1,
        )
    )
    assert advice in text
    assert f"increased from {size - 1} mm" in text


def test_every_pair_carries_its_facts_into_the_impression() -> None:
    for pair in generate_pairs(400, seed=11):
        size = re.search(r"size: (\d+) mm", pair.source)
        if size:
            assert f"{size.group(1)} mm" in pair.target, pair
        negatives = re.search(r"negatives: ([^;]+)$", pair.source)
        if negatives:
            for negative in negatives.group(1).split(", "):
                assert negative in pair.target, pair
        assert pair.target[0].isupper()
        assert pair.target.endswith(".")


def test_jsonl_round_trip_and_bad_line(tmp_path: Path) -> None:
    pairs = generate_pairs(5, seed=1)
    path = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, path)
    assert read_jsonl(path) == pairs
    path.write_text('{"source": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"pairs.jsonl' line 1"):
        read_jsonl(path)


def test_metrics() -> None:
    assert token_f1("No free air.", "No free air.") == 1.0
    assert token_f1("No free fluid.", "No free air.") == pytest.approx(2 / 3)
    assert token_f1("", "No free air.") == 0.0
    scores = score(["a b", "c d"], ["a b", "c e"])
    assert scores.exact_match == 0.5
    assert scores.token_f1 == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError, match="pair one to one"):
        score(["a"], ["a", "b"])
