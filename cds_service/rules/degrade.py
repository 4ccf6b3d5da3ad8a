"""Decisions on partial data: what a decision is worth when some FHIR data could not be fetched.

A pure function of the engine's decision and the resource families that were unavailable
(the CDS client left them out and the FHIR server failed to deliver them):

- urgent and indicated stand: they rest on positive findings in the data that is there;
- not-indicated rests on the *absence* of findings, so it becomes insufficient-data when any
  family is missing that could hold such a finding: every family except prior imaging
  (`CONFIRMS_ONLY`), which can only confirm a not-indicated (repeat imaging);
- insufficient-data stays so.

Whenever data was unavailable the trail gets a `data-unavailable` criterion: met (deciding
insufficient-data) when the decision was degraded, unknown otherwise. An insufficient-data
decision lists every unavailable family in `missing` ("fhir:observations"), so the card says
what could not be fetched next to what is to be recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from cds_service.rules.model import CriterionResult, Decision, Outcome, Status

CRITERION = "data-unavailable"
REASON = "fhir-data-unavailable"

# Prefetch key (cds_service/hooks/discovery.py) -> missing-data code of its resource family.
FAMILY_CODES: dict[str, str] = {
    "patient": "fhir:patient",
    "conditions": "fhir:conditions",
    "observations": "fhir:observations",
    "procedures": "fhir:procedures",
    "medicationStatements": "fhir:medication-statements",
    "medicationRequests": "fhir:medication-requests",
    "serviceRequests": "fhir:service-requests",
    "imagingStudies": "fhir:imaging-studies",
    "diagnosticReports": "fhir:diagnostic-reports",
}

# Families that can only confirm a not-indicated decision: facts.py reads prior lumbar imaging
# from them, which the rules use for repeat imaging (not indicated) alone. Every other family,
# and any code not listed here, could hold a finding that overturns a not-indicated (age, red
# flags, episodes, examinations, scores, care, medication courses, surgical plans).
CONFIRMS_ONLY = frozenset({"fhir:imaging-studies", "fhir:diagnostic-reports"})


def family_codes(keys: Iterable[str]) -> frozenset[str]:
    """The missing-data codes of prefetch keys ("observations" -> "fhir:observations")."""
    return frozenset(FAMILY_CODES.get(key, f"fhir:{key}") for key in keys)


def degrade(decision: Decision, unavailable: Collection[str]) -> Decision:
    """The decision as far as it holds without the `unavailable` families (codes "fhir:...")."""
    if not unavailable:
        return decision
    codes = tuple(sorted(unavailable))
    overturning = any(code not in CONFIRMS_ONLY for code in codes)
    degraded = decision.outcome is Outcome.NOT_INDICATED and overturning
    outcome = Outcome.INSUFFICIENT_DATA if degraded else decision.outcome
    criterion = CriterionResult(
        CRITERION,
        Status.MET if degraded else Status.UNKNOWN,
        REASON,
        Outcome.INSUFFICIENT_DATA,
    )
    missing = decision.missing
    if outcome is Outcome.INSUFFICIENT_DATA:
        missing = tuple(dict.fromkeys((*decision.missing, *codes)))
    return replace(
        decision, outcome=outcome, criteria=(*decision.criteria, criterion), missing=missing
    )


__all__ = ["CONFIRMS_ONLY", "CRITERION", "FAMILY_CODES", "REASON", "degrade", "family_codes"]
