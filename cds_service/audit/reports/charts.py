"""The report's charts as small inline SVG drawn here: no files, no external resources.

These replaced matplotlib (issue 17): importing it cost 0.7 s of CPU per report process and
its three charts 0.4 s more (these take under 1 ms), and it brought ~170 MB into the image,
for four simple charts (lines, stacked bars, bars and the mirror report's dot plot). Each
chart is an <svg role="img"> whose <title> says what it shows; the tables beside the charts
hold the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from cds_service.audit.reports.locale import Formatter

COLOURS = {"urgent": "#b2182b", "indicated": "#4393c3", "not-indicated": "#f4a582"}
COLOURS["insufficient-data"] = "#bababa"
COLOURS["out-of-population"] = "#dedede"
LINES = ("#1b6ca8", "#e08214", "#1a9850", "#762a83")
WIDTH = 640
FONT = 'font-family="system-ui, sans-serif" font-size="12"'

Text = Callable[[str], str]


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT}><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, value: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(value)}</text>'


def _nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (an axis end)."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if factor * step >= value:
            return factor * step
    return 10 * step


def _empty(title: str, t: Text) -> str:
    message = f"{title}: {t('chart.no_data')}"
    return _svg(WIDTH, 40, message, [_text(WIDTH / 2, 24, message, "middle")])


def _y_axis(top: float, left: int, plot_top: int, plot_height: int, f: Formatter) -> list[str]:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = plot_top + plot_height - plot_height * i / 4
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(_text(left - 6, y + 4, f.number(value, 0 if top >= 4 else 1), "end"))
    return parts


def _legend(items: Sequence[tuple[str, str]], y: int) -> list[str]:
    parts, x = [], 60
    for label, colour in items:
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(_text(x + 14, y, label))
        x += 24 + 7 * len(label)
    return parts


def monthly_trend(monthly: list[dict[str, Any]], t: Text, f: Formatter) -> str:
    """Lines per month: evaluations, not indicated, scans avoided, net avoided."""
    title = t("chart.trend")
    if not monthly:
        return _empty(title, t)
    series = [
        ("evaluations", t("figure.evaluations")),
        ("notIndicated", t("figure.not_indicated")),
        ("avoided", t("figure.avoided")),
        ("netAvoided", t("figure.net_avoided")),
    ]
    left, top_y, plot_h, height = 60, 30, 180, 260
    top = _nice_top(max(m[key] for m in monthly for key, _ in series))
    step = (WIDTH - left - 90) / max(1, len(monthly) - 1)
    parts = [_text(left, 18, title, extra=' font-weight="600"')]
    parts += _y_axis(top, left, top_y, plot_h, f)
    xs = [left + 40 + i * step if len(monthly) > 1 else WIDTH / 2 for i in range(len(monthly))]
    for x, month in zip(xs, monthly, strict=True):
        parts.append(_text(x, top_y + plot_h + 16, f.month(month["month"]), "middle"))
    for (key, _), colour in zip(series, LINES, strict=True):
        points = [
            (x, top_y + plot_h - plot_h * m[key] / top) for x, m in zip(xs, monthly, strict=True)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
    parts += _legend([(label, c) for (_, label), c in zip(series, LINES, strict=True)], height - 12)
    return _svg(WIDTH, height, title, parts)


def decision_mix(by_modality: dict[str, dict[str, int]], t: Text, f: Formatter) -> str:
    """Stacked bars: decisions per modality."""
    title = t("chart.mix")
    modalities = [m for m, counts in by_modality.items() if counts["total"]]
    if not modalities:
        return _empty(title, t)
    left, top_y, plot_h, height = 60, 30, 180, 260
    top = _nice_top(max(by_modality[m]["total"] for m in modalities))
    slot = (WIDTH - left - 20) / len(modalities)
    parts = [_text(left, 18, title, extra=' font-weight="600"')]
    parts += _y_axis(top, left, top_y, plot_h, f)
    for i, modality in enumerate(modalities):
        x = left + i * slot + slot * 0.2
        bottom: float = top_y + plot_h
        for decision, colour in COLOURS.items():
            h = plot_h * by_modality[modality].get(decision, 0) / top
            if h:
                parts.append(
                    f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{slot * 0.6:.1f}" '
                    f'height="{h:.1f}" fill="{colour}"/>'
                )
            bottom -= h
        label = t(f"modality.{modality}")
        parts.append(_text(x + slot * 0.3, top_y + plot_h + 16, label, "middle"))
    legend = [(t(f"decision.{d}"), c) for d, c in COLOURS.items()]
    parts += _legend(legend, height - 12)
    return _svg(WIDTH, height, title, parts)


def override_reasons(reasons: list[dict[str, Any]], t: Text, f: Formatter) -> str:
    """Horizontal bars: overrides of not-indicated cards per reason code."""
    title = t("chart.reasons")
    if not reasons:
        return _empty(title, t)
    left, row, top_y = 200, 24, 30
    height = top_y + row * len(reasons) + 10
    top = _nice_top(max(r["count"] for r in reasons))
    parts = [_text(10, 18, title, extra=' font-weight="600"')]
    for i, reason in enumerate(reasons):
        y = top_y + i * row
        w = (WIDTH - left - 60) * reason["count"] / top
        parts.append(_text(left - 6, y + 15, reason["code"], "end"))
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="#92c5de"/>'
        )
        parts.append(_text(left + w + 6, y + 15, f.number(reason["count"])))
    return _svg(WIDTH, height, title, parts)


def mirror_dots(rows: list[dict[str, Any]], t: Text, f: Formatter) -> str:
    """Per figure (a share, 0 to 100%): the peers' interquartile range as a band, their median
    as a tick, and the clinician's own value as a dot."""
    title = t("chart.mirror")
    left, row, top_y = 300, 30, 34
    height = top_y + row * len(rows) + 36
    span = WIDTH - left - 30

    def x_of(rate: float) -> float:
        return left + span * rate

    parts = [_text(10, 18, title, extra=' font-weight="600"')]
    for i in range(5):
        x = x_of(i / 4)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_y - 6}" y2="{height - 30}" stroke="#eee"/>'
        )
        parts.append(_text(x, height - 16, f.percent(i / 4, 0), "middle"))
    for i, item in enumerate(rows):
        y = top_y + i * row + row / 2
        parts.append(_text(left - 8, y + 4, item["name"], "end"))
        peers = item.get("peers")
        if peers and peers.get("median") is not None:
            q1, q3 = x_of(peers["q1"]), x_of(peers["q3"])
            parts.append(
                f'<rect x="{q1:.1f}" y="{y - 7:.1f}" width="{max(q3 - q1, 1):.1f}" height="14" '
                'fill="#c6dbef"/>'
            )
            m = x_of(peers["median"])
            parts.append(
                f'<line x1="{m:.1f}" x2="{m:.1f}" y1="{y - 9:.1f}" y2="{y + 9:.1f}" '
                'stroke="#08519c" stroke-width="2"/>'
            )
        if item.get("own") is not None:
            own = x_of(item["own"])
            parts.append(f'<circle cx="{own:.1f}" cy="{y:.1f}" r="6" fill="#d95f0e"/>')
    legend = [(t("mirror.legend.own"), "#d95f0e"), (t("mirror.legend.band"), "#c6dbef")]
    parts += _legend(legend, height + 10)
    return _svg(WIDTH, height + 18, title, parts)
