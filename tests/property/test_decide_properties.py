"""decide() on random patient records: always one of the four outcomes, with a consistent trail
and rating (cds_service.rules.decide, cds_service.cards.pama)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.cards.pama import RATING_URL, rating_action
from cds_service.fhir.facts import extract_facts
from cds_service.rules.decide import decide
from cds_service.rules.knowledge import default_knowledge
from cds_service.rules.model import (
    PAMA_RATING,
    XRAY_CANNOT_ANSWER,
    LumbarOrder,
    Modality,
    Outcome,
    Status,
    Strength,
)
from tests.property import strategies as fhir

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,  # the first examples pay for model imports; the run as a whole is bounded
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXPECTED_RATING = {
    Outcome.URGENT: "appropriate",
    Outcome.INDICATED: "appropriate",
    Outcome.NOT_INDICATED: "not-appropriate",
    Outcome.INSUFFICIENT_DATA: None,
    Outcome.OUT_OF_POPULATION: None,  # under 18: not judged, no rating (POLICY "Adults only")
}
DRAFT = {
    "resourceType": "ServiceRequest",
    "id": "draft-1",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": fhir.PATIENT},
}

orders = st.builds(
    LumbarOrder,
    reference=st.just("ServiceRequest/draft-1"),
    modality=st.sampled_from(list(Modality)),
    code_display=st.sampled_from(["MRI lumbale wervelkolom", "X LWK", "CT lumbar spine"]),
    strength=st.sampled_from(list(Strength)),
)


@pytest.fixture(scope="module")
def knowledge():
    return default_knowledge()


@PROPERTY_SETTINGS
@given(items=fhir.records, order=orders)
def test_decide_gives_one_outcome_with_a_consistent_trail(knowledge, items, order):
    facts = extract_facts(items, knowledge=knowledge, now=fhir.NOW, exclude=[order.reference])
    decision = decide(facts, order, knowledge.policy)

    assert decision.outcome in set(Outcome)
    assert decision.order is order
    assert decision.criteria, "every decision records the criteria it checked"
    for criterion in decision.criteria:
        assert criterion.status in set(Status)
        assert criterion.outcome is None or criterion.outcome in set(Outcome)
    # The decisive criteria are met and imply the outcome.
    for criterion in decision.decisive:
        assert criterion.status is Status.MET and criterion.outcome is decision.outcome
    if decision.outcome is Outcome.URGENT:
        assert any(
            c.status is Status.MET and c.outcome is Outcome.URGENT for c in decision.criteria
        )
    if decision.outcome is Outcome.INDICATED:
        assert decision.decisive
        assert not any(
            c.status is Status.MET and c.outcome is Outcome.URGENT for c in decision.criteria
        ), "an urgent criterion that is met must win over an indication"
    if decision.outcome is not Outcome.INSUFFICIENT_DATA:
        assert decision.missing == ()
    # Evidence names resources of the record, never the order being judged.
    assert order.reference not in decision.evidence


@PROPERTY_SETTINGS
@given(items=fhir.records, order=orders, language=st.sampled_from(["nl", "en"]))
def test_rating_follows_the_outcome(knowledge, items, order, language):
    facts = extract_facts(items, knowledge=knowledge, now=fhir.NOW, exclude=[order.reference])
    decision = decide(facts, order, knowledge.policy)
    assert PAMA_RATING.get(decision.outcome) == EXPECTED_RATING[decision.outcome]
    action = rating_action(
        DRAFT,
        decision,
        consult_id="c0ffee00-0000-4000-8000-000000000000",
        qcdsm_id="q",
        language=language,
    )
    if EXPECTED_RATING[decision.outcome] is None:
        assert action is None
        return
    assert action is not None and action["type"] == "update"
    ratings = [
        ext["valueCodeableConcept"]["coding"][0]["code"]
        for ext in action["resource"]["extension"]
        if ext["url"] == RATING_URL
    ]
    expected = EXPECTED_RATING[decision.outcome]
    if (
        expected == "appropriate"
        and order.modality is Modality.XRAY
        and all(c.reason in XRAY_CANNOT_ANSWER for c in decision.decisive)
    ):
        # POLICY: the rating judges the ordered examination (an X-ray shows no nerve or abscess)
        expected = "not-appropriate"
    assert ratings == [expected] == [decision.rating]


@settings(PROPERTY_SETTINGS, max_examples=50)
@given(items=fhir.records, order=orders)
def test_decide_is_deterministic(knowledge, items, order):
    facts = extract_facts(items, knowledge=knowledge, now=fhir.NOW)
    assert decide(facts, order, knowledge.policy) == decide(facts, order, knowledge.policy)
