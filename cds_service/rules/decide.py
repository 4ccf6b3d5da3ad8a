"""The pure decision engine: PatientFacts x LumbarOrder x Policy -> Decision (POLICY.md)."""

from __future__ import annotations

from cds_service.rules import criteria
from cds_service.rules.knowledge import Policy
from cds_service.rules.model import (
    CriterionResult,
    Decision,
    LumbarOrder,
    Outcome,
    PatientFacts,
    Status,
)

# The data the card asks for when a criterion decides "insufficient-data".
MISSING_CODES = {
    "neuro-exam-missing": "neuro-exam",
    "outcome-scores-missing": "outcome-scores",
    "no-episode-data": "episode",
}
MISSING_EPISODE_ONSET = "episode-onset"
# A suspicion without its supporting findings asks for those findings.
MISSING_FOR_SUSPICION = {
    "infection-suspected": "infection-findings",
    "malignancy-suspected": "malignancy-findings",
    "fracture-suspected": "fracture-findings",
}


def decide(facts: PatientFacts, order: LumbarOrder, policy: Policy) -> Decision:
    """Decide one lumbar imaging order, recording every criterion checked and its evidence."""
    if facts.age is not None and facts.age < policy.population_min_age:
        # POLICY "Adults only": the guidelines behind the rules are adult guidelines; an unknown
        # age is judged as an adult
        result = CriterionResult(
            "population", Status.MET, "under-adult-age", Outcome.OUT_OF_POPULATION
        )
        return Decision(
            order=order,
            outcome=Outcome.OUT_OF_POPULATION,
            criteria=(result,),
            policy_version=policy.version,
        )
    ctx = criteria.build_context(facts, order, policy)
    results: list[CriterionResult] = []
    results += criteria.trauma(ctx)
    results.append(criteria.neuro_deficit(ctx))
    results += criteria.red_flag(ctx)
    results += criteria.suspicions(ctx, results)
    results.append(criteria.surgical_planning(ctx))
    results += criteria.failed_conservative_care(ctx)
    repeat = criteria.repeat_imaging(ctx, results)
    results.append(repeat)
    results.append(criteria.neuro_exam_missing(ctx))
    onset_decisive = any(
        r.status is Status.UNKNOWN and r.reason in criteria.ONSET_UNKNOWN_REASONS for r in results
    )
    results += criteria.no_episode_data(ctx, onset_decisive)

    outcome = _outcome(results, repeat)
    decisive = [r for r in results if r.status is Status.MET and r.outcome is outcome]
    advice_results, advice = criteria.modality_advice(ctx, outcome, decisive)
    results += advice_results
    return Decision(
        order=order,
        outcome=outcome,
        criteria=tuple(results),
        advice=tuple(advice),
        missing=_missing(decisive) if outcome is Outcome.INSUFFICIENT_DATA else (),
        policy_version=policy.version,
    )


def _outcome(results: list[CriterionResult], repeat: CriterionResult) -> Outcome:
    """POLICY "Order of evaluation": urgent, repeat imaging, indicated, insufficient, else not."""
    met = {r.outcome for r in results if r.status is Status.MET}
    if Outcome.URGENT in met:
        return Outcome.URGENT
    if repeat.status is Status.MET:
        return Outcome.NOT_INDICATED
    if Outcome.INDICATED in met:
        return Outcome.INDICATED
    if Outcome.INSUFFICIENT_DATA in met:
        return Outcome.INSUFFICIENT_DATA
    return Outcome.NOT_INDICATED


def _missing(decisive: list[CriterionResult]) -> tuple[str, ...]:
    """Missing-data codes of the criteria that made the decision insufficient-data."""
    codes: dict[str, None] = {}
    for r in decisive:
        if r.reason == "episode-onset-unknown":
            codes[MISSING_EPISODE_ONSET] = None
        elif r.reason in MISSING_FOR_SUSPICION:
            codes[MISSING_FOR_SUSPICION[r.reason]] = None
        elif r.id in MISSING_CODES:
            codes[MISSING_CODES[r.id]] = None
    return tuple(codes)


__all__ = ["decide"]
