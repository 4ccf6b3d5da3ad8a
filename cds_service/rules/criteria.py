"""One function per POLICY.md criterion: each turns PatientFacts into CriterionResults."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from cds_service.rules.knowledge import Policy
from cds_service.rules.model import (
    EPISODE_CONCEPTS,
    CriterionResult,
    Finding,
    LumbarOrder,
    Modality,
    ModalityAdvice,
    Outcome,
    PatientFacts,
    Status,
    Strength,
)

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN
URGENT, INDICATED = Outcome.URGENT, Outcome.INDICATED
NOT_INDICATED, INSUFFICIENT = Outcome.NOT_INDICATED, Outcome.INSUFFICIENT_DATA

# Objective deficits (POLICY indication 2); only the motor ones can be "severe weakness" or
# "progressive weakness" — the policy words both for weakness, not for sensation or reflexes.
DEFICIT_CONCEPTS = ("muscle-weakness", "foot-drop", "sensory-loss", "reflex-loss")
MOTOR_CONCEPTS = frozenset({"muscle-weakness", "foot-drop"})
# Any of these, positive or documented normal, proves a neurological examination took place.
EXAM_CONCEPTS = (
    "muscle-strength",
    "reflex-test",
    "sensation-test",
    "neuro-exam",
    *DEFICIT_CONCEPTS,
)
RADICULAR_CONCEPTS = ("sciatica", "radicular-symptoms")
CAUDA_EQUINA_ANY_TIME = ("cauda-equina", "saddle-anaesthesia", "loss-of-anal-tone")
CAUDA_EQUINA_IF_NEW = ("urinary-retention", "urinary-incontinence", "faecal-incontinence")
INFECTION_RISK_STATES = ("iv-drug-use", "immunosuppression", "diabetes")
TRAUMA_CONCEPTS = ("trauma-major", "trauma-minor", "lumbar-injury")
SIDES = frozenset({"left", "right"})

# Reasons of criteria that could not be judged only because the episode onset is unknown.
ONSET_UNKNOWN_REASONS = frozenset(
    {"episode-onset-unknown", "malignancy-onset-unknown", "osteoporosis-onset-unknown"}
)
# Decisive reasons for which an X-ray cannot answer the question: MRI is the modality.
MRI_REASONS = frozenset(
    {
        "cauda-equina",
        "cauda-equina-suspected",
        "spinal-infection",
        "infection-fever-risk-factor",
        "infection-post-procedure-pain",
        "fever-no-risk-factor",
        "malignancy-new-pain",
        "malignancy-active-new-pain",
        "malignancy-deficit",
        "deficit-severe",
        "deficit-progressive",
        "deficit-bilateral",
        "deficit",
    }
)
# Policy thresholds are compared as ">=", and percentages are computed in floating point:
# 4/80 must count as exactly 5 %, so comparisons allow for rounding noise.
_EPS = 1e-9


def _at_least(value: float, threshold: float) -> bool:
    """True when value >= threshold, tolerant of floating-point rounding."""
    return value >= threshold - _EPS


def _refs(findings: Iterable[Finding]) -> tuple[str, ...]:
    """References of the findings, in order, without duplicates."""
    return tuple(dict.fromkeys(f.reference for f in findings))


def _merge(*groups: Iterable[str]) -> tuple[str, ...]:
    """Concatenate reference groups, in order, without duplicates."""
    seen: dict[str, None] = {}
    for group in groups:
        for ref in group:
            seen[ref] = None
    return tuple(seen)


def _index(findings: Sequence[Finding]) -> dict[str, list[Finding]]:
    """Findings grouped by concept, in input order: one pass, so criteria do dict lookups."""
    index: dict[str, list[Finding]] = {}
    for finding in findings:
        bucket = index.get(finding.concept)
        if bucket is None:
            index[finding.concept] = [finding]
        else:
            bucket.append(finding)
    return index


@dataclass(frozen=True, slots=True)
class Deficit:
    """The objective neurological deficit found, and the features that make it urgent."""

    references: tuple[str, ...]
    severe: bool
    progressive: bool
    bilateral: bool


@dataclass(slots=True)
class Context:
    """Facts, order and policy for one evaluation, with findings indexed by concept once."""

    facts: PatientFacts
    order: LumbarOrder
    policy: Policy
    today: date
    found: dict[str, list[Finding]]
    absent: dict[str, list[Finding]]
    has_episode: bool
    deficit: Deficit | None = None
    suspected: dict[str, list[Finding]] | None = None

    def get(self, concept: str) -> Sequence[Finding]:
        """Positive findings of one concept (empty when there are none)."""
        return self.found.get(concept, _NONE)

    def within(self, when: date | None, days: int) -> bool:
        """True when `when` lies at most `days` days before today.

        Dates after today (clock skew, data entry) count as recent: dropping an alarm sign for
        being dated tomorrow would be the worse error.
        """
        return when is not None and (self.today - when).days <= days

    def current(self, *concepts: str) -> list[Finding]:
        """Positive findings of the concepts that are present now (not resolved)."""
        found = self.found
        return [f for c in concepts for f in found.get(c, _NONE) if f.current]

    def recent(self, days: int, *concepts: str) -> list[Finding]:
        """Positive findings of the concepts dated within the last `days` days.

        Events (trauma, fever, a procedure, an infection) count by date even when the Condition
        has since been resolved: the event still happened.
        """
        found, today = self.found, self.today
        return [
            f
            for c in concepts
            for f in found.get(c, _NONE)
            if f.when is not None and (today - f.when).days <= days
        ]

    @property
    def new_pain(self) -> bool | None:
        """Whether the back-pain episode is new; None when its onset is unknown."""
        onset = self.facts.episode_onset
        if onset is None:
            return None
        return self.within(onset, self.policy.red_flags_new_days)


_NONE: tuple[Finding, ...] = ()


def build_context(facts: PatientFacts, order: LumbarOrder, policy: Policy) -> Context:
    """Index the facts for one evaluation and assess the neurological deficit once."""
    reason = order.reason
    suspected = list(facts.suspected)
    if reason is not None:
        # what the order states as its reason is the clinician's suspicion, dated today
        suspected += [
            Finding(concept, order.reason_reference, facts.today, Strength.TEXT)
            for concept in sorted(reason.suspected)
        ]
    recorded = facts.episode_onset is not None or bool(facts.episode_references)
    context = Context(
        facts=facts,
        order=order,
        policy=policy,
        today=facts.today,
        found=_index(facts.findings),
        absent=_index(facts.absent),
        has_episode=recorded or bool(reason is not None and reason.episode),
        suspected=_index(suspected),
    )
    context.deficit = assess_deficit(context)
    return context


# --- neurological deficit ---------------------------------------------------------------------


def _counts_as_deficit_finding(ctx: Context, finding: Finding) -> bool:
    """Current Conditions count whatever their date; other sources only within the lookback."""
    if not finding.current:
        return False
    if finding.reference.startswith("Condition/"):
        return True
    return ctx.within(finding.when, ctx.policy.neuro_finding_lookback_days)


def _strength_by_side(ctx: Context) -> dict[str, list[Finding]]:
    """MRC grades within the lookback, positive or normal, grouped by side ("" when unsided)."""
    lookback = ctx.policy.neuro_finding_lookback_days
    groups: dict[str, list[Finding]] = {}
    for source in (ctx.found, ctx.absent):
        for f in source.get("muscle-strength", _NONE):
            if f.value is None or not ctx.within(f.when, lookback):
                continue
            q = f.qualifiers
            side = "bilateral" if "bilateral" in q else "left" if "left" in q else ""
            if not side and "right" in q:
                side = "right"
            groups.setdefault(side, []).append(f)
    return groups


def assess_deficit(ctx: Context) -> Deficit | None:
    """Find an objective deficit and whether it is severe, progressive or bilateral."""
    p = ctx.policy
    refs: list[str] = []
    severe = progressive = bilateral = False
    sides: set[str] = set()

    def note(f: Finding, motor: bool) -> None:
        nonlocal severe, progressive, bilateral
        refs.append(f.reference)
        q = f.qualifiers
        if motor and (f.severity == "severe" or "severe" in q):
            severe = True
        if motor and "progressive" in q:
            progressive = True
        if "bilateral" in q:
            bilateral = True
        sides.update(q & SIDES)

    # Reflex and sensation tests count through the reflex-loss / sensory-loss findings facts
    # extraction derives from them (same Observation reference, so the lookback applies): a bare
    # "abnormal" test may be a brisk reflex, which is no loss. An abnormal narrative neuro-exam
    # likewise proves an examination, not which deficit.
    for concept in DEFICIT_CONCEPTS:
        for f in ctx.get(concept):
            if _counts_as_deficit_finding(ctx, f):
                note(f, concept in MOTOR_CONCEPTS)

    for side, grades in _strength_by_side(ctx).items():
        # The latest examination day is the current state (the worst grade if several muscles
        # were graded that day); earlier days show whether the grade has fallen.
        latest_day = max(g.when for g in grades if g.when is not None)
        latest = min((g for g in grades if g.when == latest_day), key=lambda g: g.value or 0.0)
        value = latest.value or 0.0
        if value > p.neuro_mrc_deficit_max:
            continue  # recovered, or never weak on this side
        note(latest, motor=True)
        if value <= p.neuro_mrc_severe_max:
            severe = True
        earlier = [g for g in grades if g.when is not None and g.when < latest_day]
        if earlier:
            peak = max(earlier, key=lambda g: g.value or 0.0)
            if (peak.value or 0.0) > value:
                progressive = True
                refs.append(peak.reference)
        if side == "bilateral":
            bilateral = True
        elif side:
            sides.add(side)

    if not refs:
        return None
    return Deficit(
        references=tuple(dict.fromkeys(refs)),
        severe=severe,
        progressive=progressive,
        bilateral=bilateral or sides >= SIDES,
    )


def _recent_exams(ctx: Context) -> list[Finding]:
    """Examination findings, positive or normal, within the neuro-exam window."""
    days = ctx.policy.neuro_exam_window_days
    return [
        f
        for source in (ctx.found, ctx.absent)
        for concept in EXAM_CONCEPTS
        for f in source.get(concept, _NONE)
        if ctx.within(f.when, days)
    ]


def neuro_deficit(ctx: Context) -> CriterionResult:
    """Indication 2: an objective deficit; urgent when severe, progressive or bilateral."""
    d = ctx.deficit
    if d is None:
        exams = _recent_exams(ctx)
        exam_concepts = ("neuro-exam", "reflex-test", "sensation-test")
        if any("abnormal" in f.qualifiers for c in exam_concepts for f in ctx.get(c)):
            reason = "exam-abnormal-unspecified"
        elif exams:
            reason = "no-deficit-on-exam"
        else:
            reason = "no-deficit"
        return CriterionResult("neuro-deficit", NOT_MET, reason, INDICATED, _refs(exams))
    if d.severe:
        return CriterionResult("neuro-deficit", MET, "deficit-severe", URGENT, d.references)
    if d.progressive:
        return CriterionResult("neuro-deficit", MET, "deficit-progressive", URGENT, d.references)
    if d.bilateral:
        return CriterionResult("neuro-deficit", MET, "deficit-bilateral", URGENT, d.references)
    return CriterionResult("neuro-deficit", MET, "deficit", INDICATED, d.references)


def neuro_exam_missing(ctx: Context) -> CriterionResult:
    """Radicular symptoms without any neurological examination in the exam window."""
    radicular = ctx.current(*RADICULAR_CONCEPTS)
    if not radicular:
        return CriterionResult("neuro-exam-missing", NOT_MET, "no-radicular-symptoms", INSUFFICIENT)
    exams = _recent_exams(ctx)
    if exams:
        return CriterionResult(
            "neuro-exam-missing", NOT_MET, "exam-recorded", INSUFFICIENT, _refs(exams)
        )
    return CriterionResult(
        "neuro-exam-missing", MET, "neuro-exam-missing", INSUFFICIENT, _refs(radicular)
    )


# --- red flags ----------------------------------------------------------------------------------


def cauda_equina(ctx: Context) -> CriterionResult | None:
    """Cauda equina pattern: coded syndrome, saddle anaesthesia, anal tone, new bladder/bowel."""
    new_days = ctx.policy.red_flags_new_days
    standing = ctx.current(*CAUDA_EQUINA_ANY_TIME)
    sphincter = ctx.current(*CAUDA_EQUINA_IF_NEW)
    new = [f for f in sphincter if ctx.within(f.when, new_days)]
    if standing or new:
        return CriterionResult("red-flag", MET, "cauda-equina", URGENT, _refs(standing + new))
    suspected = recent_suspicions(ctx, "cauda-equina")
    if suspected:
        # POLICY "Suspected": the clinician's suspicion of a cauda equina is itself the alarm
        return CriterionResult("red-flag", MET, "cauda-equina-suspected", URGENT, _refs(suspected))
    if sphincter:
        # Long-standing incontinence is common and not an alarm sign; say it was looked at.
        return CriterionResult(
            "red-flag", NOT_MET, "sphincter-symptoms-not-new", URGENT, _refs(sphincter)
        )
    return None


def spinal_infection(ctx: Context) -> CriterionResult | None:
    """A coded spinal infection (spondylodiscitis, epidural abscess) that is current."""
    found = ctx.current("spinal-infection")
    if not found:
        return None
    return CriterionResult("red-flag", MET, "spinal-infection", URGENT, _refs(found))


def _performed_procedures(ctx: Context) -> list[Finding]:
    """Spinal procedures performed (not planned) within the procedure window."""
    days = ctx.policy.red_flags_spinal_procedure_window_days
    return [
        f
        for f in ctx.get("spinal-procedure")
        if "planned" not in f.qualifiers and ctx.within(f.when, days)
    ]


def _severe_pain_after(ctx: Context, day: date) -> list[str]:
    """References of severe pain recorded strictly after `day`.

    Same-day pain is left out: it may be the pain the procedure was done for.
    """
    threshold = ctx.policy.red_flags_severe_pain_nrs
    refs = [
        s.reference
        for s in ctx.facts.scores
        if s.kind == "pain-nrs" and s.when > day and _at_least(s.value, threshold)
    ]
    for f in ctx.get("pain-score"):
        if f.when is not None and f.when > day and f.value is not None:
            if _at_least(f.value, threshold):
                refs.append(f.reference)
    for f in ctx.get("severe-pain"):
        if f.when is not None and f.when > day:
            refs.append(f.reference)
    for concept in EPISODE_CONCEPTS:
        for f in ctx.get(concept):
            if f.when is not None and f.when > day:
                if f.severity == "severe" or "severe" in f.qualifiers:
                    refs.append(f.reference)
    return refs


def infection(ctx: Context) -> CriterionResult | None:
    """Suspected spinal infection: fever with a risk factor, or severe pain after a procedure."""
    p = ctx.policy
    fever_days = p.red_flags_fever_window_days
    fever = [
        f
        for f in ctx.recent(fever_days, "body-temperature")
        if f.value is not None and _at_least(f.value, p.red_flags_fever_celsius)
    ]
    fever += ctx.recent(fever_days, "fever")
    procedures = _performed_procedures(ctx)
    risks = ctx.current(*INFECTION_RISK_STATES)
    risks += procedures
    risks += ctx.recent(p.red_flags_recent_infection_days, "recent-infection")
    drugs = immunosuppressive_drugs(ctx)

    if fever and (risks or drugs):
        evidence = _merge(_refs(fever + risks), drugs)
        return CriterionResult("red-flag", MET, "infection-fever-risk-factor", URGENT, evidence)
    # Seed 003: fever is often absent in post-procedural infection; severe new pain suffices.
    for procedure in procedures:
        done = procedure.when
        if done is not None and (pain := _severe_pain_after(ctx, done)):
            evidence = _merge((procedure.reference,), pain)
            return CriterionResult(
                "red-flag", MET, "infection-post-procedure-pain", URGENT, evidence
            )
    if fever:
        return CriterionResult("red-flag", MET, "fever-no-risk-factor", INDICATED, _refs(fever))
    if procedures:
        return CriterionResult(
            "red-flag", NOT_MET, "post-procedure-no-severe-pain", URGENT, _refs(procedures)
        )
    return None


def malignancy(ctx: Context) -> CriterionResult | None:
    """Known malignancy, active or history: urgent with a deficit, indicated with new pain."""
    # History counts here, so resolved Conditions are included on purpose.
    cancer = ctx.get("malignancy")
    if not cancer:
        return None
    refs = _refs(cancer)
    if ctx.deficit is not None:
        evidence = _merge(refs, ctx.deficit.references)
        return CriterionResult("red-flag", MET, "malignancy-deficit", URGENT, evidence)
    new = ctx.new_pain
    episode = ctx.facts.episode_references
    if new is None:
        return CriterionResult("red-flag", UNKNOWN, "malignancy-onset-unknown", INDICATED, refs)
    if new:
        evidence = _merge(refs, episode)
        # an active cancer is no "history of": the trail says which it is (issue 10)
        reason = (
            "malignancy-active-new-pain"
            if any(f.current for f in cancer)
            else "malignancy-new-pain"
        )
        return CriterionResult("red-flag", MET, reason, INDICATED, evidence)
    return CriterionResult(
        "red-flag", NOT_MET, "malignancy-no-new-pain", INDICATED, _merge(refs, episode)
    )


def weight_loss(ctx: Context) -> CriterionResult | None:
    """Unintentional weight loss: coded, or the policy share lost between weight Observations."""
    p = ctx.policy
    coded = ctx.current("weight-loss")
    if coded:
        return CriterionResult("red-flag", MET, "weight-loss", INDICATED, _refs(coded))
    weights = [
        (f.when, f.value, f.reference)
        for f in ctx.recent(p.red_flags_weight_loss_window_days, "body-weight")
        if f.when is not None and f.value  # a zero weight is a data error, not a measurement
    ]
    if len(weights) < 2:
        return None
    last_day, now, last_ref = max(weights)
    earlier = [(value, ref) for day, value, ref in weights if day < last_day]
    if not earlier:
        return None
    top, top_ref = max(earlier)
    evidence = (top_ref, last_ref)
    if _at_least((top - now) * 100 / top, p.red_flags_weight_loss_percent):
        return CriterionResult("red-flag", MET, "weight-loss", INDICATED, evidence)
    return CriterionResult("red-flag", NOT_MET, "weight-loss-below-threshold", INDICATED, evidence)


def _present(ctx: Context, concept: str) -> CriterionResult | None:
    """A red flag that is met by a current finding of its own concept (reason = concept)."""
    found = ctx.current(concept)
    if not found:
        return None
    return CriterionResult("red-flag", MET, concept, INDICATED, _refs(found))


def immunosuppressive_drugs(ctx: Context) -> list[str]:
    """References of immunosuppressive or antineoplastic courses (ATC L01/L04) taken lately.

    POLICY "Red flags": such medication in the last 3 months is immunosuppression. A course
    without an end that is no longer active is dated by its start.
    """
    days = ctx.policy.red_flags_immunosuppressive_drug_days
    refs = []
    for m in ctx.facts.medications:
        if m.concept != "immunosuppressive-drug":
            continue
        stopped = m.end if m.end is not None else m.start
        if m.active or (stopped is not None and ctx.within(stopped, days)):
            refs.append(m.reference)
    return refs


def immunosuppression(ctx: Context) -> CriterionResult | None:
    """Immunosuppression (incl. HIV, transplant, ATC L01/L04 medication lately), current."""
    refs = _merge(_refs(ctx.current("immunosuppression")), immunosuppressive_drugs(ctx))
    if not refs:
        return None
    return CriterionResult("red-flag", MET, "immunosuppression", INDICATED, refs)


def iv_drug_use(ctx: Context) -> CriterionResult | None:
    """Intravenous drug use, current."""
    return _present(ctx, "iv-drug-use")


def night_pain(ctx: Context) -> CriterionResult | None:
    """Pain mainly at night or at rest (negated mentions arrive in `absent` and do not count)."""
    return _present(ctx, "night-pain")


def long_term_corticosteroids(ctx: Context) -> tuple[list[str], list[str]]:
    """References of long-term systemic steroid courses, and of short or old ones."""
    min_days = ctx.policy.red_flags_corticosteroid_min_days
    long_term: list[str] = []
    other: list[str] = []
    for m in ctx.facts.medications:
        if m.concept != "systemic-corticosteroid":
            continue
        days = m.duration_days
        if days is None and m.start is not None:
            # Extraction could not give a duration: derive it from the period we do have.
            days = ((m.end or ctx.today) - m.start).days if (m.end or m.active) else None
        # A course without an end date that is no longer active is dated by its start.
        stopped = m.end if m.end is not None else m.start
        recent = m.active or ctx.within(stopped, ctx.policy.red_flags_corticosteroid_recent_days)
        if days is not None and days >= min_days and recent:
            long_term.append(m.reference)
        else:
            other.append(m.reference)
    return long_term, other


def corticosteroids(ctx: Context) -> CriterionResult | None:
    """Long-term systemic corticosteroids: a course of at least the policy minimum duration."""
    long_term, other = long_term_corticosteroids(ctx)
    if long_term:
        return CriterionResult(
            "red-flag", MET, "corticosteroids-long-term", INDICATED, tuple(long_term)
        )
    if other:
        return CriterionResult(
            "red-flag", NOT_MET, "corticosteroids-short-or-past", INDICATED, tuple(other)
        )
    return None


def osteoporosis_new_pain(ctx: Context) -> CriterionResult | None:
    """Osteoporosis with new back pain (suspected osteoporotic fracture)."""
    found = ctx.current("osteoporosis")
    if not found:
        return None
    refs = _refs(found)
    new = ctx.new_pain
    if new is None:
        return CriterionResult("red-flag", UNKNOWN, "osteoporosis-onset-unknown", INDICATED, refs)
    evidence = _merge(refs, ctx.facts.episode_references)
    if new:
        return CriterionResult("red-flag", MET, "osteoporosis-new-pain", INDICATED, evidence)
    return CriterionResult("red-flag", NOT_MET, "osteoporosis-no-new-pain", INDICATED, evidence)


def first_episode_age(ctx: Context) -> CriterionResult | None:
    """First-ever back pain at or above the policy age: documented, or inferred from history."""
    p = ctx.policy
    facts = ctx.facts
    documented = ctx.current("first-episode")
    if documented:
        evidence = _refs(documented)
    elif (
        ctx.has_episode
        and not facts.prior_episodes
        and facts.earliest_other_condition is not None
        and (ctx.today - facts.earliest_other_condition).days >= p.red_flags_history_min_days
    ):
        # A record with years of other Conditions but no earlier back pain: a first episode.
        evidence = facts.episode_references
    else:
        return None
    if facts.age is None:
        return CriterionResult(
            "red-flag", UNKNOWN, "first-episode-age-unknown", INDICATED, evidence
        )
    if facts.age >= p.red_flags_first_episode_age:
        return CriterionResult("red-flag", MET, "first-episode-age", INDICATED, evidence)
    return CriterionResult("red-flag", NOT_MET, "first-episode-under-age", INDICATED, evidence)


def recent_suspicions(ctx: Context, concept: str) -> list[Finding]:
    """Suspicions of a concept written in the last "new" window (undated ones count)."""
    days = ctx.policy.red_flags_new_days
    return [
        f
        for f in (ctx.suspected or {}).get(concept, _NONE)
        if f.when is None or ctx.within(f.when, days)
    ]


# A suspicion with the reasons that support it; without them it asks for those findings.
# (concept, criterion, reason when unsupported, the criterion's reasons that support it)
SUSPICIONS: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    (
        "spinal-infection",
        "red-flag",
        "infection-suspected",
        frozenset(
            {
                "spinal-infection",
                "infection-fever-risk-factor",
                "infection-post-procedure-pain",
                "fever-no-risk-factor",
            }
        ),
    ),
    (
        "malignancy",
        "red-flag",
        "malignancy-suspected",
        frozenset(
            {
                "malignancy-deficit",
                "malignancy-new-pain",
                "malignancy-active-new-pain",
                "weight-loss",
            }
        ),
    ),
    ("lumbar-injury", "trauma", "fracture-suspected", frozenset()),
)


def suspicions(ctx: Context, results: Sequence[CriterionResult]) -> list[CriterionResult]:
    """POLICY "Suspected": a suspected infection, malignancy or fracture without the findings
    that support it cannot be judged (insufficient-data, the card asks for those findings)."""
    met = {(r.id, r.reason) for r in results if r.status is MET}
    out: list[CriterionResult] = []
    for concept, cid, reason, support in SUSPICIONS:
        suspected = recent_suspicions(ctx, concept)
        if not suspected:
            continue
        supported = any(c == cid and (not support or r in support) for c, r in met)
        status = NOT_MET if supported else MET
        out.append(CriterionResult(cid, status, reason, INSUFFICIENT, _refs(suspected)))
    return out


# Urgent patterns first, so the trail reads in the order of evaluation.
RED_FLAG_CHECKS = (
    cauda_equina,
    spinal_infection,
    infection,
    malignancy,
    weight_loss,
    immunosuppression,
    iv_drug_use,
    corticosteroids,
    osteoporosis_new_pain,
    night_pain,
    first_episode_age,
)


def red_flag(ctx: Context) -> list[CriterionResult]:
    """Indication 3: every red-flag pattern found (met, not met or unknown), else one not-met."""
    results = [r for check in RED_FLAG_CHECKS if (r := check(ctx)) is not None]
    return results or [CriterionResult("red-flag", NOT_MET, "no-red-flag", INDICATED)]


# --- trauma -------------------------------------------------------------------------------------


def trauma(ctx: Context) -> list[CriterionResult]:
    """Indication 1: major trauma or a coded injury; minor trauma only with a fracture risk."""
    p = ctx.policy
    days = p.trauma_window_days
    results: list[CriterionResult] = []
    major = ctx.recent(days, "trauma-major")
    if major:
        results.append(CriterionResult("trauma", MET, "trauma-major", INDICATED, _refs(major)))
    injury = ctx.recent(days, "lumbar-injury")
    if injury:
        results.append(CriterionResult("trauma", MET, "lumbar-injury", INDICATED, _refs(injury)))
    minor = ctx.recent(days, "trauma-minor")
    if minor:
        age = ctx.facts.age
        steroids, _ = long_term_corticosteroids(ctx)
        risks = _merge(_refs(ctx.current("osteoporosis")), steroids)
        old = age is not None and age >= p.trauma_fracture_risk_age
        if old or risks:
            evidence = _merge(_refs(minor), risks)
            reason = "trauma-minor-risk-factor"
            results.append(CriterionResult("trauma", MET, reason, INDICATED, evidence))
        elif age is None:
            reason = "trauma-minor-age-unknown"
            results.append(CriterionResult("trauma", UNKNOWN, reason, INDICATED, _refs(minor)))
        else:
            reason = "trauma-minor-no-risk-factor"
            results.append(CriterionResult("trauma", NOT_MET, reason, INDICATED, _refs(minor)))
    if results:
        return results
    older = [f for c in TRAUMA_CONCEPTS for f in ctx.get(c)]
    if older:
        return [
            CriterionResult("trauma", NOT_MET, "trauma-outside-window", INDICATED, _refs(older))
        ]
    return [CriterionResult("trauma", NOT_MET, "no-trauma", INDICATED)]


def trauma_question(ctx: Context) -> bool:
    """Whether the order can be about a fracture: trauma in the window or osteoporosis."""
    days = ctx.policy.trauma_window_days
    return bool(ctx.recent(days, *TRAUMA_CONCEPTS) or ctx.current("osteoporosis"))


# --- surgical planning --------------------------------------------------------------------------


def surgical_planning(ctx: Context) -> CriterionResult:
    """Indication 4: a spine-surgery referral, a planned procedure or a surgical indication."""
    own = ctx.order.reference  # the draft order itself must not count as its own reason
    referral = [f for f in ctx.current("surgical-referral") if f.reference != own]
    planned = [
        f
        for f in ctx.get("spinal-procedure")
        if "planned" in f.qualifiers and f.current and f.reference != own
    ]
    indication = ctx.current("surgical-indication")
    reason_of_order = ctx.order.reason
    if not (referral or planned or indication) and reason_of_order is not None:
        if reason_of_order.specialist_request:
            # POLICY: the order says a spine surgeon / neurosurgeon / pain specialist asked
            evidence: tuple[str, ...] = (ctx.order.reason_reference,)
            return CriterionResult(
                "surgical-planning", MET, "specialist-request", INDICATED, evidence
            )
    if not (referral or planned or indication):
        return CriterionResult("surgical-planning", NOT_MET, "no-surgical-plan", INDICATED)
    reason = (
        "surgical-referral"
        if referral
        else "planned-procedure"
        if planned
        else "surgical-indication"
    )
    evidence = _refs(referral + planned + indication)
    return CriterionResult("surgical-planning", MET, reason, INDICATED, evidence)


# --- failed conservative care -------------------------------------------------------------------


def judge_improvement(ctx: Context, care_start: date) -> tuple[bool | None, tuple[str, ...]]:
    """Whether outcome scores improved meaningfully since care began; None when not judgeable.

    Per kind, the baseline is the last score on or before the first active session (else the
    first score) and is compared with the latest score; a kind needs a score after its baseline.
    """
    p = ctx.policy
    improved: bool | None = None
    refs: list[str] = []
    for kind in ("pain-nrs", "oswestry"):
        series = sorted((s for s in ctx.facts.scores if s.kind == kind), key=lambda s: s.when)
        if len(series) < 2:
            continue
        base_at = 0
        for i, score in enumerate(series):
            if score.when <= care_start:
                base_at = i
        if base_at == len(series) - 1:
            continue  # nothing measured after the baseline
        base, last = series[base_at], series[-1]
        refs += (base.reference, last.reference)
        drop = base.value - last.value
        if kind == "pain-nrs":
            better = _at_least(drop, p.conservative_care_nrs_improvement_points) or (
                base.value > 0
                and _at_least(drop * 100 / base.value, p.conservative_care_nrs_improvement_percent)
            )
        else:
            better = _at_least(drop, p.conservative_care_oswestry_improvement_points)
        improved = better or bool(improved)
    return improved, tuple(refs)


def failed_conservative_care(ctx: Context) -> list[CriterionResult]:
    """Indication 5, plus outcome-scores-missing when care qualifies but cannot be judged.

    An episode known to exist whose onset is unknown cannot be timed: if everything else points
    to failed care, the criterion is unknown (reason episode-onset-unknown) rather than not met.
    """
    p = ctx.policy
    facts = ctx.facts
    cid = "failed-conservative-care"
    episode = facts.episode_references
    weeks = facts.episode_weeks
    if weeks is not None and weeks < p.conservative_care_episode_min_weeks - _EPS:
        return [CriterionResult(cid, NOT_MET, "episode-too-short", INDICATED, episode)]
    onset = facts.episode_onset
    # POLICY: care counts only within the current episode; sessions before its onset belong to
    # an earlier one and do not lengthen this one's care.
    active = [
        care
        for c in facts.care
        if c.kind == "active" and (care := c if onset is None else c.since(onset)) is not None
    ]
    if not active:
        passive = [ref for c in facts.care if c.kind == "passive" for ref in c.references]
        reason = "passive-care-only" if passive else "no-active-care"
        return [CriterionResult(cid, NOT_MET, reason, INDICATED, tuple(passive))]
    care = max(active, key=lambda c: c.weeks)
    if care.weeks < p.conservative_care_active_care_min_weeks - _EPS:
        return [CriterionResult(cid, NOT_MET, "active-care-too-short", INDICATED, care.references)]
    improved, score_refs = judge_improvement(ctx, care.first)
    evidence = _merge(episode, care.references, score_refs)
    if improved:
        return [CriterionResult(cid, NOT_MET, "improved", INDICATED, evidence)]
    results: list[CriterionResult] = []
    if not ctx.has_episode:
        results.append(CriterionResult(cid, UNKNOWN, "no-episode", INDICATED, evidence))
    elif weeks is None:
        results.append(CriterionResult(cid, UNKNOWN, "episode-onset-unknown", INDICATED, evidence))
    elif improved is None:
        results.append(CriterionResult(cid, UNKNOWN, "outcome-scores-missing", INDICATED, evidence))
    else:
        return [CriterionResult(cid, MET, "failed-care", INDICATED, evidence)]
    # Without any episode the card asks for the reason for the scan first (no-episode-data).
    if improved is None and ctx.has_episode:
        results.append(
            CriterionResult(
                "outcome-scores-missing",
                MET,
                "outcome-scores-missing",
                INSUFFICIENT,
                _merge(episode, care.references),
            )
        )
    return results


# --- repeat imaging, missing episode ------------------------------------------------------------

# Criteria whose findings, when recorded after the earlier scan, justify scanning again.
_NEW_SINCE_IMAGING_IDS = frozenset({"red-flag", "neuro-deficit", "trauma"})


def _dates(ctx: Context) -> dict[str, date]:
    """Date of each reference the criteria can cite (findings, scores, medications, episode)."""
    facts = ctx.facts
    dated: dict[str, date] = {}
    for f in facts.findings:
        if f.when is not None:
            dated[f.reference] = f.when
    for s in facts.scores:
        dated[s.reference] = s.when
    for m in facts.medications:
        if m.start is not None:
            dated[m.reference] = m.start
    if facts.episode_onset is not None:
        for ref in facts.episode_references:
            dated[ref] = facts.episode_onset
    return dated


def repeat_imaging(ctx: Context, results: Sequence[CriterionResult]) -> CriterionResult:
    """Lumbar imaging in the repeat window and nothing alarming recorded after it."""
    cid = "repeat-imaging"
    prior = ctx.facts.prior_imaging
    recent = [i for i in prior if ctx.within(i.when, ctx.policy.repeat_imaging_window_days)]
    if not recent:
        reason = "prior-imaging-outside-window" if prior else "no-prior-imaging"
        return CriterionResult(
            cid, NOT_MET, reason, NOT_INDICATED, tuple(i.reference for i in prior)
        )
    last_scan = max(i.when for i in recent)
    dated = _dates(ctx)
    # Strictly after: a finding of the scan day is what the scan was made for.
    newer = [
        ref
        for r in results
        if r.status is MET and r.id in _NEW_SINCE_IMAGING_IDS
        for ref in r.evidence
        if (d := dated.get(ref)) is not None and d > last_scan
    ]
    imaging = tuple(i.reference for i in sorted(recent, key=lambda i: i.when, reverse=True))
    if newer:
        evidence = _merge(imaging[:1], newer)
        return CriterionResult(cid, NOT_MET, "new-finding-since-imaging", NOT_INDICATED, evidence)
    return CriterionResult(cid, MET, "prior-imaging", NOT_INDICATED, imaging)


def no_episode_data(ctx: Context, onset_decisive: bool) -> list[CriterionResult]:
    """No back-pain episode at all; or an episode whose unknown onset is left to be recorded.

    An episode known only from the order's own reason (reasonCode "low back pain") is an
    episode (issue 10): what is missing then is its onset, criterion `episode-onset-missing`,
    not the episode. So is the onset of a recorded episode when it alone decides.
    """
    episode = ctx.facts.episode_references
    if not ctx.has_episode:
        return [CriterionResult("no-episode-data", MET, "no-episode-data", INSUFFICIENT)]
    recorded = CriterionResult(
        "no-episode-data", NOT_MET, "episode-recorded", INSUFFICIENT, episode
    )
    if not episode and ctx.facts.episode_onset is None:
        # the episode comes from the order's own reason: its onset is not known
        from_order = (ctx.order.reason_reference,)
        recorded = replace(recorded, evidence=from_order)
        onset = CriterionResult(
            "episode-onset-missing", MET, "episode-onset-unknown", INSUFFICIENT, from_order
        )
        return [recorded, onset]
    if onset_decisive:
        onset = CriterionResult(
            "episode-onset-missing", MET, "episode-onset-unknown", INSUFFICIENT, episode
        )
        return [recorded, onset]
    return [recorded]


# --- modality advice ----------------------------------------------------------------------------


def modality_advice(
    ctx: Context, outcome: Outcome, decisive: Sequence[CriterionResult]
) -> tuple[list[CriterionResult], list[ModalityAdvice]]:
    """Advice when the ordered modality does not fit the question; never changes the decision."""
    ordered = ctx.order.modality
    advice: list[ModalityAdvice] = []
    results: list[CriterionResult] = []

    def add(code: str, suggested: Modality | None, reason: str, evidence: tuple[str, ...]) -> None:
        advice.append(ModalityAdvice(code, ordered, suggested, reason))
        results.append(CriterionResult("modality-advice", MET, code, None, evidence))

    needs_mri = next((c for c in decisive if c.reason in MRI_REASONS), None)
    if ordered is Modality.XRAY and needs_mri is not None:
        # X-ray shows bone, not nerves, discs, marrow or abscess.
        add("xray-prefer-mri", Modality.MRI, needs_mri.reason, needs_mri.evidence)
    elif ordered is Modality.MRI and needs_mri is None:
        fracture = next((c for c in decisive if c.reason == "trauma-minor-risk-factor"), None)
        if fracture is not None:
            add("xray-first-acceptable", Modality.XRAY, fracture.reason, fracture.evidence)
    elif ordered is Modality.CT and not trauma_question(ctx):
        imaging_wanted = outcome in (URGENT, INDICATED)
        reason = decisive[0].reason if decisive else outcome.value
        evidence = decisive[0].evidence if decisive else ()
        add("ct-radiation-prefer-mri", Modality.MRI if imaging_wanted else None, reason, evidence)
    pregnancy = [
        f
        for f in ctx.current("pregnancy")
        if ctx.within(f.when, ctx.policy.modality_pregnancy_window_days)
    ]
    if ordered in (Modality.XRAY, Modality.CT) and pregnancy:
        # POLICY: radiation in pregnancy: prefer MRI without contrast, or defer (advice only)
        add("pregnancy-radiation", Modality.MRI, "pregnancy", _refs(pregnancy))
    if not results:
        results.append(CriterionResult("modality-advice", NOT_MET, "modality-fits"))
    return results, advice


# Traceability (issue 16): the POLICY.md rule ids (mappings/policy.yaml `rules`) each check
# implements, by the name of its function here or in decide.py. The traceability test fails
# when a rule id has no check here, or no scenario in which one of its `yields` fires.
IMPLEMENTS: dict[str, tuple[str, ...]] = {
    "trauma": ("trauma-major", "trauma-minor-risk"),
    "suspicions": ("fracture-suspected", "malignancy-suspected"),
    "neuro_deficit": ("neuro-deficit", "neuro-deficit-urgent"),
    "neuro_exam_missing": ("neuro-exam-required",),
    "cauda_equina": ("cauda-equina", "cauda-equina-suspected"),
    "infection": (
        "spinal-infection-fever",
        "spinal-infection-post-procedure",
        "fever-no-risk-factor",
    ),
    "malignancy": ("malignancy-new-pain", "malignancy-deficit"),
    "weight_loss": ("weight-loss",),
    "immunosuppression": ("immunosuppression",),
    "iv_drug_use": ("iv-drug-use",),
    "corticosteroids": ("corticosteroids",),
    "osteoporosis_new_pain": ("osteoporosis-new-pain",),
    "night_pain": ("night-pain",),
    "first_episode_age": ("first-episode-age",),
    "surgical_planning": ("surgical-planning",),
    "failed_conservative_care": ("failed-conservative-care", "outcome-scores-required"),
    "repeat_imaging": ("repeat-imaging",),
    "no_episode_data": ("no-episode", "episode-onset"),
    "modality_advice": ("xray-prefer-mri", "ct-radiation", "pregnancy-radiation"),
    "decide": ("adults-only",),  # rules/decide.py: the population check comes first
}
