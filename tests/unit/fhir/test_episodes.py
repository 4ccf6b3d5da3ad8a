"""EpisodeOfCare and Encounter read as the GP episode (facts/episodes.py): nl-core and US shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.fhir.facts import extract_facts
from cds_service.fhir.facts.episodes import CONTACT_GAP_DAYS
from cds_service.rules.knowledge import Knowledge, default_knowledge
from cds_service.rules.model import PatientFacts

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
ICPC_NL = "http://hl7.org/fhir/sid/icpc-1-nl"
SNOMED = "http://snomed.info/sct"
TITLE_R4 = "http://nictiz.nl/fhir/StructureDefinition/ext-EpisodeOfCare.EpisodeOfCareName"
TITLE_STU3 = "http://nictiz.nl/fhir/StructureDefinition/EpisodeOfCare-Title"
CONTACTWIJZE = "https://referentiemodel.nhg.org/tabellen/nhg-tabel-14-contactwijze"


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped rule data."""
    return default_knowledge()


def ago(days: int) -> str:
    """An ISO date `days` before the hook call."""
    return (TODAY - timedelta(days=days)).isoformat()


def episode_of_care(
    rid: str,
    *,
    title: str | None = None,
    condition: str | None = None,
    start: int | None = 120,
    end: int | None = None,
    status: str = "active",
    title_url: str = TITLE_R4,
) -> dict[str, Any]:
    """An nl-core EpisodeOfCare: no code of its own, a title extension, the Condition linked."""
    resource: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": rid,
        "status": status,
        "patient": {"reference": "Patient/p"},
    }
    if title:
        resource["extension"] = [{"url": title_url, "valueString": title}]
    period = {}
    if start is not None:
        period["start"] = ago(start)
    if end is not None:
        period["end"] = ago(end)
    if period:
        resource["period"] = period
    if condition:
        resource["diagnosis"] = [{"condition": {"reference": condition}, "rank": 1}]
    return resource


def encounter(
    rid: str, days: int, *, episode: str | None = None, reason: dict | None = None
) -> dict[str, Any]:
    """A GP consult (class AMB, NHG contactwijze 03) on one day."""
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": rid,
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
        },
        "type": [{"coding": [{"system": CONTACTWIJZE, "code": "03", "display": "Consult"}]}],
        "subject": {"reference": "Patient/p"},
        "period": {"start": ago(days), "end": ago(days)},
    }
    if episode:
        resource["episodeOfCare"] = [{"reference": episode}]
    if reason:
        resource["reasonCode"] = [reason]
    return resource


def icpc_condition(rid: str, code: str, onset: int, *, status: str = "active") -> dict[str, Any]:
    """A GP Condition coded in ICPC-1 NL."""
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": status,
                }
            ]
        },
        "code": {"coding": [{"system": ICPC_NL, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "onsetDateTime": ago(onset),
    }


def facts(knowledge: Knowledge, *resources: dict[str, Any]) -> PatientFacts:
    """Facts of a record holding `resources`."""
    return extract_facts(list(resources), knowledge=knowledge, now=NOW)


def test_episode_linked_to_an_icpc_condition_starts_at_its_first_contact(knowledge):
    # re-labelled: the Condition L86.01 dates from day 60, the episode began at day 120
    found = facts(
        knowledge,
        icpc_condition("hnp", "L86.01", 60),
        episode_of_care("ep1", title="Rughernia", condition="Condition/hnp", start=120),
    )
    assert found.episode_onset == TODAY - timedelta(days=120)
    assert "EpisodeOfCare/ep1" in found.episode_references
    assert "Condition/hnp" in found.episode_references


def test_episode_recognised_by_its_title_alone(knowledge):
    found = facts(knowledge, episode_of_care("ep1", title="Lage rugpijn", start=30))
    assert found.episode_onset == TODAY - timedelta(days=30)
    assert found.episode_references == ("EpisodeOfCare/ep1",)


def test_stu3_title_extension_is_read_too(knowledge):
    found = facts(knowledge, episode_of_care("ep1", title="Ischias re", title_url=TITLE_STU3))
    assert found.episode_references == ("EpisodeOfCare/ep1",)


def test_an_episode_about_something_else_is_no_back_pain_episode(knowledge):
    found = facts(knowledge, episode_of_care("ep1", title="Hypertensie", start=400))
    assert found.episode_references == ()
    assert found.episode_onset is None


def test_finished_episode_is_an_earlier_episode(knowledge):
    found = facts(
        knowledge,
        episode_of_care("old", title="Lage rugpijn", start=900, end=800, status="finished"),
    )
    assert found.episode_references == ()
    assert [f.reference for f in found.prior_episodes] == ["EpisodeOfCare/old"]


def test_planned_or_cancelled_episode_is_ignored(knowledge):
    for status in ("planned", "waitlist", "cancelled"):
        found = facts(knowledge, episode_of_care("e", title="Lage rugpijn", status=status))
        assert found.episode_references == () and found.prior_episodes == ()


def test_consults_of_the_episode_move_its_onset_earlier_only(knowledge):
    found = facts(
        knowledge,
        episode_of_care("ep1", title="Rughernia", start=None),
        encounter("c1", 100, episode="EpisodeOfCare/ep1"),
        encounter("c2", 40, episode="EpisodeOfCare/ep1"),
        encounter("other", 300, episode="EpisodeOfCare/ep-knee"),
    )
    assert found.episode_onset == TODAY - timedelta(days=100)


def test_unlinked_back_pain_consults_make_the_episode_when_there_is_none(knowledge):
    lbp = {"coding": [{"system": SNOMED, "code": "279039007", "display": "Low back pain"}]}
    found = facts(
        knowledge,
        encounter("e1", 400, reason=lbp),  # an earlier run, too far back to belong
        encounter("e2", 70, reason=lbp),
        encounter("e3", 10, reason=lbp),
        encounter("flu", 20, reason={"text": "Influenza"}),
    )
    assert found.episode_onset == TODAY - timedelta(days=70)
    assert found.episode_references == ("Encounter/e2", "Encounter/e3")


def test_unlinked_consults_do_not_override_a_recorded_episode(knowledge):
    lbp = {"text": "lage rugpijn"}
    found = facts(
        knowledge,
        icpc_condition("lbp", "L03", 20),
        encounter("e1", 80, reason=lbp),
    )
    assert found.episode_onset == TODAY - timedelta(days=20)
    assert found.episode_references == ("Condition/lbp",)


def test_a_run_of_consults_that_ended_long_ago_is_an_earlier_episode(knowledge):
    lbp = {"text": "low back pain"}
    found = facts(knowledge, encounter("e1", CONTACT_GAP_DAYS + 50, reason=lbp))
    assert found.episode_references == ()
    assert [f.reference for f in found.prior_episodes] == ["Encounter/e1"]


def test_negated_title_is_no_episode(knowledge):
    found = facts(knowledge, episode_of_care("e", title="geen rugpijn, controle"))
    assert found.episode_references == ()
