"""extract_facts: FHIR R4 resource dicts reduced to PatientFacts, with the real rule data."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cds_service.fhir.facts import extract_facts
from cds_service.rules.knowledge import Knowledge, default_knowledge
from cds_service.rules.model import Finding, Modality, PatientFacts, Strength

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICPC = "http://hl7.org/fhir/sid/icpc-2"
CPT = "http://www.ama-assn.org/go/cpt"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped rule data from mappings/."""
    return default_knowledge()


# -- resource builders ---------------------------------------------------------------------------


def days_ago(days: int) -> str:
    """An ISO date `days` before the fixed hook-call date."""
    return (TODAY - timedelta(days=days)).isoformat()


def cc(system: str | None = None, code: str | None = None, text: str | None = None) -> dict:
    """A CodeableConcept with at most one coding."""
    concept: dict[str, Any] = {}
    if code is not None:
        concept["coding"] = [{"system": system, "code": code}]
    if text is not None:
        concept["text"] = text
    return concept


def condition(rid: str, code: dict, *, onset: str | None = None, **extra: Any) -> dict:
    """A Condition for Patient/p."""
    resource = {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": "Patient/p"},
        "code": code,
        **extra,
    }
    if onset is not None:
        resource["onsetDateTime"] = onset
    return resource


def status(system: str, code: str) -> dict:
    """A Condition clinicalStatus / verificationStatus CodeableConcept."""
    return {"coding": [{"system": system, "code": code}]}


def observation(rid: str, code: dict, *, when: str | None = None, **extra: Any) -> dict:
    """A final Observation for Patient/p."""
    resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "code": code,
        **extra,
    }
    if when is not None:
        resource["effectiveDateTime"] = when
    return resource


def procedure(rid: str, code: dict, *, state: str = "completed", **extra: Any) -> dict:
    """A Procedure for Patient/p."""
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": state,
        "subject": {"reference": "Patient/p"},
        "code": code,
        **extra,
    }


def service_request(rid: str, code: dict, *, state: str = "active", **extra: Any) -> dict:
    """An order ServiceRequest for Patient/p."""
    return {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": state,
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "code": code,
        **extra,
    }


def facts_of(knowledge: Knowledge, *resources: Any, exclude: tuple[str, ...] = ()) -> PatientFacts:
    """extract_facts with the fixed hook-call time."""
    return extract_facts(list(resources), knowledge=knowledge, now=NOW, exclude=exclude)


def only(findings: tuple[Finding, ...], concept: str) -> Finding:
    """The single finding of a concept."""
    matching = [f for f in findings if f.concept == concept]
    assert len(matching) == 1, matching
    return matching[0]


def concepts(findings: tuple[Finding, ...]) -> set[str]:
    """Concept ids of the findings."""
    return {f.concept for f in findings}


# -- Patient -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "age"),
    [
        ("1970-01-16", 55),  # birthday tomorrow
        ("1970-01-15", 56),  # birthday today
        ("1970", 56),  # year only: counted from 1 January
        ("1970-06", 55),  # year and month: counted from the 1st
    ],
)
def test_age_in_whole_years_also_from_partial_birth_dates(
    knowledge: Knowledge, birth: str, age: int
) -> None:
    facts = facts_of(knowledge, {"resourceType": "Patient", "id": "p", "birthDate": birth})
    assert facts.age == age
    assert ("Patient/p: birthDate partial" in facts.data_notes) is (len(birth) < 10)


def test_missing_or_future_birth_date_gives_no_age(knowledge: Knowledge) -> None:
    assert facts_of(knowledge, {"resourceType": "Patient", "id": "p"}).age is None
    future = facts_of(knowledge, {"resourceType": "Patient", "id": "p", "birthDate": "2030-01-01"})
    assert future.age is None
    assert "Patient/p: birthDate in the future" in future.data_notes


# -- Conditions: status, episode, history --------------------------------------------------------


def test_entered_in_error_and_refuted_conditions_are_ignored(knowledge: Knowledge) -> None:
    fever = cc(SNOMED, "386661006")
    facts = facts_of(
        knowledge,
        condition("err", fever, verificationStatus=status(VERIFICATION, "entered-in-error")),
        condition("ref", fever, verificationStatus=status(VERIFICATION, "refuted")),
        observation("obs", fever, when=days_ago(1), **{"status": "entered-in-error"}),
        observation("cnc", fever, when=days_ago(1), **{"status": "cancelled"}),
        condition("ok", fever, verificationStatus=status(VERIFICATION, "confirmed")),
    )
    assert [f.reference for f in facts.findings] == ["Condition/ok"]


def test_resolved_condition_is_history_not_current(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        condition(
            "c", cc(SNOMED, "363346000"), clinicalStatus=status(CLINICAL, "resolved"), onset="2015"
        ),
    )
    finding = only(facts.findings, "malignancy")
    assert finding.current is False
    assert finding.when == date(2015, 1, 1)


