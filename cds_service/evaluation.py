"""One hook call from request to response: orders, prefetch, facts, decisions, cards, ratings.

The same function serves the web service and `cds-service evaluate`, so both give the same
answer for the same request.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from cds_service.cards.language import negotiate, variant
from cds_service.cards.pama import rating_action
from cds_service.cards.render import CardContext, Catalogue, render_card
from cds_service.config import Settings
from cds_service.errors import InvalidRequest, PrefetchUnavailable
from cds_service.fhir.facts import extract_facts
from cds_service.fhir.orders import draft_resources, lumbar_orders, orders_to_evaluate
from cds_service.fhir.prefetch import Prefetch, flatten, gather_prefetch
from cds_service.hooks.discovery import PREFETCH, SUPPLEMENTARY_KEYS
from cds_service.hooks.response import hook_response
from cds_service.rules.decide import decide
from cds_service.rules.degrade import degrade, family_codes
from cds_service.rules.knowledge import Knowledge
from cds_service.rules.model import CriterionResult, Decision, Outcome, PatientFacts


@dataclass(frozen=True, slots=True)
class OrderEvaluation:
    """The decision for one in-scope order and what the response carries for it."""

    decision: Decision
    card: dict[str, Any] | None
    action: dict[str, Any] | None
    consult_id: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything one hook call produced, for the response, the audit and the CLI."""

    hook: str
    language: str
    orders: tuple[OrderEvaluation, ...]
    facts: PatientFacts | None
    response: dict[str, Any]
    # Prefetch keys the FHIR server failed to deliver; the decisions were degraded for them.
    unavailable: tuple[str, ...] = ()


def _check_patient(prefetch: Mapping[str, Any], patient_id: str) -> Mapping[str, Any] | None:
    patient = prefetch.get("patient")
    if not isinstance(patient, Mapping):
        return None
    if patient.get("resourceType") != "Patient":
        raise InvalidRequest(
            "prefetch.patient: must be a Patient resource", expression="prefetch.patient"
        )
    if patient.get("id") not in (None, patient_id):
        raise InvalidRequest(
            "prefetch.patient: id does not match context.patientId",
            expression="prefetch.patient.id",
        )
    return patient


# Without the Patient there is no age and no language, and without any clinical family there is
# nothing to judge: then the call fails with 412 instead of answering on partial data.
ESSENTIAL_KEYS = frozenset({"patient"})


def _require_usable(prefetch: Prefetch) -> None:
    """Raise PrefetchUnavailable (412) when nothing usable was obtained (README "Prefetch")."""
    if not prefetch.unavailable:
        return
    clinical = prefetch.available - ESSENTIAL_KEYS
    if ESSENTIAL_KEYS & set(prefetch.unavailable) or not clinical:
        raise PrefetchUnavailable(
            "required FHIR data could not be fetched from fhirServer", issues=prefetch.issues()
        )


# The trail shows how free text was read, at most this many readings per order.
MAX_TEXT_FINDINGS = 50
# References listed per criterion in the trail (the rest counted in evidenceOmitted) and
# characters per reading's words and cue: with CDS_MAX_DRAFT_ORDERS they bound the response
# whatever the size of the record (README "Limits").
MAX_TRAIL_EVIDENCE = 20
MAX_WORDS_CHARS = 200


def _capped(text: str) -> str:
    """The text as read, or its first MAX_WORDS_CHARS characters and an ellipsis."""
    return text if len(text) <= MAX_WORDS_CHARS else text[: MAX_WORDS_CHARS - 1] + "…"


def _text_findings(item: OrderEvaluation, facts: PatientFacts) -> list[dict[str, Any]]:
    """How text was read for this decision: first what its criteria cite, then the rest.

    The words are the patient's record: they go to the EHR that sent them, never to the audit
    store or the logs.
    """
    cited = {ref for c in item.decision.criteria for ref in c.evidence}
    readings = sorted(facts.text_evidence, key=lambda t: t.reference not in cited)
    return [
        {
            "resource": t.reference,
            "concept": t.concept,
            "context": t.context,
            "words": _capped(t.words),
            "cue": _capped(t.cue) if t.cue else None,
        }
        for t in readings[:MAX_TEXT_FINDINGS]
    ]


