"""Patient: the age at the hook call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cds_service.fhir.dates import age_in_years, is_partial
from cds_service.fhir.facts.registry import reads

if TYPE_CHECKING:
    from cds_service.fhir.facts.builder import FactsBuilder


@reads("Patient")
def read_patient(b: FactsBuilder, patient: Any, reference: str) -> None:
    """Age in whole years at the hook call; the first Patient wins."""
    if b.patient_seen:
        return
    b.patient_seen = True
    birth = b.when(patient.birthDate)
    if birth is None:
        b.note(f"{reference}: no birthDate")
        return
    if is_partial(patient.birthDate):
        # "1970" or "1970-03" counts from its first day: the age may be one year high,
        # which errs towards the age-based red flags rather than away from them.
        b.note(f"{reference}: birthDate partial")
    age = age_in_years(birth, b.today)
    if age < 0:
        b.note(f"{reference}: birthDate in the future")
        return
    b.age = age
