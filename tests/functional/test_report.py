"""The avoided-scans report on a known data set: every figure, in JSON, CSV and HTML."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import date

import pytest

from cds_service.app import create_app
from cds_service.audit.reports.figures import DEFINITIONS, Costs, Period, compute_report
from cds_service.audit.reports.render import flatten
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


def expected_figures() -> dict:
    """The figures worked out by hand from report_dataset's docstring."""
    return {
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
        "clinicians": CLINICIANS,
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


def test_an_empty_period_has_zero_figures(known_store):
    report = compute_report(known_store.engine, Period(date(2030, 1, 1), date(2030, 1, 31)), COSTS)
    assert report["evaluations"]["total"] == 0
    assert report["measure28"] == {"episodes": 0, "withoutImaging": 0, "rate": None}
    assert report["clinicians"] == [] and report["monthly"] == []


TOKEN = "report-token-for-the-tests-0123"
QUERY = "from=2026-01-01&to=2026-03-31"


def _csv_figures(text: str) -> dict[str, str]:
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["figure", "value"]
    return dict(lines[1:])


def _check_all_formats(json_text: str, csv_text: str, html_text: str) -> None:
    report = json.loads(json_text)
    for key, value in expected_figures().items():
        assert report[key] == value, key
    figures = _csv_figures(csv_text)
    for name, value in flatten(expected_figures()):
        assert figures[name] == str(value), name
    assert figures["notIndicated.netAvoided"] == "95"
    assert figures["notIndicated.overrideReasons[" + NA + "|prefers-alternative].count"] == "40"
    page = html.unescape(html_text)
    for snippet in (
        "<td><strong>net avoided</strong></td><td><strong>95</strong></td>",
        "<td>– re-ordered within 42 days</td><td>15</td>",
        "<td>250</td><td>195</td><td>0.78</td>",
        "<td>20</td><td>15</td><td>0.75</td><td>3</td><td>0</td><td>17</td>",
        "<td>total</td><td></td><td></td><td>18220.0</td><td></td><td>163.5</td>",
        "<td>2026-02</td><td>135</td><td>100</td><td>50</td><td>45</td>",
        "<td>mri</td><td>20</td><td>63</td><td>150</td><td>20</td><td>0</td><td>253</td>",
        "<td>prefers-alternative</td>",
    ):
        assert snippet in page, snippet
    for definition in DEFINITIONS.values():
        assert definition in page
    assert page.count("<svg") == 3
    for external in ('src="', 'href="http', "url(http", "<link", "<script", "@import"):
        assert external not in page, external


def test_cli_writes_all_three_formats(known_store, audit_url, tmp_path, capsys):
    outputs = {}
    for fmt in ("json", "csv", "html"):
        out = tmp_path / f"report.{fmt}"
        arguments = ["report", "--from", "2026-01-01", "--to", "2026-03-31", "--format", fmt]
        code = main([*arguments, "--out", str(out), "--database-url", audit_url])
        assert code == 0
        outputs[fmt] = out.read_text(encoding="utf-8")
    _check_all_formats(outputs["json"], outputs["csv"], outputs["html"])
    arguments = ["report", "--from", "2026-01-01", "--to", "2026-03-31", "--format", "json"]
    assert main([*arguments, "--by", "organisation", "--database-url", audit_url]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [g["key"] for g in printed["groups"]] == ["north", "south"]


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


def test_http_report_gives_the_same_figures(report_client, audit_url, tmp_path):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    as_json = report_client.get(f"/reports/avoided-scans?{QUERY}", headers=auth)
    as_html = report_client.get(f"/reports/avoided-scans.html?{QUERY}", headers=auth)
    assert as_json.status_code == as_html.status_code == 200
    out = tmp_path / "report.csv"
    arguments = ["report", "--from", "2026-01-01", "--to", "2026-03-31", "--format", "csv"]
    assert main([*arguments, "--out", str(out), "--database-url", audit_url]) == 0
    _check_all_formats(
        as_json.get_data(as_text=True), out.read_text(), as_html.get_data(as_text=True)
    )
    grouped = report_client.get(f"/reports/avoided-scans?{QUERY}&by=clinician", headers=auth)
    assert grouped.get_json()["groups"] == CLINICIANS


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
