"""The operator pages' plots as inline SVG, drawn on the server (no script, no external asset).

``rollout_svg``: a rollout's arms. ``bar_chart``: the sync-health, queue and app-version charts.

The rollout plot's left panel: acceptance per arm, a dot at the rate and a whisker over its 95%
interval on a 0-100 % axis; its right panel: latency per arm, a bar to the median and a whisker
to p95. Colours are presentation attributes, not ``style``, so the pages'
Content-Security-Policy (no inline style or script) holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

ROW_H = 34
TOP = 34
LABEL_W = 150
PANEL_W = 260
GAP = 40
COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 12) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="#222">{escape(s)}</text>'
    )


def rollout_svg(arms: Sequence[Mapping[str, Any]], title: str) -> str:
    """``arms``: dicts with name, version, acceptance_rate, ci_low, ci_high, latency_p50_ms,
    latency_p95_ms (missing or None values are drawn as "n/a")."""
    n = max(len(arms), 1)
    height = TOP + n * ROW_H + 30
    width = LABEL_W + 2 * PANEL_W + GAP + 20
    x_acc, x_lat = LABEL_W, LABEL_W + PANEL_W + GAP
    lat_max = max(
        [
            v
            for a in arms
            for v in (_num(a.get("latency_p95_ms")), _num(a.get("latency_p50_ms")))
            if v is not None
        ]
        or [1.0]
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rollout-plot" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        _text(x_acc, 16, "acceptance (95% CI)", size=13),
        _text(x_lat, 16, "latency ms (median, p95)", size=13),
    ]
    base = TOP + n * ROW_H
    for x0 in (x_acc, x_lat):
        parts.append(
            f'<line x1="{x0}" y1="{TOP - 8}" x2="{x0}" y2="{base}" stroke="#888"/>'
            f'<line x1="{x0}" y1="{base}" x2="{x0 + PANEL_W}" y2="{base}" stroke="#888"/>'
        )
    for tick in (0.0, 0.5, 1.0):
        x = x_acc + tick * PANEL_W
        parts.append(_text(x, base + 16, f"{tick:.0%}", "middle", 11))
    parts.append(_text(x_lat, base + 16, "0", "middle", 11))
    parts.append(_text(x_lat + PANEL_W, base + 16, f"{lat_max:.0f}", "middle", 11))
    for i, arm in enumerate(arms):
        y = TOP + i * ROW_H + ROW_H / 2
        colour = COLOURS[i % len(COLOURS)]
        label = f"{arm.get('name', '?')} {arm.get('version', '')}".strip()
        parts.append(_text(LABEL_W - 8, y + 4, label[:24], "end"))
        rate, lo, hi = (_num(arm.get(k)) for k in ("acceptance_rate", "ci_low", "ci_high"))
        if rate is None:
            parts.append(_text(x_acc + 6, y + 4, "n/a (no decisions)"))
        else:
            if lo is not None and hi is not None:
                parts.append(
                    f'<line class="ci" x1="{x_acc + lo * PANEL_W:.1f}" y1="{y:.1f}" '
                    f'x2="{x_acc + hi * PANEL_W:.1f}" y2="{y:.1f}" stroke="{colour}" '
                    'stroke-width="3"/>'
                )
            parts.append(
                f'<circle class="rate" cx="{x_acc + rate * PANEL_W:.1f}" cy="{y:.1f}" r="5" '
                f'fill="{colour}"><title>{rate:.1%}</title></circle>'
            )
        p50, p95 = _num(arm.get("latency_p50_ms")), _num(arm.get("latency_p95_ms"))
        if p50 is None:
            parts.append(_text(x_lat + 6, y + 4, "n/a"))
            continue
        w = p50 / lat_max * PANEL_W
        parts.append(
            f'<rect class="latency" x="{x_lat}" y="{y - 8:.1f}" width="{w:.1f}" height="16" '
            f'fill="{colour}" opacity="0.7"><title>median {p50:.0f} ms</title></rect>'
        )
        if p95 is not None:
            x95 = x_lat + p95 / lat_max * PANEL_W
            parts.append(
                f'<line x1="{x_lat + w:.1f}" y1="{y:.1f}" x2="{x95:.1f}" y2="{y:.1f}" '
                'stroke="#333"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Bar:
    """One bar of a horizontal bar chart: its label, its count, and whether it is a warning."""

    label: str
    count: int
    warn: bool = False


BAR_H = 22
BAR_LABEL_W = 120
BAR_W = 320
COUNT_W = 60
BAR_COLOUR = "#4c78a8"
WARN_COLOUR = "#d9822b"  # the stale rows' amber, dark enough to read a white page against


def bar_chart(bars: Sequence[Bar], title: str, css_class: str) -> str:
    """A horizontal bar chart as inline SVG: one row per bar, the label left, the count right.

    Lengths are relative to the largest count (a chart of zeros draws no bar, only the "0"s).
    Every bar is a ``<g class="bar">`` carrying ``data-label`` and ``data-count``, so a test or
    a screen reader reads the numbers without parsing geometry; a warning bar adds ``warn``.
    Labels may come from workstations (app versions): they are escaped."""
    top = 26
    height = top + max(len(bars), 1) * BAR_H + 8
    width = BAR_LABEL_W + BAR_W + COUNT_W
    biggest = max([b.count for b in bars] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar-chart {escape(css_class)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        _text(4, 16, title, size=13),
        f'<line x1="{BAR_LABEL_W}" y1="{top - 4}" x2="{BAR_LABEL_W}" '
        f'y2="{height - 4}" stroke="#888"/>',
    ]
    for i, bar in enumerate(bars):
        y = top + i * BAR_H
        w = max(bar.count, 0) / biggest * BAR_W
        kind = "bar warn" if bar.warn else "bar"
        parts.append(
            f'<g class="{kind}" data-label="{escape(bar.label)}" data-count="{bar.count}">'
            f"<title>{escape(bar.label)}: {bar.count}</title>"
            + _text(BAR_LABEL_W - 8, y + BAR_H / 2 + 4, bar.label[:20], "end")
            + f'<rect x="{BAR_LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{BAR_H - 6}" '
            f'fill="{WARN_COLOUR if bar.warn else BAR_COLOUR}"/>'
            + _text(BAR_LABEL_W + w + 6, y + BAR_H / 2 + 4, str(bar.count))
            + "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
