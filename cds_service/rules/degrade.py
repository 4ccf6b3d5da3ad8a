"""Decisions on partial data: what a decision is worth when some FHIR data could not be fetched.

A pure function of the engine's decision and the resource families that were unavailable
(the CDS client left them out and the FHIR server failed to deliver them):

- urgent and indicated stand: they rest on positive findings in the data that is there;
- not-indicated rests on the *absence* of findings, so it becomes insufficient-data when any
  family is missing that could hold such a finding: every family except prior imaging
  (`CONFIRMS_ONLY`), which can only confirm a not-indicated (repeat imaging);
- insufficient-data stays so; the engine's own request to record something is dropped when the
  data it asks for lives in an unavailable family (`EXPLAINED_BY`: no episode among Conditions
  or GP episodes that could not be fetched is no reason to ask for one).

Whenever data was unavailable the trail gets a `data-unavailable` criterion, first: met (it
decides insufficient-data and heads the card) when the fault made the decision insufficient,
unknown otherwise. An insufficient-data decision lists every unavailable family in `missing`
("fhir:observations"), so the card says what could not be fetched next to what is to be
recorded.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import replace

from cds_service.rules.model import CriterionResult, Decision, Outcome, Status

CRITERION = "data-unavailable"
REASON = "fhir-data-unavailable"

# An upper-case letter of a prefetch key, which the family's code spells as "-" and lower case.
_WORD_START = re.compile(r"(?<=[a-z])(?=[A-Z])")

# Families that can only confirm a not-indicated decision: fhir/facts reads prior lumbar imaging
# from them, which the rules use for repeat imaging (not indicated) alone. Every other family,
# and any code not listed here, could hold a finding that overturns a not-indicated (age, red
# flags, episodes, examinations, scores, care, medication courses, surgical plans).
CONFIRMS_ONLY = frozenset({"fhir:imaging-studies", "fhir:diagnostic-reports"})

# The engine's missing-data codes (rules/decide.py) -> the families that data is read from.
# The episode and its onset come from Conditions, GP episodes (EpisodeOfCare) and consults.
_EPISODE_FAMILIES = frozenset({"fhir:conditions", "fhir:episodes-of-care", "fhir:encounters"})
EXPLAINED_BY: dict[str, frozenset[str]] = {
    "episode": _EPISODE_FAMILIES,
    "episode-onset": _EPISODE_FAMILIES,
    "neuro-exam": frozenset({"fhir:observations"}),
    "outcome-scores": frozenset({"fhir:observations"}),
}


def family_code(key: str) -> str:
    """The missing-data code of a prefetch key ("medicationStatements" ->
    "fhir:medication-statements").

    The families themselves are the prefetch keys (hooks/discovery.py PREFETCH), listed once.
    """
    return "fhir:" + _WORD_START.sub("-", key).lower()


def family_codes(keys: Iterable[str]) -> frozenset[str]:
    """The missing-data codes of prefetch keys ("observations" -> "fhir:observations")."""
    return frozenset(family_code(key) for key in keys)


def degrade(decision: Decision, unavailable: Collection[str]) -> Decision:
    """The decision as far as it holds without the `unavailable` families (codes "fhir:...")."""
    if not unavailable:
        return decision
    codes = tuple(sorted(unavailable))
    # What the engine asks to record that the unavailable data may well hold is not asked.
    own = tuple(
        code
        for code in decision.missing
        if not EXPLAINED_BY.get(code, frozenset()) & frozenset(unavailable)
    )
    if decision.outcome is Outcome.NOT_INDICATED:
        decides = any(code not in CONFIRMS_ONLY for code in codes)
    elif decision.outcome is Outcome.INSUFFICIENT_DATA:
        decides = not own
    else:
        decides = False  # urgent and indicated rest on findings that are there
    insufficient = decides or decision.outcome is Outcome.INSUFFICIENT_DATA
    criterion = CriterionResult(
        CRITERION,
        Status.MET if decides else Status.UNKNOWN,
        REASON,
        Outcome.INSUFFICIENT_DATA,
    )
    return replace(
        decision,
        outcome=Outcome.INSUFFICIENT_DATA if insufficient else decision.outcome,
        criteria=(criterion, *decision.criteria),
        missing=tuple(dict.fromkeys((*own, *codes))) if insufficient else decision.missing,
    )


__all__ = [
    "CONFIRMS_ONLY",
    "CRITERION",
    "EXPLAINED_BY",
    "REASON",
    "degrade",
    "family_code",
    "family_codes",
]