def _checked(criterion: CriterionResult) -> dict[str, Any]:
    """One criterion of the trail: id, status, reason and the references it rests on."""
    entry: dict[str, Any] = {
        "id": criterion.id,
        "status": criterion.status.value,
        "reason": criterion.reason,
    }
    if criterion.evidence:
        entry["evidence"] = list(criterion.evidence[:MAX_TRAIL_EVIDENCE])
        if len(criterion.evidence) > MAX_TRAIL_EVIDENCE:
            entry["evidenceOmitted"] = len(criterion.evidence) - MAX_TRAIL_EVIDENCE
    return entry


def _decision_entry(item: OrderEvaluation, facts: PatientFacts) -> dict[str, Any]:
    decision = item.decision
    return {
        "order": decision.order.reference,
        "modality": decision.order.modality.value,
        "decision": decision.outcome.value,
        "criteria": [c.id for c in decision.decisive],
        "checked": [_checked(c) for c in decision.criteria],
        "missing": list(decision.missing),
        "advice": [a.code for a in decision.advice],
        "card": item.card["uuid"] if item.card else None,
        "consultId": f"urn:uuid:{item.consult_id}",
        "textFindings": _text_findings(item, facts),
    }


def evaluate(
    request: Mapping[str, Any],
    *,
    settings: Settings,
    knowledge: Knowledge,
    catalogue: Catalogue,
    accept_language: str | None = None,
    now: datetime | None = None,
    session: requests.Session | None = None,
) -> Evaluation:
    """Evaluate a validated hook request and build its CDS Hooks response."""
    now = now or datetime.now(UTC)
    hook = request["hook"]
    context = request["context"]
    drafts = orders_to_evaluate(context, hook)
    in_scope = lumbar_orders(drafts, knowledge)
    if not in_scope:
        # Nothing to judge: answer at once, without touching the FHIR server.
        language = negotiate(accept_language, None, settings.default_language)
        return Evaluation(hook, language, (), None, hook_response([], [], []))

    gathered = gather_prefetch(
        request, PREFETCH, settings, session=session, supplementary=SUPPLEMENTARY_KEYS
    )
    _require_usable(gathered)
    prefetch = gathered.values
    unavailable = family_codes(gathered.unavailable)
    patient = _check_patient(prefetch, context["patientId"])
    language = negotiate(accept_language, patient, settings.default_language)
    all_drafts = draft_resources(context.get("draftOrders") or {})
    exclude = {f"{d.get('resourceType')}/{d.get('id')}" for d in all_drafts if d.get("id")}
    facts = extract_facts(flatten(prefetch), knowledge=knowledge, now=now, exclude=exclude)

    results = []
    for draft, order in in_scope:
        decision = degrade(decide(facts, order, knowledge.policy), unavailable)
        consult_id = str(uuid.uuid4())
        show = settings.show_indicated_cards or decision.outcome is not Outcome.INDICATED
        card_context = CardContext(
            facts=facts,
            draft=draft,
            patient_id=context.get("patientId"),
            base_url=settings.public_base_url,
            variant=variant(accept_language, patient, language),
        )
        card = render_card(decision, language, catalogue, card_context) if show else None
        action = rating_action(
            draft, decision, consult_id=consult_id, qcdsm_id=settings.qcdsm_id, language=language
        )
        results.append(OrderEvaluation(decision, card, action, consult_id))

    response = hook_response(
        [r.card for r in results if r.card],
        [r.action for r in results if r.action],
        [_decision_entry(r, facts) for r in results],
    )
    return Evaluation(hook, language, tuple(results), facts, response, tuple(gathered.unavailable))
