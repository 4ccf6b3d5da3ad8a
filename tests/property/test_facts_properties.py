"""Random FHIR-shaped records never break facts extraction (cds_service.fhir.facts)."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.fhir.facts import extract_facts
from cds_service.rules.knowledge import default_knowledge
from cds_service.rules.model import Finding, PatientFacts
from tests.property import strategies as fhir

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,  # the first examples pay for model imports; the run as a whole is bounded
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def knowledge():
    return default_knowledge()


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _references(items: list) -> set[str]:
    """Every reference a Finding may carry for these items ("Type/id" or "Type/#index")."""
    refs = set()
    for index, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("resourceType"), str):
            kind = item["resourceType"]
            refs |= {f"{kind}/{item.get('id')}", f"{kind}/#{index}"}
    return refs


@PROPERTY_SETTINGS
@given(items=fhir.records)
def test_extract_facts_never_raises_and_keeps_its_invariants(knowledge, items):
    errors = _Collect(logging.ERROR)
    facts_logger = logging.getLogger("cds_service.fhir.facts")
    facts_logger.addHandler(errors)
    try:
        facts = extract_facts(items, knowledge=knowledge, now=fhir.NOW)
    finally:
        facts_logger.removeHandler(errors)
    assert isinstance(facts, PatientFacts)
    # The last-resort guards in extract_facts must not have been needed: a reader that raised
    # is a bug even though the hook survives it.
    assert not errors.records, [(r.getMessage(), r.exc_info) for r in errors.records]
    assert not [n for n in facts.data_notes if n.endswith("not readable")], facts.data_notes
    refs = _references(items)
    every_finding: tuple[Finding, ...] = facts.findings + facts.absent + facts.prior_episodes
    for finding in every_finding:
        # A panel's component is cited as "<Observation reference>#component-<n>".
        resource, _, component = finding.reference.partition("#")
        assert resource in refs
        assert not component or component.startswith("component-")
        assert finding.concept in knowledge.concepts
    for medication in facts.medications:
        assert medication.reference in refs
    assert facts.age is None or 0 <= facts.age <= 150
    for care in facts.care:
        assert care.first <= care.last and care.sessions >= 1
    for score in facts.scores:
        assert isinstance(score.when, date)
        assert score.value == score.value  # never NaN


@settings(PROPERTY_SETTINGS, max_examples=50)
@given(items=fhir.records)
def test_extract_facts_is_deterministic(knowledge, items):
    first = extract_facts(items, knowledge=knowledge, now=fhir.NOW)
    again = extract_facts(items, knowledge=knowledge, now=fhir.NOW)
    assert first == again


@settings(PROPERTY_SETTINGS, max_examples=50)
@given(items=fhir.records, excluded=st.integers(0, 11))
def test_excluded_resources_leave_no_trace(knowledge, items, excluded):
    if excluded >= len(items) or not isinstance(items[excluded], dict):
        return
    target = items[excluded]
    reference = f"{target.get('resourceType')}/{target.get('id')}"
    facts = extract_facts(items, knowledge=knowledge, now=fhir.NOW, exclude=[reference])
    for finding in facts.findings + facts.absent + facts.prior_episodes:
        assert finding.reference != reference
