"""Hanging protocols: which layout a study opens in, which series goes where, plane and window.

A protocol file (TOML; the defaults ship in ``resources/hanging/default.toml``, IT's own come
from the machine setting ``[viewer] hanging_protocols``) is a list of ``[[protocol]]`` tables:

- ``[[protocol.match]]``: the protocol fits a study if any one of these fits. Keys: ``modality``
  (regex matching a series' modality whole), ``body_part``, ``study_description``,
  ``series_description`` (regexes found anywhere; for series keys, in any series of the study),
  ``min_images`` / ``max_images`` (images in the study), ``prior`` (true: a prior study with a
  series of that modality is needed; false: there must be none). Regexes ignore case.
- ``[[protocol.stage]]``: ``name``, ``layout`` ("2x2", any "RxC", or "auto": the smallest preset
  that fits the viewports filled), ``fill`` (put the study's unplaced series in the rest),
  ``viewport = [{...}, ...]`` in reading order. A viewport picks a series by ``modality``,
  ``description``, ``acquired`` (the series' own plane: axial/coronal/sagittal/any),
  ``min_images``, ``prior`` (0: this study, 1: the most recent prior, ...), ``pick``
  ("largest": most images, may repeat; "next": first by series number not yet shown in the
  stage), and says how to show it: ``orientation`` (acquired, or an axial/coronal/sagittal
  reformat), ``window`` ("auto" or a preset name of ``core.imaging.presets``, applied only to a
  series of that preset's modality: a CT window never lands on an MR) and a ``label``.

Stages are paged with next/previous. A stage none of whose viewports found a series is left
out, as is one whose prior viewports all stayed empty; a protocol left with no stage does not
fit. IT's protocols are tried before the shipped ones; if none fits, one viewport shows the
largest series (with the prior beside it when there is one). A malformed file is refused with a
message naming the file and the key. Priors are found elsewhere (the local study database): the
caller passes the current study and its priors.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.imaging.model import Series, Study
from core.imaging.presets import GROUP_PRESETS
from core.viewer.layout import PRESETS, Layout, LayoutError, Orientation, parse_grid
from core.viewer.presets import AUTO, presets_for
from core.viewer.state import ViewerState

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "resources" / "hanging" / "default.toml"
Plane = Literal["axial", "coronal", "sagittal", "any"]


class HangingError(ValueError):
    """A protocol file that cannot be used (the message names the file and the key)."""


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"'{value}' is not a regular expression ({exc})") from exc
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchRule(_Spec):
    modality: str | None = None
    body_part: str | None = None
    study_description: str | None = None
    series_description: str | None = None
    min_images: int | None = Field(default=None, ge=0)
    max_images: int | None = Field(default=None, ge=0)
    prior: bool | None = None

    _check = field_validator("modality", "body_part", "study_description", "series_description")(
        _regex
    )


class ViewportRule(_Spec):
    modality: str | None = None
    description: str | None = None
    acquired: Plane = "any"
    min_images: int = Field(default=0, ge=0)
    prior: int = Field(default=0, ge=0)
    pick: Literal["largest", "next"] = "largest"
    orientation: Orientation = "acquired"
    window: str = AUTO
    label: str = ""

    _check = field_validator("modality", "description")(_regex)

    @field_validator("window")
    @classmethod
    def _known_window(cls, value: str) -> str:
        known = [AUTO, *(p.name for specs in GROUP_PRESETS.values() for p in specs)]
        if value not in known:
            raise ValueError(f"unknown window '{value}'; known: {', '.join(known)}")
        return value


class StageRule(_Spec):
    name: str = ""
    layout: str = "auto"
    fill: bool = False
    viewport: list[ViewportRule] = Field(default_factory=list)

    @field_validator("layout")
    @classmethod
    def _grid(cls, value: str) -> str:
        if value != "auto" and value not in PRESETS:
            try:
                parse_grid(value)
            except LayoutError as exc:
                raise ValueError(str(exc)) from exc
        return value


class Protocol(_Spec):
    name: str
    match: list[MatchRule] = Field(min_length=1)
    stage: list[StageRule] = Field(min_length=1)


class ProtocolFile(_Spec):
    protocol: list[Protocol] = Field(default_factory=list)


# --- reading protocol files ---------------------------------------------------------------
def read_protocols(path: Path) -> list[Protocol]:
    """The protocols of one file; HangingError names the file and the key that is wrong."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise HangingError(f"hanging protocol file '{path}' does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HangingError(f"cannot read hanging protocol file '{path}': {exc}") from exc
    try:
        return ProtocolFile.model_validate(data).protocol
    except ValidationError as exc:
        problems = "; ".join(
            f"{_key(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise HangingError(f"invalid hanging protocol file '{path}': {problems}") from exc


def _key(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as the file's own words: protocol[2].stage[1].viewport[0].window."""
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_protocols(it_file: str | Path | None = None) -> list[Protocol]:
    """IT's protocols (if configured) followed by the shipped defaults."""
    own = read_protocols(Path(it_file)) if it_file else []
    return own + read_protocols(DEFAULT_FILE)


# --- matching -------------------------------------------------------------------------------
def _found(pattern: str | None, text: str) -> bool:
    return pattern is None or re.search(pattern, text or "", re.IGNORECASE) is not None


def _whole(pattern: str | None, text: str) -> bool:
    return pattern is None or re.fullmatch(pattern, text or "", re.IGNORECASE) is not None


def acquired_plane(series: Series) -> str:
    """axial/coronal/sagittal from the first slice's normal; '' without orientation."""
    for inst in series.instances:
        o = inst.image_orientation
        if o is not None:
            n = np.abs(np.cross(np.asarray(o[:3]), np.asarray(o[3:])))
            return ("sagittal", "coronal", "axial")[int(np.argmax(n))]
    return ""


def _images(study: Study) -> int:
    return sum(s.frame_count for s in study.series.values())


def _fits(rule: MatchRule, study: Study, priors: Sequence[Study]) -> bool:
    series = list(study.series.values())
    checks = (
        any(_whole(rule.modality, s.modality) for s in series),
        any(_found(rule.body_part, s.body_part) for s in series),
        _found(rule.study_description, study.description),
        any(_found(rule.series_description, s.description) for s in series),
        rule.min_images is None or _images(study) >= rule.min_images,
        rule.max_images is None or _images(study) <= rule.max_images,
    )
    if not all(checks):
        return False
    if rule.prior is None:
        return True
    has = any(_whole(rule.modality, s.modality) for p in priors for s in p.series.values())
    return has == rule.prior


# --- the result ----------------------------------------------------------------------------
@dataclass
class HungViewport:
    series: Series | None
    study: Study | None
    orientation: Orientation = "acquired"
    window: str = AUTO
    label: str = ""
    prior: int = 0


@dataclass
class HungStage:
    name: str
    rows: int
    cols: int
    viewports: list[HungViewport]


@dataclass
class Hanging:
    """A protocol applied to one study: its stages, paged with next/previous."""

    protocol: str
    stages: list[HungStage]
    stage: int = 0
    studies: list[Study] = field(default_factory=list)  # current first, then priors by date

    @property
    def current(self) -> HungStage:
        return self.stages[self.stage]

    def next(self) -> HungStage:
        self.stage = min(self.stage + 1, len(self.stages) - 1)
        return self.current

    def previous(self) -> HungStage:
        self.stage = max(self.stage - 1, 0)
        return self.current


def _ordered(series: Sequence[Series]) -> list[Series]:
    return sorted(series, key=lambda s: (s.series_number is None, s.series_number or 0))


def _choose(rule: ViewportRule, study: Study, used: set[str]) -> Series | None:
    candidates = [
        s
        for s in _ordered([s for s in study.series.values() if s.frame_count])
        if _whole(rule.modality, s.modality)
        and _found(rule.description, s.description)
        and s.frame_count >= rule.min_images
        and (rule.acquired == "any" or acquired_plane(s) == rule.acquired)
    ]
    if rule.pick == "next":
        return next((s for s in candidates if s.series_instance_uid not in used), None)
    return max(candidates, key=lambda s: s.frame_count, default=None)


def auto_grid(n: int) -> tuple[int, int]:
    """The smallest preset grid holding ``n`` viewports (at most 3x3)."""
    for rows, cols in ((1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)):
        if rows * cols >= n:
            return rows, cols
    return 3, 3


def _stage(rule: StageRule, studies: list[Study]) -> HungStage | None:
    used: set[str] = set()
    views: list[HungViewport] = []
    for vr in rule.viewport:
        study = studies[vr.prior] if vr.prior < len(studies) else None
        series = _choose(vr, study, used) if study is not None else None
        if series is not None:
            used.add(series.series_instance_uid)
        views.append(
            HungViewport(series, study, vr.orientation, vr.window, vr.label, prior=vr.prior)
        )
    prior_views = [v for v in views if v.prior > 0]
    if prior_views and all(v.series is None for v in prior_views):
        return None  # a comparison stage without its comparison
    if rule.fill:
        rest = [s for s in _ordered(list(studies[0].series.values())) if s.frame_count]
        rest = [s for s in rest if s.series_instance_uid not in used]
        slots = iter([i for i, v in enumerate(views) if v.series is None])
        for s in rest:
            i = next(slots, None)
            if i is None:
                views.append(HungViewport(s, studies[0], label=s.description))
            else:
                views[i] = HungViewport(s, studies[0], label=s.description)
        if rule.layout == "auto":
            views = [v for v in views if v.series is not None]
    if not any(v.series is not None for v in views):
        return None
    rows, cols = (
        auto_grid(len(views))
        if rule.layout == "auto"
        else PRESETS.get(rule.layout) or parse_grid(rule.layout)
    )
    return HungStage(rule.name, rows, cols, views[: rows * cols])


def _fallback(studies: list[Study]) -> Hanging:
    def largest(study: Study) -> Series | None:
        return max(study.series.values(), key=lambda s: s.frame_count, default=None)

    views = [HungViewport(largest(studies[0]), studies[0], label="Current")]
    if len(studies) > 1:
        views.append(HungViewport(largest(studies[1]), studies[1], label="Prior", prior=1))
    return Hanging("default", [HungStage("Default", 1, len(views), views)], studies=studies)


def issuer_of(study: Study) -> str:
    """The study's Issuer of Patient ID ("" when its files name none)."""
    for series in study.series.values():
        for instance in series.instances:
            return instance.issuer_of_patient_id
    return ""


def hang(current: Study, priors: Sequence[Study], protocols: Sequence[Protocol]) -> Hanging:
    """The first protocol that fits ``current`` (with ``priors``), applied; else the default.
    A prior of another issuer of patient IDs is left out: the same ID from another hospital's
    numbering is another patient (the open studies are grouped by Patient ID alone)."""
    issuer = issuer_of(current)
    priors = [p for p in priors if issuer_of(p) == issuer]
    ordered = sorted(priors, key=lambda s: (s.study_date, s.study_time), reverse=True)
    studies = [current, *ordered]
    for protocol in protocols:
        if not any(_fits(m, current, ordered) for m in protocol.match):
            continue
        stages = [s for s in (_stage(r, studies) for r in protocol.stage) if s is not None]
        if stages:
            return Hanging(protocol.name, stages, studies=studies)
    return _fallback(studies)


def apply(stage: HungStage, layout: Layout) -> None:
    """Lay a stage out: grid, series, plane and window per viewport (a preset only where it
    belongs to the series' modality)."""
    layout.restore()
    layout.set_grid(stage.rows, stage.cols)
    for i in range(len(layout)):
        view = stage.viewports[i] if i < len(stage.viewports) else None
        if view is None:
            layout.assign(i, None)
        else:
            layout.assign(i, view.series, view.orientation, view.label)
    apply_windows(stage, layout)
    layout.set_active(0)


def apply_windows(stage: HungStage, layout: Layout) -> None:
    """The stage's window presets (again, after a loader reset a viewport's series)."""
    for i, view in enumerate(stage.viewports[: len(layout)]):
        series = view.series
        names = {p.name for p in presets_for(series.modality)} if series is not None else set()
        if view.window in names:
            _window_when_loaded(layout.cell(i).state, view.window)


def _window_when_loaded(state: ViewerState, name: str) -> None:
    """Apply a preset now (fixed CT windows), or with the first slice decoded (the presets
    computed from the image's values), unless the reader chose a window in between."""
    if state.loaded_count:
        state.apply_preset(name)
        return
    if name in {p.name for p in presets_for("CT")}:
        state.apply_preset(name)
        return
    series = state.series

    def first(_index: int) -> None:
        state.frame_loaded.disconnect(first)
        if state.series is series and state.viewport.preset == AUTO:
            state.apply_preset(name)

    state.frame_loaded.connect(first)


def describe(hanging: Hanging) -> dict[str, Any]:
    """The hanging as plain data (logs, tests, a CLI)."""
    return {
        "protocol": hanging.protocol,
        "stages": [
            {
                "name": st.name,
                "layout": f"{st.rows}x{st.cols}",
                "viewports": [
                    {
                        "series": v.series.series_instance_uid if v.series else None,
                        "description": v.series.description if v.series else "",
                        "orientation": v.orientation,
                        "window": v.window,
                        "label": v.label,
                        "prior": v.prior,
                    }
                    for v in st.viewports
                ],
            }
            for st in hanging.stages
        ],
    }
