"""Generated structured-findings -> impression pairs for the report-drafting model.

No real reports are available here, so the seq2seq slot learns from generated pairs: a
structured finding (modality, body part, finding, location/laterality, size, severity,
comparison, pertinent negatives) rendered as one line of text, and the impression sentence a
radiologist would write for it. The impression is a deterministic function of the findings,
so greedy decoding has exactly one right answer and exact match is a meaningful metric.

Everything is driven by a seeded ``random.Random``; the same seed gives the same pairs on
every machine and Python version (only ``randint``/``choice``/``sample`` are used).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from models.report_metrics import Pair, read_jsonl  # noqa: F401 - shared with the adapter

LOBES = (
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "lingula",
    "left lower lobe",
)
BRAIN_TERRITORIES = (
    "left MCA territory",
    "right MCA territory",
    "left PCA territory",
    "right PCA territory",
    "left basal ganglia",
    "right basal ganglia",
    "left cerebellar hemisphere",
    "right cerebellar hemisphere",
    "pons",
)
BRAIN_LOBES = (
    "left frontal lobe",
    "right frontal lobe",
    "left parietal lobe",
    "right parietal lobe",
    "left temporal lobe",
    "right temporal lobe",
    "left occipital lobe",
    "right occipital lobe",
    "left thalamus",
    "right thalamus",
)
LIVER_SITES = (
    "right hepatic lobe",
    "left hepatic lobe",
    *(f"hepatic segment {n}" for n in range(2, 9)),
)
BONES = {
    "distal radius": "upper extremity",
    "scaphoid": "upper extremity",
    "fifth metacarpal": "upper extremity",
    "proximal humerus": "upper extremity",
    "clavicle": "upper extremity",
    "femoral neck": "lower extremity",
    "distal fibula": "lower extremity",
    "medial malleolus": "lower extremity",
    "fifth metatarsal": "lower extremity",
}
URINARY_SITES = {
    "kidney": "renal",
    "proximal ureter": "proximal ureteral",
    "distal ureter": "distal ureteral",
    "ureterovesical junction": "ureterovesical junction",
}
NEGATIVES = {
    "chest": (
        "pleural effusion",
        "pneumothorax",
        "pulmonary edema",
        "cardiomegaly",
        "focal consolidation",
        "mediastinal lymphadenopathy",
        "pericardial effusion",
    ),
    "head": (
        "intracranial hemorrhage",
        "midline shift",
        "hydrocephalus",
        "extra-axial collection",
        "acute infarct",
        "calvarial fracture",
    ),
    "abdomen and pelvis": (
        "free air",
        "free fluid",
        "bowel obstruction",
        "hydronephrosis",
        "abscess",
        "lymphadenopathy",
    ),
    "upper extremity": ("dislocation", "joint effusion", "soft tissue gas", "foreign body"),
    "lower extremity": ("dislocation", "joint effusion", "soft tissue gas", "foreign body"),
}
NORMAL = {
    ("CT", "chest"): "No acute intrathoracic abnormality.",
    ("CR", "chest"): "No acute cardiopulmonary abnormality.",
    ("DX", "chest"): "No acute cardiopulmonary abnormality.",
    ("CT", "head"): "No acute intracranial abnormality.",
    ("MR", "head"): "No acute intracranial abnormality.",
    ("CT", "abdomen and pelvis"): "No acute abnormality in the abdomen or pelvis.",
    ("US", "abdomen and pelvis"): "No sonographic abnormality.",
    ("CR", "upper extremity"): "No acute fracture or dislocation.",
    ("DX", "lower extremity"): "No acute fracture or dislocation.",
}


@dataclass(frozen=True)
class Findings:
    """One structured finding, as a reporting template would hold it."""

    modality: str
    body_part: str
    finding: str  # "none" for a normal study
    location: str | None = None
    size_mm: int | None = None
    severity: str | None = None
    comparison: str = "none"  # none | new | stable | increased | decreased
    prior_mm: int | None = None
    negatives: tuple[str, ...] = ()


def render_input(f: Findings) -> str:
    """The one-line text the model reads; absent fields are left out, not written as blanks."""
    parts = [f"modality: {f.modality}", f"body part: {f.body_part}", f"finding: {f.finding}"]
    if f.location:
        parts.append(f"location: {f.location}")
    if f.size_mm is not None:
        parts.append(f"size: {f.size_mm} mm")
    if f.severity:
        parts.append(f"severity: {f.severity}")
    comparison = f.comparison
    if f.prior_mm is not None:
        comparison = f"{comparison} from {f.prior_mm} mm"
    parts.append(f"comparison: {comparison}")
    if f.negatives:
        parts.append("negatives: " + ", ".join(f.negatives))
    return "; ".join(parts)


def _comparison_clause(f: Findings) -> str:
    if f.comparison == "none":
        return ""
    if f.comparison == "new":
        return ", new since the prior study"
    if f.comparison == "stable":
        return ", unchanged from the prior study"
    if f.prior_mm is not None:
        return f", {f.comparison} from {f.prior_mm} mm"
    return f", {f.comparison} since the prior study"


def _negatives_sentence(negatives: Sequence[str]) -> str:
    if not negatives:
        return ""
    if len(negatives) == 1:
        listed = negatives[0]
    elif len(negatives) == 2:
        listed = f"{negatives[0]} or {negatives[1]}"
    else:
        listed = ", ".join(negatives[:-1]) + f", or {negatives[-1]}"
    return f" No {listed}."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _nodule_advice(size: int) -> str:
    # Simplified Fleischner-style follow-up by size; a drafting aid, not guidance.
    if size < 6:
        return "No routine follow-up is recommended."
    if size <= 8:
        return "Follow-up chest CT in 6 to 12 months is recommended."
    return "Consider PET-CT or tissue sampling."


def _first_sentence(f: Findings) -> str:
    c, size, loc = _comparison_clause(f), f.size_mm, f.location or ""
    kind = f.finding
    if kind == "consolidation":
        site = "Lingular" if loc == "lingula" else _cap(loc)
        return f"{site} consolidation, {size} mm{c}, consistent with pneumonia."
    if kind == "nodule":
        return f"{_cap(loc)} pulmonary nodule, {size} mm{c}. {_nodule_advice(size or 0)}"
    if kind == "pleural effusion":
        noun = "pleural effusions" if loc == "bilateral" else "pleural effusion"
        return f"{_cap(f.severity or '')} {loc} {noun}{c}."
    if kind == "pneumothorax":
        return f"{_cap(f.severity or '')} {loc} pneumothorax, {size} mm at the apex{c}."
    if kind == "acute infarct":
        tail = ", with restricted diffusion" if f.modality == "MR" else ""
        return f"Acute infarct in the {loc}, {size} mm{c}{tail}."
    if kind == "hemorrhage":
        effect = {
            "no mass effect": "without mass effect",
            "mild mass effect": "with mild mass effect",
            "moderate mass effect": "with moderate mass effect and midline shift",
        }[f.severity or "no mass effect"]
        return f"Intraparenchymal hemorrhage in the {loc}, {size} mm{c}, {effect}."
    if kind == "enhancing mass":
        return f"Enhancing mass in the {loc}, {size} mm{c}, concerning for neoplasm."
    if kind == "calculus":
        side, site = loc.split(" ", 1)
        hydro = (
            "without hydronephrosis" if f.severity == "no hydronephrosis" else f"with {f.severity}"
        )
        return f"{_cap(side)} {URINARY_SITES[site]} calculus, {size} mm{c}, {hydro}."
    if kind == "dilated appendix":
        if f.severity == "perforated":
            return (
                f"Dilated appendix, {size} mm, with periappendiceal fluid and extraluminal "
                "gas, consistent with perforated appendicitis."
            )
        return f"Dilated appendix, {size} mm, consistent with acute appendicitis."
    if kind == "hepatic cyst":
        site = loc if loc.startswith("hepatic segment") else f"the {loc}"
        return f"Simple cyst in {site}, {size} mm{c}, likely benign."
    if kind == "gallstones":
        if f.severity == "wall thickening":
            return (
                f"Cholelithiasis, largest stone {size} mm, with gallbladder wall thickening, "
                "concerning for acute cholecystitis."
            )
        return f"Cholelithiasis, largest stone {size} mm, without evidence of acute cholecystitis."
    if kind == "fracture":
        if f.severity == "nondisplaced":
            return f"Nondisplaced fracture of the {loc}{c}."
        return f"{_cap(f.severity or '')} fracture of the {loc}, {size} mm of displacement{c}."
    raise ValueError(f"unknown finding type {kind!r}")


def impression(f: Findings) -> str:
    """The impression a radiologist would write for ``f`` (deterministic)."""
    if f.finding == "none":
        return NORMAL[(f.modality, f.body_part)]
    return _first_sentence(f) + _negatives_sentence(f.negatives)


# --- sampling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """How to sample one finding type: where it occurs and what varies."""

    finding: str
    studies: tuple[tuple[str, str], ...]  # (modality, body part)
    location: Callable[[random.Random], str | None]
    size: Callable[[random.Random, str | None], int | None]
    severities: tuple[str | None, ...]
    comparisons: tuple[str, ...]
    excludes: frozenset[str]


def _pick(options: Sequence[str]) -> Callable[[random.Random], str | None]:
    return lambda rng: rng.choice(options)


def _sized(lo: int, hi: int) -> Callable[[random.Random, str | None], int | None]:
    return lambda rng, _severity: rng.randint(lo, hi)


def _no_size(_rng: random.Random, _severity: str | None) -> int | None:
    return None


def _pneumothorax_size(rng: random.Random, severity: str | None) -> int | None:
    lo, hi = {"small": (5, 19), "moderate": (20, 39), "large": (40, 70)}[severity or "small"]
    return rng.randint(lo, hi)


def _displacement(rng: random.Random, severity: str | None) -> int | None:
    return None if severity == "nondisplaced" else rng.randint(2, 25)


def _bone(rng: random.Random) -> str:
    return f"{rng.choice(('left', 'right'))} {rng.choice(sorted(BONES))}"


def _urinary(rng: random.Random) -> str:
    return f"{rng.choice(('left', 'right'))} {rng.choice(sorted(URINARY_SITES))}"


CHEST = (("CT", "chest"), ("CR", "chest"), ("DX", "chest"))
ALL_COMPARISONS = ("none", "new", "stable", "increased", "decreased")

SPECS: tuple[_Spec, ...] = (
    _Spec(
        "consolidation",
        CHEST,
        _pick(LOBES),
        _sized(10, 90),
        (None,),
        ("none", "new", "increased", "decreased"),
        frozenset({"focal consolidation"}),
    ),
    _Spec(
        "nodule",
        (("CT", "chest"),),
        _pick(LOBES),
        _sized(3, 28),
        (None,),
        ALL_COMPARISONS,
        frozenset(),
    ),
    _Spec(
        "pleural effusion",
        CHEST,
        _pick(("left", "right", "bilateral")),
        _no_size,
        ("small", "moderate", "large"),
        ALL_COMPARISONS,
        frozenset({"pleural effusion"}),
    ),
    _Spec(
        "pneumothorax",
        CHEST,
        _pick(("left", "right")),
        _pneumothorax_size,
        ("small", "moderate", "large"),
        ("none", "new", "increased", "decreased"),
        frozenset({"pneumothorax"}),
    ),
    _Spec(
        "acute infarct",
        (("CT", "head"), ("MR", "head")),
        _pick(BRAIN_TERRITORIES),
        _sized(4, 70),
        (None,),
        ("none", "new"),
        frozenset({"acute infarct"}),
    ),
    _Spec(
        "hemorrhage",
        (("CT", "head"),),
        _pick(BRAIN_LOBES),
        _sized(5, 65),
        ("no mass effect", "mild mass effect", "moderate mass effect"),
        ("none", "new", "stable", "increased", "decreased"),
        frozenset({"intracranial hemorrhage", "midline shift"}),
    ),
    _Spec(
        "enhancing mass",
        (("MR", "head"),),
        _pick(BRAIN_LOBES),
        _sized(6, 60),
        (None,),
        ALL_COMPARISONS,
        frozenset(),
    ),
    _Spec(
        "calculus",
        (("CT", "abdomen and pelvis"),),
        _urinary,
        _sized(2, 18),
        (
            "no hydronephrosis",
            "mild hydronephrosis",
            "moderate hydronephrosis",
            "severe hydronephrosis",
        ),
        ("none", "new", "stable"),
        frozenset({"hydronephrosis"}),
    ),
    _Spec(
        "dilated appendix",
        (("CT", "abdomen and pelvis"), ("US", "abdomen and pelvis")),
        _pick(("right lower quadrant",)),
        _sized(7, 18),
        ("uncomplicated", "perforated"),
        ("none",),
        frozenset({"free air", "abscess", "free fluid"}),
    ),
    _Spec(
        "hepatic cyst",
        (("CT", "abdomen and pelvis"), ("US", "abdomen and pelvis")),
        _pick(LIVER_SITES),
        _sized(4, 75),
        (None,),
        ("none", "stable", "increased", "decreased"),
        frozenset(),
    ),
    _Spec(
        "gallstones",
        (("US", "abdomen and pelvis"),),
        _pick(("gallbladder",)),
        _sized(3, 30),
        ("no wall thickening", "wall thickening"),
        ("none",),
        frozenset(),
    ),
    _Spec(
        "fracture",
        (("CR", "upper extremity"), ("DX", "lower extremity")),
        _bone,
        _displacement,
        ("nondisplaced", "displaced", "comminuted"),
        ("none", "new"),
        frozenset(),
    ),
)


def _normal(rng: random.Random) -> Findings:
    modality, body_part = rng.choice(sorted(NORMAL))
    return Findings(modality=modality, body_part=body_part, finding="none")


def _prior(rng: random.Random, comparison: str, size: int | None) -> int | None:
    if size is None or comparison not in ("increased", "decreased"):
        return None
    if comparison == "increased":
        return rng.randint(max(1, size // 2), max(1, size - 1)) if size > 1 else None
    return rng.randint(size + 1, size * 2)


def sample_findings(rng: random.Random, normal_rate: float = 0.1) -> Findings:
    """One random finding (or, with probability ``normal_rate``, a normal study)."""
    if rng.random() < normal_rate:
        return _normal(rng)
    spec = rng.choice(SPECS)
    modality, body_part = rng.choice(spec.studies)
    location = spec.location(rng)
    severity = rng.choice(spec.severities)
    size = spec.size(rng, severity)
    comparison = rng.choice(spec.comparisons)
    prior = _prior(rng, comparison, size)
    if comparison in ("increased", "decreased") and size is not None and prior is None:
        comparison = "new"
    if body_part == "upper extremity" or body_part == "lower extremity":
        body_part = BONES[(location or "").split(" ", 1)[1]]
    pool = [n for n in NEGATIVES[body_part] if n not in spec.excludes]
    # A structured template lists its checkboxes in a fixed order, so negatives keep pool order.
    chosen = set(rng.sample(pool, rng.randint(0, min(3, len(pool)))))
    negatives = tuple(n for n in pool if n in chosen)
    return Findings(
        modality=modality,
        body_part=body_part,
        finding=spec.finding,
        location=location,
        size_mm=size,
        severity=severity,
        comparison=comparison,
        prior_mm=prior,
        negatives=negatives,
    )


def generate_pairs(n: int, seed: int) -> list[Pair]:
    """``n`` pairs with distinct inputs, in a reproducible order."""
    rng = random.Random(seed)
    seen: set[str] = set()
    pairs: list[Pair] = []
    while len(pairs) < n:
        findings = sample_findings(rng)
        source = render_input(findings)
        if source in seen:
            continue
        seen.add(source)
        pairs.append(Pair(source=source, target=impression(findings)))
    return pairs


def train_val_split(n_train: int, n_val: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Disjoint train and validation pairs: no validation input also occurs in training."""
    pairs = generate_pairs(n_train + n_val, seed)
    return pairs[:n_train], pairs[n_train:]


def write_jsonl(pairs: Iterable[Pair], path: Path) -> None:
    """One ``{"source", "target"}`` object per line (UTF-8)."""
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