def test_episode_onset_is_earliest_current_episode_condition(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        condition("lbp", cc(SNOMED, "279039007"), onset=days_ago(100)),
        # no onset: the recorded date stands in
        condition("sci", cc(SNOMED, "23056005"), recordedDate=days_ago(120)),
        condition(
            "old",
            cc(SNOMED, "279039007"),
            onset="2019-05-01",
            clinicalStatus=status(CLINICAL, "resolved"),
        ),
        condition("htn", cc(text="hypertensie"), onset="2012-03-04"),
        condition("dm", cc(SNOMED, "44054006"), recordedDate="2016-02-02T09:00:00+01:00"),
    )
    assert facts.episode_onset == TODAY - timedelta(days=120)
    assert facts.episode_references == ("Condition/lbp", "Condition/sci")
    assert [(f.reference, f.when) for f in facts.prior_episodes] == [
        ("Condition/old", date(2019, 5, 1))
    ]
    assert facts.earliest_other_condition == date(2012, 3, 4)
    assert facts.episode_weeks == pytest.approx(120 / 7)


def test_no_episode_without_back_pain_conditions(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, condition("dm", cc(SNOMED, "44054006"), onset="2020-01-01"))
    assert facts.episode_onset is None
    assert facts.episode_references == ()
    assert facts.earliest_other_condition == date(2020, 1, 1)


def test_only_the_code_makes_a_condition_an_episode(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        condition(
            "dm",
            cc(SNOMED, "44054006"),
            onset="2018-04-01",
            note=[{"text": "Heeft ook lage rugpijn"}],
            severity={"coding": [{"system": SNOMED, "code": "24484000"}]},
        ),
    )
    assert facts.episode_references == ()
    assert facts.earliest_other_condition == date(2018, 4, 1)
    # the note still yields a (text) finding, without the diabetes' structured severity
    back = only(facts.findings, "low-back-pain")
    assert back.strength is Strength.TEXT
    assert back.severity is None
    assert only(facts.findings, "diabetes").severity == "severe"


# -- recognition: codes, text, negation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code", "concept"),
    [
        (SNOMED, "279039007", "low-back-pain"),
        (ICD10, "M54.5", "low-back-pain"),
        (ICD10, "M545", "low-back-pain"),  # without the dot
        (ICD10CM, "M54.50", "low-back-pain"),
        (ICD10, "M54.41", "sciatica"),  # a row matched by prefix
        (ICPC, "L03", "low-back-pain"),
        (ICPC, "L86", "sciatica"),
        (SNOMED, "192970008", "cauda-equina"),
    ],
)
def test_coded_conditions_are_code_strength(
    knowledge: Knowledge, system: str, code: str, concept: str
) -> None:
    facts = facts_of(knowledge, condition("c", cc(system, code), onset=days_ago(3)))
    finding = only(facts.findings, concept)
    assert finding.strength is Strength.CODE
    assert finding.when == TODAY - timedelta(days=3)


def test_thoracic_back_complaint_is_not_low_back_pain(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, condition("c", cc(ICPC, "L02"), onset=days_ago(3)))
    assert facts.episode_references == ()


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("Lage rugpijn sinds twee weken", "low-back-pain"),
        ("Low back pain", "low-back-pain"),
        ("Klapvoet rechts", "foot-drop"),
        ("Foot drop", "foot-drop"),
    ],
)
def test_text_only_conditions_are_text_strength(
    knowledge: Knowledge, text: str, concept: str
) -> None:
    facts = facts_of(knowledge, condition("c", cc(text=text), onset=days_ago(3)))
    assert only(facts.findings, concept).strength is Strength.TEXT


def test_code_wins_over_text_for_the_same_concept(knowledge: Knowledge) -> None:
    code = {"coding": [{"system": SNOMED, "code": "386661006"}], "text": "Koorts"}
    facts = facts_of(knowledge, condition("c", code, onset=days_ago(1)))
    assert only(facts.findings, "fever").strength is Strength.CODE


@pytest.mark.parametrize("note", ["geen koorts", "No fever."])
def test_negated_text_goes_to_absent_not_findings(knowledge: Knowledge, note: str) -> None:
    facts = facts_of(
        knowledge,
        condition("c", cc(SNOMED, "279039007"), onset=days_ago(5), note=[{"text": note}]),
    )
    assert "fever" not in concepts(facts.findings)
    absent = only(facts.absent, "fever")
    assert absent.reference == "Condition/c"
    assert absent.strength is Strength.TEXT


