"""The report's silent-pilot comparison and missed-alarm watch on a known data set (issue 16)."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import date

import pytest

from cds_service.app import create_app
from cds_service.audit.reports.figures import Period, compute_report
from cds_service.audit.store import AuditStore
from cds_service.cli import main
from tests.conftest import ContractClient
from tests.functional.report_dataset import load_known_rows, watch_consult_id
from tests.functional.test_report import COSTS, PERIOD, TOKEN, expected_figures

PILOT = Period(date(2026, 5, 1), date(2026, 8, 31))
WATCH = Period(date(2026, 10, 1), date(2026, 11, 30))


@pytest.fixture
def pilot_store(audit_url):
    store = AuditStore.from_url(audit_url)
    store.upgrade()
    load_known_rows(store.engine, pilot=True)
    yield store
    store.engine.dispose()


def mode_figures(mode, first, last, days, evaluations, not_indicated, cancelled, replaced,
                 signed, per_day, episodes, without):  # fmt: skip
    return {
        "cards": "not shown (silent pilot)" if mode == "shadow" else "shown",
        "from": first,
        "to": last,
        "days": days,
        "evaluations": evaluations,
        "notIndicated": not_indicated,
        "notIndicatedShare": round(not_indicated / evaluations, 4) if evaluations else None,
        "cancelled": cancelled,
        "replaced": replaced,
        "avoided": cancelled + replaced,
        "signedOrders": signed,
        "signedOrdersPerDay": per_day,
        "measure28": {
            "episodes": episodes,
            "withoutImaging": without,
            "rate": round(without / episodes, 4) if episodes else None,
        },
    }


# Worked out by hand from report_dataset's docstring (pilot_rows).
PILOT_COMPARISON = {
    "bothModes": True,
    # 160 = 100 selected + 40 not-indicated and 20 indicated signed; 60 signed in 40 days
    "shadow": mode_figures(
        "shadow", "2026-05-12", "2026-06-20", 40, 160, 100, 0, 0, 60, 1.5, 60, 20
    ),
    # 150 = 100 selected + 30 not-indicated and 20 indicated signed; 50 signed in 42 days
    "live": mode_figures("live", "2026-07-10", "2026-08-20", 42, 150, 90, 15, 15, 50, 1.19, 60, 30),
}
# The first quarter of report_dataset (known_rows) is all live: the report's own figures.
Q1_COMPARISON = {
    "bothModes": False,
    "shadow": mode_figures("shadow", None, None, 0, 0, 0, 0, 0, 0, None, 0, 0),
    # signed: 15 re-orders, 40 of group B, 10 urgent signed, 5 follow-ups; Jan 10 to Mar 15
    "live": mode_figures(
        "live", "2026-01-10", "2026-03-15", 65, 420, 250, 70, 40, 70, 1.08, 250, 195
    ),
}


def watched(index, patient, days, earlier_at, urgent_index, urgent_at, **changes):
    earlier = {
        "at": earlier_at,
        "decision": "not-indicated",
        "hook": "order-select",
        "modality": "mri",
        "mode": "live",
        "policyVersion": "2026.10",
        "criteria": [],
        "consultId": watch_consult_id(index),
    }
    urgent = {
        "at": urgent_at,
        "decision": "urgent",
        "hook": "order-select",
        "modality": "mri",
        "mode": "live",
        "policyVersion": "2026.11",
        "criteria": ["red-flag:cauda-equina"],
        "consultId": watch_consult_id(urgent_index),
    }
    earlier.update(changes.get("earlier", {}))
    urgent.update(changes.get("urgent", {}))
    return {
        "key": watch_consult_id(index),
        "patient": patient,
        "daysLater": days,
        "earlier": earlier,
        "urgent": urgent,
    }


OCT5 = "2026-10-05T09:00+00:00"
# Worked out by hand from report_dataset's docstring (watch_rows): M0, M1, M3, M6 twice, M8.
WATCH_ITEMS = [
    watched(0, "pM0", 27.0, OCT5, 1, "2026-11-01T09:00+00:00"),
    watched(
        2,
        "pM1",
        90.0,
        OCT5,
        3,
        "2027-01-03T09:00+00:00",
        earlier={"decision": "insufficient-data", "criteria": ["neuro-exam-missing"]},
        urgent={"hook": "order-sign"},
    ),
    watched(6, "pM3", 15.0, OCT5, 7, "2026-10-20T09:00+00:00", earlier={"mode": "shadow"}),
    watched(12, "pM6", 20.0, OCT5, 14, "2026-10-25T09:00+00:00"),
    watched(
        13,
        "pM6",
        20.0,
        "2026-10-05T09:05+00:00",
        14,
        "2026-10-25T09:00+00:00",
        earlier={"hook": "order-sign"},
    ),
    watched(18, "pM8", 11.0, "2026-11-29T09:00+00:00", 19, "2026-12-10T09:00+00:00"),
]
WATCH_FIGURES = {
    "windowDays": 90,
    "total": 6,
    "patients": 5,
    "byDecision": {"not-indicated": 5, "insufficient-data": 1},
    "byMode": {"live": 5, "shadow": 1},
    "items": WATCH_ITEMS,
    "offset": 0,
    "limit": 100,
}
# The CLI and the endpoint add each patient's readable label (fixed: labels are stable).
PATIENT_LABELS = {"pM0": "P-BK7X", "pM1": "P-XX56", "pM3": "P-V4XC", "pM6": "P-GWB8"}
PATIENT_LABELS["pM8"] = "P-BK8F"
LABELLED_WATCH = {
    **WATCH_FIGURES,
    "items": [{**i, "patientLabel": PATIENT_LABELS[i["patient"]]} for i in WATCH_ITEMS],
}


def test_shadow_and_live_periods_compared_exactly(pilot_store):
    report = compute_report(pilot_store.engine, PILOT, COSTS)
    assert report["comparison"] == PILOT_COMPARISON
    assert report["evaluations"]["total"] == 310  # the report's own figures count both modes
    assert report["missedAlarms"]["total"] == 0


def test_a_period_without_shadow_rows_compares_against_nothing(pilot_store):
    report = compute_report(pilot_store.engine, PERIOD, COSTS)
    assert report["comparison"] == Q1_COMPARISON
    for key, value in expected_figures().items():  # the pilot rows change nothing in Q1
        assert report[key] == value, key
    assert report["missedAlarms"]["total"] == 0 and report["missedAlarms"]["items"] == []


def test_missed_alarm_watch_exactly(pilot_store):
    report = compute_report(pilot_store.engine, WATCH, COSTS)
    assert report["missedAlarms"] == WATCH_FIGURES
    # Each period lists its own reassuring evaluations: M7's September one is September's.
    september = compute_report(
        pilot_store.engine, Period(date(2026, 9, 1), date(2026, 9, 30)), COSTS
    )
    assert [i["patient"] for i in september["missedAlarms"]["items"]] == ["pM7"]
    assert september["missedAlarms"]["items"][0]["daysLater"] == 20.0


def _csv(text: str) -> dict[str, str]:
    return dict(list(csv.reader(io.StringIO(text)))[1:])


def test_cli_csv_and_html_show_the_comparison_and_the_watch(pilot_store, audit_url, tmp_path):
    out = {}
    for fmt in ("csv", "html", "json"):
        for name, period in (("pilot", PILOT), ("watch", WATCH)):
            path = tmp_path / f"{name}.{fmt}"
            arguments = ["report", "--from", period.first.isoformat(), "--to"]
            arguments += [period.last.isoformat(), "--format", fmt, "--out", str(path)]
            arguments += ["--lang", "en"]
            assert main([*arguments, "--database-url", audit_url]) == 0
            out[name, fmt] = path.read_text(encoding="utf-8")
    assert json.loads(out["pilot", "json"])["comparison"] == PILOT_COMPARISON
    assert json.loads(out["watch", "json"])["missedAlarms"] == LABELLED_WATCH

    pilot = _csv(out["pilot", "csv"])
    assert pilot["comparison.shadow.from"] == "2026-05-12"
    assert pilot["comparison.live.from"] == "2026-07-10"
    assert pilot["comparison.shadow.notIndicatedShare"] == "0.625"
    assert pilot["comparison.live.notIndicatedShare"] == "0.6"
    assert pilot["comparison.live.cancelled"] == "15"
    assert pilot["comparison.shadow.signedOrders"] == "60"
    assert pilot["comparison.live.measure28.rate"] == "0.5"
    watch = _csv(out["watch", "csv"])
    assert watch["missedAlarms.total"] == "6"
    assert watch["missedAlarms.byDecision.insufficient-data"] == "1"
    first = f"missedAlarms.items[{watch_consult_id(0)}]"
    assert watch[f"{first}.patient"] == "pM0"
    assert watch[f"{first}.patientLabel"] == "P-BK7X"
    assert watch[f"{first}.urgent.criteria[0]"] == "red-flag:cauda-equina"
    assert watch[f"{first}.urgent.policyVersion"] == "2026.11"
    assert watch[f"{first}.earlier.policyVersion"] == "2026.10"

    page = html.unescape(out["pilot", "html"])
    for snippet in (
        "Shadow: the silent pilot (<code>CDS_MODE=shadow</code>), orders judged and audited but "
        "no card shown, 12 May 2026 to 20 June 2026.",
        "Live: cards shown, 10 July 2026 to 20 August 2026.",
        "<td>share not indicated</td><td>62.5%</td><td>60.0%</td>",
        "<td>signed lumbar imaging orders</td><td>60</td><td>50</td>",
        "<td>28-day measure: rate</td><td>33.3%</td><td>50.0%</td>",
        '<strong id="missed-alarms-total">0</strong>',
    ):
        assert snippet in page, snippet
    page = html.unescape(out["watch", "html"])
    assert '<strong id="missed-alarms-total">6</strong>' in page
    table = page[page.index('<table id="missed-alarms">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 7  # header + 6
    assert (
        '<tr><td class="pseudonym" title="pM1">P-XX56</td><td>5 October 2026 09:00</td>'
        "<td>insufficient data</td><td>live</td><td>2026.10</td><td>neuro-exam-missing</td>"
        "<td>3 January 2027 09:00</td><td>live</td><td>2026.11</td>"
        "<td>red-flag:cauda-equina</td><td>90.0</td>"
    ) in table


def test_http_report_carries_the_same_comparison_and_watch(pilot_store, audit_settings):
    app = create_app(audit_settings.with_overrides(report_token=TOKEN))
    app.test_client_class = ContractClient
    try:
        client = app.test_client()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        pilot = client.get("/reports/avoided-scans?from=2026-05-01&to=2026-08-31", headers=auth)
        watch = client.get("/reports/avoided-scans?from=2026-10-01&to=2026-11-30", headers=auth)
    finally:
        app.extensions["cds_audit"].store.engine.dispose()
    assert pilot.status_code == watch.status_code == 200
    assert pilot.get_json()["comparison"] == PILOT_COMPARISON
    assert watch.get_json()["missedAlarms"] == LABELLED_WATCH
