"""Quality metrics for generated impressions: exact match and word-level F1.

A text model has no AUC; these two say how often the draft is exactly the reference and how
much of it overlaps word for word. Written here (a few lines) rather than pulling in an
evaluation library for two well-known formulas (the SQuAD-style bag-of-words F1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


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