def test_text_qualifiers_and_coded_severity_and_laterality(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        condition(
            "w",
            {
                "coding": [{"system": SNOMED, "code": "26544005"}],
                "text": "toenemend krachtsverlies",
            },
            onset=days_ago(2),
            severity={"coding": [{"system": SNOMED, "code": "24484000", "display": "Severe"}]},
            bodySite=[{"coding": [{"system": SNOMED, "code": "7771000", "display": "Left"}]}],
        ),
        condition(
            "n",
            cc(SNOMED, "44077006"),
            onset=days_ago(2),
            severity={"text": "ernstig"},
            bodySite=[{"text": "beide benen"}],
        ),
        condition("m", cc(SNOMED, "26544005"), onset=days_ago(2), severity={"text": "licht"}),
    )
    weakness = next(f for f in facts.findings if f.reference == "Condition/w")
    assert weakness.severity == "severe"
    assert weakness.qualifiers == {"severe", "left", "progressive"}
    numbness = only(facts.findings, "sensory-loss")
    assert numbness.severity == "severe"
    assert {"severe", "bilateral"} <= numbness.qualifiers
    mild = next(f for f in facts.findings if f.reference == "Condition/m")
    assert mild.severity == "mild"
    assert "severe" not in mild.qualifiers


def test_observation_valued_absent_turns_its_code_into_absent(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        observation("a", cc(SNOMED, "386661006"), when=days_ago(1), valueBoolean=False),
        observation(
            "b", cc(SNOMED, "192970008"), when=days_ago(1), valueCodeableConcept=cc(text="nee")
        ),
        observation("c", cc(SNOMED, "6077001"), when=days_ago(1), valueBoolean=True),
        observation(
            "d",
            cc(text="Tintelingen"),
            when=days_ago(1),
            interpretation=[cc(INTERPRETATION, "NEG")],
        ),
    )
    assert concepts(facts.absent) == {"fever", "cauda-equina", "radicular-symptoms"}
    assert concepts(facts.findings) == {"foot-drop"}


def test_test_name_and_result_are_read_as_one_phrase(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        observation(
            "slr",
            cc(text="Proef van Lasègue links"),
            when=days_ago(3),
            valueString="positief bij 40 graden",
        ),
        observation("neg", cc(text="Lasègue rechts"), when=days_ago(3), valueString="negatief"),
        observation("f", cc(text="Koorts"), when=days_ago(3), valueString="nee"),
    )
    sign = only(facts.findings, "radicular-symptoms")
    assert (sign.reference, sign.strength) == ("Observation/slr", Strength.TEXT)
    assert "left" in sign.qualifiers
    assert "fever" not in concepts(facts.findings)
    assert only(facts.absent, "fever").reference == "Observation/f"


# -- measurements ----------------------------------------------------------------------------------


def quantity_obs(rid: str, loinc: str, value: Any, unit_code: str | None) -> dict:
    """An Observation with a valueQuantity in UCUM (or without a unit)."""
    quantity: dict[str, Any] = {"value": value}
    if unit_code is not None:
        quantity.update(system=UCUM, code=unit_code)
    return observation(rid, cc(LOINC, loinc), when=days_ago(1), valueQuantity=quantity)


@pytest.mark.parametrize(
    ("value", "unit", "celsius"),
    [(38.4, "Cel", 38.4), (101.3, "[degF]", 38.5), (100.4, "degF", 38.0), (38.2, None, 38.2)],
)
def test_body_temperature_in_celsius(
    knowledge: Knowledge, value: float, unit: str | None, celsius: float
) -> None:
    facts = facts_of(knowledge, quantity_obs("t", "8310-5", value, unit))
    finding = only(facts.findings, "body-temperature")
    assert finding.value == pytest.approx(celsius, abs=0.01)
    assert finding.unit == "Cel"


@pytest.mark.parametrize(
    ("value", "unit", "kg"), [(80, "kg", 80.0), (176.4, "[lb_av]", 80.01), (80500, "g", 80.5)]
)
def test_body_weight_in_kilograms(knowledge: Knowledge, value: float, unit: str, kg: float) -> None:
    facts = facts_of(knowledge, quantity_obs("w", "29463-7", value, unit))
    assert only(facts.findings, "body-weight").value == pytest.approx(kg, abs=0.01)


def test_bare_number_is_a_temperature_but_not_a_weight(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        observation("t", cc(text="Temperatuur"), when=days_ago(1), valueString="38,6"),
        observation("w", cc(text="Lichaamsgewicht"), when=days_ago(1), valueString="80"),
    )
    assert only(facts.findings, "body-temperature").value == pytest.approx(38.6)
    assert "body-weight" not in concepts(facts.findings)
    assert facts.data_notes == ("Observation/w: unit not convertible",)


def test_unconvertible_unit_is_a_note_not_a_value(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, quantity_obs("t", "8310-5", 311, "K"))
    assert "body-temperature" not in concepts(facts.findings)
    assert facts.data_notes == ("Observation/t: unit not convertible",)


