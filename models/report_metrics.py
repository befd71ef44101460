"""Quality metrics for generated impressions (exact match, word-level F1) and the pair files
they are computed on. Run-time code (the transformers adapter's self-test and ``models verify
--eval``) uses it, so it lives outside models.training, which installers leave out.

A text model has no AUC; these two say how often the draft is exactly the reference and how
much of it overlaps word for word. Written here (a few lines) rather than pulling in an
evaluation library for two well-known formulas (the SQuAD-style bag-of-words F1).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    """A model input (rendered findings) and its target impression."""

    source: str
    target: str


def read_jsonl(path: Path) -> list[Pair]:
    """Pairs written by ``models.training.report_pairs.write_jsonl``; a malformed line names
    the file and line."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            pairs.append(Pair(source=str(record["source"]), target=str(record["target"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"'{path}' line {number}: not a source/target pair ({exc})") from exc
    return pairs


@dataclass(frozen=True)
class TextScores:
    """Mean scores over a set of (prediction, reference) pairs, each in [0, 1]."""

    exact_match: float
    token_f1: float
    n: int


def _words(text: str) -> list[str]:
    return text.split()


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the multiset of whitespace-separated words (case and punctuation kept)."""
    pred, ref = _words(prediction), _words(reference)
    if not pred and not ref:
        return 1.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def score(predictions: Sequence[str], references: Sequence[str]) -> TextScores:
    """Exact-match rate (after stripping outer whitespace) and mean word F1."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references; "
            "they must pair one to one"
        )
    if not references:
        raise ValueError("no references to score against")
    exact = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    f1 = sum(token_f1(p, r) for p, r in zip(predictions, references, strict=True))
    n = len(references)
    return TextScores(exact_match=exact / n, token_f1=f1 / n, n=n)
