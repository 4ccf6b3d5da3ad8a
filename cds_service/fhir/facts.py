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
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from cds_service.fhir import exam
from cds_service.fhir.dates import age_in_years, earliest, is_partial, to_date
from cds_service.fhir.units import (
    as_float,
    celsius,
    duration_days,
    kilograms,
    mrc_grade,
    unit_key,
)
from cds_service.fhir.validated import validated
from cds_service.rules.model import (
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
    from cds_service.rules.knowledge import Knowledge
    from cds_service.rules.textreader import Reading

logger = logging.getLogger(__name__)

# The resource types read, each with its reader method; every other type is ignored.
_READERS = {
    "Patient": "_read_patient",
    "Condition": "_read_condition",
    "Observation": "_read_observation",
    "Procedure": "_read_procedure",
    "ServiceRequest": "_read_service_request",
    "ImagingStudy": "_read_imaging_study",
    "DiagnosticReport": "_read_diagnostic_report",
    "MedicationStatement": "_read_medication_statement",
    "MedicationRequest": "_read_medication_request",
}
# FHIR id syntax; anything else is never echoed into a note (it could hold free text).
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NUMBER = re.compile(r"^\s*(\d{1,3}(?:[.,]\d+)?)\s*(?:/\s*(?:10|100))?\s*%?\s*$")

EPISODE_CONCEPTS = frozenset({"low-back-pain", "sciatica", "lumbar-stenosis"})
_ORDER_MODALITY = {
    "lumbar-xray": Modality.XRAY,
    "lumbar-mri": Modality.MRI,
    "lumbar-ct": Modality.CT,
}
_CARE_KIND = {"active-care": "active", "passive-care": "passive"}
_SCORE_KIND = {"pain-score": ("pain-nrs", 10.0), "oswestry": ("oswestry", 100.0)}
# DICOM modality codes of ImagingStudy.series.modality.
_DICOM_MODALITY = {"MR": Modality.MRI, "CT": Modality.CT, "CR": Modality.XRAY, "DX": Modality.XRAY}
# Series bodySite: SNOMED "Lumbar spine structure" and the DICOM body part "LSPINE".
_LUMBAR_BODY_SITES = frozenset({"122496007", "LSPINE"})

_CONDITION_IGNORED = frozenset({"entered-in-error", "refuted"})
_CONDITION_HISTORY = frozenset({"inactive", "resolved", "remission"})
_PROCEDURE_PERFORMED = frozenset({"completed", "in-progress", "stopped"})
_PROCEDURE_PLANNED = frozenset({"preparation", "on-hold"})
_REQUEST_PLANNED = frozenset({"active", "draft", "on-hold"})
_REQUEST_REFERRAL = frozenset({"active", "on-hold", "completed"})
_REPORT_DONE = frozenset({"final", "amended", "corrected", "appended", "preliminary"})
_STUDY_IGNORED = frozenset({"cancelled", "entered-in-error"})
_NEGATIVE_INTERPRETATION = frozenset({"N", "NEG"})
# A test result that says the tested thing is there (v3 interpretation, SNOMED CT values).
_POSITIVE_INTERPRETATION = frozenset({"POS", "DET", "A", "AA", "H", "HH", "R"})
# Words that make an imaging name in text a reported result, not a plan ("MRI LWK aanvragen").
_IMAGING_RESULT = re.compile(
    r"\b(?:toont|toonde|laat zien|liet zien|uitslag|conclusie|verslag|shows|showed|revealed"
    r"|demonstrates|impression|findings?)\b"
)
# SNOMED CT: positive, detected, reactive
_POSITIVE_VALUE_CODES = frozenset({"10828004", "260373001", "11214006"})
_POSITIVE_WORDS = re.compile(
    r"\b(?:positief|positive|pos|reactief|reactive|aangetoond|detected|afwijkend)\b"
)
# Dutch GP journal lines (HIS "journaalregels"): the code says which SOEP line the text is.
_JOURNAL_LINE_SYSTEM = "http://fhir.nl/fhir/NamingSystem/journaalregeltypen"
_SOEP = {"S": "S", "O": "O", "E": "E", "P": "P"}
# Observation categories whose text is an examination.
_EXAM_CATEGORIES = frozenset({"exam", "physical-exam"})
# Text findings that record an examination was done; each is kept as a finding of its own.
_EXAM_ITEMS = frozenset({"muscle-strength", "reflex-test", "sensation-test", "neuro-exam"})
# History still counts for these (POLICY "Historical"): kept as findings of the past.
_HISTORY_COUNTS = frozenset({"malignancy", "spinal-procedure"})
# The trail keeps at most this many text readings per hook call (a long record repeats itself).
_MAX_TEXT_EVIDENCE = 200


def extract_facts(
    resources: Iterable[Mapping[str, Any]],
    *,
    knowledge: Knowledge,
    now: datetime,
    exclude: Collection[str] = (),
) -> PatientFacts:
    """Reduce FHIR R4 resource dicts to one PatientFacts; never raises on the resources' shape."""
    builder = _Builder(knowledge, now, _normalise_references(exclude))
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


def _normalise_references(references: Collection[str]) -> frozenset[str]:
    """ "Type/id" of each reference, also from absolute URLs and versioned references."""
    normalised = set()
    for reference in references if isinstance(references, Iterable) else ():
        if not isinstance(reference, str):
            continue
        parts = [p for p in reference.split("/_history/")[0].split("/") if p]
        if len(parts) >= 2:
            normalised.add(f"{parts[-2]}/{parts[-1]}")
    return frozenset(normalised)


# -- reading the models -----------------------------------------------------------------------


def _codes(concept: Any) -> set[str]:
    """The codes of a CodeableConcept (any system), e.g. a clinicalStatus."""
    if concept is None:
        return set()
    return {c.code for c in concept.coding or () if c.code}


def _notes(model: Any) -> list[str]:
    return [n.text for n in getattr(model, "note", None) or () if n.text]


def _period_start(period: Any) -> Any:
    return period.start if period is not None else None


def _period_end(period: Any) -> Any:
    return period.end if period is not None else None


def _texts_of(concept: Any) -> list[str]:
    """code.text and every coding.display of a CodeableConcept."""
    if concept is None:
        return []
    texts = [c.display for c in concept.coding or () if c.display]
    if concept.text:
        texts.append(concept.text)
    return texts


@dataclass(slots=True)
class _Hit:
    """One concept recognised in one resource."""

    strength: Strength
    qualifiers: set[str] = field(default_factory=set)
    values: list[float] = field(default_factory=list)  # MRC grades, temperatures read from text
    graded: list[tuple[float, frozenset[str]]] = field(default_factory=list)  # value, qualifiers


@dataclass(slots=True)
class _Recognised:
    """Concepts found in one resource: positive hits, and concepts only stated as absent.

    From text also what a clinician suspects ("verdenking ...") and what lies in the past
    ("VG: mammacarcinoom"); family members', conditional and reported mentions count as neither.
    """

    hits: dict[str, _Hit]
    negated: dict[str, set[str]]
    suspected: dict[str, set[str]] = field(default_factory=dict)
    history: dict[str, set[str]] = field(default_factory=dict)


class _Builder:
    """Accumulates facts resource by resource; `build` freezes them into PatientFacts."""

    def __init__(self, knowledge: Knowledge, now: datetime, exclude: frozenset[str]) -> None:
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
        self.other_condition_dates: list[date] = []
        self.medications: list[Medication] = []
        self.care: dict[str, list[tuple[date, date, str]]] = {}
        self.scores: list[Score] = []
        self.prior_imaging: list[PriorImaging] = []
        self.notes: dict[str, None] = {}
        self.suspected: dict[tuple[str, str], Finding] = {}
        self.text_evidence: dict[TextEvidence, None] = {}
        self.reading: str = ""  # the reference of the resource being read, for the trail

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
        if kind not in _READERS:
            return
        raw_id = item.get("id")
        has_id = isinstance(raw_id, str) and _FHIR_ID.match(raw_id) is not None
        reference = f"{kind}/{raw_id}" if has_id else f"{kind}/#{index}"
        if reference in self.exclude:
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
            getattr(self, _READERS[kind])(model, reference)
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
    ) -> _Recognised:
        """Concepts of CodeableConcepts (codes first) and texts; code beats text, text beats no.

        Codes come first: the text of a CodeableConcept whose code is recognised may add
        findings and qualifiers, but never another back-pain episode ("L02 rugklachten
        thoracaal" is no low back pain). `section` is the SOEP line type of the texts.
        """
        hits: dict[str, _Hit] = {}
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
                        hits.setdefault(concept_id, _Hit(Strength.CODE))
            code_texts.extend(_texts_of(concept))
        recognised = _Recognised(hits, {})
        for text in code_texts:
            self._read_text(recognised, text, None, codes_first=coded, code_text=True)
        for text in texts:
            if text:
                self._read_text(recognised, text, section, codes_first=False)
        # A concept both coded (or positively worded) and negated in one resource is taken as
        # present: the negation usually belongs to another sentence ("no longer ...").
        for concept_id in hits:
            recognised.negated.pop(concept_id, None)
            recognised.suspected.pop(concept_id, None)
        return recognised

    def _read_text(
        self,
        recognised: _Recognised,
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
                    hit = hits[concept] = _Hit(Strength.TEXT)
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
            # conditional (plans, safety-netting), family and the patient's own words for a
            # deficit are no finding of this patient now: they stay in the trail only

    def keep_text_context(self, recognised: _Recognised, reference: str, when: date | None) -> None:
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
        recognised: _Recognised,
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
                        side = _side(found)
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
        self, recognised: _Recognised, reference: str, when: date | None
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
            for text in _texts_of(site):
                found |= exam.laterality_from_text(text)
        if {"left", "right"} <= found:
            found.add("bilateral")
        return found

    # -- Patient -------------------------------------------------------------------------------

    def _read_patient(self, patient: Any, reference: str) -> None:
        """Age in whole years at the hook call; the first Patient wins."""
        if self.patient_seen:
            return
        self.patient_seen = True
        birth = self.when(patient.birthDate)
        if birth is None:
            self.note(f"{reference}: no birthDate")
            return
        if is_partial(patient.birthDate):
            # "1970" or "1970-03" counts from its first day: the age may be one year high,
            # which errs towards the age-based red flags rather than away from them.
            self.note(f"{reference}: birthDate partial")
        age = age_in_years(birth, self.today)
        if age < 0:
            self.note(f"{reference}: birthDate in the future")
            return
        self.age = age

    # -- Condition -----------------------------------------------------------------------------

    def _read_condition(self, condition: Any, reference: str) -> None:
        """Findings, the back-pain episode and the record's history from one Condition."""
        if _codes(condition.verificationStatus) & _CONDITION_IGNORED:
            return
        current = not (_codes(condition.clinicalStatus) & _CONDITION_HISTORY)
        onset = self.when(condition.onsetDateTime) or self.when(
            _period_start(condition.onsetPeriod)
        )
        when = onset or self.when(condition.recordedDate)
        # The code says what the Condition is; notes may mention other things ("also
        # diabetic"), so only the code decides whether this is a back-pain episode, and the
        # structured severity and body site qualify only what the code names.
        code = self.recognise([condition.code])
        notes = self.recognise([], _notes(condition))
        severity = self._severity(condition.severity)
        qualifiers = self.structural_qualifiers(condition.bodySite or ())
        if severity == "severe":
            qualifiers.add("severe")

        episode = False
        for source, structured in ((code, True), (notes, False)):
            for concept, hit in source.hits.items():
                if self.kind(concept) in ("order", "measurement", None):
                    continue
                finding = Finding(
                    concept,
                    reference,
                    when,
                    hit.strength,
                    severity=severity if structured else None,
                    qualifiers=frozenset(
                        hit.qualifiers | qualifiers if structured else hit.qualifiers
                    ),
                    current=current,
                )
                self.put(finding)
                if structured and concept in EPISODE_CONCEPTS:
                    episode = True
                    if not current:
                        self.prior_episodes.append(finding)
            if not current:
                continue
            for concept, negated_qualifiers in source.negated.items():
                self.put(
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
            self.keep_text_context(code, reference, when)
            self.keep_text_context(notes, reference, when)
        if episode and current:
            self.episode_references.append(reference)
            if when is not None:
                self.episode_dates.append(when)
        elif not episode and when is not None:
            self.other_condition_dates.append(when)

    def _severity(self, severity: Any) -> str | None:
        """Condition.severity as "severe" / "moderate" / "mild" by SNOMED code or by word."""
        if severity is None:
            return None
        for coding in severity.coding or ():
            if coding.code in exam.SEVERITY_CODES:
                return exam.SEVERITY_CODES[coding.code]
        for text in _texts_of(severity):
            found = exam.severity_from_text(text)
            if found:
                return found
        return None

    # -- Observation ---------------------------------------------------------------------------

    def _read_observation(self, observation: Any, reference: str) -> None:
        """Measurements, scores and findings from one Observation."""
        if observation.status == "cancelled":
            return
        when = (
            self.when(observation.effectiveDateTime)
            or self.when(_period_start(observation.effectivePeriod))
            or self.when(observation.effectiveInstant)
            or self.when(observation.issued)
        )
        code = self.recognise([observation.code])
        value_texts = [observation.valueString, *_notes(observation)]
        value = self.recognise(
            [observation.valueCodeableConcept], value_texts, section=self._line_type(observation)
        )
        qualifiers = self.structural_qualifiers([observation.bodySite])
        # the value of an Observation whose code names the measurement is read as its value
        measured = {c for c in code.hits if self.kind(c) == "measurement"}
        self.text_measurements(value, reference, when, qualifiers, skip=measured)
        self.keep_text_context(value, reference, when)
        if when is not None and observation.status not in ("registered", "preliminary"):
            self._care_and_imaging_from_text(observation, value, reference, when)

        for concept, hit in code.hits.items():
            if self.kind(concept) == "measurement":
                self._measure(concept, hit, observation, reference, when, qualifiers)

        negative = self._negative_value(observation)
        sources = [(code, True), (value, False)]
        if self._is_lab_test(observation) and not self._positive_value(observation):
            # A laboratory test names what was tested: "HIV-test" with no result, or a result
            # that is not positive, is no HIV (issue 10; only results are findings).
            sources = [(value, False)]
        elif not negative:
            sources.append((self._test_with_result(observation), False))
        for source, can_be_negative in sources:
            for concept, hit in source.hits.items():
                if self.kind(concept) in ("order", "measurement", None):
                    continue
                finding = Finding(
                    concept,
                    reference,
                    when,
                    hit.strength,
                    qualifiers=frozenset(hit.qualifiers | qualifiers),
                )
                self.put(finding, absent=can_be_negative and negative)
            for concept, negated_qualifiers in source.negated.items():
                if self.kind(concept) in ("order", "measurement", None):
                    continue
                self.put(
                    Finding(
                        concept,
                        reference,
                        when,
                        Strength.TEXT,
                        qualifiers=frozenset(negated_qualifiers | qualifiers),
                    ),
                    absent=True,
                )

        # A panel (a neurological examination with one MRC grade per muscle and side) keeps
        # its results in components: each is read as an Observation of its own, so two grades
        # of one panel stay two findings.
        for index, component in enumerate(getattr(observation, "component", None) or ()):
            self._read_observation(
                _component_view(observation, component), f"{reference}#component-{index}"
            )

    def _care_and_imaging_from_text(
        self, observation: Any, value: _Recognised, reference: str, when: date
    ) -> None:
        """Dutch GP records carry care and prior imaging as text, not Procedures (issue 10).

        A journal line or result that affirms exercise therapy or physiotherapy ("Cesar-
        oefentherapie, 6e behandeling") is a care session on its date; one that reports a
        lumbar scan's result ("MRI LWK toont HNP L5-S1"), or a result coded as a lumbar scan
        (NHG Tabel 45 "CT-onderrug/lumbale wervelkolom" with a value), is prior imaging.
        """
        for concept, kind in _CARE_KIND.items():
            if concept in value.hits:
                self.care.setdefault(kind, []).append((when, when, reference))
        if self._based_on_excluded(observation):
            return
        names = _texts_of(observation.code)
        results = [t for t in (observation.valueString, *_notes(observation)) if t]
        for name in names:
            modality = self.order_modality(name)
            if modality is not None and results:
                self.prior_imaging.append(PriorImaging(modality, when, reference))
                return
        for text in results:
            modality = self.order_modality(text)
            if modality is not None and _IMAGING_RESULT.search(exam.fold(text)):
                self.prior_imaging.append(PriorImaging(modality, when, reference))
                return

    @staticmethod
    def _is_lab_test(observation: Any) -> bool:
        """True for an Observation in the laboratory category."""
        return any(
            "laboratory" in _codes(category)
            for category in getattr(observation, "category", None) or ()
        )

    @staticmethod
    def _positive_value(observation: Any) -> bool:
        """True when a test's value or interpretation says positive, detected or reactive."""
        for interpretation in observation.interpretation or ():
            if _codes(interpretation) & _POSITIVE_INTERPRETATION:
                return True
        if observation.valueBoolean is True:
            return True
        value = observation.valueCodeableConcept
        texts = [observation.valueString] if isinstance(observation.valueString, str) else []
        if value is not None:
            if _codes(value) & _POSITIVE_VALUE_CODES:
                return True
            texts += _texts_of(value)
        return any(_POSITIVE_WORDS.search(exam.fold(t)) for t in texts)

    @staticmethod
    def _line_type(observation: Any) -> str | None:
        """The SOEP line type of a GP journal line, or "O" for an examination Observation."""
        for coding in getattr(observation.code, "coding", None) or ():
            if coding.system == _JOURNAL_LINE_SYSTEM and (coding.code or "").upper() in _SOEP:
                return _SOEP[(coding.code or "").upper()]
        for category in getattr(observation, "category", None) or ():
            if _codes(category) & _EXAM_CATEGORIES:
                return "O"
        return None

    def _test_with_result(self, observation: Any) -> _Recognised:
        """The code's name and the value read as one phrase: "Lasègue" + "positief".

        An examination Observation names the test in its code and the result in its value;
        the keywords are written as phrases of both ("lasègue positief", "reflex afwezig").
        Side words are taken out of the name so they do not split such a phrase, and are
        given back as qualifiers.
        """
        code = observation.code
        name = code.text or next((c.display for c in code.coding or () if c.display), None)
        results = [observation.valueString, *_texts_of(observation.valueCodeableConcept)]
        results = [r for r in results if r]
        if not name or not results:
            return _Recognised({}, {})
        sides = exam.laterality_from_text(name)
        bare = exam.without_laterality(name)
        recognised = self.recognise([], [f"{bare} {result}" for result in results])
        for hit in recognised.hits.values():
            hit.qualifiers |= sides
        return recognised

    @staticmethod
    def _negative_value(observation: Any) -> bool:
        """True when the Observation's value says the coded finding is not there."""
        if observation.valueBoolean is False:
            return True
        for interpretation in observation.interpretation or ():
            # "N" / "NEG" on an Observation that names a finding: the finding is not there.
            if _codes(interpretation) & _NEGATIVE_INTERPRETATION:
                return True
        value = observation.valueCodeableConcept
        if value is not None:
            for coding in value.coding or ():
                if coding.code in exam.NEGATIVE_VALUE_CODES:
                    return True
            if any(exam.is_negative_value_text(t) for t in _texts_of(value)):
                return True
        return isinstance(observation.valueString, str) and exam.is_negative_value_text(
            observation.valueString
        )

    def _measure(
        self,
        concept: str,
        hit: _Hit,
        observation: Any,
        reference: str,
        when: date | None,
        qualifiers: set[str],
    ) -> None:
        """One measurement concept of an Observation: value, unit, result and derived facts."""
        if concept in _SCORE_KIND:
            self._score(concept, observation, reference, when)
            return
        base = Finding(
            concept,
            reference,
            when,
            hit.strength,
            qualifiers=frozenset(hit.qualifiers | qualifiers),
        )
        if concept == "body-temperature":
            self._quantity(base, observation, celsius, "Cel")
        elif concept == "body-weight":
            self._quantity(base, observation, kilograms, "kg")
        elif concept == "muscle-strength":
            self._strength(base, observation)
        elif concept in ("reflex-test", "sensation-test", "neuro-exam"):
            self._exam(base, observation)
        else:
            self.put(base)

    def _quantity(self, base: Finding, observation: Any, convert: Any, unit: str) -> None:
        """A valueQuantity converted to the rules' unit; unconvertible units become a note.

        A bare number in valueString ("38,6") counts as a quantity without a unit: `convert`
        then decides whether the number alone is unambiguous (temperatures are; weights not).
        """
        quantity = observation.valueQuantity
        if quantity is not None:
            number = as_float(quantity.value)
            unit_code = unit_key(quantity.code, quantity.unit)
        else:
            text = observation.valueString
            number = _plain_number(text) if isinstance(text, str) else None
            unit_code = None
        if number is None:
            self.note(f"{base.reference}: no value")
            return
        converted = convert(number, unit_code)
        if converted is None:
            self.note(f"{base.reference}: unit not convertible")
            return
        self.put(replace(base, value=converted, unit=unit))

    def _strength(self, base: Finding, observation: Any) -> None:
        """MRC grade 0-5 from valueInteger, valueQuantity or text such as "4/5"."""
        grade = _number_value(observation, mrc_grade)
        if grade is None:
            self.note(f"{base.reference}: no value")
            return
        if not 0 <= grade <= 5:
            self.note(f"{base.reference}: value out of range")
            return
        self.put(replace(base, value=grade))
        if grade == 5:
            # Full strength proves the examination was done and found no weakness.
            self.put(replace(base, concept="muscle-weakness", value=None), absent=True)

    def _exam(self, base: Finding, observation: Any) -> None:
        """Reflex, sensation or neurological examination: normal / abnormal, and what follows."""
        result = self._exam_result(base.concept, observation)
        qualifiers = set(base.qualifiers)
        if result is not None:
            qualifiers.add("normal" if result is exam.ExamResult.NORMAL else "abnormal")
        finding = replace(base, qualifiers=frozenset(qualifiers))
        self.put(finding)
        # A diminished/absent reflex is reflex loss; a brisk one is abnormal but not a loss.
        derived = {"reflex-test": "reflex-loss", "sensation-test": "sensory-loss"}.get(base.concept)
        if derived is None or result is None or result is exam.ExamResult.RAISED:
            return
        self.put(replace(finding, concept=derived), absent=result is exam.ExamResult.NORMAL)

    @staticmethod
    def _exam_result(concept: str, observation: Any) -> exam.ExamResult | None:
        """Interpretation codes first, then value and interpretation texts, then a 0-4 grade."""
        for interpretation in observation.interpretation or ():
            for coding in interpretation.coding or ():
                if coding.code:
                    result = exam.exam_result_from_interpretation(coding.code)
                    if result is not None:
                        return result
        texts: list[str] = []
        for interpretation in observation.interpretation or ():
            texts.extend(_texts_of(interpretation))
        texts.extend(_texts_of(observation.valueCodeableConcept))
        if observation.valueString:
            texts.append(observation.valueString)
        for text in texts:
            result = exam.exam_result_from_text(text)
            if result is not None:
                return result
        if observation.valueBoolean is not None:
            return exam.ExamResult.NORMAL if observation.valueBoolean else None
        if concept == "reflex-test":
            grade = _number_value(observation, None)
            if grade is not None:
                return exam.exam_result_from_reflex_grade(grade)
        return None

    def _score(self, concept: str, observation: Any, reference: str, when: date | None) -> None:
        """Pain NRS (0-10) and Oswestry (0-100) as dated scores."""
        kind, maximum = _SCORE_KIND[concept]
        value = _number_value(observation, _plain_number)
        if value is None:
            self.note(f"{reference}: no value")
            return
        if not 0 <= value <= maximum:
            self.note(f"{reference}: value out of range")
            return
        if when is None:
            self.note(f"{reference}: no date")
            return
        self.scores.append(Score(kind, when, value, reference))

    # -- Procedure -----------------------------------------------------------------------------

    def _read_procedure(self, procedure: Any, reference: str) -> None:
        """Spinal procedures, conservative care, prior imaging and referrals from a Procedure."""
        status = procedure.status
        if status == "not-done":
            return
        start = self.when(procedure.performedDateTime) or self.when(
            _period_start(procedure.performedPeriod)
        )
        end = self.when(_period_end(procedure.performedPeriod)) or start
        performed = status in _PROCEDURE_PERFORMED or (
            status == "unknown" and start is not None and start <= self.today
        )
        planned = status in _PROCEDURE_PLANNED
        code = self.recognise([procedure.code])
        context = self.recognise(procedure.reasonCode or (), [*_notes(procedure)])
        qualifiers = self.structural_qualifiers(procedure.bodySite or ())

        for concept, hit in code.hits.items():
            if concept == "spinal-procedure" and (performed or planned):
                extra = {"planned"} if planned else set()
                self.put(
                    Finding(
                        concept,
                        reference,
                        start,
                        hit.strength,
                        qualifiers=frozenset(hit.qualifiers | qualifiers | extra),
                    )
                )
            elif concept == "surgical-referral" and self._is_referral(code, planned):
                self.put(Finding(concept, reference, start, hit.strength))
            elif concept in _CARE_KIND and performed:
                if start is None:
                    self.note(f"{reference}: no date")
                else:
                    self.care.setdefault(_CARE_KIND[concept], []).append(
                        (start, max(start, end or start), reference)
                    )
        if performed and start is not None and not self._based_on_excluded(procedure):
            modality = self._imaging_modality(code, [procedure.code])
            if modality is not False:
                self.prior_imaging.append(PriorImaging(modality, start, reference))
        self.surgical_indication(code, reference, start)
        self.surgical_indication(context, reference, start)

    @staticmethod
    def _is_referral(code: _Recognised, planned: bool) -> bool:
        """A Procedure is a referral unless it is the spinal intervention itself, done.

        "epidurale injectie" names both a referral target and the intervention: once
        performed it is a spinal procedure (an infection risk), not a plan for surgery.
        """
        return planned or "spinal-procedure" not in code.hits

    def _imaging_modality(self, recognised: _Recognised, concepts: list[Any]) -> Any:
        """Modality of lumbar imaging named by code or text; False when it is not one."""
        for concept in recognised.hits:
            if concept in _ORDER_MODALITY:
                return _ORDER_MODALITY[concept]
        for concept in concepts:
            for text in _texts_of(concept):
                modality = self.order_modality(text)
                if modality is not None:
                    return modality
        return False

    def _based_on_excluded(self, resource: Any) -> bool:
        """True when the resource fulfils one of the draft orders being judged."""
        for based_on in getattr(resource, "basedOn", None) or ():
            if based_on.reference and _normalise_references([based_on.reference]) & self.exclude:
                return True
        return False

    # -- ServiceRequest ------------------------------------------------------------------------

    def _read_service_request(self, request: Any, reference: str) -> None:
        """Planned spinal procedures and surgical referrals; never prior imaging."""
        status = request.status
        if status == "revoked":
            return
        when = (
            self.when(request.authoredOn)
            or self.when(request.occurrenceDateTime)
            or self.when(_period_start(request.occurrencePeriod))
        )
        code = self.recognise([request.code])
        performers = [p.display for p in request.performer or () if p.display]
        context = self.recognise(
            [request.performerType, *(request.reasonCode or ())],
            [*performers, *_notes(request)],
        )
        if status in _REQUEST_PLANNED:
            hit = code.hits.get("spinal-procedure")
            if hit is not None:
                self.put(
                    Finding(
                        "spinal-procedure",
                        reference,
                        when,
                        hit.strength,
                        qualifiers=frozenset(hit.qualifiers | {"planned"}),
                    )
                )
        if status in _REQUEST_REFERRAL:
            hit = code.hits.get("surgical-referral") or context.hits.get("surgical-referral")
            if hit is not None:
                self.put(Finding("surgical-referral", reference, when, hit.strength))
        if status == "completed":
            # a completed referral for therapy with its period is care given over that period
            # (GP systems record Cesar / Mensendieck / physiotherapy this way, issue 10)
            period = request.occurrencePeriod
            start = self.when(_period_start(period)) or self.when(request.occurrenceDateTime)
            end = self.when(_period_end(period)) or start
            for concept, kind in _CARE_KIND.items():
                if concept in code.hits and start is not None:
                    self.care.setdefault(kind, []).append((start, max(start, end), reference))
        self.surgical_indication(code, reference, when)
        self.surgical_indication(context, reference, when)

    # -- prior imaging -------------------------------------------------------------------------

    def _read_imaging_study(self, study: Any, reference: str) -> None:
        """Prior lumbar imaging from procedure codes, descriptions and series."""
        if study.status in _STUDY_IGNORED or self._based_on_excluded(study):
            return
        procedures = list(study.procedureCode or ())
        modality = self._imaging_modality(self.recognise(procedures), procedures)
        series_modality: Modality | None = None
        lumbar_series = False
        for series in study.series or ():
            if series.modality is not None and series_modality is None:
                series_modality = _DICOM_MODALITY.get((series.modality.code or "").upper())
            site = series.bodySite
            if site is not None and (site.code or "").upper() in _LUMBAR_BODY_SITES:
                lumbar_series = True
            if modality is False:
                for text in (series.description, site.display if site else None):
                    if text and self.order_modality(text) is not None:
                        modality = self.order_modality(text)
                        break
        if modality is False and study.description:
            modality = self.order_modality(study.description) or False
        if modality is False and lumbar_series:
            modality = series_modality
        if modality is False:
            return
        started = self.when(study.started)
        if started is None:
            self.note(f"{reference}: no date")
            return
        self.prior_imaging.append(PriorImaging(modality or series_modality, started, reference))

    def _read_diagnostic_report(self, report: Any, reference: str) -> None:
        """Prior lumbar imaging from a radiology report's code."""
        if report.status not in _REPORT_DONE or self._based_on_excluded(report):
            return
        code = self.recognise([report.code], [report.conclusion])
        when = (
            self.when(report.effectiveDateTime)
            or self.when(_period_start(report.effectivePeriod))
            or self.when(report.issued)
        )
        self.surgical_indication(code, reference, when)
        modality = self._imaging_modality(code, [report.code])
        if modality is False:
            return
        if when is None:
            self.note(f"{reference}: no date")
            return
        self.prior_imaging.append(PriorImaging(modality, when, reference))

    # -- medication ----------------------------------------------------------------------------

    def _read_medication_statement(self, statement: Any, reference: str) -> None:
        """A course per recognised medication concept of a MedicationStatement."""
        if statement.status == "not-taken":
            return
        concepts = self._medication_concepts(statement, reference)
        if concepts:
            course = self._statement_course(statement)
            for concept in concepts:
                self.medications.append(Medication(concept, reference, *course))

    def _read_medication_request(self, request: Any, reference: str) -> None:
        """A course per recognised medication concept of a MedicationRequest."""
        if request.status in ("cancelled", "draft"):
            return
        concepts = self._medication_concepts(request, reference)
        if concepts:
            course = self._request_course(request)
            for concept in concepts:
                self.medications.append(Medication(concept, reference, *course))

    def _medication_concepts(self, resource: Any, reference: str) -> list[str]:
        medication_reference = resource.medicationReference
        recognised = self.recognise(
            [resource.medicationCodeableConcept],
            [medication_reference.display if medication_reference else None],
        )
        concepts = [c for c in recognised.hits if self.kind(c) == "medication"]
        # on a medication, a word for immunosuppression names an immunosuppressive drug
        if "immunosuppression" in recognised.hits and "immunosuppressive-drug" not in concepts:
            concepts.append("immunosuppressive-drug")
        return concepts

    def _statement_course(
        self, statement: Any
    ) -> tuple[date | None, date | None, int | None, bool]:
        """Start, end, days and activity of a MedicationStatement.

        Start and end come from effectivePeriod, or effectiveDateTime as the start. An active
        statement is ongoing: without an end its course counts until the hook call.
        """
        period = statement.effectivePeriod
        start = self.when(_period_start(period)) or self.when(statement.effectiveDateTime)
        end = self.when(_period_end(period))
        return self._course(start, end, statement.status == "active")

    def _request_course(self, request: Any) -> tuple[date | None, date | None, int | None, bool]:
        """Start, end, days and activity of a MedicationRequest.

        Start is authoredOn (else the validity period's start). The supply is
        expectedSupplyDuration times (1 + numberOfRepeatsAllowed) — FHIR counts repeats in
        addition to the first dispense; without a supply duration the validity period's end is
        the end. An active request without either counts until the hook call.
        """
        dispense = request.dispenseRequest
        validity = dispense.validityPeriod if dispense is not None else None
        start = self.when(request.authoredOn) or self.when(_period_start(validity))
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
            end = self.when(_period_end(validity))
        return self._course(start, end, request.status == "active")

    def _course(
        self, start: date | None, end: date | None, active_status: bool
    ) -> tuple[date | None, date | None, int | None, bool]:
        """Days of a course counted inclusively; an active course without end runs to today."""
        if end is not None and start is not None and end < start:
            end = None
        active = active_status and (end is None or end >= self.today)
        if start is None:
            return None, end, None, active
        if end is not None:
            return start, end, (end - start).days + 1, active
        if active:
            return start, None, max((self.today - start).days + 1, 0), active
        return start, None, None, active

    # -- result --------------------------------------------------------------------------------

    def build(self) -> PatientFacts:
        """Freeze everything read so far into PatientFacts."""
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


def _side(qualifiers: frozenset[str]) -> str:
    """ "bilateral", "left", "right" or "" (no side) from a finding's qualifiers."""
    for side in ("bilateral", "left", "right"):
        if side in qualifiers:
            return side
    return ""


def _plain_number(text: str) -> float | None:
    """A number from text such as "6", "6/10", "42 %" or "4,5"."""
    match = _NUMBER.match(text)
    return float(match.group(1).replace(",", ".")) if match else None


_COMPONENT_FIELDS = (
    "code",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "interpretation",
)


def _component_view(observation: Any, component: Any) -> SimpleNamespace:
    """An Observation-shaped view of one component: its code and value, the parent's context."""
    view = SimpleNamespace(
        status=observation.status,
        effectiveDateTime=observation.effectiveDateTime,
        effectivePeriod=observation.effectivePeriod,
        effectiveInstant=observation.effectiveInstant,
        issued=observation.issued,
        bodySite=observation.bodySite,
        note=None,
        component=None,
    )
    for name in _COMPONENT_FIELDS:
        setattr(view, name, getattr(component, name, None))
    return view


def _number_value(observation: Any, parse_text: Any) -> float | None:
    """valueInteger, valueQuantity.value, or valueString read by `parse_text`."""
    if observation.valueInteger is not None:
        return as_float(observation.valueInteger)
    if observation.valueQuantity is not None:
        return as_float(observation.valueQuantity.value)
    if parse_text is not None:
        for text in (observation.valueString, *_texts_of(observation.valueCodeableConcept)):
            if text:
                number = parse_text(text)
                if number is not None:
                    return number
    return None


__all__ = ["EPISODE_CONCEPTS", "extract_facts"]