def strength_obs(rid: str, **value: Any) -> dict:
    """A left-sided muscle-strength Observation recognised by its local text."""
    return observation(
        rid, cc("urn:oid:2.16.840.1.113883.2.4.4.1", "KRACHT", "Spierkracht links"), **value
    )


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ({"valueString": "4/5"}, 4.0),
        ({"valueString": "3"}, 3.0),
        ({"valueString": "5-/5"}, 4.5),
        ({"valueInteger": 2}, 2.0),
        ({"valueQuantity": {"value": 4}}, 4.0),
    ],
)
def test_mrc_grade_from_string_integer_or_quantity(
    knowledge: Knowledge, value: dict, grade: float
) -> None:
    facts = facts_of(knowledge, strength_obs("s", when=days_ago(3), **value))
    finding = only(facts.findings, "muscle-strength")
    assert finding.value == grade
    assert "left" in finding.qualifiers
    assert facts.absent == ()


def test_full_strength_proves_the_exam_as_absent_weakness(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, strength_obs("s", when=days_ago(3), valueString="5/5"))
    assert only(facts.findings, "muscle-strength").value == 5.0
    assert only(facts.absent, "muscle-weakness").reference == "Observation/s"


def test_mrc_out_of_range_is_a_note(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, strength_obs("s", when=days_ago(3), valueInteger=7))
    assert facts.findings == ()
    assert facts.data_notes == ("Observation/s: value out of range",)


def reflex_obs(rid: str, **value: Any) -> dict:
    """An Achilles reflex Observation recognised by its text."""
    return observation(rid, cc(text="Achillespeesreflex rechts"), when=days_ago(2), **value)


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ({"valueString": "verminderd"}, "abnormal"),
        ({"valueString": "afwezig"}, "abnormal"),
        ({"valueCodeableConcept": {"text": "absent"}}, "abnormal"),
        ({"interpretation": [cc(INTERPRETATION, "A")]}, "abnormal"),
        ({"valueString": "niet opwekbaar"}, "abnormal"),
        ({"valueString": "normaal, symmetrisch"}, "normal"),
        ({"valueString": "geen afwijkingen"}, "normal"),
        ({"valueInteger": 2}, "normal"),
        ({"valueInteger": 0}, "abnormal"),
        ({"interpretation": [cc(INTERPRETATION, "N")]}, "normal"),
    ],
)
def test_reflex_test_normal_or_abnormal(knowledge: Knowledge, value: dict, result: str) -> None:
    facts = facts_of(knowledge, reflex_obs("r", **value))
    test = only(facts.findings, "reflex-test")
    assert result in test.qualifiers
    assert "right" in test.qualifiers
    if result == "abnormal":
        loss = only(facts.findings, "reflex-loss")
        assert loss.reference == "Observation/r"
        assert "right" in loss.qualifiers
    else:
        assert "reflex-loss" not in concepts(facts.findings)
        assert only(facts.absent, "reflex-loss").reference == "Observation/r"


def test_brisk_reflex_is_abnormal_but_no_reflex_loss(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, reflex_obs("r", interpretation=[cc(INTERPRETATION, "H")]))
    assert "abnormal" in only(facts.findings, "reflex-test").qualifiers
    assert "reflex-loss" not in concepts(facts.findings) | concepts(facts.absent)


def test_abnormal_sensation_test_is_sensory_loss(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        observation("s", cc(text="Sensibiliteit L5"), when=days_ago(2), valueString="verminderd"),
    )
    assert "abnormal" in only(facts.findings, "sensation-test").qualifiers
    assert only(facts.findings, "sensory-loss").strength is Strength.TEXT


def test_scores_sorted_by_date_with_kinds(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        observation("n2", cc(LOINC, "72514-3"), when=days_ago(10), valueInteger=6),
        observation("n1", cc(LOINC, "72514-3"), when=days_ago(90), valueQuantity={"value": 8}),
        observation(
            "o1", cc(text="Oswestry Disability Index"), when=days_ago(80), valueString="42"
        ),
        observation("bad", cc(LOINC, "72514-3"), when=days_ago(5), valueInteger=11),
    )
    assert [(s.kind, s.value, s.reference) for s in facts.scores] == [
        ("pain-nrs", 8.0, "Observation/n1"),
        ("oswestry", 42.0, "Observation/o1"),
        ("pain-nrs", 6.0, "Observation/n2"),
    ]
    assert "Observation/bad: value out of range" in facts.data_notes


def test_observation_dates_from_period_instant_and_issued(knowledge: Knowledge) -> None:
    fever = cc(SNOMED, "386661006")
    facts = facts_of(
        knowledge,
        observation("a", fever, effectivePeriod={"start": "2025-12-01T23:30:00-05:00"}),
        observation("b", fever, effectiveInstant="2025-12-02T10:00:00Z"),
        observation("c", fever, issued="2025-12-03T10:00:00+01:00"),
        observation("d", fever, when="2025-11"),
    )
    assert [f.when for f in facts.findings] == [
        date(2025, 12, 2),  # 23:30 at UTC-5 is the next day in the hook call's zone (UTC)
        date(2025, 12, 2),
        date(2025, 12, 3),
        date(2025, 11, 1),
    ]


