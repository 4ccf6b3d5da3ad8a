"""Procedure and ServiceRequest: spinal procedures, conservative care, surgical referrals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cds_service.fhir.facts.common import (
    CARE_KIND,
    note_texts,
    period_end,
    period_start,
)
from cds_service.fhir.facts.registry import reads
from cds_service.rules.model import (
    Finding,
    PriorImaging,
)

if TYPE_CHECKING:
    from cds_service.fhir.facts.builder import FactsBuilder, Recognised


_PROCEDURE_PERFORMED = frozenset({"completed", "in-progress", "stopped"})
_PROCEDURE_PLANNED = frozenset({"preparation", "on-hold"})
_REQUEST_PLANNED = frozenset({"active", "draft", "on-hold"})
_REQUEST_REFERRAL = frozenset({"active", "on-hold", "completed"})


@reads("Procedure")
def read_procedure(b: FactsBuilder, procedure: Any, reference: str) -> None:
    """Spinal procedures, conservative care, prior imaging and referrals from a Procedure."""
    status = procedure.status
    if status == "not-done":
        return
    start = b.when(procedure.performedDateTime) or b.when(period_start(procedure.performedPeriod))
    end = b.when(period_end(procedure.performedPeriod)) or start
    performed = status in _PROCEDURE_PERFORMED or (
        status == "unknown" and start is not None and start <= b.today
    )
    planned = status in _PROCEDURE_PLANNED
    code = b.recognise([procedure.code])
    context = b.recognise(procedure.reasonCode or (), [*note_texts(procedure)])
    qualifiers = b.structural_qualifiers(procedure.bodySite or ())

    for concept, hit in code.hits.items():
        if concept == "spinal-procedure" and (performed or planned):
            extra = {"planned"} if planned else set()
            b.put(
                Finding(
                    concept,
                    reference,
                    start,
                    hit.strength,
                    qualifiers=frozenset(hit.qualifiers | qualifiers | extra),
                )
            )
        elif concept == "surgical-referral" and _is_referral(code, planned):
            b.put(Finding(concept, reference, start, hit.strength))
        elif concept in CARE_KIND and performed:
            if start is None:
                b.note(f"{reference}: no date")
            else:
                b.care.setdefault(CARE_KIND[concept], []).append(
                    (start, max(start, end or start), reference)
                )
    if performed and start is not None and not b.based_on_excluded(procedure):
        modality = b.imaging_modality(code, [procedure.code])
        if modality is not False:
            b.prior_imaging.append(PriorImaging(modality, start, reference))
    b.surgical_indication(code, reference, start)
    b.surgical_indication(context, reference, start)


def _is_referral(code: Recognised, planned: bool) -> bool:
    """A Procedure is a referral unless it is the spinal intervention itself, done.

    "epidurale injectie" names both a referral target and the intervention: once
    performed it is a spinal procedure (an infection risk), not a plan for surgery.
    """
    return planned or "spinal-procedure" not in code.hits


@reads("ServiceRequest")
def read_service_request(b: FactsBuilder, request: Any, reference: str) -> None:
    """Planned spinal procedures and surgical referrals; never prior imaging."""
    status = request.status
    if status == "revoked":
        return
    when = (
        b.when(request.authoredOn)
        or b.when(request.occurrenceDateTime)
        or b.when(period_start(request.occurrencePeriod))
    )
    code = b.recognise([request.code])
    performers = [p.display for p in request.performer or () if p.display]
    context = b.recognise(
        [request.performerType, *(request.reasonCode or ())],
        [*performers, *note_texts(request)],
    )
    if status in _REQUEST_PLANNED:
        hit = code.hits.get("spinal-procedure")
        if hit is not None:
            b.put(
                Finding(
                    "spinal-procedure",
                    reference,
                    when,
                    hit.strength,
                    qualifiers=frozenset(hit.qualifiers | {"planned"}),
                )
            )
    if status in _REQUEST_REFERRAL:
        hit = code.hits.get("surgical-referral") or context.hits.get("surgical-referral")
        if hit is not None:
            b.put(Finding("surgical-referral", reference, when, hit.strength))
    if status == "completed":
        # a completed referral for therapy with its period is care given over that period
        # (GP systems record Cesar / Mensendieck / physiotherapy this way, issue 10); without a
        # period it marks the start of the care on its date (hg-ReferralServiceRequest)
        period = request.occurrencePeriod
        start = (
            b.when(period_start(period))
            or b.when(request.occurrenceDateTime)
            or b.when(request.authoredOn)
        )
        end = b.when(period_end(period))
        for concept, kind in CARE_KIND.items():
            if concept in code.hits and start is not None:
                b.care.setdefault(kind, []).append((start, max(start, end or start), reference))
    b.surgical_indication(code, reference, when)
    b.surgical_indication(context, reference, when)
