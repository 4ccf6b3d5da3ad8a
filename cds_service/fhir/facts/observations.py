"""Observation: measurements, examinations, scores, findings and GP journal lines."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from types import SimpleNamespace
from typing import Any

from cds_service.fhir import exam
from cds_service.fhir.facts.builder import FactsBuilder, Hit, Recognised
from cds_service.fhir.facts.common import (
    CARE_KIND,
    codes_of,
    note_texts,
    number_value,
    period_start,
    plain_number,
    texts_of,
)
from cds_service.fhir.facts.registry import reads
from cds_service.fhir.units import as_float, celsius, kilograms, mrc_grade, unit_key
from cds_service.rules.model import (
    Finding,
    PriorImaging,
    Score,
    Strength,
)

_SCORE_KIND = {"pain-score": ("pain-nrs", 10.0), "oswestry": ("oswestry", 100.0)}
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
# A score written in a journal line: "NRS 7", "VAS: 6/10", "pijnscore 8", "ODI 42 %". The reader
# has affirmed the score's name in the text; this takes the number that follows it.
_TEXT_SCORE = {
    "pain-score": re.compile(
        r"\b(?:nrs|vas|pijnscore|pijn score|pain score)\s*[:=]?\s*(\d{1,2}(?:[.,]\d)?)"
        r"(?:\s*/\s*10)?(?![\d/]|[.,]\d)",
        re.IGNORECASE,
    ),
    "oswestry": re.compile(
        r"\b(?:odi|oswestry)\s*[:=]?\s*(\d{1,3})\s*%?(?![\d/]|[.,]\d)", re.IGNORECASE
    ),
}
# Observation categories whose text is an examination.
_EXAM_CATEGORIES = frozenset({"exam", "physical-exam"})


@reads("Observation")
def read_observation(b: FactsBuilder, observation: Any, reference: str) -> None:
    """Measurements, scores and findings from one Observation."""
    if observation.status == "cancelled":
        return
    when = (
        b.when(observation.effectiveDateTime)
        or b.when(period_start(observation.effectivePeriod))
        or b.when(observation.effectiveInstant)
        or b.when(observation.issued)
    )
    code = b.recognise([observation.code])
    value_texts = [observation.valueString, *note_texts(observation)]
    value = b.recognise(
        [observation.valueCodeableConcept], value_texts, section=_line_type(observation)
    )
    qualifiers = b.structural_qualifiers([observation.bodySite])
    # the value of an Observation whose code names the measurement is read as its value
    measured = {c for c in code.hits if b.kind(c) == "measurement"}
    b.text_measurements(value, reference, when, qualifiers, skip=measured)
    b.keep_text_context(value, reference, when)
    if when is not None and observation.status not in ("registered", "preliminary"):
        _care_and_imaging_from_text(b, observation, value, reference, when)
        if not measured:
            _scores_from_text(b, value, [t for t in value_texts if t], reference, when)

    for concept, hit in code.hits.items():
        if b.kind(concept) == "measurement":
            _measure(b, concept, hit, observation, reference, when, qualifiers)

    negative = _negative_value(observation)
    sources = [(code, True), (value, False)]
    if _is_lab_test(observation) and not _positive_value(observation):
        # A laboratory test names what was tested: "HIV-test" with no result, or a result
        # that is not positive, is no HIV (issue 10; only results are findings).
        sources = [(value, False)]
    elif not negative:
        sources.append((_test_with_result(b, observation), False))
    for source, can_be_negative in sources:
        for concept, hit in source.hits.items():
            if b.kind(concept) in ("order", "measurement", None):
                continue
            finding = Finding(
                concept,
                reference,
                when,
                hit.strength,
                qualifiers=frozenset(hit.qualifiers | qualifiers),
            )
            b.put(finding, absent=can_be_negative and negative)
        for concept, negated_qualifiers in source.negated.items():
            if b.kind(concept) in ("order", "measurement", None):
                continue
            b.put(
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
        read_observation(
            b, _component_view(observation, component), f"{reference}#component-{index}"
        )


def _scores_from_text(
    b: FactsBuilder, value: Recognised, texts: list[str], reference: str, when: date
) -> None:
    """Pain and Oswestry scores written in a journal line ("NRS 7"), as dated scores."""
    for concept, pattern in _TEXT_SCORE.items():
        hit = value.hits.get(concept)
        if hit is None or hit.strength is not Strength.TEXT:
            continue
        kind, maximum = _SCORE_KIND[concept]
        for text in texts:
            match = pattern.search(text)
            if match is None:
                continue
            number = float(match.group(1).replace(",", "."))
            if 0 <= number <= maximum:
                b.scores.append(Score(kind, when, number, reference))
            break


def _care_and_imaging_from_text(
    b: FactsBuilder, observation: Any, value: Recognised, reference: str, when: date
) -> None:
    """Dutch GP records carry care and prior imaging as text, not Procedures (issue 10).

    A journal line or result that affirms exercise therapy or physiotherapy ("Cesar-
    oefentherapie, 6e behandeling") is a care session on its date; one that reports a
    lumbar scan's result ("MRI LWK toont HNP L5-S1"), or a result coded as a lumbar scan
    (NHG Tabel 45 "CT-onderrug/lumbale wervelkolom" with a value), is prior imaging. A line
    that records a referral made ("Verwijzing aangemaakt", "verwezen naar") makes the therapy
    or surgeon of its plan a referral on its date.
    """
    for concept, kind in CARE_KIND.items():
        if concept in value.hits:
            b.care.setdefault(kind, []).append((when, when, reference))
    if "referral-made" in value.hits:
        # "Cesar of Mensendieck. Verwijzing aangemaakt." on a P line: the plan was carried out,
        # the therapy or the specialist it names is a referral made on the line's date
        for concept, kind in CARE_KIND.items():
            if concept in value.planned and concept not in value.hits:
                b.care.setdefault(kind, []).append((when, when, reference))
        if "surgical-referral" in value.planned or "surgical-referral" in value.hits:
            b.put(Finding("surgical-referral", reference, when, Strength.TEXT))
    if b.based_on_excluded(observation):
        return
    names = texts_of(observation.code)
    results = [t for t in (observation.valueString, *note_texts(observation)) if t]
    for name in names:
        modality = b.order_modality(name)
        if modality is not None and results:
            b.prior_imaging.append(PriorImaging(modality, when, reference))
            return
    for text in results:
        modality = b.order_modality(text)
        if modality is not None and _IMAGING_RESULT.search(exam.fold(text)):
            b.prior_imaging.append(PriorImaging(modality, when, reference))
            return


def _is_lab_test(observation: Any) -> bool:
    """True for an Observation in the laboratory category."""
    return any(
        "laboratory" in codes_of(category)
        for category in getattr(observation, "category", None) or ()
    )


def _positive_value(observation: Any) -> bool:
    """True when a test's value or interpretation says positive, detected or reactive."""
    for interpretation in observation.interpretation or ():
        if codes_of(interpretation) & _POSITIVE_INTERPRETATION:
            return True
    if observation.valueBoolean is True:
        return True
    value = observation.valueCodeableConcept
    texts = [observation.valueString] if isinstance(observation.valueString, str) else []
    if value is not None:
        if codes_of(value) & _POSITIVE_VALUE_CODES:
            return True
        texts += texts_of(value)
    return any(_POSITIVE_WORDS.search(exam.fold(t)) for t in texts)


def _line_type(observation: Any) -> str | None:
    """The SOEP line type of a GP journal line, or "O" for an examination Observation."""
    for coding in getattr(observation.code, "coding", None) or ():
        if coding.system == _JOURNAL_LINE_SYSTEM and (coding.code or "").upper() in _SOEP:
            return _SOEP[(coding.code or "").upper()]
    for category in getattr(observation, "category", None) or ():
        if codes_of(category) & _EXAM_CATEGORIES:
            return "O"
    return None


def _test_with_result(b: FactsBuilder, observation: Any) -> Recognised:
    """The code's name and the value read as one phrase: "Lasègue" + "positief".

    An examination Observation names the test in its code and the result in its value;
    the keywords are written as phrases of both ("lasègue positief", "reflex afwezig").
    Side words are taken out of the name so they do not split such a phrase, and are
    given back as qualifiers.
    """
    code = observation.code
    name = code.text or next((c.display for c in code.coding or () if c.display), None)
    results = [observation.valueString, *texts_of(observation.valueCodeableConcept)]
    results = [r for r in results if r]
    if not name or not results:
        return Recognised({}, {})
    sides = exam.laterality_from_text(name)
    bare = exam.without_laterality(name)
    recognised = b.recognise([], [f"{bare} {result}" for result in results])
    for hit in recognised.hits.values():
        hit.qualifiers |= sides
    return recognised


def _negative_value(observation: Any) -> bool:
    """True when the Observation's value says the coded finding is not there."""
    if observation.valueBoolean is False:
        return True
    for interpretation in observation.interpretation or ():
        # "N" / "NEG" on an Observation that names a finding: the finding is not there.
        if codes_of(interpretation) & _NEGATIVE_INTERPRETATION:
            return True
    value = observation.valueCodeableConcept
    if value is not None:
        for coding in value.coding or ():
            if coding.code in exam.NEGATIVE_VALUE_CODES:
                return True
        if any(exam.is_negative_value_text(t) for t in texts_of(value)):
            return True
    return isinstance(observation.valueString, str) and exam.is_negative_value_text(
        observation.valueString
    )


def _measure(
    b: FactsBuilder,
    concept: str,
    hit: Hit,
    observation: Any,
    reference: str,
    when: date | None,
    qualifiers: set[str],
) -> None:
    """One measurement concept of an Observation: value, unit, result and derived facts."""
    if concept in _SCORE_KIND:
        _score(b, concept, observation, reference, when)
        return
    base = Finding(
        concept,
        reference,
        when,
        hit.strength,
        qualifiers=frozenset(hit.qualifiers | qualifiers),
    )
    if concept == "body-temperature":
        _quantity(b, base, observation, celsius, "Cel")
    elif concept == "body-weight":
        _quantity(b, base, observation, kilograms, "kg")
    elif concept == "muscle-strength":
        _strength(b, base, observation)
    elif concept in ("reflex-test", "sensation-test", "neuro-exam"):
        _exam(b, base, observation)
    else:
        b.put(base)


def _quantity(b: FactsBuilder, base: Finding, observation: Any, convert: Any, unit: str) -> None:
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
        number = plain_number(text) if isinstance(text, str) else None
        unit_code = None
    if number is None:
        b.note(f"{base.reference}: no value")
        return
    converted = convert(number, unit_code)
    if converted is None:
        b.note(f"{base.reference}: unit not convertible")
        return
    b.put(replace(base, value=converted, unit=unit))


def _strength(b: FactsBuilder, base: Finding, observation: Any) -> None:
    """MRC grade 0-5 from valueInteger, valueQuantity or text such as "4/5"."""
    grade = number_value(observation, mrc_grade)
    if grade is None:
        b.note(f"{base.reference}: no value")
        return
    if not 0 <= grade <= 5:
        b.note(f"{base.reference}: value out of range")
        return
    b.put(replace(base, value=grade))
    if grade == 5:
        # Full strength proves the examination was done and found no weakness.
        b.put(replace(base, concept="muscle-weakness", value=None), absent=True)


def _exam(b: FactsBuilder, base: Finding, observation: Any) -> None:
    """Reflex, sensation or neurological examination: normal / abnormal, and what follows."""
    result = _exam_result(base.concept, observation)
    qualifiers = set(base.qualifiers)
    if result is not None:
        qualifiers.add("normal" if result is exam.ExamResult.NORMAL else "abnormal")
    finding = replace(base, qualifiers=frozenset(qualifiers))
    b.put(finding)
    # A diminished/absent reflex is reflex loss; a brisk one is abnormal but not a loss.
    derived = {"reflex-test": "reflex-loss", "sensation-test": "sensory-loss"}.get(base.concept)
    if derived is None or result is None or result is exam.ExamResult.RAISED:
        return
    b.put(replace(finding, concept=derived), absent=result is exam.ExamResult.NORMAL)


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
        texts.extend(texts_of(interpretation))
    texts.extend(texts_of(observation.valueCodeableConcept))
    if observation.valueString:
        texts.append(observation.valueString)
    for text in texts:
        result = exam.exam_result_from_text(text)
        if result is not None:
            return result
    if observation.valueBoolean is not None:
        return exam.ExamResult.NORMAL if observation.valueBoolean else None
    if concept == "reflex-test":
        grade = number_value(observation, None)
        if grade is not None:
            return exam.exam_result_from_reflex_grade(grade)
    return None


def _score(
    b: FactsBuilder, concept: str, observation: Any, reference: str, when: date | None
) -> None:
    """Pain NRS (0-10) and Oswestry (0-100) as dated scores."""
    kind, maximum = _SCORE_KIND[concept]
    value = number_value(observation, plain_number)
    if value is None:
        b.note(f"{reference}: no value")
        return
    if not 0 <= value <= maximum:
        b.note(f"{reference}: value out of range")
        return
    if when is None:
        b.note(f"{reference}: no date")
        return
    b.scores.append(Score(kind, when, value, reference))


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