# -- medication ------------------------------------------------------------------------------------

PREDNISOLONE = cc(ATC, "H02AB06")


def test_corticosteroid_statement_period(knowledge: Knowledge) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": PREDNISOLONE,
        "effectivePeriod": {"start": "2025-01-01", "end": "2025-03-31"},
    }
    (course,) = facts_of(knowledge, statement).medications
    assert (course.concept, course.reference) == (
        "systemic-corticosteroid",
        "MedicationStatement/ms",
    )
    assert (course.start, course.end, course.duration_days, course.active) == (
        date(2025, 1, 1),
        date(2025, 3, 31),
        90,
        False,
    )


def test_active_corticosteroid_without_end_counts_until_now(knowledge: Knowledge) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": cc(text="prednisolon 10 mg"),
        "effectiveDateTime": days_ago(99),
    }
    (course,) = facts_of(knowledge, statement).medications
    assert course.active is True
    assert course.end is None
    assert course.duration_days == 100


def medication_request(rid: str, dispense: dict, *, state: str = "active") -> dict:
    """A prednisolone MedicationRequest authored 30 days ago."""
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": state,
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": PREDNISOLONE,
        "authoredOn": days_ago(30),
        "dispenseRequest": dispense,
    }


@pytest.mark.parametrize(
    ("dispense", "days"),
    [
        ({"expectedSupplyDuration": {"value": 14, "unit": "days", "code": "d"}}, 14),
        ({"expectedSupplyDuration": {"value": 4, "system": UCUM, "code": "wk"}}, 28),
        ({"expectedSupplyDuration": {"value": 1, "unit": "month"}}, 30),
        # one dispense plus two repeats of four weeks
        ({"expectedSupplyDuration": {"value": 4, "code": "wk"}, "numberOfRepeatsAllowed": 2}, 84),
        ({"validityPeriod": {"start": days_ago(30), "end": days_ago(11)}}, 20),
    ],
)
def test_corticosteroid_request_duration(knowledge: Knowledge, dispense: dict, days: int) -> None:
    (course,) = facts_of(knowledge, medication_request("mr", dispense)).medications
    assert course.start == TODAY - timedelta(days=30)
    assert course.duration_days == days
    assert course.end == course.start + timedelta(days=days - 1)
    assert course.active is (course.end >= TODAY)


def test_cancelled_request_and_not_taken_statement_are_ignored(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        medication_request("mr", {}, state="cancelled"),
        {
            "resourceType": "MedicationStatement",
            "id": "ms",
            "status": "not-taken",
            "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": PREDNISOLONE,
        },
    )
    assert facts.medications == ()


# -- care ------------------------------------------------------------------------------------------


def test_active_and_passive_care_episodes(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        procedure("a1", cc(SNOMED, "229065009"), performedDateTime=days_ago(120)),
        procedure("a2", cc(text="Oefentherapie Cesar"), performedDateTime=days_ago(10)),
        procedure("a3", cc(CPT, "97110"), performedDateTime=days_ago(60)),
        procedure("x", cc(CPT, "97110"), state="not-done", performedDateTime=days_ago(1)),
        procedure("p1", cc(CPT, "97140"), performedDateTime=days_ago(30)),
        procedure("p2", cc(text="massage"), performedDateTime=days_ago(20)),
    )
    care = {c.kind: c for c in facts.care}
    assert set(care) == {"active", "passive"}
    active = care["active"]
    assert (active.first, active.last, active.sessions) == (
        TODAY - timedelta(days=120),
        TODAY - timedelta(days=10),
        3,
    )
    assert active.references == ("Procedure/a1", "Procedure/a3", "Procedure/a2")
    assert care["passive"].sessions == 2


def test_single_procedure_with_period_counts_with_its_period(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        procedure(
            "fysio",
            cc(text="Fysiotherapie"),
            performedPeriod={"start": days_ago(100), "end": days_ago(5)},
        ),
    )
    (episode,) = facts.care
    assert episode.kind == "active"
    assert episode.weeks == pytest.approx(95 / 7)
    assert episode.sessions == 1


# -- spinal procedures and surgical planning -------------------------------------------------------


