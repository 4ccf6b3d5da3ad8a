"""MedicationStatement and MedicationRequest: courses of recognised medication."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from cds_service.fhir.facts.common import (
    period_end,
    period_start,
)
from cds_service.fhir.facts.registry import reads
from cds_service.fhir.units import as_float, duration_days, unit_key
from cds_service.rules.model import (
    Medication,
)

if TYPE_CHECKING:
    from cds_service.fhir.facts.builder import FactsBuilder


@reads("MedicationStatement")
def read_medication_statement(b: FactsBuilder, statement: Any, reference: str) -> None:
    """A course per recognised medication concept of a MedicationStatement."""
    if statement.status == "not-taken":
        return
    concepts = _medication_concepts(b, statement, reference)
    if concepts:
        course = _statement_course(b, statement)
        for concept in concepts:
            b.medications.append(Medication(concept, reference, *course))


@reads("MedicationRequest")
def read_medication_request(b: FactsBuilder, request: Any, reference: str) -> None:
    """A course per recognised medication concept of a MedicationRequest."""
    if request.status in ("cancelled", "draft"):
        return
    concepts = _medication_concepts(b, request, reference)
    if concepts:
        course = _request_course(b, request)
        for concept in concepts:
            b.medications.append(Medication(concept, reference, *course))


def _medication_concepts(b: FactsBuilder, resource: Any, reference: str) -> list[str]:
    medication_reference = resource.medicationReference
    recognised = b.recognise(
        [resource.medicationCodeableConcept],
        [medication_reference.display if medication_reference else None],
    )
    concepts = [c for c in recognised.hits if b.kind(c) == "medication"]
    # on a medication, a word for immunosuppression names an immunosuppressive drug
    if "immunosuppression" in recognised.hits and "immunosuppressive-drug" not in concepts:
        concepts.append("immunosuppressive-drug")
    return concepts


def _statement_course(
    b: FactsBuilder, statement: Any
) -> tuple[date | None, date | None, int | None, bool]:
    """Start, end, days and activity of a MedicationStatement.

    Start and end come from effectivePeriod, or effectiveDateTime as the start. An active
    statement is ongoing: without an end its course counts until the hook call.
    """
    period = statement.effectivePeriod
    start = b.when(period_start(period)) or b.when(statement.effectiveDateTime)
    end = b.when(period_end(period))
    return _course(b, start, end, statement.status == "active")


def _request_course(
    b: FactsBuilder, request: Any
) -> tuple[date | None, date | None, int | None, bool]:
    """Start, end, days and activity of a MedicationRequest.

    Start is authoredOn (else the validity period's start). The supply is
    expectedSupplyDuration times (1 + numberOfRepeatsAllowed) — FHIR counts repeats in
    addition to the first dispense; without a supply duration the validity period's end is
    the end. An active request without either counts until the hook call.
    """
    dispense = request.dispenseRequest
    validity = dispense.validityPeriod if dispense is not None else None
    start = b.when(request.authoredOn) or b.when(period_start(validity))
    end: date | None = None
    supply = dispense.expectedSupplyDuration if dispense is not None else None
    if supply is not None and start is not None:
        amount = as_float(supply.value)
        days = (
            duration_days(amount, unit_key(supply.code, supply.unit))
            if amount is not None
            else None
        )
        if days:
            repeats = dispense.numberOfRepeatsAllowed or 0
            end = start + timedelta(days=days * (1 + max(repeats, 0)) - 1)
    if end is None:
        end = b.when(period_end(validity))
    return _course(b, start, end, request.status == "active")


def _course(
    b: FactsBuilder, start: date | None, end: date | None, active_status: bool
) -> tuple[date | None, date | None, int | None, bool]:
    """Days of a course counted inclusively; an active course without end runs to today."""
    if end is not None and start is not None and end < start:
        end = None
    active = active_status and (end is None or end >= b.today)
    if start is None:
        return None, end, None, active
    if end is not None:
        return start, end, (end - start).days + 1, active
    if active:
        return start, None, max((b.today - start).days + 1, 0), active
    return start, None, None, active
