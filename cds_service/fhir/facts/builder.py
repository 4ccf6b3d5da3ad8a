"""The facts builder: the state of one reading, recognition of codes and text, and the result."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cds_service.fhir import exam
from cds_service.fhir.dates import earliest, to_date
from cds_service.fhir.facts.common import (
    normalise_references,
    side_of,
    texts_of,
)
from cds_service.fhir.facts.registry import FINISHERS, READERS
from cds_service.fhir.facts.relevance import Screen
from cds_service.fhir.validated import validated
from cds_service.rules.model import (
    EPISODE_CONCEPTS,
    CareEpisode,
    Finding,
    Medication,
    Modality,
    PatientFacts,
    PriorImaging,
    Score,
    Strength,
    TextEvidence,
)

if TYPE_CHECKING:
    from cds_service.fhir.facts.episodes import ContactNote, EpisodeNote
    from cds_service.rules.knowledge import Knowledge
    from cds_service.rules.textreader import Reading

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# Text findings that record an examination was done; each is kept as a finding of its own.
_EXAM_ITEMS = frozenset({"muscle-strength", "reflex-test", "sensation-test", "neuro-exam"})
# History still counts for these (POLICY "Historical"): kept as findings of the past.
_HISTORY_COUNTS = frozenset({"malignancy", "spinal-procedure"})
# The trail keeps at most this many text readings per hook call (a long record repeats itself).
_MAX_TEXT_EVIDENCE = 200


logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Hit:
    """One concept recognised in one resource."""

    strength: Strength
    qualifiers: set[str] = field(default_factory=set)
    values: list[float] = field(default_factory=list)  # MRC grades, temperatures read from text
    graded: list[tuple[float, frozenset[str]]] = field(default_factory=list)  # value, qualifiers


@dataclass(slots=True)
class Recognised:
    """Concepts found in one resource: positive hits, and concepts only stated as absent.

    From text also what a clinician suspects ("verdenking ...") and what lies in the past
    ("VG: mammacarcinoom"); family members', conditional and reported mentions count as neither.
    """

    hits: dict[str, Hit]
    negated: dict[str, set[str]]
    suspected: dict[str, set[str]] = field(default_factory=dict)
    history: dict[str, set[str]] = field(default_factory=dict)
    planned: set[str] = field(default_factory=set)  # plans and safety-netting: no finding


class FactsBuilder:
    """Accumulates facts resource by resource; `build` freezes them into PatientFacts."""

    def __init__(
        self, knowledge: Knowledge, now: datetime, exclude: frozenset[str], *, screen: bool = True
    ) -> None:
        self.knowledge = knowledge
        self.now = now
        self.tz = now.tzinfo
        self.today = now.date()
        self.exclude = exclude
        # Per-call caches: a hook call repeats the same codes and texts many times over
        # (10,000 temperature Observations share one code), so each is looked up once.
        self._coding_cache: dict[tuple[str, str], frozenset[str]] = {}
        self._text_cache: dict[tuple[str, str | None], Reading] = {}
        self._modality_cache: dict[str, Modality | None] = {}
        self._kind_cache: dict[str, str | None] = {}
        self.age: int | None = None
        self.patient_seen = False
        self.findings: dict[tuple[str, str], Finding] = {}
        self.absent: dict[tuple[str, str], Finding] = {}
        self.episode_dates: list[date] = []
        self.episode_references: list[str] = []
        self.prior_episodes: list[Finding] = []
        self.episode_conditions: dict[str, bool] = {}  # back-pain Condition -> current
        self.episodes_of_care: list[EpisodeNote] = []
        self.encounters: list[ContactNote] = []
        self.other_condition_dates: list[date] = []
        self.medications: list[Medication] = []
        self.care: dict[str, list[tuple[date, date, str]]] = {}
        self.scores: list[Score] = []
        self.prior_imaging: list[PriorImaging] = []
        self.notes: dict[str, None] = {}
        self.suspected: dict[tuple[str, str], Finding] = {}
        self.text_evidence: dict[TextEvidence, None] = {}
        self.reading: str = ""  # the reference of the resource being read, for the trail
        # resources that cannot contribute a finding are not validated (relevance.py)
        self.screen = Screen(self) if screen else None
        self.skipped: list[str] = []  # references of the resources the screen skipped

    # -- plumbing ------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """Record a data note once."""
        self.notes.setdefault(text, None)

    def add(self, index: int, item: Any) -> None:
        """Validate one resource dict and hand its model to the reader for its type."""
        if not isinstance(item, Mapping):
            self.note(f"input[{index}]: not a resource")
            return
        kind = item.get("resourceType")
        if not isinstance(kind, str):
            self.note(f"input[{index}]: no resourceType")
            return
        reader = READERS.get(kind)
        if reader is None:
            return
        raw_id = item.get("id")
        has_id = isinstance(raw_id, str) and _FHIR_ID.fullmatch(raw_id) is not None
        reference = f"{kind}/{raw_id}" if has_id else f"{kind}/#{index}"
        if reference in self.exclude:
            return
        if self.screen is not None and self.screen.skip(kind, item):
            self.skipped.append(reference)
            return
        try:
            model = validated(kind, item)
        except Exception:  # pydantic ValidationError, or anything odd in the dict
            self.note(f"{reference}: not valid FHIR R4")
            return
        if getattr(model, "status", None) == "entered-in-error":
            return
        try:
            self.reading = reference
            reader(self, model, reference)
        except Exception:
            # A reader bug or an unforeseen shape must not fail the hook: note it, log the
            # reference only (no patient data), and carry on with the other resources.
            logger.exception("facts: %s could not be read", reference)
            self.note(f"{reference}: not readable")

    def when(self, value: Any) -> date | None:
        """A FHIR date value as a calendar date in the hook call's time zone."""
        return to_date(value, self.tz)

    def kind(self, concept: str) -> str | None:
        """The concept's kind from concepts.yaml ("condition", "measurement", ...)."""
        if concept not in self._kind_cache:
            entry = self.knowledge.concepts.get(concept)
            self._kind_cache[concept] = getattr(entry, "kind", None)
        return self._kind_cache[concept]

    def order_modality(self, text: str) -> Modality | None:
        """knowledge.order_modality, cached per text."""
        if text not in self._modality_cache:
            self._modality_cache[text] = self.knowledge.order_modality(text)
        return self._modality_cache[text]

    def recognise(
        self,
        concepts: Iterable[Any],
        texts: Iterable[str | None] = (),
        *,
        section: str | None = None,
    ) -> Recognised:
        """Concepts of CodeableConcepts (codes first) and texts; code beats text, text beats no.

        Codes come first: the text of a CodeableConcept whose code is recognised may add
        findings and qualifiers, but never another back-pain episode ("L02 rugklachten
        thoracaal" is no low back pain). `section` is the SOEP line type of the texts.
        """
        hits: dict[str, Hit] = {}
        code_texts: list[str] = []
        coded = False
        for concept in concepts:
            if concept is None:
                continue
            for coding in concept.coding or ():
                if coding.system and coding.code:
                    key = (coding.system, coding.code)
                    found = self._coding_cache.get(key)
                    if found is None:
                        found = self.knowledge.concepts_for_coding(*key)
                        self._coding_cache[key] = found
                    for concept_id in found:
                        coded = True
                        hits.setdefault(concept_id, Hit(Strength.CODE))
            code_texts.extend(texts_of(concept))
        recognised = Recognised(hits, {})
        for text in code_texts:
            self._read_text(recognised, text, None, codes_first=coded, code_text=True)
        for written in texts:
            if written:
                self._read_text(recognised, written, section, codes_first=False)
        # A concept both coded (or positively worded) and negated in one resource is taken as
        # present: the negation usually belongs to another sentence ("no longer ...").
        for concept_id in hits:
            recognised.negated.pop(concept_id, None)
            recognised.suspected.pop(concept_id, None)
        return recognised

    def _read_text(
        self,
        recognised: Recognised,
        text: str,
        section: str | None,
        *,
        codes_first: bool,
        code_text: bool = False,
    ) -> None:
        """Add one text's findings to `recognised`, by their context, and to the trail."""
        key = (text, section)
        reading = self._text_cache.get(key)
        if reading is None:
            reading = self.knowledge.read_text(text, section)
            self._text_cache[key] = reading
            if reading.truncated:
                self.note(f"{self.reading}: text read up to {reading.characters} characters")
        hits = recognised.hits
        for found in reading.findings:
            concept = found.concept
            if code_text and found.value is not None:
                continue  # a code's name ("MRC 0-5", "Temp (°C)") is no measured value
            if codes_first and concept in EPISODE_CONCEPTS and concept not in hits:
                continue  # the code says what the resource is
            if len(self.text_evidence) < _MAX_TEXT_EVIDENCE:
                evidence = TextEvidence(
                    self.reading, concept, found.context, found.words, found.cue
                )
                self.text_evidence.setdefault(evidence, None)
            context = found.context
            if context == "affirmed":
                hit = hits.get(concept)
                if hit is None:
                    hit = hits[concept] = Hit(Strength.TEXT)
                hit.qualifiers.update(found.qualifiers)
                if found.value is not None:
                    hit.values.append(found.value)
                    hit.graded.append((found.value, found.qualifiers))
            elif context == "negated":
                recognised.negated.setdefault(concept, set()).update(found.qualifiers)
            elif context == "suspected":
                recognised.suspected.setdefault(concept, set()).update(found.qualifiers)
            elif context == "historical":
                recognised.history.setdefault(concept, set()).update(found.qualifiers)
            elif context == "conditional":
                recognised.planned.add(concept)
            # conditional (plans, safety-netting), family and the patient's own words for a
            # deficit are no finding of this patient now: they stay in the trail only

    def keep_text_context(self, recognised: Recognised, reference: str, when: date | None) -> None:
        """Suspicions and the history that still counts, from one resource's texts."""
        for concept, qualifiers in recognised.suspected.items():
            self.suspected.setdefault(
                (concept, reference),
                Finding(concept, reference, when, Strength.TEXT, qualifiers=frozenset(qualifiers)),
            )
        for concept, qualifiers in recognised.history.items():
            if concept in _HISTORY_COUNTS and concept not in recognised.hits:
                # a past event: it counts as history, never as recent (no date of its own)
                self.put(
                    Finding(
                        concept,
                        reference,
                        None,
                        Strength.TEXT,
                        qualifiers=frozenset(qualifiers),
                        current=False,
                    )
                )

    def text_measurements(
        self,
        recognised: Recognised,
        reference: str,
        when: date | None,
        qualifiers: set[str],
        *,
        skip: Collection[str] = (),
    ) -> None:
        """Examinations and measured values read from text ("MRC 4", "kr/sens/refl z.a.")."""
        for concept, hit in recognised.hits.items():
            if hit.strength is not Strength.TEXT or self.kind(concept) != "measurement":
                continue
            if concept in skip:
                continue
            if concept == "body-temperature":
                for value in hit.values:
                    self.put(
                        Finding(concept, reference, when, Strength.TEXT, value=value, unit="Cel")
                    )
            elif concept in _EXAM_ITEMS:
                base = Finding(
                    concept,
                    reference,
                    when,
                    Strength.TEXT,
                    qualifiers=frozenset(hit.qualifiers | qualifiers),
                )
                if concept == "muscle-strength" and hit.graded:
                    # the worst grade per side: "kr li 3/5, re 5/5" is weakness on the left only
                    sides: dict[str, tuple[float, frozenset[str]]] = {}
                    for value, found in hit.graded:
                        side = side_of(found)
                        if side not in sides or value < sides[side][0]:
                            sides[side] = (value, found)
                    for side, (value, found) in sides.items():
                        ref = reference if len(sides) == 1 else f"{reference}#{side or 'unsided'}"
                        self.put(
                            replace(base, reference=ref, value=value, qualifiers=found | qualifiers)
                        )
                else:
                    self.put(base)

    def put(self, finding: Finding, *, absent: bool = False) -> None:
        """Store a finding, merging with one of the same concept from the same resource."""
        store = self.absent if absent else self.findings
        key = (finding.concept, finding.reference)
        old = store.get(key)
        if old is None:
            store[key] = finding
            return
        coded = Strength.CODE in (old.strength, finding.strength)
        store[key] = replace(
            old,
            when=old.when or finding.when,
            strength=Strength.CODE if coded else Strength.TEXT,
            severity=old.severity or finding.severity,
            value=old.value if old.value is not None else finding.value,
            unit=old.unit or finding.unit,
            qualifiers=old.qualifiers | finding.qualifiers,
            current=old.current and finding.current,
        )

    def surgical_indication(
        self, recognised: Recognised, reference: str, when: date | None
    ) -> None:
        """The text-only "surgical-indication" concept, from whichever resource states it."""
        hit = recognised.hits.get("surgical-indication")
        if hit is not None:
            self.put(
                Finding(
                    "surgical-indication",
                    reference,
                    when,
                    hit.strength,
                    qualifiers=frozenset(hit.qualifiers),
                )
            )

    def structural_qualifiers(self, body_sites: Iterable[Any]) -> set[str]:
        """Laterality from bodySite codes (SNOMED qualifier values) or their words."""
        found: set[str] = set()
        for site in body_sites:
            if site is None:
                continue
            for coding in site.coding or ():
                side = exam.LATERALITY_CODES.get(coding.code or "")
                if side:
                    found.add(side)
            for text in texts_of(site):
                found |= exam.laterality_from_text(text)
        if {"left", "right"} <= found:
            found.add("bilateral")
        return found

    # -- Patient -------------------------------------------------------------------------------
    def imaging_modality(self, recognised: Recognised, concepts: list[Any]) -> Any:
        """Modality of lumbar imaging named by code or text; False when it is not one."""
        for concept in recognised.hits:
            modality = self.knowledge.modality_of(concept)
            if modality is not None:
                return modality
        for concept in concepts:
            for text in texts_of(concept):
                modality = self.order_modality(text)
                if modality is not None:
                    return modality
        return False

    def based_on_excluded(self, resource: Any) -> bool:
        """True when the resource fulfils one of the draft orders being judged."""
        for based_on in getattr(resource, "basedOn", None) or ():
            if based_on.reference and normalise_references([based_on.reference]) & self.exclude:
                return True
        return False

    def build(self) -> PatientFacts:
        """Freeze everything read so far into PatientFacts."""
        for finish in FINISHERS:
            finish(self)
        care = []
        for kind, sessions in sorted(self.care.items()):
            sessions.sort()
            care.append(
                CareEpisode(
                    kind,
                    first=sessions[0][0],
                    last=max(s[1] for s in sessions),
                    sessions=len(sessions),
                    references=tuple(s[2] for s in sessions),
                    dated=tuple(sessions),
                )
            )
        absent = tuple(f for key, f in self.absent.items() if key not in self.findings)
        return PatientFacts(
            evaluated_at=self.now,
            age=self.age,
            episode_onset=earliest(*self.episode_dates),
            episode_references=tuple(self.episode_references),
            prior_episodes=tuple(self.prior_episodes),
            earliest_other_condition=earliest(*self.other_condition_dates),
            findings=tuple(self.findings.values()),
            absent=absent,
            medications=tuple(self.medications),
            care=tuple(care),
            scores=tuple(sorted(self.scores, key=lambda s: (s.when, s.kind, s.reference))),
            prior_imaging=tuple(sorted(self.prior_imaging, key=lambda p: (p.when, p.reference))),
            data_notes=tuple(self.notes),
            suspected=tuple(self.suspected.values()),
            text_evidence=tuple(self.text_evidence),
        )