def test_spinal_procedure_performed_versus_planned(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        procedure("done", cc(SNOMED, "42515009"), performedDateTime=days_ago(40)),
        procedure("prep", cc(text="Discectomie L4-L5"), state="preparation"),
        service_request("sr", cc(text="Epidurale injectie L5"), authoredOn=days_ago(3)),
        service_request("draft", cc(text="discectomie"), state="draft", authoredOn=days_ago(0)),
        service_request("gone", cc(text="discectomie"), state="revoked", authoredOn=days_ago(9)),
        exclude=("ServiceRequest/draft",),
    )
    spinal = {f.reference: f for f in facts.findings if f.concept == "spinal-procedure"}
    assert set(spinal) == {"Procedure/done", "Procedure/prep", "ServiceRequest/sr"}
    assert spinal["Procedure/done"].when == TODAY - timedelta(days=40)
    assert "planned" not in spinal["Procedure/done"].qualifiers
    assert "planned" in spinal["Procedure/prep"].qualifiers
    assert "planned" in spinal["ServiceRequest/sr"].qualifiers
    # a performed injection is an intervention, not a referral
    referrals = {f.reference for f in facts.findings if f.concept == "surgical-referral"}
    assert "Procedure/done" not in referrals


@pytest.mark.parametrize(
    "fields",
    [
        {"code": cc(text="Verwijzing neurochirurgie")},
        {"code": cc(text="Verwijzing"), "performerType": cc(text="Neurochirurg")},
        {"code": cc(text="Verwijzing"), "performer": [{"display": "Dr. X, neurochirurg"}]},
        {"code": cc(text="Verwijzing"), "reasonCode": [cc(text="beoordeling neurochirurg")]},
    ],
)
def test_surgical_referral_from_code_performer_or_reason(
    knowledge: Knowledge, fields: dict
) -> None:
    request = service_request("ref", authoredOn=days_ago(7), **fields)
    facts = facts_of(knowledge, request)
    referral = only(facts.findings, "surgical-referral")
    assert referral.reference == "ServiceRequest/ref"
    assert referral.when == TODAY - timedelta(days=7)


def test_draft_or_excluded_referral_does_not_count(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        service_request("a", cc(text="Verwijzing neurochirurg"), state="draft"),
        service_request("b", cc(text="Verwijzing neurochirurg")),
        exclude=("ServiceRequest/b",),
    )
    assert "surgical-referral" not in concepts(facts.findings)


def test_surgical_indication_from_any_text(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        condition(
            "c", cc(SNOMED, "23056005"), onset=days_ago(60), note=[{"text": "operatie-indicatie"}]
        ),
    )
    assert only(facts.findings, "surgical-indication").reference == "Condition/c"


# -- prior imaging ---------------------------------------------------------------------------------


def test_prior_imaging_from_study_report_and_procedure(knowledge: Knowledge) -> None:
    study = {
        "resourceType": "ImagingStudy",
        "id": "is",
        "status": "available",
        "subject": {"reference": "Patient/p"},
        "started": f"{days_ago(200)}T09:00:00Z",
        "procedureCode": [cc(CPT, "72148")],
    }
    series_only = {
        "resourceType": "ImagingStudy",
        "id": "is2",
        "status": "available",
        "subject": {"reference": "Patient/p"},
        "started": days_ago(400),
        "series": [
            {
                "uid": "1.2.3",
                "modality": {
                    "system": "http://dicom.nema.org/resources/ontology/DCM",
                    "code": "CR",
                },
                "bodySite": {"system": SNOMED, "code": "122496007", "display": "Lumbar spine"},
            }
        ],
    }
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr",
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "code": cc(text="MRI LWK"),
        "issued": f"{days_ago(100)}T12:00:00+01:00",
    }
    performed = procedure("pr", cc(CPT, "72100"), performedDateTime=days_ago(30))
    facts = facts_of(knowledge, study, series_only, report, performed)
    assert [(p.modality, p.when, p.reference) for p in facts.prior_imaging] == [
        (Modality.XRAY, TODAY - timedelta(days=400), "ImagingStudy/is2"),
        (Modality.MRI, TODAY - timedelta(days=200), "ImagingStudy/is"),
        (Modality.MRI, TODAY - timedelta(days=100), "DiagnosticReport/dr"),
        (Modality.XRAY, TODAY - timedelta(days=30), "Procedure/pr"),
    ]


def test_orders_drafts_and_unfinished_reports_are_not_prior_imaging(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        service_request("old", cc(CPT, "72148"), state="completed", authoredOn=days_ago(90)),
        service_request("draft", cc(CPT, "72148"), state="draft"),
        {
            "resourceType": "DiagnosticReport",
            "id": "reg",
            "status": "registered",
            "code": cc(CPT, "72148"),
            "issued": f"{days_ago(5)}T12:00:00Z",
        },
        {
            "resourceType": "ImagingStudy",
            "id": "forDraft",
            "status": "registered",
            "subject": {"reference": "Patient/p"},
            "basedOn": [{"reference": "ServiceRequest/draft"}],
            "started": days_ago(0),
            "procedureCode": [cc(CPT, "72148")],
        },
        procedure("chest", cc(text="X-thorax"), performedDateTime=days_ago(3)),
        exclude=("ServiceRequest/draft",),
    )
    assert facts.prior_imaging == ()


