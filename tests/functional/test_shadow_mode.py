"""Silent pilot (CDS_MODE=shadow): judged, rated and audited as live, nothing shown (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import insert, select

from cds_service.app import create_app
from cds_service.audit.models import evaluation, feedback
from cds_service.audit.recording import EvaluationRow
from cds_service.audit.spool import Spool, frame
from cds_service.audit.store import AuditStore, alembic_config
from cds_service.cli import main
from cds_service.config import load_settings
from cds_service.errors import ConfigError
from cds_service.observability import metrics
from tests.conftest import ContractClient
from tests.functional.test_audit import table_rows
from tests.scenarios.loader import build_request, scenarios
from tests.support.hook_requests import SELECT, SIGN, sample_request, service_request, with_orders

T1 = "2026-01-05T10:00:00Z"


@pytest.fixture
def shadow_app(audit_settings):
    app = create_app(audit_settings.with_overrides(mode="shadow"))
    app.test_client_class = ContractClient
    yield app
    app.extensions["cds_audit"].store.engine.dispose()


def _requests() -> list[tuple[str, dict]]:
    signed = with_orders(
        sample_request(),
        [service_request("a", cpt="72148"), service_request("b", cpt="72100")],
        hook="order-sign",
    )
    urgent = build_request(scenarios()["mri-cauda-equina-coded-snomed"])
    return [(SELECT, sample_request()), (SIGN, signed), (SELECT, urgent)]


def test_shadow_mode_answers_no_cards_and_no_actions_but_audits_as_live(
    shadow_app, audit_settings, audit_url
):
    calls = _requests()
    shadow = shadow_app.test_client()
    for path, body in calls:
        response = shadow.post(path, json=body)
        assert response.status_code == 200
        assert response.get_json() == {"cards": []}  # no systemActions, no extension
    shadow_rows = table_rows(audit_url, evaluation)
    assert len(shadow_rows) == 4 and {r["mode"] for r in shadow_rows} == {"shadow"}
    assert {r["decision"] for r in shadow_rows} == {"not-indicated", "urgent"}

    # The same calls live: the same decisions, criteria and cards made (and now shown).
    live_app = create_app(audit_settings)
    try:
        live = live_app.test_client()
        answers = [live.post(path, json=body).get_json() for path, body in calls]
    finally:
        live_app.extensions["cds_audit"].store.engine.dispose()
    assert all(a["cards"] for a in answers)
    assert "systemActions" in answers[1]
    rows = table_rows(audit_url, evaluation)
    live_rows = [r for r in rows if r["mode"] == "live"]
    assert len(live_rows) == 4

    def judged(row: dict) -> tuple:
        return (row["hook"], row["modality"], row["decision"], row["criteria_met"])

    assert sorted(map(judged, live_rows)) == sorted(map(judged, shadow_rows))
    urgent = next(r for r in shadow_rows if r["decision"] == "urgent")
    assert urgent["criteria_met"] == "red-flag"
    assert "red-flag:" in urgent["reasons_met"]  # which pattern fired, as codes
    assert all(r["card_uuid"] for r in shadow_rows)  # made, kept, not shown


def test_discovery_is_the_same_in_both_modes(shadow_app, audit_app):
    shadow = shadow_app.test_client().get("/cds-services")
    live = audit_app.test_client().get("/cds-services")
    assert shadow.status_code == live.status_code == 200
    assert shadow.get_json() == live.get_json()


def test_feedback_in_shadow_mode_is_still_stored(shadow_app, audit_url):
    client = shadow_app.test_client()
    assert client.post(SELECT, json=sample_request()).get_json() == {"cards": []}
    [row] = table_rows(audit_url, evaluation)
    item = {"card": row["card_uuid"], "outcome": "overridden", "outcomeTimestamp": T1}
    response = client.post(f"{SELECT}/feedback", json={"feedback": [item]})
    assert response.status_code == 200
    [stored] = table_rows(audit_url, feedback)
    assert stored["evaluation_id"] == row["id"] and stored["response"] == "overridden"
    assert table_rows(audit_url, evaluation)[0]["response"] == "overridden"


def test_shadow_rows_keep_their_mode_through_the_spool(tmp_path, audit_settings):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the database directory should be")
    spool_file = tmp_path / "spool.jsonl"
    settings = audit_settings.with_overrides(
        mode="shadow", database_url=f"sqlite:///{blocked / 'audit.db'}", audit_spool=spool_file
    )
    app = create_app(settings)
    try:
        assert app.test_client().post(SELECT, json=sample_request()).get_json() == {"cards": []}
    finally:
        app.extensions["cds_audit"].store.engine.dispose()
    assert '"mode": "shadow"' in spool_file.read_text()
    # A line spooled by the version before shadow mode has no mode: it was live.
    old = _row("00000000-0000-4000-8000-0000000000e1")
    del old.values["mode"]
    with open(spool_file, "ab") as handle:
        handle.write(frame(old))
    url = f"sqlite:///{tmp_path / 'recovered.db'}"
    store = AuditStore.from_url(url)
    store.upgrade()
    try:
        assert Spool(spool_file).replay(store) == 2
    finally:
        store.engine.dispose()
    modes = {r["consult_id"]: r["mode"] for r in table_rows(url, evaluation)}
    assert modes.pop(old.values["consult_id"]) == "live"
    assert list(modes.values()) == ["shadow"]


def _row(consult_id: str, *, decision: str = "not-indicated", days: int = 0) -> EvaluationRow:
    when = datetime(2026, 11, 1, 9, 0, tzinfo=UTC) + timedelta(days=days)
    return EvaluationRow(
        {
            "recorded_at": when,
            "ts": int(when.timestamp() * 1000),
            "month": when.strftime("%Y-%m"),
            "service_id": "lumbar-imaging-order-select",
            "hook": "order-select",
            "hook_instance": f"h-{consult_id}",
            "tenant": "default",
            "patient": "p" * 64,
            "clinician": "c" * 64,
            "encounter": None,
            "order_ref": "o" * 64,
            "order_system": None,
            "order_code": None,
            "modality": "mri",
            "decision": decision,
            "criteria_met": "red-flag" if decision == "urgent" else "",
            "reasons_met": "red-flag:cauda-equina" if decision == "urgent" else "",
            "policy_version": "2026.11.1",
            "card_uuid": consult_id,
            "consult_id": consult_id,
            "latency_ms": 3,
            "mode": "live",
        },
        (),
    )


def test_the_missed_alarm_counter_rises_once_per_new_urgent_row_after_a_reassuring_one(
    audit_url,
):
    store = AuditStore.from_url(audit_url)
    store.upgrade()
    counter = metrics.MISSED_ALARMS
    try:
        before = counter._value.get()
        store.record([_row("00000000-0000-4000-8000-0000000000f1")])  # not indicated, day 0
        store.record([_row("00000000-0000-4000-8000-0000000000f2", decision="urgent", days=91)])
        assert counter._value.get() == before  # 91 days later: outside the watch
        store.record([_row("00000000-0000-4000-8000-0000000000f3", decision="urgent", days=30)])
        assert counter._value.get() == before + 1
        # The same call retried, or its spooled copy replayed: no second alarm.
        store.record([_row("00000000-0000-4000-8000-0000000000f3", decision="urgent", days=30)])
        assert counter._value.get() == before + 1
    finally:
        store.engine.dispose()


def test_an_urgent_call_after_a_not_indicated_one_raises_the_metric(audit_client):
    first = audit_client.post(SELECT, json=sample_request())
    assert first.status_code == 200
    urgent = build_request(scenarios()["mri-cauda-equina-coded-snomed"])
    urgent["context"]["patientId"] = "sample-patient-1"
    urgent["prefetch"]["patient"]["id"] = "sample-patient-1"
    before = metrics.MISSED_ALARMS._value.get()
    assert audit_client.post(SELECT, json=urgent).status_code == 200
    assert metrics.MISSED_ALARMS._value.get() == before + 1
    exposed = audit_client.get("/metrics").get_data(as_text=True)
    assert "cds_missed_alarms_total " in exposed


def test_migration_0005_marks_earlier_rows_live(audit_url):
    store = AuditStore.from_url(audit_url)
    config = alembic_config(store.engine)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    values = dict(_row("00000000-0000-4000-8000-0000000000a5").values)
    del values["mode"], values["reasons_met"]
    with store.engine.begin() as connection:
        connection.execute(insert(evaluation).values(**values))
    store.upgrade()
    with store.engine.connect() as connection:
        stored = connection.execute(select(evaluation.c.mode, evaluation.c.reasons_met)).all()
    store.engine.dispose()
    assert [tuple(r) for r in stored] == [("live", None)]


def test_a_bad_mode_stops_the_start_up_naming_it(monkeypatch, capsys):
    assert load_settings({"CDS_MODE": "Shadow"}).mode == "shadow"
    assert load_settings({}).mode == "live"
    with pytest.raises(ConfigError, match="CDS_MODE must be one of live, shadow"):
        load_settings({"CDS_MODE": "silent"})
    monkeypatch.setenv("CDS_MODE", "silent")
    assert main(["safety-report"]) == 2
    assert "CDS_MODE must be one of live, shadow, not 'silent'" in capsys.readouterr().err
