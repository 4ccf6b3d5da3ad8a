"""Dutch GP journal lines and referrals read as care and outcome scores (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.fhir.facts import extract_facts
from cds_service.rules.knowledge import Knowledge, default_knowledge

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
JOURNAL = "http://fhir.nl/fhir/NamingSystem/journaalregeltypen"


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped rule data."""
    return default_knowledge()


def ago(days: int) -> str:
    """An ISO date `days` before the hook call."""
    return (NOW.date() - timedelta(days=days)).isoformat()


def line(rid: str, kind: str, days: int, text: str) -> dict[str, Any]:
    """A SOEP journal line."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": JOURNAL, "code": kind}]},
        "effectiveDateTime": ago(days),
        "valueString": text,
    }


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("Mensendieck loopt, weinig effect. NRS 7.", "pain-nrs", 7.0),
        ("Pijnscore 6/10 bij bewegen", "pain-nrs", 6.0),
        ("VAS: 4,5", "pain-nrs", 4.5),
        ("Oswestry 42 %, NRS 8", "oswestry", 42.0),
    ],
)
def test_a_score_written_in_a_journal_line_is_a_dated_score(knowledge, text, kind, value):
    facts = extract_facts([line("j1", "S", 10, text)], knowledge=knowledge, now=NOW)
    scores = [s for s in facts.scores if s.kind == kind]
    assert [(s.value, s.reference) for s in scores] == [(value, "Observation/j1")]
    assert scores[0].when == NOW.date() - timedelta(days=10)


@pytest.mark.parametrize(
    "text",
    [
        "NRS 12",  # out of range
        "geen NRS afgenomen",  # negated: no score
        "NRS 7.5.2020 besproken",  # a date, not a score
    ],
)
def test_no_score_from_text_that_does_not_give_one(knowledge, text):
    facts = extract_facts([line("j1", "S", 10, text)], knowledge=knowledge, now=NOW)
    assert facts.scores == ()


def test_completed_therapy_referral_without_period_starts_the_care(knowledge):
    referral = {
        "resourceType": "ServiceRequest",
        "id": "ref1",
        "status": "completed",
        "intent": "order",
        "category": [{"text": "Verwijsbrief"}],
        "code": {"text": "Oefentherapie Cesar"},
        "subject": {"reference": "Patient/p"},
        "authoredOn": ago(100),
    }
    session = line("j1", "S", 5, "Cesar-oefentherapie, 12e behandeling.")
    facts = extract_facts([referral, session], knowledge=knowledge, now=NOW)
    (care,) = [c for c in facts.care if c.kind == "active"]
    assert care.first == NOW.date() - timedelta(days=100)
    assert care.last == NOW.date() - timedelta(days=5)
    assert care.references == ("ServiceRequest/ref1", "Observation/j1")


@pytest.mark.parametrize(
    ("text", "care"),
    [
        ("Cesar of Mensendieck. Verwijzing aangemaakt.", True),
        ("Nogmaals verwijzing Cesar.", True),
        ("Verwijzing oefentherapie Cesar.", False),  # a plan: not (yet) a referral
        ("Geen verwijzing aangemaakt, eerst zelf oefenen volgens folder Cesar.", False),
        ("Bij onvoldoende herstel na 6 wk verwijzing fysiotherapie.", False),
    ],
)
def test_a_p_line_that_records_a_referral_made_is_the_start_of_care(knowledge, text, care):
    facts = extract_facts([line("j1", "P", 30, text)], knowledge=knowledge, now=NOW)
    sessions = [c for c in facts.care if c.kind == "active"]
    if care:
        (episode,) = sessions
        assert episode.first == NOW.date() - timedelta(days=30)
        assert episode.references == ("Observation/j1",)
    else:
        assert sessions == []


def test_a_p_line_referral_to_the_neurosurgeon_made_is_a_surgical_referral(knowledge):
    made = line("j1", "P", 5, "Verwijzing neurochirurg aangemaakt via Zorgdomein.")
    planned = line("j2", "P", 5, "Evt. verwijzing neurochirurg bij toename.")
    facts = extract_facts([made, planned], knowledge=knowledge, now=NOW)
    referrals = [f.reference for f in facts.findings if f.concept == "surgical-referral"]
    assert referrals == ["Observation/j1"]


def test_an_id_with_a_trailing_newline_is_not_used_as_the_reference(knowledge):
    resource = line("j1\n", "S", 3, "Koorts 38,9.")
    facts = extract_facts([resource], knowledge=knowledge, now=NOW)
    # the note names the resource by its position, never by the id with the newline in it
    assert facts.data_notes == ("Observation/#0: not valid FHIR R4",)
