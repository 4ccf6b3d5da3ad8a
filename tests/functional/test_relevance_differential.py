"""The screened path equals the full one (issue 11): skipping irrelevant resources changes nothing.

`extract_facts` skips, before validation, resources that cannot contribute a finding
(cds_service/fhir/facts/relevance.py). Here every scenario, every record of the corpus and
2,000 generated records go through both the screened path and the full-validation path
(`screen=False`); the facts (all but the data notes, which name invalid resources the screened
path never looked at) and every decision (outcome, criteria with their evidence, missing data,
advice, rating) must be identical.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.fhir.facts import extract_facts
from cds_service.fhir.facts.builder import FactsBuilder
from cds_service.fhir.facts.common import normalise_references
from cds_service.fhir.facts.registry import READERS
from cds_service.fhir.orders import draft_resources, lumbar_orders
from cds_service.fhir.prefetch import flatten
from cds_service.rules.decide import decide
from cds_service.rules.knowledge import Knowledge, default_knowledge
from cds_service.rules.model import PatientFacts
from tests.property import strategies as fhir
from tests.records.corpus import records
from tests.records.shapes import draft_order
from tests.scenarios.loader import build_request, scenarios

NOW = fhir.NOW
LOINC = "http://loinc.org"
ORDERS = [
    {"resourceType": "ServiceRequest", "id": f"o-{name}", "status": "draft", "intent": "order",
     "code": {"text": text}, "subject": {"reference": fhir.PATIENT}}
    for name, text in (("mri", "MRI LWK"), ("xray", "X-LWK"), ("ct", "CT LWK"))
]  # fmt: skip


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped rule data."""
    return default_knowledge()


def screened(
    resources: list[Any], knowledge: Knowledge, now: datetime, exclude: list[str]
) -> tuple[PatientFacts, frozenset[str]]:
    """The screened facts and the references of the resources the screen skipped."""
    builder = FactsBuilder(knowledge, now, normalise_references(exclude))
    for index, item in enumerate(resources):
        builder.add(index, item)
    return builder.build(), frozenset(builder.skipped)


def assert_same(
    resources: list[Any], drafts: list[dict[str, Any]], knowledge: Knowledge, now: datetime
) -> None:
    """Both paths give the same decision for every lumbar order, and the same facts but for
    what the skipped resources held: old or normal body temperatures, nothing else."""
    exclude = [f"{d['resourceType']}/{d['id']}" for d in drafts if d.get("id")]
    fast, skipped = screened(resources, knowledge, now, exclude)
    full = extract_facts(resources, knowledge=knowledge, now=now, exclude=exclude, screen=False)
    dropped = [f for f in (*full.findings, *full.absent) if f.reference in skipped]
    window = knowledge.policy.red_flags_fever_window_days
    threshold = knowledge.policy.red_flags_fever_celsius
    for finding in dropped:
        assert finding.concept == "body-temperature", finding
        old = finding.when is not None and (now.date() - finding.when).days > window
        assert old or (finding.value is not None and finding.value < threshold), finding
    expected = dataclasses.replace(
        full,
        findings=tuple(f for f in full.findings if f.reference not in skipped),
        absent=tuple(f for f in full.absent if f.reference not in skipped),
        text_evidence=tuple(t for t in full.text_evidence if t.reference not in skipped),
        data_notes=(),  # they name invalid resources the screen never validated
    )
    assert dataclasses.replace(fast, data_notes=()) == expected
    # the record's own lumbar orders, and an MRI, an X-ray and a CT of the lumbar spine
    orders = lumbar_orders([*drafts, *ORDERS], knowledge)
    assert len(orders) >= len(ORDERS)
    for _, order in orders:
        assert decide(fast, order, knowledge.policy) == decide(full, order, knowledge.policy)


@pytest.mark.parametrize("scenario_id", sorted(scenarios()))
def test_every_scenario_decides_the_same_screened(knowledge, scenario_id):
    now = datetime.now(UTC)
    request = build_request(scenarios()[scenario_id], now)
    drafts = draft_resources(request["context"]["draftOrders"])
    assert_same(flatten(request["prefetch"]), drafts, knowledge, now)


@pytest.mark.parametrize("record", records(), ids=lambda r: r.id)
def test_every_corpus_record_decides_the_same_screened(knowledge, record):
    reference = f"urn:uuid:{record.patient_id}"
    drafts = [draft_order(record.case, reference)]
    assert_same(list(record.resources), drafts, knowledge, datetime.now(UTC))


