"""Plain, frozen value types shared by facts extraction and the decision engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class Strength(StrEnum):
    """How a finding was recognised: a coded match is stronger evidence than a text match."""

    CODE = "code"
    TEXT = "text"


class Outcome(StrEnum):
    """The decision for one in-scope order (POLICY.md, "Decision per order")."""

    URGENT = "urgent"
    INDICATED = "indicated"
    NOT_INDICATED = "not-indicated"
    INSUFFICIENT_DATA = "insufficient-data"
    OUT_OF_POPULATION = "out-of-population"  # under 18: the rules are for adults, not judged


class Status(StrEnum):
    """Whether a criterion held for this patient."""

    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"


# The concepts that make the back-pain episode itself (a diagnosis, a reason for the order),
# not a finding within it.
EPISODE_CONCEPTS = frozenset({"low-back-pain", "sciatica", "lumbar-stenosis"})


class Modality(StrEnum):
    """Lumbar imaging modalities the service recognises."""

    XRAY = "xray"
    MRI = "mri"
    CT = "ct"


@dataclass(frozen=True, slots=True)
class Finding:
    """One clinical fact taken from one FHIR resource.

    `concept` is a concept id from mappings/concepts.yaml (e.g. "fever", "muscle-weakness").
    `when` is the clinically relevant date: onset, effective or performed date, else the
    recorded date; None when the resource has no date at all.
    `qualifiers` carries modifiers found in the same resource: "severe", "progressive",
    "bilateral", "left", "right", "abnormal", "normal".
    `current` is False for Conditions whose clinicalStatus is inactive/resolved/remission: they
    count as history (prior episodes, malignancy history) but not as present findings.
    """

    concept: str
    reference: str
    when: date | None = None
    strength: Strength = Strength.CODE
    severity: str | None = None
    value: float | None = None
    unit: str | None = None
    qualifiers: frozenset[str] = frozenset()
    current: bool = True


@dataclass(frozen=True, slots=True)
class Medication:
    """A medication course of a recognised concept (e.g. "systemic-corticosteroid")."""

    concept: str
    reference: str
    start: date | None
    end: date | None
    duration_days: int | None
    active: bool


@dataclass(frozen=True, slots=True)
class CareEpisode:
    """Conservative care of one kind ("active" or "passive") from first to last session."""

    kind: str
    first: date
    last: date
    sessions: int
    references: tuple[str, ...]
    # each session's (start, end, reference), in order: care can be cut to an episode
    dated: tuple[tuple[date, date, str], ...] = ()

    @property
    def weeks(self) -> float:
        """Length of the care from first to last session, in weeks."""
        return (self.last - self.first).days / 7

    def since(self, onset: date) -> CareEpisode | None:
        """The care within an episode that began on `onset` (sessions before it do not count)."""
        if not self.dated:
            return self if self.last >= onset else None
        kept = [(max(start, onset), end, ref) for start, end, ref in self.dated if end >= onset]
        if not kept:
            return None
        return CareEpisode(
            self.kind,
            first=min(s for s, _, _ in kept),
            last=max(e for _, e, _ in kept),
            sessions=len(kept),
            references=tuple(r for _, _, r in kept),
            dated=tuple(kept),
        )


@dataclass(frozen=True, slots=True)
class Score:
    """One outcome-score measurement: kind is "pain-nrs" (0-10) or "oswestry" (0-100)."""

    kind: str
    when: date
    value: float
    reference: str


@dataclass(frozen=True, slots=True)
class PriorImaging:
    """Lumbar imaging performed before this order."""

    modality: Modality | None
    when: date
    reference: str


@dataclass(frozen=True, slots=True)
class TextEvidence:
    """How one finding was read from free text: the resource, the words, their context.

    Shown in the decision trail (never stored in the audit store: it holds the patient's text).
    """

    reference: str
    concept: str
    context: str
    words: str
    cue: str | None = None


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """Everything the rules need about one patient, reduced from FHIR and frozen.

    `findings` holds positive findings only; `absent` holds findings explicitly documented as
    absent ("geen koorts", a normal reflex test, MRC 5/5 strength): they prove that an
    examination was done without counting as the finding. `suspected` holds what a clinician
    wrote as a suspicion; `text_evidence` how every finding read from text was read.
    """

    evaluated_at: datetime
    age: int | None = None
    episode_onset: date | None = None
    episode_references: tuple[str, ...] = ()
    prior_episodes: tuple[Finding, ...] = ()
    earliest_other_condition: date | None = None
    findings: tuple[Finding, ...] = ()
    absent: tuple[Finding, ...] = ()
    medications: tuple[Medication, ...] = ()
    care: tuple[CareEpisode, ...] = ()
    scores: tuple[Score, ...] = ()
    prior_imaging: tuple[PriorImaging, ...] = ()
    data_notes: tuple[str, ...] = ()
    # the clinician's suspicions read from text ("verdenking cauda equina", "DD: maligniteit")
    suspected: tuple[Finding, ...] = ()
    text_evidence: tuple[TextEvidence, ...] = ()

    @property
    def today(self) -> date:
        """The evaluation date that all time windows count back from."""
        return self.evaluated_at.date()

    @property
    def episode_weeks(self) -> float | None:
        """Duration of the current back-pain episode in weeks, if its onset is known."""
        if self.episode_onset is None:
            return None
        return (self.today - self.episode_onset).days / 7

    def of(self, *concepts: str) -> tuple[Finding, ...]:
        """Positive findings of any of the given concepts."""
        wanted = set(concepts)
        return tuple(f for f in self.findings if f.concept in wanted)


@dataclass(frozen=True, slots=True)
class LumbarOrder:
    """A draft ServiceRequest recognised as lumbar-spine imaging.

    `reason` is what the order itself says of its reason (reasonCode, reasonReference
    displays, note, the qualifiers of code.text): an episode it names, what the clinician
    suspects, and whether a specialist asked for the scan (POLICY, issue 10).
    """

    reference: str
    modality: Modality
    code_display: str
    strength: Strength
    reason: OrderReason | None = None

    @property
    def reason_reference(self) -> str:
        """How evidence from the order's own reason is cited: "<order>#reason"."""
        return f"{self.reference}#reason"


@dataclass(frozen=True, slots=True)
class OrderReason:
    """What a draft order says of its own reason."""

    episode: frozenset[str] = frozenset()  # back-pain episode concepts named
    suspected: frozenset[str] = frozenset()  # alarms and indications: the clinician's suspicion
    specialist_request: bool = False  # a spine surgeon, neurosurgeon, orthopaedist, pain doctor


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One criterion checked for one order, with the FHIR references it used.

    `id` is a POLICY.md criterion id ("red-flag", "neuro-deficit", ...); `reason` names the
    specific pattern (e.g. "cauda-equina", "fever-with-risk-factor", "mrc-4"); `outcome` is what
    the criterion implies when met.
    """

    id: str
    status: Status
    reason: str
    outcome: Outcome | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModalityAdvice:
    """Advice on the imaging modality; it never changes the decision."""

    code: str
    ordered: Modality
    suggested: Modality | None
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one order: the outcome and the trail that produced it."""

    order: LumbarOrder
    outcome: Outcome
    criteria: tuple[CriterionResult, ...]
    advice: tuple[ModalityAdvice, ...] = ()
    missing: tuple[str, ...] = ()
    policy_version: str = ""

    @property
    def decisive(self) -> tuple[CriterionResult, ...]:
        """The met criteria whose outcome equals the decision."""
        return tuple(
            c for c in self.criteria if c.status is Status.MET and c.outcome is self.outcome
        )

    @property
    def rating(self) -> str | None:
        """The PAMA rating of the ordered examination (None when there is none to give).

        POLICY "The rating judges the ordered examination": an X-ray ordered for a question
        only an MRI answers (a deficit, a cauda equina pattern, a suspected spinal infection)
        is not appropriate, while the decision and the card stay urgent or indicated.
        """
        rating = PAMA_RATING.get(self.outcome)
        decisive = self.decisive
        if (
            rating == "appropriate"
            and self.order.modality is Modality.XRAY
            and decisive
            and all(c.reason in XRAY_CANNOT_ANSWER for c in decisive)
        ):
            return "not-appropriate"
        return rating

    @property
    def evidence(self) -> tuple[str, ...]:
        """FHIR references behind the decisive criteria, without duplicates, in order."""
        seen: dict[str, None] = {}
        for criterion in self.decisive:
            for ref in criterion.evidence:
                seen.setdefault(ref, None)
        return tuple(seen)


PAMA_RATING = {
    Outcome.URGENT: "appropriate",
    Outcome.INDICATED: "appropriate",
    Outcome.NOT_INDICATED: "not-appropriate",
}
# Decisive reasons an X-ray cannot answer (bone only: no nerves, discs, marrow or abscess).
# Fever without a risk factor and a malignancy without a deficit keep their rating.
XRAY_CANNOT_ANSWER = frozenset(
    {
        "deficit",
        "deficit-severe",
        "deficit-progressive",
        "deficit-bilateral",
        "malignancy-deficit",
        "cauda-equina",
        "cauda-equina-suspected",
        "spinal-infection",
        "infection-fever-risk-factor",
        "infection-post-procedure-pain",
    }
)

__all__ = [
    "EPISODE_CONCEPTS",
    "PAMA_RATING",
    "XRAY_CANNOT_ANSWER",
    "CareEpisode",
    "CriterionResult",
    "Decision",
    "Finding",
    "LumbarOrder",
    "Medication",
    "Modality",
    "ModalityAdvice",
    "OrderReason",
    "Outcome",
    "PatientFacts",
    "PriorImaging",
    "Score",
    "Status",
    "Strength",
]