# -- robustness ------------------------------------------------------------------------------------


def test_invalid_resource_is_skipped_with_a_note_without_its_text(knowledge: Knowledge) -> None:
    invalid = condition("bad", cc(SNOMED, "386661006"), onset="gisteren, zegt Jan Jansen")
    facts = facts_of(knowledge, invalid, condition("ok", cc(SNOMED, "386661006")))
    assert [f.reference for f in facts.findings] == ["Condition/ok"]
    assert facts.data_notes == ("Condition/bad: not valid FHIR R4",)


def test_invalid_id_is_not_echoed_into_notes(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, {"resourceType": "Observation", "id": "Jan Jansen"})
    assert facts.data_notes == ("Observation/#0: not valid FHIR R4",)


GARBAGE: list[Any] = [
    None,
    42,
    "Condition",
    [],
    {},
    {"resourceType": None},
    {"resourceType": ["Condition"]},
    {"resourceType": "Basic", "id": "b", "code": {"text": "koorts"}},
    {"resourceType": "Condition", "id": 7, "code": "koorts"},
    {"resourceType": "Condition", "id": "c", "code": {"coding": "koorts"}},
    {"resourceType": "Condition", "id": "c", "code": {"coding": [None, 1]}},
    {"resourceType": "Observation", "id": "o", "status": 3, "code": {"text": 5}},
    {"resourceType": "Observation", "id": "o", "status": "final", "code": {}, "valueQuantity": 5},
    {"resourceType": "Observation", "id": "o", "status": "final", "code": {}, "note": "x"},
    {"resourceType": "Patient", "id": "p", "birthDate": "01-02-1970"},
    {"resourceType": "Patient", "id": "p", "birthDate": 1970},
    {"resourceType": "MedicationRequest", "id": "m", "dispenseRequest": []},
    {"resourceType": "Procedure", "id": "x", "performedPeriod": "2025"},
    {"resourceType": "ImagingStudy", "id": "i", "series": [{"modality": None}]},
    {"resourceType": "DiagnosticReport", "id": "d", "issued": float("nan")},
]