def test_the_screen_skips_most_of_a_us_record(knowledge):
    """The screen is not a no-op: the labs and vitals of a large record are not validated."""
    record = max(records(), key=lambda r: len(r.resources))
    _, skipped = screened(list(record.resources), knowledge, datetime.now(UTC), [])
    read = [r for r in record.resources if r["resourceType"] in READERS]
    assert len(skipped) >= 0.6 * len(read)


# -- generated records: the shipped strategies plus the shapes the screen acts on -----------------

_days = st.integers(-2, 60)


def _ago(days: int) -> str:
    return (NOW - timedelta(days=days)).isoformat()


lab = st.builds(
    lambda code, value, days: {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}]},
        "subject": {"reference": fhir.PATIENT},
        "effectiveDateTime": _ago(days),
        "valueQuantity": {"value": value},
    },
    st.sampled_from(
        [
            ("2339-0", "Glucose"),
            ("718-7", "Hemoglobin"),
            ("8302-2", "Body Height"),
            ("29463-7", "Body Weight"),
            ("8310-5", "Body temperature"),
            ("72514-3", "Pain severity"),
            ("1271AAAA", "TESTS ORDERED"),
            ("99999-9", "Temp (°C)"),
            ("x", "Koorts"),
            ("y", "MRI lumbale wervelkolom"),
            ("z", "lage rugpijn"),
        ]
    ),
    st.floats(30, 120, allow_nan=False).map(lambda v: round(v, 1)),
    _days,
)
_VALUES = [
    None,
    {"coding": [{"system": "http://snomed.info/sct", "code": "10828004", "display": "Positive"}]},
    {"coding": [{"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}]},
    {"coding": [{"system": "http://snomed.info/sct", "code": "266919005",
                 "display": "Never smoked tobacco (finding)"}]},
    {"text": "positief"},
    {"text": "afwezig"},
    {"text": "koorts"},
]  # fmt: skip
_COMPONENTS = [
    None,
    [{"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic BP"}]},
      "valueQuantity": {"value": 120}}],
    [{"code": {"text": "Spierkracht voetheffers links (MRC)"}, "valueInteger": 3}],
    [{"code": {"text": "Achillespeesreflex"}, "valueCodeableConcept": {"text": "afwezig"}}],
    [{"code": {"coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}]},
      "valueQuantity": {"value": 38.6, "code": "Cel"}}],
]  # fmt: skip


def _with_value(resource: dict[str, Any], value: Any, components: Any) -> dict[str, Any]:
    if value is not None:
        resource = {**resource, "valueCodeableConcept": value}
        resource.pop("valueQuantity", None)
    if components is not None:
        resource = {**resource, "component": components}
    return resource


coded_lab = st.builds(_with_value, lab, st.sampled_from(_VALUES), st.sampled_from(_COMPONENTS))
temperature = st.builds(
    lambda days, value, offset: {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}]},
        "subject": {"reference": fhir.PATIENT},
        "effectiveDateTime": (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S") + offset,
        "valueQuantity": {"value": value[0], **({"code": value[1]} if value[1] else {})},
    },
    st.integers(0, 30),
    st.sampled_from(
        [
            (37.0, "Cel"),
            (37.94, "Cel"),
            (37.96, "Cel"),
            (38.0, "Cel"),
            (39.0, "Cel"),
            (100.3, "[degF]"),
            (100.5, "[degF]"),
            (38.4, None),
            (99.0, None),
            (37.5, "K"),
        ]
    ),
    st.sampled_from(["Z", "+14:00", "-12:00"]),
)
encounter = st.builds(
    lambda days, reason, linked: {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": fhir.PATIENT},
        "period": {"start": _ago(days)},
        **({"reasonCode": [{"text": reason}]} if reason else {}),
        **({"episodeOfCare": [{"reference": "EpisodeOfCare/ep"}]} if linked else {}),
    },
    _days,
    st.sampled_from([None, "Low back pain", "Motor vehicle accident", "Influenza"]),
    st.booleans(),
)
episode = st.builds(
    lambda days, title: {
        "resourceType": "EpisodeOfCare",
        "id": "ep",
        "status": "active",
        "patient": {"reference": fhir.PATIENT},
        "period": {"start": _ago(days)},
        "extension": [{"url": "x-EpisodeOfCareName", "valueString": title}],
    },
    _days,
    st.sampled_from(["Lage rugpijn", "Rughernia", "Hypertensie"]),
)
generated = st.lists(
    st.one_of(fhir.item(), lab, coded_lab, temperature, encounter, episode), max_size=20
)


@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(generated)
def test_generated_records_decide_the_same_screened(knowledge, items):
    assert_same(items, ORDERS, knowledge, NOW)
