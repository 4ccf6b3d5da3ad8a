"""The audit trail over HTTP: migrations, one row per evaluated order, privacy of every column."""

from __future__ import annotations

import copy
import logging

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from cds_service.app import create_app
from cds_service.audit.models import evaluation, metadata, suggestion
from cds_service.audit.pseudonyms import Pseudonymiser
from cds_service.audit.store import AuditStore, make_engine
from tests.support.hook_requests import SELECT, SIGN, sample_request, service_request, with_orders

NAME = "Quirinus Zwanenburg"
NOTE = "Vertrouwelijk: ruzie met buurman Hollebeek over de schutting"
TOKEN = "eyJhbGciOi.secret-access-token-7f3a9c"
COMMENT = "Patient insisted loudly, see Kassandra's note"


def table_rows(url: str, table) -> list[dict]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(select(table))]
    finally:
        engine.dispose()


def test_migrations_build_the_models_schema_from_empty(audit_url):
    store = AuditStore.from_url(audit_url)
    try:
        assert not store.is_current()
        store.upgrade()
        store.upgrade()  # idempotent
        assert store.is_current()
        with store.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            assert {"audit_evaluation", "audit_suggestion", "audit_feedback"} <= tables
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        store.engine.dispose()


def test_every_evaluated_order_writes_one_row(audit_client, audit_url):
    first = audit_client.post(SELECT, json=sample_request(), headers={"Accept-Language": "en"})
    orders = [service_request("a", cpt="72148"), service_request("b", cpt="72100")]
    signed = audit_client.post(SIGN, json=with_orders(sample_request(), orders, hook="order-sign"))
    other = with_orders(sample_request(), [service_request("knee", cpt="73721")])
    audit_client.post(SELECT, json=other)  # not lumbar imaging: no row
    assert first.status_code == signed.status_code == 200

    rows = table_rows(audit_url, evaluation)
    assert [(r["hook"], r["service_id"]) for r in rows] == [
        ("order-select", "lumbar-imaging-order-select"),
        ("order-sign", "lumbar-imaging-order-sign"),
        ("order-sign", "lumbar-imaging-order-sign"),
    ]
    cards = [c["uuid"] for c in first.get_json()["cards"] + signed.get_json()["cards"]]
    assert [r["card_uuid"] for r in rows] == cards
    assert {r["month"] for r in rows} == {rows[0]["recorded_at"].strftime("%Y-%m")}
    assert all(r["latency_ms"] >= 0 and r["tenant"] == "default" for r in rows)
    assert len({r["patient"] for r in rows}) == 1  # same patient, same pseudonym
    offered = {s["uuid"] for c in first.get_json()["cards"] for s in c.get("suggestions", [])}
    assert {s["uuid"] for s in table_rows(audit_url, suggestion)} >= offered


def test_pseudonyms_use_the_configured_key(audit_settings, audit_url):
    key = "a-long-and-secret-pseudonym-key-for-tests"
    app = create_app(audit_settings.with_overrides(pseudonym_key=key, tenant="practice-7"))
    try:
        app.test_client().post(SELECT, json=sample_request())
    finally:
        app.extensions["cds_audit"].store.engine.dispose()
    row = table_rows(audit_url, evaluation)[0]
    assert row["patient"] == Pseudonymiser(key)("patient", "sample-patient-1")
    assert row["clinician"] == Pseudonymiser(key)("clinician", "Practitioner/gp-1")
    assert row["tenant"] == "practice-7"


def _identifying_request() -> dict:
    request = sample_request()
    request["fhirServer"] = "http://127.0.0.1:9/fhir"
    request["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds-client",
    }
    request["context"]["encounterId"] = "encounter-with-a-findable-id"
    patient = request["prefetch"]["patient"]
    patient["name"] = [{"text": NAME, "family": NAME.split()[1], "given": [NAME.split()[0]]}]
    condition = request["prefetch"]["conditions"]["entry"][0]["resource"]
    condition["note"] = [{"text": NOTE}]
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["note"] = [{"text": NOTE}]
    order["code"]["text"] = f"MRI for {NAME}"
    return request


def test_no_name_note_token_or_raw_identifier_is_stored_anywhere(audit_client, audit_url):
    request = _identifying_request()
    response = audit_client.post(SELECT, json=copy.deepcopy(request))
    assert response.status_code == 200
    card = response.get_json()["cards"][0]
    reason = card["overrideReasons"][0]
    feedback = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": reason, "userComment": COMMENT},
        "outcomeTimestamp": "2026-01-05T10:00:00Z",
    }
    assert audit_client.post(f"{SELECT}/feedback", json={"feedback": [feedback]}).status_code == 200

    forbidden = [
        NAME,
        *NAME.split(),
        NOTE,
        "Hollebeek",
        TOKEN,
        "secret-access-token",
        COMMENT,
        "Kassandra",
        "sample-patient-1",
        "Practitioner/gp-1",
        "gp-1",
        "encounter-with-a-findable-id",
        "draft-mri-1",
        reason["display"],
    ]
    scanned = 0
    for table in metadata.sorted_tables:
        for row in table_rows(audit_url, table):
            for column, value in row.items():
                text = str(value)
                scanned += 1
                for needle in forbidden:
                    assert needle.lower() not in text.lower(), f"{table.name}.{column}: {needle}"
    assert scanned > 30


def test_the_hook_answers_when_the_audit_store_is_down(settings, caplog, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    broken = settings.with_overrides(database_url=f"sqlite:///{blocker}/audit.db")
    app = create_app(broken)
    request = _identifying_request()
    with caplog.at_level(logging.INFO):
        response = app.test_client().post(SELECT, json=request)
    assert response.status_code == 200 and response.get_json()["cards"]
    failures = [r for r in caplog.records if "audit write failed" in r.getMessage()]
    assert failures
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for needle in (NAME, NOTE, TOKEN, "sample-patient-1", "gp-1"):
        assert needle not in logged


@pytest.mark.parametrize("hook_path", [SELECT, SIGN])
def test_rows_carry_decision_criteria_and_rule_version(audit_client, audit_url, hook_path):
    request = sample_request()
    if hook_path == SIGN:
        request = with_orders(request, [service_request("s1", cpt="72148")], hook="order-sign")
    body = audit_client.post(hook_path, json=request).get_json()
    entry = body["extension"]["org.lumbar-imaging-cds.decisions"][0]
    row = table_rows(audit_url, evaluation)[0]
    assert row["decision"] == entry["decision"]
    met = sorted({c["id"] for c in entry["checked"] if c["status"] == "met"})
    assert row["criteria_met"] == ",".join(met)
    assert row["consult_id"] == entry["consultId"].removeprefix("urn:uuid:")
    assert row["policy_version"]


def test_cli_db_upgrade_migrates_an_empty_database(audit_url, capsys):
    from cds_service.cli import main

    assert main(["db", "upgrade", "--database-url", audit_url]) == 0
    assert "newest migration" in capsys.readouterr().out
    store = AuditStore.from_url(audit_url)
    try:
        assert store.is_current()
    finally:
        store.engine.dispose()
