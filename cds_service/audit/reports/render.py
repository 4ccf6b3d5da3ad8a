"""The report as JSON, CSV (one figure per line) or a self-contained HTML page with charts,
its words in Dutch or English (the JSON keys and CSV figure names stay the same)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from cds_service.audit.reports import charts
from cds_service.audit.reports.locale import Formatter
from cds_service.audit.reports.translations import definition_name, translator

FORMATS = ("json", "csv", "html")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_json(report: dict[str, Any], language: str = "en") -> str:
    """Pretty JSON."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def _label(item: dict[str, Any], index: int) -> str:
    if "key" in item:
        return str(item["key"])
    if "month" in item:
        return str(item["month"])
    if "code" in item:
        return f"{item.get('system', '')}|{item['code']}"
    return str(index)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted figure name, value) pairs; list items are named by their key, month or code."""
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            pairs.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return pairs
    if isinstance(value, list):
        pairs = []
        for index, item in enumerate(value):
            name = f"{prefix}[{_label(item, index) if isinstance(item, dict) else index}]"
            pairs.extend(flatten(item, name))
        return pairs
    return [(prefix, value)]


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet will show, never run: formula starts get a leading quote.

    OWASP's advice for CSV injection: =, +, -, @, tab and carriage return at the start make
    Excel or LibreOffice read a formula. Numbers the report computed are written as numbers.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(report: dict[str, Any], language: str = "en") -> str:
    """Two columns, figure and value, one line per figure (definitions included); the header
    in `language`, the figure names the JSON's."""
    buffer = io.StringIO()
    # CRLF line ends (RFC 4180): the csv module then quotes a cell holding a lone CR or LF,
    # which with "\n" alone it would write bare, splitting the line for a reader.
    writer = csv.writer(buffer, lineterminator="\r\n")
    t = translator(language)
    writer.writerow([t("col.figure"), t("col.value")])
    for name, value in flatten(report):
        writer.writerow([csv_cell(name), "" if value is None else csv_cell(value)])
    return buffer.getvalue()


_environment = Environment(
    loader=PackageLoader("cds_service.audit.reports", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)


def page_context(language: str) -> dict[str, Any]:
    """What every report template is given: language, t(), the formatter and name()."""
    return {
        "lang": language,
        "t": translator(language),
        "f": Formatter(language),
        "name": lambda key: definition_name(key, language),
    }


def to_html(report: dict[str, Any], language: str = "en") -> str:
    """A self-contained HTML page: figures, definitions and three inline SVG charts."""
    t, f = translator(language), Formatter(language)
    svgs = {
        "trend": charts.monthly_trend(report["monthly"], t, f),
        "mix": charts.decision_mix(report["evaluations"]["byModality"], t, f),
        "reasons": charts.override_reasons(report["notIndicated"]["overrideReasons"], t, f),
    }
    template = _environment.get_template("report.html.j2")
    return template.render(r=report, charts=svgs, **page_context(language))


def render(report: dict[str, Any], fmt: str, language: str = "en") -> str:
    """The report in one of FORMATS, its words in `language`."""
    return {"json": to_json, "csv": to_csv, "html": to_html}[fmt](report, language)


def mirror_chart_rows(report: dict[str, Any], language: str) -> list[dict[str, Any]]:
    """The mirror report's chart rows: name, own share and the peers' summary."""
    t = translator(language)
    figures = report["figures"]
    rows = [
        (t("figure.not_indicated_share"), figures["notIndicatedShare"]),
        (t("figure.avoided_share"), figures["avoidedShare"]),
        (t("figure.overridden_share"), figures["overriddenShare"]),
        (t("mirror.measure28"), figures["measure28Rate"]),
    ]
    return [{"name": name, "own": f["own"], "peers": f["peers"]} for name, f in rows]


def mirror_to_html(report: dict[str, Any], language: str = "en") -> str:
    """The mirror report as a self-contained HTML page with its dot chart."""
    t, f = translator(language), Formatter(language)
    chart = charts.mirror_dots(mirror_chart_rows(report, language), t, f)
    template = _environment.get_template("mirror.html.j2")
    return template.render(r=report, chart=chart, **page_context(language))


def render_mirror(report: dict[str, Any], fmt: str, language: str = "en") -> str:
    """The mirror report in one of FORMATS."""
    return {"json": to_json, "csv": to_csv, "html": mirror_to_html}[fmt](report, language)
