"""The mirror report on a known data set (mirror_dataset.py): own figures exact, peers only as
median and interquartile range, no peer figures below five peers, in Dutch and English."""

from __future__ import annotations

import html
import json
from datetime import date

import pytest

from cds_service.app import create_app
from cds_service.audit.reports.figures import Period
from cds_service.audit.reports.labels import label_of
from cds_service.audit.reports.mirror import compute_mirror
from cds_service.audit.reports.run import clinician_pseudonym
from cds_service.audit.reports.tokens import mirror_token
from cds_service.audit.store import AuditStore
from cds_service.cli import main
from tests.conftest import ContractClient
from tests.functional.mirror_dataset import WEST, load_mirror_rows, practitioner
from tests.functional.report_dataset import LOCAL, NA

APRIL = Period(date(2026, 4, 1), date(2026, 4, 30))
TOKEN = "report-token-for-the-tests-0123"
QUERY = "from=2026-04-01&to=2026-04-30"


@pytest.fixture
def mirror_store(audit_url, settings):
    store = AuditStore.from_url(audit_url)
    store.upgrade()
    load_mirror_rows(store.engine, _pseudonymiser(settings))
    yield store
    store.engine.dispose()


def _pseudonymiser(settings):
    return lambda kind, value: clinician_pseudonym(settings, value)


def peers(count, median, q1, q3):
    return {"peers": count, "median": median, "q1": q1, "q3": q3, "shown": True}


# Worked out by hand from mirror_dataset's docstring (inclusive quartiles, as QUARTILE.INC):
# peers' not-indicated shares 0, .2, .3, .5, .6, .7, .8 (m7 has none of 5); avoided shares
# .5, 0, 1, .5, 1, .25 and overridden shares .5, 1, 0, .5, 0, .25 (m7 has no denominator);
# 28-day rates (not indicated − overridden) / not indicated: .5, 0, 1, .5, 1, .75.
M0_FIGURES = {
    "notIndicatedShare": {"own": 0.4, "peers": peers(7, 0.5, 0.25, 0.65)},
    "avoidedShare": {"own": 0.5, "peers": peers(6, 0.5, 0.3125, 0.875)},
    "overriddenShare": {"own": 0.25, "peers": peers(6, 0.375, 0.0625, 0.5)},
    "measure28Rate": {"own": 0.75, "peers": peers(6, 0.625, 0.5, 0.9375)},
}
M0_REASONS = [
    {
        "system": NA,
        "code": "prefers-alternative",
        "count": 0,
        "share": {"own": 0.0, "peers": peers(6, 0.375, 0.0625, 0.5)},
    },
    {
        "system": LOCAL,
        "code": "red-flag-not-recorded",
        "count": 1,
        "share": {"own": 0.25, "peers": peers(6, 0.0, 0.0, 0.0)},
    },
]


def test_own_figures_exact_and_peers_only_as_aggregates(mirror_store, settings):
    m0 = clinician_pseudonym(settings, practitioner("m0"))
    report = compute_mirror(mirror_store.engine, APRIL, m0, language="en")
    assert report["clinician"] == {"key": m0, "label": label_of("clinician", m0)}
    assert report["organisation"] == "west"
    assert report["peers"] == {"count": 7, "minimum": 5, "shown": True, "reason": None}
    assert report["own"] == {
        "evaluations": 10,
        "notIndicated": 4,
        "avoided": 2,
        "overridden": 1,
        "measure28": {"episodes": 4, "withoutImaging": 3, "rate": 0.75},
    }
    assert report["figures"] == M0_FIGURES
    assert report["overrideReasons"] == M0_REASONS
    assert report["period"] == {"from": "2026-04-01", "to": "2026-04-30"}


def test_no_other_clinician_can_be_identified(mirror_store, settings, tmp_path, audit_url):
    """Neither a peer's pseudonym nor label appears, in any format or language."""
    others = [clinician_pseudonym(settings, practitioner(n)) for n in WEST if n != "m0"]
    hidden = others + [label_of("clinician", p) for p in others]
    hidden += [practitioner(n) for n in WEST if n != "m0"]
    for fmt in ("json", "csv", "html"):
        for language in ("nl", "en"):
            out = tmp_path / f"mirror.{language}.{fmt}"
            arguments = ["report", "--from", "2026-04-01", "--to", "2026-04-30"]
            arguments += ["--clinician-id", practitioner("m0"), "--format", fmt]
            arguments += ["--lang", language, "--out", str(out), "--database-url", audit_url]
            assert main(arguments) == 0
            text = out.read_text(encoding="utf-8")
            assert label_of("clinician", clinician_pseudonym(settings, practitioner("m0"))) in text
            for secret in hidden:
                assert secret not in text, (fmt, language, secret)


