"""degrade(): decisions on partial FHIR data, and the card it gives."""

from __future__ import annotations

import pytest

from cds_service.cards.render import render_card
from cds_service.hooks.discovery import PREFETCH
from cds_service.rules.degrade import (
    CONFIRMS_ONLY,
    CRITERION,
    EXPLAINED_BY,
    REASON,
    degrade,
    family_code,
    family_codes,
)
from cds_service.rules.model import Outcome, Status
from tests.support.cards import catalogue, context, decisions

ALL_FAMILIES = family_codes(PREFETCH)
OVERTURNING = sorted(ALL_FAMILIES - CONFIRMS_ONLY)


def test_nothing_unavailable_changes_nothing():
    for decision in decisions().values():
        assert degrade(decision, set()) is decision


@pytest.mark.parametrize("code", OVERTURNING)
def test_not_indicated_becomes_insufficient_data_naming_the_family(code):
    decision = decisions()["not-indicated"]
    degraded = degrade(decision, {code})
    assert degraded.outcome is Outcome.INSUFFICIENT_DATA
    assert degraded.missing == (code,)
    assert [c.id for c in degraded.decisive] == [CRITERION]
    assert degraded.decisive[0].reason == REASON
    # The trail of what was checked on the data that was there is kept, after the fault.
    assert degraded.criteria[1:] == decision.criteria


def test_repeat_imaging_not_indicated_is_degraded_too():
    # A red flag in the missing Conditions would outrank the earlier scan.
    degraded = degrade(decisions()["not-indicated-repeat"], {"fhir:conditions"})
    assert degraded.outcome is Outcome.INSUFFICIENT_DATA


@pytest.mark.parametrize("code", sorted(CONFIRMS_ONLY))
def test_prior_imaging_unavailable_leaves_not_indicated(code):
    degraded = degrade(decisions()["not-indicated"], {code})
    assert degraded.outcome is Outcome.NOT_INDICATED
    assert degraded.missing == ()
    assert degraded.criteria[0].id == CRITERION
    assert degraded.criteria[0].status is Status.UNKNOWN


def test_unknown_family_is_treated_as_able_to_overturn():
    assert degrade(decisions()["not-indicated"], {"fhir:encounters"}).outcome is (
        Outcome.INSUFFICIENT_DATA
    )


@pytest.mark.parametrize("name", ["urgent", "indicated"])
def test_positive_decisions_stand(name):
    decision = decisions()[name]
    degraded = degrade(decision, ALL_FAMILIES - {"fhir:patient"})
    assert degraded.outcome is decision.outcome
    assert degraded.decisive == decision.decisive
    assert degraded.missing == ()
    assert degraded.criteria[0].status is Status.UNKNOWN  # the trail says data was missing


def test_insufficient_data_keeps_its_codes_and_adds_the_families_sorted():
    decision = decisions()["insufficient-data"]
    assert decision.missing
    degraded = degrade(decision, {"fhir:procedures", "fhir:imaging-studies"})
    assert degraded.outcome is Outcome.INSUFFICIENT_DATA
    assert degraded.missing == (*decision.missing, "fhir:imaging-studies", "fhir:procedures")
    # The engine's own reason still heads the card; the fault is noted, not decisive.
    assert degraded.decisive == decision.decisive
    assert degraded.criteria[0].status is Status.UNKNOWN


def test_what_the_unavailable_data_may_hold_is_not_asked_for():
    decision = decisions()["insufficient-data"]  # neuro-exam, outcome-scores, episode(-onset)
    degraded = degrade(decision, {"fhir:conditions"})
    assert degraded.missing == ("neuro-exam", "outcome-scores", "fhir:conditions")
    assert degraded.decisive == decision.decisive


def test_insufficiency_caused_by_the_fault_is_headed_by_it():
    decision = decisions()["insufficient-data"]
    degraded = degrade(decision, {"fhir:conditions", "fhir:observations"})
    assert degraded.missing == ("fhir:conditions", "fhir:observations")
    assert degraded.decisive[0].id == CRITERION
    assert EXPLAINED_BY.keys() >= set(decision.missing)


def test_family_codes_are_spelled_from_the_prefetch_keys():
    assert len(ALL_FAMILIES) == len(PREFETCH)
    assert family_code("episodesOfCare") == "fhir:episodes-of-care"
    assert family_code("patient") == "fhir:patient"
    assert family_codes(["observations", "medicationRequests"]) == {
        "fhir:observations",
        "fhir:medication-requests",
    }
    assert family_codes(["encounter"]) == {"fhir:encounter"}


def test_the_families_the_rules_name_are_prefetched():
    named = CONFIRMS_ONLY | frozenset().union(*EXPLAINED_BY.values())
    assert named <= ALL_FAMILIES


def test_every_family_code_and_the_criterion_have_labels():
    cat = catalogue()
    assert ALL_FAMILIES - set(cat.checklist) == set()
    for language in ("nl", "en"):
        assert cat.criteria[CRITERION][language]
        assert cat.reasons[REASON][language]


@pytest.mark.parametrize("language", ["nl", "en"])
def test_degraded_card_lists_what_could_not_be_fetched(language):
    degraded = degrade(decisions()["not-indicated"], {"fhir:observations", "fhir:conditions"})
    cat = catalogue()
    card = render_card(degraded, language, cat, context(50))
    assert card["indicator"] == "info"
    assert cat.reasons[REASON][language] in card["summary"]
    assert len(card["summary"]) < 140
    for code in ("fhir:observations", "fhir:conditions"):
        line = cat.checklist[code][language].render().strip()
        assert f"- [ ] {line}" in card["detail"]
    assert "suggestions" not in card  # no cancel/replace without a not-indicated decision
