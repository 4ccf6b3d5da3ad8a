"""The avoided-scans report on a known data set: every figure, in JSON, CSV and HTML, in Dutch
and in English, with the comparison against the period before."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import date

import pytest

from cds_service.app import create_app
from cds_service.audit.reports.comparison import previous_period
from cds_service.audit.reports.figures import DEFINITIONS, Costs, Period, compute_report
from cds_service.audit.reports.render import flatten
from cds_service.audit.reports.translations import EXTRA_DEFINITIONS as EXTRA
from cds_service.audit.reports.translations import definitions
from cds_service.audit.store import AuditStore
from cds_service.cli import main
from tests.conftest import ContractClient
from tests.functional.report_dataset import LOCAL, NA, load_known_rows

PERIOD = Period(date(2026, 1, 1), date(2026, 3, 31))
COSTS = Costs(
    {"xray": 60.0, "ct": 180.0, "mri": 250.0}, {"xray": 1.5, "ct": 6.0, "mri": 0.0}, "EUR"
)


@pytest.fixture
def known_store(audit_url):
    store = AuditStore.from_url(audit_url)
    store.upgrade()
    load_known_rows(store.engine)
    yield store
    store.engine.dispose()


def group(key, evaluations, not_indicated, avoided, net, overridden, none):
    return {
        "key": key,
        "evaluations": evaluations,
        "notIndicated": not_indicated,
        "notIndicatedRate": round(not_indicated / evaluations, 4),
        "avoided": avoided,
        "netAvoided": net,
        "overridden": overridden,
        "noResponse": none,
    }


CLINICIANS = [
    group("c-A", 240, 100, 50, 40, 20, 20),
    group("c-B", 105, 100, 50, 45, 20, 20),
    group("c-C", 50, 50, 10, 10, 20, 20),
    group("c-D", 25, 0, 0, 0, 0, 0),
]
# The labels of these pseudonyms (labels.py): fixed here, because a label that changed between
# releases would no longer be the one a practice has learnt to read as its own.
LABELS = {"c-A": "H-EJ6R", "c-B": "H-2HTF", "c-C": "H-0DR2", "c-D": "H-JY24"}


def labelled(groups: list[dict]) -> list[dict]:
    """Clinician groups as the full report has them: with their labels."""
    return [{**g, "label": LABELS[g["key"]]} for g in groups]


def compared(evaluations: int, not_indicated: int, avoided: int) -> dict:
    return {
        "evaluations": evaluations,
        "notIndicated": not_indicated,
        "notIndicatedShare": round(not_indicated / evaluations, 4) if evaluations else None,
        "avoided": avoided,
        "avoidedShare": round(avoided / not_indicated, 4) if not_indicated else None,
    }


def changed(evaluations, not_indicated, share, avoided, avoided_share) -> dict:
    return {
        "evaluations": evaluations,
        "notIndicated": not_indicated,
        "notIndicatedShare": share,
        "avoided": avoided,
        "avoidedShare": avoided_share,
    }


NOTHING_TO_COMPARE = changed(None, None, None, None, None)
# Q1 2026 has 90 days, so the period before is 2025-10-03..2025-12-31: group E (75
# not-indicated X-ray orders, 2025-12-15, tenant south, no feedback) and nothing else.
VERSUS_PREVIOUS = {
    "previousPeriod": {"from": "2025-10-03", "to": "2025-12-31"},
    "current": compared(420, 250, 110),
    "previous": compared(75, 75, 0),
    "change": changed(345, 175, round(0.5952 - 1.0, 4), 110, 0.44),
    "byMonth": [
        # January against December 2025 (group E alone: 75, all not indicated, none avoided)
        {
            "month": "2026-01",
            **compared(210, 100, 50),
            "change": changed(135, 25, -0.5238, 50, 0.5),
        },
        {"month": "2026-02", **compared(135, 100, 50), "change": changed(-75, 0, 0.2645, 0, 0.0)},
        {
            "month": "2026-03",
            **compared(75, 50, 10),
            "change": changed(-60, -50, -0.074, -40, -0.3),
        },
    ],
    "byOrganisation": [
        # north had no evaluations before: nothing to compare with
        {
            "key": "north",
            "current": compared(265, 250, 110),
            "previous": compared(0, 0, 0),
            "change": NOTHING_TO_COMPARE,
        },
        {
            "key": "south",
            "current": compared(155, 0, 0),
            "previous": compared(75, 75, 0),
            # no not-indicated order now: no avoided share to compare
            "change": changed(80, -75, -1.0, 0, None),
        },
    ],
}


def expected_figures(*, full: bool = False) -> dict:
    """The figures worked out by hand from report_dataset's docstring; `full`: as the CLI and
    the endpoint give them (labels and the comparison with the period before added)."""
    extra = {"versusPrevious": VERSUS_PREVIOUS} if full else {}
    return {
        **extra,
        "evaluations": {
            "total": 420,
            "byDecision": {
                "urgent": 20,
                "indicated": 120,
                "not-indicated": 250,
                "insufficient-data": 30,
                "out-of-population": 0,
            },
            "byModality": {
                "ct": {
                    "urgent": 0,
                    "indicated": 3,
                    "not-indicated": 50,
                    "insufficient-data": 10,
                    "out-of-population": 0,
                    "total": 63,
                },
                "mri": {
                    "urgent": 20,
                    "indicated": 63,
                    "not-indicated": 150,
                    "insufficient-data": 20,
                    "out-of-population": 0,
                    "total": 253,
                },
                "xray": {
                    "urgent": 0,
                    "indicated": 54,
                    "not-indicated": 50,
                    "insufficient-data": 0,
                    "out-of-population": 0,
                    "total": 104,
                },
            },
        },
        "notIndicated": {
            "total": 250,
            "cancelled": 70,
            "replaced": 40,
            "avoided": 110,
            "reordered": 15,
            "netAvoided": 95,
            "acceptedOther": 20,
            "overridden": 60,
            "noResponse": 60,
            "overrideReasons": [
                {"system": NA, "code": "prefers-alternative", "count": 40},
                {"system": LOCAL, "code": "red-flag-not-recorded", "count": 20},
            ],
        },
        "measure28": {"episodes": 250, "withoutImaging": 195, "rate": 0.78},
        "urgent": {
            "total": 20,
            "followedThrough": 15,
            "followThroughRate": 0.75,
            "accepted": 3,
            "overridden": 0,
            "noResponse": 17,
        },
        "resources": {
            "currency": "EUR",
            "byModality": {
                "xray": {
                    "netAvoided": 21,
                    "tariff": 60.0,
                    "cost": 1260.0,
                    "mSvPerExam": 1.5,
                    "mSv": 31.5,
                },
                "ct": {
                    "netAvoided": 22,
                    "tariff": 180.0,
                    "cost": 3960.0,
                    "mSvPerExam": 6.0,
                    "mSv": 132.0,
                },
                "mri": {
                    "netAvoided": 52,
                    "tariff": 250.0,
                    "cost": 13000.0,
                    "mSvPerExam": 0.0,
                    "mSv": 0.0,
                },
            },
            "cost": 18220.0,
            "mSv": 163.5,
        },
        "monthly": [
            {
                "month": "2026-01",
                "evaluations": 210,
                "notIndicated": 100,
                "avoided": 50,
                "netAvoided": 40,
            },
            {
                "month": "2026-02",
                "evaluations": 135,
                "notIndicated": 100,
                "avoided": 50,
                "netAvoided": 45,
            },
            {
                "month": "2026-03",
                "evaluations": 75,
                "notIndicated": 50,
                "avoided": 10,
                "netAvoided": 10,
            },
        ],
        "clinicians": labelled(CLINICIANS) if full else CLINICIANS,
    }


def test_every_figure_of_the_known_data_set(known_store):
    report = compute_report(known_store.engine, PERIOD, COSTS)
    for key, value in expected_figures().items():
        assert report[key] == value, key
    assert report["period"] == {"from": "2026-01-01", "to": "2026-03-31"}
    assert "groups" not in report


@pytest.mark.parametrize(
    "by, groups",
    [
        ("clinician", CLINICIANS),
        (
            "organisation",
            [group("north", 265, 250, 110, 95, 60, 60), group("south", 155, 0, 0, 0, 0, 0)],
        ),
        (
            "month",
            [
                group("2026-01", 210, 100, 50, 40, 20, 20),
                group("2026-02", 135, 100, 50, 45, 20, 20),
                group("2026-03", 75, 50, 10, 10, 20, 20),
            ],
        ),
    ],
)
def test_grouped_figures(known_store, by, groups):
    report = compute_report(known_store.engine, PERIOD, COSTS, by=by)
    assert report["by"] == by
    assert report["groups"] == groups


def test_the_period_before_is_cut_at_the_calendars_first_day():
    assert previous_period(Period(date(2026, 3, 1), date(2026, 3, 31))) == Period(
        date(2026, 1, 29), date(2026, 2, 28)
    )
    assert previous_period(Period(date(1, 1, 5), date(1, 1, 31))) == Period(
        date(1, 1, 1), date(1, 1, 4)
    )
    assert previous_period(Period(date(1, 1, 1), date(1, 1, 31))) is None


def test_a_period_from_the_calendars_first_day_compares_with_nothing(report_client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = report_client.get(
        "/reports/avoided-scans?from=0001-01-01&to=0001-01-31", headers=auth
    )
    assert response.status_code == 200
    versus = response.get_json()["versusPrevious"]
    assert versus["previousPeriod"] is None and versus["change"] == NOTHING_TO_COMPARE


def test_an_empty_period_has_zero_figures(known_store):
    report = compute_report(known_store.engine, Period(date(2030, 1, 1), date(2030, 1, 31)), COSTS)
    assert report["evaluations"]["total"] == 0
    assert report["measure28"] == {"episodes": 0, "withoutImaging": 0, "rate": None}
    assert report["clinicians"] == [] and report["monthly"] == []


TOKEN = "report-token-for-the-tests-0123"
QUERY = "from=2026-01-01&to=2026-03-31"


UP, DOWN, SAME = '<span class="up">', '<span class="down">', '<span class="">'
# Every figure of the known data set as the HTML page writes it, in each language.
HTML_ROWS = {
    "en": [
        "<h1>Avoided lumbar imaging: 1 January 2026 to 31 March 2026</h1>",
        "<tr><td>evaluations</td><td>420</td></tr>",
        "<tr><td>not indicated</td><td>250</td></tr>",
        "<tr><td>– cancelled via suggestion</td><td>70</td></tr>",
        "<tr><td>– replaced via suggestion</td><td>40</td></tr>",
        "<tr><td><strong>scans avoided</strong></td><td><strong>110</strong></td></tr>",
        "<tr><td>– re-ordered within 42 days</td><td>15</td></tr>",
        "<tr><td><strong>net avoided</strong></td><td><strong>95</strong></td></tr>",
        "<tr><td>– accepted another suggestion</td><td>20</td></tr>",
        "<tr><td>– overridden</td><td>60</td></tr>",
        "<tr><td>– no response</td><td>60</td></tr>",
        "3 October 2025 to 31 December 2025.",
        f"<tr><td>evaluations</td><td>420</td><td>75</td><td>{UP}+345</span></td></tr>",
        f"<tr><td>not indicated</td><td>250</td><td>75</td><td>{UP}+175</span></td></tr>",
        "<tr><td>share not indicated</td><td>59.5%</td><td>100.0%</td>"
        f"<td>{DOWN}−40.5 pp</span></td></tr>",
        f"<tr><td>scans avoided</td><td>110</td><td>0</td><td>{UP}+110</span></td></tr>",
        "<tr><td>share avoided (of not indicated)</td><td>44.0%</td><td>0.0%</td>"
        f"<td>{UP}+44.0 pp</span></td></tr>",
        f"<tr><td>January 2026</td><td>210</td><td>{UP}+135</span></td><td>47.6%</td>"
        f"<td>{DOWN}−52.4 pp</span></td><td>50</td><td>{UP}+50</span></td><td>50.0%</td>"
        f"<td>{UP}+50.0 pp</span></td></tr>",
        f"<tr><td>February 2026</td><td>135</td><td>{DOWN}−75</span></td><td>74.1%</td>"
        f"<td>{UP}+26.5 pp</span></td><td>50</td><td>{SAME}0</span></td><td>50.0%</td>"
        f"<td>{SAME}0.0 pp</span></td></tr>",
        f"<tr><td>March 2026</td><td>75</td><td>{DOWN}−60</span></td><td>66.7%</td>"
        f"<td>{DOWN}−7.4 pp</span></td><td>10</td><td>{DOWN}−40</span></td><td>20.0%</td>"
        f"<td>{DOWN}−30.0 pp</span></td></tr>",
        "<tr><td>north</td><td>265</td><td>–</td><td>94.3%</td><td>–</td><td>110</td><td>–</td>"
        "<td>44.0%</td><td>–</td></tr>",
        f"<tr><td>south</td><td>155</td><td>{UP}+80</span></td><td>0.0%</td>"
        f"<td>{DOWN}−100.0 pp</span></td><td>0</td><td>{SAME}0</span></td>"
        "<td>–</td><td>–</td></tr>",
        "<tr><td>CT</td><td>0</td><td>3</td><td>50</td><td>10</td><td>0</td><td>63</td></tr>",
        "<tr><td>MRI</td><td>20</td><td>63</td><td>150</td><td>20</td><td>0</td><td>253</td></tr>",
        "<tr><td>X-ray</td><td>0</td><td>54</td><td>50</td><td>0</td><td>0</td><td>104</td></tr>",
        "<tr><td>all</td><td>20</td><td>120</td><td>250</td><td>30</td><td>0</td><td>420</td></tr>",
        "<tr><td>January 2026</td><td>210</td><td>100</td><td>50</td><td>40</td></tr>",
        "<tr><td>February 2026</td><td>135</td><td>100</td><td>50</td><td>45</td></tr>",
        "<tr><td>March 2026</td><td>75</td><td>50</td><td>10</td><td>10</td></tr>",
        f"<tr><td>prefers-alternative</td><td>{NA}</td><td>40</td></tr>",
        f"<tr><td>red-flag-not-recorded</td><td>{LOCAL}</td><td>20</td></tr>",
        "<tr><td>250</td><td>195</td><td>78.0%</td></tr>",
        "<tr><td>20</td><td>15</td><td>75.0%</td><td>3</td><td>0</td><td>17</td></tr>",
        "<tr><td>X-ray</td><td>21</td><td>€60</td><td>€1,260</td><td>1.5</td><td>31.5</td></tr>",
        "<tr><td>CT</td><td>22</td><td>€180</td><td>€3,960</td><td>6.0</td><td>132.0</td></tr>",
        "<tr><td>MRI</td><td>52</td><td>€250</td><td>€13,000</td><td>0.0</td><td>0.0</td></tr>",
        "<tr><td>total</td><td></td><td></td><td>€18,220</td><td></td><td>163.5</td></tr>",
        '<tr><td class="pseudonym" title="c-A">H-EJ6R</td><td>240</td><td>100</td><td>41.7%</td>'
        "<td>50</td><td>40</td><td>20</td><td>20</td></tr>",
        '<tr><td class="pseudonym" title="c-B">H-2HTF</td><td>105</td><td>100</td><td>95.2%</td>'
        "<td>50</td><td>45</td><td>20</td><td>20</td></tr>",
        '<tr><td class="pseudonym" title="c-C">H-0DR2</td><td>50</td><td>50</td><td>100.0%</td>'
        "<td>10</td><td>10</td><td>20</td><td>20</td></tr>",
        '<tr><td class="pseudonym" title="c-D">H-JY24</td><td>25</td><td>0</td><td>0.0%</td>'
        "<td>0</td><td>0</td><td>0</td><td>0</td></tr>",
    ],
    "nl": [
        "<h1>Vermeden lumbale beeldvorming: 1 januari 2026 tot en met 31 maart 2026</h1>",
        "<tr><td>beoordelingen</td><td>420</td></tr>",
        "<tr><td>niet geïndiceerd</td><td>250</td></tr>",
        "<tr><td>– geannuleerd via suggestie</td><td>70</td></tr>",
        "<tr><td>– vervangen via suggestie</td><td>40</td></tr>",
        "<tr><td><strong>vermeden scans</strong></td><td><strong>110</strong></td></tr>",
        "<tr><td>– opnieuw aangevraagd binnen 42 dagen</td><td>15</td></tr>",
        "<tr><td><strong>netto vermeden</strong></td><td><strong>95</strong></td></tr>",
        "<tr><td>– andere suggestie geaccepteerd</td><td>20</td></tr>",
        "<tr><td>– afgeweken</td><td>60</td></tr>",
        "<tr><td>– geen reactie</td><td>60</td></tr>",
        "3 oktober 2025 tot en met 31 december 2025.",
        f"<tr><td>beoordelingen</td><td>420</td><td>75</td><td>{UP}+345</span></td></tr>",
        f"<tr><td>niet geïndiceerd</td><td>250</td><td>75</td><td>{UP}+175</span></td></tr>",
        "<tr><td>aandeel niet geïndiceerd</td><td>59,5%</td><td>100,0%</td>"
        f"<td>{DOWN}−40,5 pp</span></td></tr>",
        f"<tr><td>vermeden scans</td><td>110</td><td>0</td><td>{UP}+110</span></td></tr>",
        "<tr><td>aandeel vermeden (van niet geïndiceerd)</td><td>44,0%</td><td>0,0%</td>"
        f"<td>{UP}+44,0 pp</span></td></tr>",
        f"<tr><td>januari 2026</td><td>210</td><td>{UP}+135</span></td><td>47,6%</td>"
        f"<td>{DOWN}−52,4 pp</span></td><td>50</td><td>{UP}+50</span></td><td>50,0%</td>"
        f"<td>{UP}+50,0 pp</span></td></tr>",
        f"<tr><td>februari 2026</td><td>135</td><td>{DOWN}−75</span></td><td>74,1%</td>"
        f"<td>{UP}+26,5 pp</span></td><td>50</td><td>{SAME}0</span></td><td>50,0%</td>"
        f"<td>{SAME}0,0 pp</span></td></tr>",
        f"<tr><td>maart 2026</td><td>75</td><td>{DOWN}−60</span></td><td>66,7%</td>"
        f"<td>{DOWN}−7,4 pp</span></td><td>10</td><td>{DOWN}−40</span></td><td>20,0%</td>"
        f"<td>{DOWN}−30,0 pp</span></td></tr>",
        "<tr><td>north</td><td>265</td><td>–</td><td>94,3%</td><td>–</td><td>110</td><td>–</td>"
        "<td>44,0%</td><td>–</td></tr>",
        f"<tr><td>south</td><td>155</td><td>{UP}+80</span></td><td>0,0%</td>"
        f"<td>{DOWN}−100,0 pp</span></td><td>0</td><td>{SAME}0</span></td>"
        "<td>–</td><td>–</td></tr>",
        "<tr><td>CT</td><td>0</td><td>3</td><td>50</td><td>10</td><td>0</td><td>63</td></tr>",
        "<tr><td>MRI</td><td>20</td><td>63</td><td>150</td><td>20</td><td>0</td><td>253</td></tr>",
        "<tr><td>röntgen</td><td>0</td><td>54</td><td>50</td><td>0</td><td>0</td><td>104</td></tr>",
        "<tr><td>alle</td><td>20</td><td>120</td><td>250</td><td>30</td><td>0</td><td>420</td></tr>",
        "<tr><td>januari 2026</td><td>210</td><td>100</td><td>50</td><td>40</td></tr>",
        "<tr><td>februari 2026</td><td>135</td><td>100</td><td>50</td><td>45</td></tr>",
        "<tr><td>maart 2026</td><td>75</td><td>50</td><td>10</td><td>10</td></tr>",
        f"<tr><td>prefers-alternative</td><td>{NA}</td><td>40</td></tr>",
        f"<tr><td>red-flag-not-recorded</td><td>{LOCAL}</td><td>20</td></tr>",
        "<tr><td>250</td><td>195</td><td>78,0%</td></tr>",
        "<tr><td>20</td><td>15</td><td>75,0%</td><td>3</td><td>0</td><td>17</td></tr>",
        "<tr><td>röntgen</td><td>21</td><td>€ 60</td><td>€ 1.260</td><td>1,5</td>"
        "<td>31,5</td></tr>",
        "<tr><td>CT</td><td>22</td><td>€ 180</td><td>€ 3.960</td><td>6,0</td><td>132,0</td></tr>",
        "<tr><td>MRI</td><td>52</td><td>€ 250</td><td>€ 13.000</td><td>0,0</td><td>0,0</td></tr>",
        "<tr><td>totaal</td><td></td><td></td><td>€ 18.220</td><td></td><td>163,5</td></tr>",
        '<tr><td class="pseudonym" title="c-A">H-EJ6R</td><td>240</td><td>100</td><td>41,7%</td>'
        "<td>50</td><td>40</td><td>20</td><td>20</td></tr>",
        '<tr><td class="pseudonym" title="c-B">H-2HTF</td><td>105</td><td>100</td><td>95,2%</td>'
        "<td>50</td><td>45</td><td>20</td><td>20</td></tr>",
        '<tr><td class="pseudonym" title="c-C">H-0DR2</td><td>50</td><td>50</td><td>100,0%</td>'
        "<td>10</td><td>10</td><td>20</td><td>20</td></tr>",
        '<tr><td class="pseudonym" title="c-D">H-JY24</td><td>25</td><td>0</td><td>0,0%</td>'
        "<td>0</td><td>0</td><td>0</td><td>0</td></tr>",
    ],
}
CSV_HEADER = {"en": ["figure", "value"], "nl": ["cijfer", "waarde"]}


def _csv_figures(text: str, language: str = "en") -> dict[str, str]:
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == CSV_HEADER[language]
    return dict(lines[1:])


def _check_all_formats(json_text: str, csv_text: str, html_text: str, language: str) -> None:
    report = json.loads(json_text)
    assert report["language"] == language
    assert report["definitions"] == definitions(language)
    for key, value in expected_figures(full=True).items():
        assert report[key] == value, key
    figures = _csv_figures(csv_text, language)
    for name, value in flatten(expected_figures(full=True)):
        assert figures[name] == ("" if value is None else str(value)), name
    assert figures["notIndicated.netAvoided"] == "95"
    assert figures["notIndicated.overrideReasons[" + NA + "|prefers-alternative].count"] == "40"
    assert figures["clinicians[c-A].label"] == "H-EJ6R"
    page = html.unescape(html_text)
    assert f'<html lang="{language}">' in page
    for snippet in HTML_ROWS[language]:
        assert snippet in page, snippet
    for definition in definitions(language).values():
        assert definition in page
    assert page.count("<svg") == 3
    for external in ('src="', 'href="http', "url(http", "<link", "<script", "@import"):
        assert external not in page, external


@pytest.mark.parametrize("language", ["nl", "en"])
def test_cli_writes_all_three_formats(known_store, audit_url, tmp_path, capsys, language):
    outputs = {}
    for fmt in ("json", "csv", "html"):
        out = tmp_path / f"report.{fmt}"
        arguments = ["report", "--from", "2026-01-01", "--to", "2026-03-31", "--format", fmt]
        arguments += ["--lang", language]
        code = main([*arguments, "--out", str(out), "--database-url", audit_url])
        assert code == 0
        outputs[fmt] = out.read_text(encoding="utf-8")
    _check_all_formats(outputs["json"], outputs["csv"], outputs["html"], language)
    arguments = ["report", "--from", "2026-01-01", "--to", "2026-03-31", "--format", "json"]
    assert main([*arguments, "--by", "organisation", "--database-url", audit_url]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [g["key"] for g in printed["groups"]] == ["north", "south"]
    assert printed["language"] == "nl"  # CDS_DEFAULT_LANGUAGE as shipped: Dutch first


def test_the_definitions_printed_are_the_figures_definitions():
    assert definitions("en") == {**DEFINITIONS, **{k: v["en"] for k, v in EXTRA.items()}}
    assert set(definitions("nl")) == set(definitions("en"))
    for key, text in definitions("nl").items():
        assert text != definitions("en")[key], key


def test_cli_refuses_a_bad_period(audit_url, capsys):
    arguments = ["report", "--from", "2026-03-01", "--to", "2026-01-01", "--format", "json"]
    assert main([*arguments, "--database-url", audit_url]) == 2
    assert "ends before it starts" in capsys.readouterr().err


@pytest.fixture
def report_client(known_store, audit_settings):
    app = create_app(audit_settings.with_overrides(report_token=TOKEN))
    app.test_client_class = ContractClient
    yield app.test_client()
    app.extensions["cds_audit"].store.engine.dispose()


@pytest.mark.parametrize(
    "language, asked, header",
    [
        ("en", "", "en-GB,en;q=0.9,nl;q=0.5"),
        ("nl", "", "de-DE, nl;q=0.8, en;q=0.7"),
        ("nl", "&lang=nl", "en"),  # the parameter wins over the header
        ("en", "&lang=en", None),
        ("nl", "", None),  # neither: CDS_DEFAULT_LANGUAGE
    ],
)
def test_http_report_gives_the_same_figures(
    report_client, audit_url, tmp_path, language, asked, header
):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    if header is not None:
        auth["Accept-Language"] = header
    as_json = report_client.get(f"/reports/avoided-scans?{QUERY}{asked}", headers=auth)
    as_html = report_client.get(f"/reports/avoided-scans.html?{QUERY}{asked}", headers=auth)
    assert as_json.status_code == as_html.status_code == 200
    assert as_html.headers["Content-Language"] == language
    assert "Accept-Language" in as_html.headers["Vary"]
    out = tmp_path / "report.csv"
    arguments = ["report", "--from", "2026-01-01", "--to", "2026-03-31", "--format", "csv"]
    arguments += ["--lang", language]
    assert main([*arguments, "--out", str(out), "--database-url", audit_url]) == 0
    _check_all_formats(
        as_json.get_data(as_text=True), out.read_text(), as_html.get_data(as_text=True), language
    )
    grouped = report_client.get(f"/reports/avoided-scans?{QUERY}&by=clinician", headers=auth)
    assert grouped.get_json()["groups"] == labelled(CLINICIANS)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}],
)
def test_http_report_needs_the_token(report_client, headers):
    for path in ("/reports/avoided-scans", "/reports/avoided-scans.html"):
        response = report_client.get(f"{path}?{QUERY}", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["resourceType"] == "OperationOutcome"


def test_wrong_report_tokens_are_throttled_per_address(report_client):
    """Ten wrong tokens a minute, then 429 with Retry-After, even for the right token."""
    wrong = {"Authorization": "Bearer wrong-token-wrong-token"}
    right = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(10):
        assert (
            report_client.get(f"/reports/avoided-scans?{QUERY}", headers=wrong).status_code == 401
        )
    for headers in (wrong, right):
        response = report_client.get(f"/reports/avoided-scans.html?{QUERY}", headers=headers)
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert response.get_json()["issue"][0]["code"] == "throttled"
    elsewhere = report_client.get(
        f"/reports/avoided-scans?{QUERY}", headers=right, environ_base={"REMOTE_ADDR": "10.9.8.7"}
    )
    assert elsewhere.status_code == 200


def test_right_report_tokens_are_never_throttled(report_client):
    right = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(15):
        assert (
            report_client.get(f"/reports/avoided-scans?{QUERY}", headers=right).status_code == 200
        )


def test_http_report_is_disabled_without_a_configured_token(audit_client):
    response = audit_client.get(
        f"/reports/avoided-scans?{QUERY}", headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 401
    assert "CDS_REPORT_TOKEN" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "query, where",
    [
        ("to=2026-03-31", "from"),
        ("from=2026-13-01&to=2026-03-31", "from"),
        ("from=2026-03-01&to=2026-01-01", "to"),
        (f"{QUERY}&by=postcode", "by"),
        (f"{QUERY}&lang=fr", "lang"),
    ],
)
def test_http_report_bad_parameters_are_400(report_client, query, where):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = report_client.get(f"/reports/avoided-scans?{query}", headers=auth)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == [where]


def test_out_of_population_orders_are_counted(audit_client, audit_url):
    """A patient under 18 is not judged (POLICY "Adults only"), and the report counts it."""
    from tests.support.hook_requests import SELECT, sample_request

    request = sample_request()
    request["prefetch"]["patient"]["birthDate"] = "2011-06-01"  # 15 years old
    response = audit_client.post(SELECT, json=request)
    assert response.status_code == 200
    body = response.get_json()
    assert body["cards"][0]["indicator"] == "info" and "systemActions" not in body
    store = AuditStore.from_url(audit_url)
    try:
        today = date.today()
        report = compute_report(store.engine, Period(today, today), COSTS)
    finally:
        store.engine.dispose()
    assert report["evaluations"]["byDecision"]["out-of-population"] == 1
    assert report["evaluations"]["byDecision"]["not-indicated"] == 0