def test_fewer_than_five_peers_get_no_peer_figures(mirror_store, settings):
    t0 = clinician_pseudonym(settings, practitioner("t0"))
    report = compute_mirror(mirror_store.engine, APRIL, t0, language="nl")
    assert report["organisation"] == "tiny"
    assert report["peers"] == {"count": 4, "minimum": 5, "shown": False, "reason": "too-few-peers"}
    assert report["own"] == {
        "evaluations": 1,
        "notIndicated": 1,
        "avoided": 0,
        "overridden": 0,
        "measure28": {"episodes": 1, "withoutImaging": 1, "rate": 1.0},
    }
    assert report["figures"] == {
        "notIndicatedShare": {"own": 1.0, "peers": None},
        "avoidedShare": {"own": 0.0, "peers": None},
        "overriddenShare": {"own": 0.0, "peers": None},
        "measure28Rate": {"own": 1.0, "peers": None},
    }
    assert report["overrideReasons"] == []


def test_the_organisation_is_where_the_clinician_made_most_evaluations(mirror_store, settings):
    e0 = clinician_pseudonym(settings, practitioner("e0"))
    report = compute_mirror(mirror_store.engine, APRIL, e0, language="en")
    assert report["organisation"] == "east"
    assert report["own"]["evaluations"] == 3 and report["own"]["notIndicated"] == 3
    assert report["peers"]["count"] == 0 and not report["peers"]["shown"]


def test_a_clinician_without_evaluations_is_told_so(mirror_store, settings):
    nobody = clinician_pseudonym(settings, practitioner("nobody"))
    report = compute_mirror(mirror_store.engine, APRIL, nobody, language="en")
    assert report["organisation"] is None
    assert report["own"]["evaluations"] == 0
    assert report["figures"]["notIndicatedShare"] == {"own": None, "peers": None}


MIRROR_ROWS = {
    "en": [
        '<tr><td>evaluations</td><td>10</td><td></td><td colspan="3"></td></tr>',
        "<tr><td>share not indicated</td><td>4</td><td>40.0%</td><td>50.0%</td>"
        "<td>25.0% – 65.0%</td><td>7</td></tr>",
        "<tr><td>share avoided (of not indicated)</td><td>2</td><td>50.0%</td><td>50.0%</td>"
        "<td>31.2% – 87.5%</td><td>6</td></tr>",
        "<tr><td>share overridden (of not indicated)</td><td>1</td><td>25.0%</td><td>37.5%</td>"
        "<td>6.2% – 50.0%</td><td>6</td></tr>",
        "<tr><td>– overridden, reason prefers-alternative</td><td>0</td><td>0.0%</td>"
        "<td>37.5%</td><td>6.2% – 50.0%</td><td>6</td></tr>",
        "<tr><td>– overridden, reason red-flag-not-recorded</td><td>1</td><td>25.0%</td>"
        "<td>0.0%</td><td>0.0% – 0.0%</td><td>6</td></tr>",
        "<tr><td>28-day measure (without imaging)</td><td>3 / 4</td><td>75.0%</td><td>62.5%</td>"
        "<td>50.0% – 93.8%</td><td>6</td></tr>",
        'Other clinicians in your organisation with evaluations in this period: <strong id="peer-'
        'count">7</strong>.',
    ],
    "nl": [
        '<tr><td>beoordelingen</td><td>10</td><td></td><td colspan="3"></td></tr>',
        "<tr><td>aandeel niet geïndiceerd</td><td>4</td><td>40,0%</td><td>50,0%</td>"
        "<td>25,0% – 65,0%</td><td>7</td></tr>",
        "<tr><td>aandeel vermeden (van niet geïndiceerd)</td><td>2</td><td>50,0%</td>"
        "<td>50,0%</td><td>31,2% – 87,5%</td><td>6</td></tr>",
        "<tr><td>aandeel afgeweken (van niet geïndiceerd)</td><td>1</td><td>25,0%</td>"
        "<td>37,5%</td><td>6,2% – 50,0%</td><td>6</td></tr>",
        "<tr><td>– afgeweken, reden prefers-alternative</td><td>0</td><td>0,0%</td>"
        "<td>37,5%</td><td>6,2% – 50,0%</td><td>6</td></tr>",
        "<tr><td>– afgeweken, reden red-flag-not-recorded</td><td>1</td><td>25,0%</td>"
        "<td>0,0%</td><td>0,0% – 0,0%</td><td>6</td></tr>",
        "<tr><td>28-dagenmaat (zonder beeldvorming)</td><td>3 / 4</td><td>75,0%</td>"
        "<td>62,5%</td><td>50,0% – 93,8%</td><td>6</td></tr>",
        'Andere artsen in uw organisatie met beoordelingen in deze periode: <strong id="peer-'
        'count">7</strong>.',
    ],
}
TOO_FEW = {
    "en": "No peer figures: there are 4 peers, fewer than 5.",
    "nl": "Geen cijfers van collega’s: er zijn er 4, minder dan 5.",
}


