"""FHIR R4 resources reduced to one frozen PatientFacts: the only patient input of the rules.

`extract_facts` validates every resource with the fhir.resources R4B models (a resource that is
not valid FHIR is skipped with a data note, never guessed at), recognises concepts by code first
and by text second through `Knowledge`, and reads dates, values and statuses from the model.
It never raises on input data: anything unreadable becomes a short data note such as
"Observation/7: unit not convertible" — codes and references only, never free text.

Rules of reading, per resource type (the tests in tests/unit/fhir/test_facts.py pin them):

- Skipped everywhere: status entered-in-error; Conditions verified refuted; Observations
  cancelled; Procedures not-done; MedicationStatements not-taken; MedicationRequests cancelled
  or draft (never dispensed); ServiceRequests revoked; any resource named in `exclude` (the
  draft orders being judged) or based on one.
- Condition: a finding per recognised concept; clinicalStatus inactive/resolved/remission makes
  it history (`current=False`). `when` = onset (dateTime or period start), else recordedDate.
- Observation: measurements (temperature in °C, weight in kg, MRC grade, examination results,
  pain and Oswestry scores) and a finding per other recognised concept. A value of no / absent /
  negative (valueBoolean false included) turns the code's concepts into `absent`.
- Procedure: spinal procedures (performed, or planned when in preparation / on hold), active
  and passive care sessions, prior lumbar imaging, surgical referrals.
- ServiceRequest: planned spinal procedures (active / draft / on-hold) and surgical referrals
  (active / on-hold / completed) — never prior imaging.
- ImagingStudy, DiagnosticReport: prior lumbar imaging.
- MedicationStatement, MedicationRequest: courses of recognised medication concepts
  (see `_statement_course` and `_request_course`).
- Every resource: "surgical-indication" from any of its texts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

# Importing the reader modules registers them (registry.READERS).
from cds_service.fhir.facts import (  # noqa: F401
    conditions,
    episodes,
    imaging,
    medications,
    observations,
    patient,
    procedures,
)
from cds_service.fhir.facts.builder import FactsBuilder
from cds_service.fhir.facts.common import normalise_references
from cds_service.rules.model import EPISODE_CONCEPTS, PatientFacts

if TYPE_CHECKING:
    from cds_service.rules.knowledge import Knowledge

logger = logging.getLogger(__name__)


def extract_facts(
    resources: Iterable[Mapping[str, Any]],
    *,
    knowledge: Knowledge,
    now: datetime,
    exclude: Collection[str] = (),
    screen: bool = True,
) -> PatientFacts:
    """Reduce FHIR R4 resource dicts to one PatientFacts; never raises on the resources' shape.

    With `screen` (the default) resources that cannot contribute a finding are skipped before
    validation (fhir/facts/relevance.py); `screen=False` validates and reads every resource,
    the reference the differential test compares against.
    """
    builder = FactsBuilder(knowledge, now, normalise_references(exclude), screen=screen)
    try:
        items = iter(resources)
    except TypeError:
        builder.note("input: not a list of resources")
        return builder.build()
    for index, item in enumerate(items):
        try:
            builder.add(index, item)
        except Exception:
            # Last line of defence (a Mapping whose .get raises, say): one odd item must not
            # cost the clinician the whole answer.
            logger.exception("facts: input[%d] could not be read", index)
            builder.note(f"input[{index}]: not readable")
    return builder.build()


__all__ = ["EPISODE_CONCEPTS", "extract_facts"]
