"""Condition: findings, the back-pain episode and the record's history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cds_service.fhir import exam
from cds_service.fhir.facts.common import (
    codes_of,
    note_texts,
    period_start,
    texts_of,
)
from cds_service.fhir.facts.registry import reads
from cds_service.rules.model import (
    EPISODE_CONCEPTS,
    Finding,
    Strength,
)

if TYPE_CHECKING:
    from cds_service.fhir.facts.builder import FactsBuilder


_CONDITION_IGNORED = frozenset({"entered-in-error", "refuted"})
_CONDITION_HISTORY = frozenset({"inactive", "resolved", "remission"})


@reads("Condition")
def read_condition(b: FactsBuilder, condition: Any, reference: str) -> None:
    """Findings, the back-pain episode and the record's history from one Condition."""
    if codes_of(condition.verificationStatus) & _CONDITION_IGNORED:
        return
    current = not (codes_of(condition.clinicalStatus) & _CONDITION_HISTORY)
    onset = b.when(condition.onsetDateTime) or b.when(period_start(condition.onsetPeriod))
    when = onset or b.when(condition.recordedDate)
    # The code says what the Condition is; notes may mention other things ("also
    # diabetic"), so only the code decides whether this is a back-pain episode, and the
    # structured severity and body site qualify only what the code names.
    code = b.recognise([condition.code])
    notes = b.recognise([], note_texts(condition))
    severity = _severity(b, condition.severity)
    qualifiers = b.structural_qualifiers(condition.bodySite or ())
    if severity == "severe":
        qualifiers.add("severe")

    episode = False
    for source, structured in ((code, True), (notes, False)):
        for concept, hit in source.hits.items():
            if b.kind(concept) in ("order", "measurement", None):
                continue
            finding = Finding(
                concept,
                reference,
                when,
                hit.strength,
                severity=severity if structured else None,
                qualifiers=frozenset(hit.qualifiers | qualifiers if structured else hit.qualifiers),
                current=current,
            )
            b.put(finding)
            if structured and concept in EPISODE_CONCEPTS:
                episode = True
                if not current:
                    b.prior_episodes.append(finding)
        if not current:
            continue
        for concept, negated_qualifiers in source.negated.items():
            b.put(
                Finding(
                    concept,
                    reference,
                    when,
                    Strength.TEXT,
                    qualifiers=frozenset(negated_qualifiers),
                ),
                absent=True,
            )

    if current:
        b.keep_text_context(code, reference, when)
        b.keep_text_context(notes, reference, when)
    if episode:
        b.episode_conditions[reference] = current
    if episode and current:
        b.episode_references.append(reference)
        if when is not None:
            b.episode_dates.append(when)
    elif not episode and when is not None:
        b.other_condition_dates.append(when)


def _severity(b: FactsBuilder, severity: Any) -> str | None:
    """Condition.severity as "severe" / "moderate" / "mild" by SNOMED code or by word."""
    if severity is None:
        return None
    for coding in severity.coding or ():
        if coding.code in exam.SEVERITY_CODES:
            return exam.SEVERITY_CODES[coding.code]
    for text in texts_of(severity):
        found = exam.severity_from_text(text)
        if found:
            return found
    return None