@pytest.mark.parametrize("item", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_never_raises(knowledge: Knowledge, item: Any) -> None:
    facts = facts_of(knowledge, item, condition("ok", cc(SNOMED, "386661006")))
    assert [f.reference for f in facts.findings] == ["Condition/ok"]


@pytest.mark.parametrize("resources", [None, 5, "abc"])
def test_non_iterable_or_odd_input_never_raises(knowledge: Knowledge, resources: Any) -> None:
    facts = extract_facts(resources, knowledge=knowledge, now=NOW)
    assert facts.findings == ()


def test_naive_now_and_excluded_references_in_url_form(knowledge: Knowledge) -> None:
    naive = datetime(2026, 1, 15, 12, 0)
    facts = extract_facts(
        [
            service_request("x", cc(text="Verwijzing neurochirurg")),
            observation(
                "t",
                cc(LOINC, "8310-5"),
                when="2026-01-14T22:00:00-03:00",
                valueQuantity={"value": 38.5, "code": "Cel"},
            ),
        ],
        knowledge=knowledge,
        now=naive,
        exclude=["https://fhir.example/r4/ServiceRequest/x/_history/2"],
    )
    # without a zone on "now" a timestamp keeps its own calendar date
    assert [(f.concept, f.when) for f in facts.findings] == [
        ("body-temperature", date(2026, 1, 14))
    ]


def test_ten_thousand_observations_in_linear_time(knowledge: Knowledge) -> None:
    resources = [
        observation(
            f"t{i}",
            {"coding": [{"system": LOINC, "code": "8310-5"}], "text": "Temperatuur"},
            when=days_ago(i % 300),
            valueQuantity={"value": 36.5 + (i % 30) / 10, "system": UCUM, "code": "Cel"},
        )
        for i in range(10_000)
    ]
    started = time.perf_counter()
    facts = extract_facts(resources, knowledge=knowledge, now=NOW, screen=False)
    elapsed = time.perf_counter() - started
    assert len(facts.findings) == 10_000
    # R4B validation dominates (~0.1 ms per resource); the bound leaves room for slow CI.
    assert elapsed < 20
    # Screened, only the temperatures the fever rule can see are read (14 days + 2, at or
    # near 38.0 °C), and they are exactly the full path's.
    screened = facts_of(knowledge, *resources)
    window = {f for f in facts.findings if (TODAY - f.when).days <= 16 and f.value >= 37.95}
    assert set(screened.findings) == window
    assert len(window) == sum(1 for i in range(10_000) if i % 300 <= 16 and i % 30 >= 15)


# -- Observation components ----------------------------------------------------------------------


def test_component_grades_of_a_panel_are_read_one_by_one(knowledge):
    panel = observation(
        "neuro-panel",
        cc(text="Neurologisch onderzoek"),
        when=days_ago(3),
        component=[
            {"code": cc(text="Spierkracht voetheffers links"), "valueInteger": 3},
            {"code": cc(text="Spierkracht voetheffers rechts"), "valueInteger": 5},
            {"code": cc(text="Achillespeesreflex links"), "valueString": "afwezig"},
        ],
    )
    facts = facts_of(knowledge, panel)
    grades = {f.reference: f for f in facts.findings if f.concept == "muscle-strength"}
    assert {r: f.value for r, f in grades.items()} == {
        "Observation/neuro-panel#component-0": 3,
        "Observation/neuro-panel#component-1": 5,
    }
    assert "left" in grades["Observation/neuro-panel#component-0"].qualifiers
    assert all(f.when == TODAY - timedelta(days=3) for f in grades.values())
    assert "reflex-loss" in concepts(facts.findings)
    # The full grade on the right proves the examination without counting as weakness.
    assert "muscle-weakness" in concepts(facts.absent)


def test_component_of_an_entered_in_error_panel_is_ignored(knowledge):
    panel = observation(
        "neuro-panel",
        cc(text="Neurologisch onderzoek"),
        when=days_ago(3),
        status="entered-in-error",
        component=[{"code": cc(text="Spierkracht voetheffers links"), "valueInteger": 2}],
    )
    assert "muscle-strength" not in concepts(facts_of(knowledge, panel).findings)


# -- laboratory tests and text context (issues 9 and 10) -----------------------------------------


def lab(value: dict) -> dict:
    """An HIV test as a laboratory Observation, with the given value fields."""
    return {
        "resourceType": "Observation",
        "id": "hiv",
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": cc("http://loinc.org", "56888-1", "HIV 1+2 antistoffen"),
        "effectiveDateTime": days_ago(3),
        **value,
    }


@pytest.mark.parametrize(
    ("value", "immunosuppressed"),
    [
        ({}, False),  # ordered, no result yet
        ({"valueString": "aangevraagd"}, False),
        ({"valueString": "negatief"}, False),
        ({"interpretation": [{"coding": [{"system": INTERPRETATION, "code": "NEG"}]}]}, False),
        ({"valueString": "positief"}, True),
        ({"interpretation": [{"coding": [{"system": INTERPRETATION, "code": "POS"}]}]}, True),
    ],
)
def test_a_lab_test_name_is_no_diagnosis(
    knowledge: Knowledge, value: dict, immunosuppressed: bool
) -> None:
    facts = facts_of(knowledge, lab(value))
    assert ("immunosuppression" in {f.concept for f in facts.findings}) is immunosuppressed


def journal(rid: str, line: str, text: str, days: int = 1) -> dict:
    """A Dutch GP journal line (SOEP type in the code, the text in valueString)."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "code": cc("http://fhir.nl/fhir/NamingSystem/journaalregeltypen", line),
        "effectiveDateTime": days_ago(days),
        "valueString": text,
    }


def test_journal_line_text_is_read_in_its_context(knowledge: Knowledge) -> None:
    facts = facts_of(
        knowledge,
        journal("s", "S", "Doof gevoel li voet. VG: mammacarcinoom 2015."),
        journal("p", "P", "Bij koorts direct contact opnemen."),
        journal("e", "E", "Verdenking caudasyndroom."),
    )
    found = {(f.concept, f.reference) for f in facts.findings}
    assert ("radicular-symptoms", "Observation/s") in found  # the patient's words
    assert ("sensory-loss", "Observation/s") not in found
    assert ("fever", "Observation/p") not in found  # a plan, not a finding
    history = [f for f in facts.findings if f.concept == "malignancy"]
    assert history and not history[0].current and history[0].when is None
    assert [(f.concept, f.reference) for f in facts.suspected] == [
        ("cauda-equina", "Observation/e")
    ]
    contexts = {(t.reference, t.concept, t.context) for t in facts.text_evidence}
    assert ("Observation/p", "fever", "conditional") in contexts


def test_an_mrc_grade_in_text_is_a_strength_finding(knowledge: Knowledge) -> None:
    facts = facts_of(knowledge, journal("o", "O", "Kracht voetheffers li 3/5, re 5/5."))
    grades = sorted(
        (f.reference, f.value, sorted(f.qualifiers))
        for f in facts.findings
        if f.concept == "muscle-strength"
    )
    # one grade per side, so the rules see weakness on the left only
    assert grades == [
        ("Observation/o#left", 3.0, ["left"]),
        ("Observation/o#right", 5.0, ["right"]),
    ]
    weakness = [f for f in facts.findings if f.concept == "muscle-weakness"]
    assert weakness and "severe" in weakness[0].qualifiers
