"""A rollout's plot as inline SVG, drawn on the server (no script, no external asset).

Left panel: acceptance per arm, a dot at the rate and a whisker over its 95% interval on a
0-100 % axis. Right panel: latency per arm, a bar to the median and a whisker to p95. Colours
are presentation attributes, not ``style``, so the page's Content-Security-Policy holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
