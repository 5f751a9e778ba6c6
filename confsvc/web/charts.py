"""Bar charts as inline SVG, drawn on the server (no script, no chart library, nothing to download).

Pure: values in, markup out. Every text is escaped; each bar carries a ``<title>`` (its tooltip and
what a screen reader announces), the chart a ``role="img"`` with an ``aria-label``; the page shows
the same figures in a table. Sizes are SVG user units (the chart scales to its container's width).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Series:
    """One colour of bars: ``label`` (the legend), ``css`` (class ``bar-<css>``), one value per category."""

    label: str
    css: str
    values: Sequence[float]


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above ``value`` (1 for 0 or less): the axis' top."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10 ** exponent
        if top >= value - 1e-12:
            return float(top)
    return float(10 ** (exponent + 1))  # pragma: no cover (the loop ends at 10 × 10^k)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def column_chart(label: str, categories: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str], *,
                 width: int = 760, height: int = 280) -> Markup:
    """Grouped vertical bars: one group per category (e.g. a month), one bar per series.

    ``fmt`` formats axis ticks and tooltips (e.g. "5,33"). At most 12 category labels are written
    under the axis (every n-th); every bar keeps its full label in its tooltip.
    """
    left, right, top, bottom = 56, 12, 14, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = nice_max(max((v for s in series for v in s.values), default=0))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
             f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid-line" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(value))}</text>')
    n = max(len(categories), 1)
    slot = plot_w / n
    bar = max(min(slot * 0.8 / max(len(series), 1), 36.0), 1.0)
    every = math.ceil(n / 12)
    for c, name in enumerate(categories):
        x0 = left + c * slot + (slot - bar * len(series)) / 2
        for k, s in enumerate(series):
            value = s.values[c]
            h = plot_h * value / peak
            parts.append(f'<rect class="bar bar-{escape(s.css)}" x="{x0 + k * bar:.1f}" y="{top + plot_h - h:.1f}" '
                         f'width="{bar * 0.92:.1f}" height="{h:.1f}"><title>{escape(name)} · {escape(s.label)}: '
                         f'{escape(fmt(value))}</title></rect>')
        if c % every == 0:
            parts.append(f'<text class="label" x="{left + c * slot + slot / 2:.1f}" y="{height - bottom + 18}" '
                         f'text-anchor="middle">{escape(_short(name, 16))}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(label: str, categories: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str], *,
              width: int = 760, row_height: int = 30) -> Markup:
    """Grouped horizontal bars: one row per category (e.g. a unit), one thin bar per series, the
    value written at each bar's end. The caller orders and limits the categories."""
    left, right, top = 210, 70, 8
    plot_w = width - left - right
    height = top * 2 + row_height * max(len(categories), 1)
    peak = nice_max(max((v for s in series for v in s.values), default=0))
    bar = (row_height - 8) / max(len(series), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
             f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">']
    for c, name in enumerate(categories):
        y0 = top + c * row_height
        parts.append(f'<text class="label" x="{left - 8}" y="{y0 + row_height / 2 + 4:.1f}" text-anchor="end">'
                     f'<title>{escape(name)}</title>{escape(_short(name, 30))}</text>')
        for k, s in enumerate(series):
            value = s.values[c]
            w = plot_w * value / peak
            y = y0 + 4 + k * bar
            parts.append(f'<rect class="bar bar-{escape(s.css)}" x="{left}" y="{y:.1f}" width="{w:.1f}" '
                         f'height="{bar * 0.9:.1f}"><title>{escape(name)} · {escape(s.label)}: {escape(fmt(value))}'
                         f'</title></rect><text class="value" x="{left + w + 4:.1f}" y="{y + bar * 0.9 - 2:.1f}">'
                         f'{escape(fmt(value))}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{height - top}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
