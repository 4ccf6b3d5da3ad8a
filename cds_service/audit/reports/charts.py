"""The report's charts as inline SVG (matplotlib, Agg): no files, no external resources."""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

COLOURS = {"urgent": "#b2182b", "indicated": "#4393c3", "not-indicated": "#f4a582"}
COLOURS["insufficient-data"] = "#bababa"
COLOURS["out-of-population"] = "#dedede"


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cds-report"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    # Keep only the <svg> element: no XML declaration, no DOCTYPE pointing at w3.org.
    return text[text.index("<svg") :].strip()


def _empty(title: str) -> str:
    figure, axes = plt.subplots(figsize=(6, 1.2))
    axes.axis("off")
    axes.text(0.5, 0.5, f"{title}: no data in this period", ha="center", va="center")
    return _svg(figure)


def monthly_trend(monthly: list[dict[str, Any]]) -> str:
    """Lines per month: evaluations, not indicated, scans avoided, net avoided."""
    if not monthly:
        return _empty("Monthly trend")
    months = [m["month"] for m in monthly]
    figure, axes = plt.subplots(figsize=(7, 3))
    for key, label in (
        ("evaluations", "evaluations"),
        ("notIndicated", "not indicated"),
        ("avoided", "scans avoided"),
        ("netAvoided", "net avoided"),
    ):
        axes.plot(months, [m[key] for m in monthly], marker="o", label=label)
    axes.set_title("Monthly trend")
    axes.set_ylabel("orders")
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    return _svg(figure)


def decision_mix(by_modality: dict[str, dict[str, int]]) -> str:
    """Stacked bars: decisions per modality."""
    modalities = [m for m, counts in by_modality.items() if counts["total"]]
    if not modalities:
        return _empty("Decision mix")
    figure, axes = plt.subplots(figsize=(7, 3))
    bottom = [0] * len(modalities)
    for decision, colour in COLOURS.items():
        values = [by_modality[m][decision] for m in modalities]
        axes.bar(modalities, values, bottom=bottom, label=decision, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title("Decision mix by modality")
    axes.set_ylabel("evaluations")
    axes.legend(fontsize="small")
    return _svg(figure)


def override_reasons(reasons: list[dict[str, Any]]) -> str:
    """Horizontal bars: overrides of not-indicated cards per reason code."""
    if not reasons:
        return _empty("Override reasons")
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.4 * len(reasons)))
    labels = [r["code"] for r in reasons][::-1]
    axes.barh(labels, [r["count"] for r in reasons][::-1], color="#92c5de")
    axes.set_title("Override reasons (not-indicated cards)")
    axes.set_xlabel("overrides")
    return _svg(figure)


def strip_ids(svg: str) -> str:
    """SVG with its generated ids removed (for comparing two renderings in tests)."""
    return re.sub(r'id="[^"]*"', "", svg)