@pytest.fixture
def mirror_client(mirror_store, audit_settings):
    app = create_app(audit_settings.with_overrides(report_token=TOKEN))
    app.test_client_class = ContractClient
    yield app.test_client()
    app.extensions["cds_audit"].store.engine.dispose()


@pytest.mark.parametrize("language", ["nl", "en"])
def test_http_mirror_report_in_both_languages(mirror_client, settings, language):
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept-Language": language}
    clinician = f"clinician={practitioner('m0')}"
    as_json = mirror_client.get(f"/reports/mirror?{clinician}&{QUERY}", headers=auth)
    assert as_json.status_code == 200
    report = as_json.get_json()
    assert report["figures"] == M0_FIGURES and report["language"] == language
    page = mirror_client.get(f"/reports/mirror.html?{clinician}&{QUERY}", headers=auth)
    assert page.status_code == 200 and page.headers["Content-Language"] == language
    text = html.unescape(page.get_data(as_text=True))
    assert f'<html lang="{language}">' in text
    for row in MIRROR_ROWS[language]:
        assert row in text, row
    assert text.count("<svg") == 1 and 'role="img"' in text
    for external in ('src="', 'href="http', "url(http", "<link", "<script", "@import"):
        assert external not in text, external
    tiny = f"clinician={practitioner('t0')}"
    few = mirror_client.get(f"/reports/mirror.html?{tiny}&{QUERY}&lang={language}", headers=auth)
    few_text = html.unescape(few.get_data(as_text=True))
    assert TOO_FEW[language] in few_text and 'id="no-peer-figures"' in few_text


def test_a_clinician_opens_only_their_own_mirror_report(mirror_client, settings):
    m0 = clinician_pseudonym(settings, practitioner("m0"))
    own = {"Authorization": f"Bearer {mirror_token(TOKEN, m0)}"}
    path = f"/reports/mirror?clinician={practitioner('m0')}&{QUERY}"
    assert mirror_client.get(path, headers=own).status_code == 200
    other = f"/reports/mirror?clinician={practitioner('m1')}&{QUERY}"
    refused = mirror_client.get(other, headers=own)
    assert refused.status_code == 401
    assert refused.get_json()["resourceType"] == "OperationOutcome"
    # a clinician token is no report token
    assert mirror_client.get(f"/reports/avoided-scans?{QUERY}", headers=own).status_code == 401


@pytest.mark.parametrize(
    "query, where",
    [
        (QUERY, "clinician"),
        (f"clinician={'x' * 300}&{QUERY}", "clinician"),
        ("clinician=Practitioner/m0&to=2026-04-30", "from"),
        (f"clinician=Practitioner/m0&{QUERY}&lang=de", "lang"),
    ],
)
def test_http_mirror_bad_parameters_are_400(mirror_client, query, where):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = mirror_client.get(f"/reports/mirror?{query}", headers=auth)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == [where]


def test_cli_label_maps_a_practitioner_to_the_label_in_the_reports(
    mirror_store, settings, audit_url, capsys, monkeypatch
):
    assert main(["label", "--clinician-id", practitioner("m0")]) == 0
    printed = capsys.readouterr()
    m0 = clinician_pseudonym(settings, practitioner("m0"))
    assert printed.out.splitlines() == [label_of("clinician", m0)]
    assert "full form: " + label_of("clinician", m0, 12) in printed.err
    arguments = ["report", "--from", "2026-04-01", "--to", "2026-04-30", "--format", "json"]
    assert (
        main([*arguments, "--clinician-id", practitioner("m0"), "--database-url", audit_url]) == 0
    )
    assert json.loads(capsys.readouterr().out)["clinician"]["label"] == label_of("clinician", m0)
    assert main(["label", "--clinician-id", practitioner("m0"), "--mirror-token"]) == 2
    assert "CDS_REPORT_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("CDS_REPORT_TOKEN", TOKEN)
    assert main(["label", "--clinician-id", practitioner("m0"), "--mirror-token"]) == 0
    assert f"mirror-report token: {mirror_token(TOKEN, m0)}" in capsys.readouterr().out


def test_cli_mirror_refuses_by_with_a_clinician(audit_url, capsys):
    arguments = ["report", "--from", "2026-04-01", "--to", "2026-04-30", "--by", "month"]
    assert main([*arguments, "--clinician-id", "Practitioner/1", "--database-url", audit_url]) == 2
    assert "--by and --clinician-id" in capsys.readouterr().err
