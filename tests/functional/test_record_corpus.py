"""Issue 10's record corpus over real HTTP: every Dutch GP and US EHR record gets its decision.

The service runs under gunicorn (cds_service/serve.sh); records with transport `server` are read
by the service from a loopback FHIR server (every key fetched, Observations paged), the others
arrive prefetched. Each record states its expected decision, the decisive criteria, and the
references the decision must rest on (tests/records/*.yaml).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class

from tests.records.corpus import SERVICE_PATH, Record, records, request_for, serve
from tests.support.fhir_stub import FhirStub
from tests.support.live import entrypoint_server

DECISIONS = "org.lumbar-imaging-cds.decisions"
RATING_URL = "http://fhir.org/argonaut/Extension/pama-rating"


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[FhirStub]:
    """A loopback FHIR server holding every record of the corpus."""
    with FhirStub() as stub:
        for record in records():
            serve(stub, record)
        yield stub


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service under gunicorn, authentication off, SQLite audit store."""
    stderr = tmp_path_factory.mktemp("record-corpus") / "stderr.log"
    with entrypoint_server({}, stderr_path=stderr) as base:
        yield base


def call(live_server: str, fhir_server: FhirStub, record: Record) -> dict[str, Any]:
    """POST the record's order-sign call; the response body."""
    response = requests.post(
        f"{live_server}{SERVICE_PATH}",
        json=request_for(record, fhir_server.base_url),
        headers={"Accept-Language": "nl" if record.case["shape"] == "nl-gp" else "en"},
        timeout=30,
    )
    assert response.status_code == 200, response.text[:500]
    return response.json()


def rating(body: dict[str, Any]) -> str | None:
    """The PAMA rating code on the draft order, if any."""
    for action in body.get("systemActions", []):
        for extension in action.get("resource", {}).get("extension", []):
            if extension.get("url") == RATING_URL:
                return extension["valueCodeableConcept"]["coding"][0]["code"]
    return None


def test_corpus_has_forty_gp_and_thirty_ehr_records():
    shapes = Counter(record.case["shape"] for record in records())
    assert shapes["nl-gp"] >= 40
    assert shapes["us-ehr"] >= 30
    assert len({record.id for record in records()}) == len(records())
    transports = Counter(record.case.get("transport") for record in records())
    assert transports["server"] >= 20 and transports["prefetch"] >= 20
    # the US records are large, as real ones are
    sizes = sorted(len(r.resources) for r in records() if r.case["shape"] == "us-ehr")
    assert sizes[len(sizes) // 2] >= 400 and sizes[-1] >= 1000


def test_every_record_is_valid_fhir_r4():
    """A fixture the service would skip as invalid would test nothing."""
    for record in records():
        for resource in record.resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize("record", records(), ids=lambda r: r.id)
def test_record_gets_its_expected_decision(live_server, fhir_server, record):
    body = call(live_server, fhir_server, record)
    (entry,) = body["extension"][DECISIONS]
    expect = record.expect
    assert entry["decision"] == expect["decision"], entry["checked"]
    assert set(entry.get("criteria", [])) == set(expect.get("criteria", [])), entry["checked"]
    checked = {c["id"]: c for c in entry["checked"]}
    for criterion, reason in (expect.get("reasons") or {}).items():
        assert checked[criterion]["reason"] == reason
    cited = {ref for c in entry["checked"] for ref in c.get("evidence", [])}
    if expect["decision"] != "out-of-population" and expect.get("criteria") != ["no-episode-data"]:
        assert expect.get("cites"), "every judged record names the evidence it must cite"
    missing = set(expect.get("cites", [])) - cited
    assert not missing, f"not cited: {missing}; cited: {sorted(cited)}"
    if "rating" in expect:
        assert rating(body) == expect["rating"]
    assert len(body["cards"]) == 1


def test_gp_record_card_names_journal_therapy_referral_and_nhg_ct(live_server, fhir_server):
    """Issue 10's Dutch GP record: the card names the therapy, the referral and the CT."""
    record = next(r for r in records() if r.case["id"] == "hnp-17wk-cesar-nhg-ct")
    body = call(live_server, fhir_server, record)
    (entry,) = body["extension"][DECISIONS]
    checked = {c["id"]: c for c in entry["checked"]}
    care = set(checked["failed-conservative-care"].get("evidence", []))
    # the referral, and the journal lines of the exercise therapy, are the care
    assert {"ServiceRequest/ref1", "Observation/j3S"} <= care
    assert checked["failed-conservative-care"]["reason"] != "no-active-care"
    assert checked["failed-conservative-care"]["status"] == "met"  # NRS 7 -> 7 in the journal
    assert checked["repeat-imaging"]["evidence"] == ["Observation/r1"]
    detail = body["cards"][0]["detail"]
    # the card names the CT (the earlier scan), the referral and the journal's therapy lines in
    # words, never by their references (those stay in the decisions extension, above)
    for words in ("CT LWK, ", "(verwijzing)", "oefentherapie", "(huisartsjournaal)"):
        assert words in detail, detail
    for reference in ("Observation/r1", "ServiceRequest/ref1", "Observation/j3S"):
        assert reference not in detail
