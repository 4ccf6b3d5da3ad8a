"""Each POLICY.md criterion in isolation, met and just-not-met at every threshold."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import lru_cache

import pytest
import yaml

from cds_service.rules import criteria
from cds_service.rules.knowledge import Policy
from cds_service.rules.model import (
    CareEpisode,
    CriterionResult,
    Finding,
    LumbarOrder,
    Medication,
    Modality,
    Outcome,
    PatientFacts,
    PriorImaging,
    Score,
    Status,
    Strength,
)
from cds_service.shipped import MAPPINGS_DIR

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN
URGENT, INDICATED = Outcome.URGENT, Outcome.INDICATED

POLICY_FILE = MAPPINGS_DIR / "policy.yaml"
TODAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 10, 30)
EPISODE = ("Condition/lbp",)

# The FHIR resource type facts extraction would cite for a concept: it matters, because
# Observation-derived deficits expire after the lookback while Conditions do not.
_RESOURCE = {
    "muscle-strength": "Observation",
    "reflex-test": "Observation",
    "sensation-test": "Observation",
    "neuro-exam": "Observation",
    "body-temperature": "Observation",
    "body-weight": "Observation",
    "pain-score": "Observation",
    "spinal-procedure": "Procedure",
    "surgical-referral": "ServiceRequest",
}
_ids = itertools.count(1)


# --- builders (also used by test_decide.py) ---------------------------------------------------


@lru_cache(maxsize=1)
def policy() -> Policy:
    """Policy from mappings/policy.yaml, flattened to section_key like the real loader does."""
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    flat: dict[str, object] = {"version": raw.pop("version")}
    raw.pop("rules")  # the POLICY rule ids (traceability), no thresholds
    for section, values in raw.items():
        for key, value in values.items():
            flat[f"{section}_{key}"] = value
    return Policy(**flat)  # type: ignore[arg-type]


def ago(days: int) -> date:
    """The date `days` days before the evaluation day."""
    return TODAY - timedelta(days=days)


def finding(
    concept: str,
    days: int | None = 0,
    *,
    value: float | None = None,
    q: str = "",
    severity: str | None = None,
    current: bool = True,
    ref: str | None = None,
) -> Finding:
    """A finding `days` days old (None: undated), qualifiers as a space-separated string."""
    resource = _RESOURCE.get(concept, "Condition")
    return Finding(
        concept=concept,
        reference=ref or f"{resource}/{concept}-{next(_ids)}",
        when=None if days is None else ago(days),
        value=value,
        severity=severity,
        qualifiers=frozenset(q.split()),
        current=current,
    )


def mrc(grade: float, days: int = 0, q: str = "") -> Finding:
    """An MRC muscle-strength Observation."""
    return finding("muscle-strength", days, value=grade, q=q)


def nrs(value: float, days: int) -> Score:
    """A pain NRS score `days` days old."""
    return Score("pain-nrs", ago(days), value, f"Observation/nrs-{next(_ids)}")


def odi(value: float, days: int) -> Score:
    """An Oswestry score `days` days old."""
    return Score("oswestry", ago(days), value, f"Observation/odi-{next(_ids)}")


def care(first: int, last: int = 0, kind: str = "active") -> CareEpisode:
    """Conservative care from `first` to `last` days ago."""
    return CareEpisode(kind, ago(first), ago(last), 10, (f"Procedure/{kind}-{next(_ids)}",))


def steroid(
    duration: int | None, *, active: bool = True, start: int | None = None, end: int | None = None
) -> Medication:
    """A systemic corticosteroid course."""
    return Medication(
        concept="systemic-corticosteroid",
        reference=f"MedicationStatement/pred-{next(_ids)}",
        start=None if start is None else ago(start),
        end=None if end is None else ago(end),
        duration_days=duration,
        active=active,
    )


def make_facts(
    *findings: Finding,
    age: int | None = 45,
    onset: int | None = 21,
    episode: tuple[str, ...] = EPISODE,
    **fields: object,
) -> PatientFacts:
    """Patient facts with a back-pain episode `onset` days old unless told otherwise."""
    return PatientFacts(
        evaluated_at=NOW,
        age=age,
        episode_onset=None if onset is None else ago(onset),
        episode_references=episode,
        findings=findings,
        **fields,  # type: ignore[arg-type]
    )


def make_order(modality: Modality = Modality.MRI) -> LumbarOrder:
    """A draft lumbar imaging order."""
    return LumbarOrder(
        "ServiceRequest/draft-1", modality, f"{modality.value} lumbar", Strength.CODE
    )


def context(facts: PatientFacts, pol: Policy | None = None, **order: Modality) -> criteria.Context:
    """An evaluation context for criterion functions."""
    return criteria.build_context(facts, make_order(**order), pol or policy())


def only(results: list[CriterionResult]) -> CriterionResult:
    """The single result of a criterion that returns a list."""
    assert len(results) == 1, results
    return results[0]


def status(result: CriterionResult | None) -> tuple[Status, str] | None:
    """(status, reason) of a result, or None when the criterion found nothing to report."""
    return None if result is None else (result.status, result.reason)


# --- policy -----------------------------------------------------------------------------------


def test_policy_helper_reads_every_field_from_policy_yaml():
    pol = policy()
    assert pol.version
    assert pol.neuro_exam_window_days == 42
    assert pol.red_flags_fever_celsius == 38.0


# --- neuro-deficit ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "expected", "outcome"),
    [
        pytest.param(2, "deficit-severe", URGENT, id="mrc-2-severe"),
        pytest.param(3, "deficit-severe", URGENT, id="mrc-3-severe"),
        pytest.param(4, "deficit", INDICATED, id="mrc-4-deficit"),
    ],
)
def test_mrc_grade_at_or_below_deficit_threshold_is_a_deficit(grade, expected, outcome):
    strength = mrc(grade, days=3)
    result = criteria.neuro_deficit(context(make_facts(strength)))
    assert (result.status, result.reason, result.outcome) == (MET, expected, outcome)
    assert result.evidence == (strength.reference,)


@pytest.mark.parametrize("where", ["findings", "absent"])
def test_mrc_5_is_no_deficit_but_is_an_examination(where):
    strength = mrc(5, days=3)
    facts = make_facts() if where == "absent" else make_facts(strength)
    if where == "absent":
        facts = replace(facts, absent=(strength,))
    result = criteria.neuro_deficit(context(facts))
    assert (result.status, result.reason) == (NOT_MET, "no-deficit-on-exam")
    assert result.evidence == (strength.reference,)


@pytest.mark.parametrize("concept", ["muscle-weakness", "foot-drop", "sensory-loss", "reflex-loss"])
def test_each_coded_deficit_is_indicated(concept):
    deficit = finding(concept, days=10)
    result = criteria.neuro_deficit(context(make_facts(deficit)))
    assert (result.status, result.reason, result.outcome) == (MET, "deficit", INDICATED)
    assert result.evidence == (deficit.reference,)


@pytest.mark.parametrize(
    ("deficit", "expected"),
    [
        pytest.param(
            finding("muscle-weakness", severity="severe"), "deficit-severe", id="severity-severe"
        ),
        pytest.param(finding("muscle-weakness", q="severe"), "deficit-severe", id="text-severe"),
        pytest.param(
            finding("foot-drop", q="progressive"), "deficit-progressive", id="progressive"
        ),
        pytest.param(finding("sensory-loss", q="bilateral"), "deficit-bilateral", id="bilateral"),
        # Severe and progressive are words about weakness (POLICY): not about sensation.
        pytest.param(finding("sensory-loss", q="severe"), "deficit", id="severe-sensory-loss"),
        pytest.param(finding("reflex-loss", q="progressive"), "deficit", id="progressive-reflex"),
    ],
)
def test_urgent_features_of_a_deficit(deficit, expected):
    result = criteria.neuro_deficit(context(make_facts(deficit)))
    assert (result.status, result.reason) == (MET, expected)


def test_deficits_on_left_and_right_are_bilateral():
    facts = make_facts(finding("sensory-loss", q="left"), finding("reflex-loss", q="right"))
    assert criteria.neuro_deficit(context(facts)).reason == "deficit-bilateral"


def test_mrc_deficit_on_both_sides_is_bilateral():
    facts = make_facts(mrc(4, 2, q="left"), mrc(4, 2, q="right"))
    assert criteria.neuro_deficit(context(facts)).reason == "deficit-bilateral"


def test_one_sided_deficit_is_not_bilateral():
    facts = make_facts(finding("sensory-loss", q="left"), finding("reflex-loss", q="left"))
    assert criteria.neuro_deficit(context(facts)).reason == "deficit"


@pytest.mark.parametrize(
    ("earlier", "later", "expected"),
    [
        pytest.param(5, 4, "deficit-progressive", id="5-then-4-falling"),
        pytest.param(4, 4, "deficit", id="4-then-4-stable"),
        pytest.param(3, 4, "deficit", id="3-then-4-improving"),
        pytest.param(4, 5, None, id="4-then-5-recovered"),
    ],
)
def test_mrc_trend_between_two_observations(earlier, later, expected):
    first, second = mrc(earlier, days=20, q="left"), mrc(later, days=2, q="left")
    # A normal grade is documented as absent (MRC 5/5), a weak one as a finding.
    positive = tuple(f for f in (first, second) if f.value <= 4)
    normal = tuple(f for f in (first, second) if f.value > 4)
    result = criteria.neuro_deficit(context(replace(make_facts(*positive), absent=normal)))
    assert (result.reason if result.status is MET else None) == expected


def test_falling_grade_on_other_side_is_not_progression():
    facts = replace(make_facts(mrc(4, 2, q="right")), absent=(mrc(5, 20, q="left"),))
    assert criteria.neuro_deficit(context(facts)).reason == "deficit"


def test_progressive_evidence_names_both_observations():
    before, now = mrc(5, 30), mrc(4, 1)
    facts = replace(make_facts(now), absent=(before,))
    result = criteria.neuro_deficit(context(facts))
    assert result.reason == "deficit-progressive"
    assert result.evidence == (now.reference, before.reference)


@pytest.mark.parametrize(
    ("days", "met"),
    [pytest.param(180, True, id="180-days"), pytest.param(181, False, id="181-days")],
)
def test_observation_deficit_counts_within_lookback(days, met):
    result = criteria.neuro_deficit(context(make_facts(mrc(4, days))))
    assert (result.status is MET) is met


@pytest.mark.parametrize(
    ("days", "met"),
    [pytest.param(180, True, id="180-days"), pytest.param(181, False, id="181-days")],
)
def test_observation_derived_reflex_loss_counts_within_lookback(days, met):
    # Facts extraction derives reflex-loss from a diminished reflex test, citing the Observation.
    facts = make_facts(finding("reflex-loss", days, ref="Observation/reflex-1"))
    assert (criteria.neuro_deficit(context(facts)).status is MET) is met


@pytest.mark.parametrize("concept", ["reflex-test", "sensation-test", "neuro-exam"])
def test_abnormal_test_without_a_derived_loss_is_an_examination_not_a_deficit(concept):
    # e.g. a brisk reflex: abnormal, but not the lost or diminished reflex POLICY asks for.
    exam = finding(concept, days=3, q="abnormal")
    result = criteria.neuro_deficit(context(make_facts(exam)))
    assert (result.status, result.reason) == (NOT_MET, "exam-abnormal-unspecified")
    assert result.evidence == (exam.reference,)


def test_current_deficit_condition_counts_whatever_its_age():
    facts = make_facts(finding("foot-drop", days=900))
    assert criteria.neuro_deficit(context(facts)).status is MET


def test_deficit_condition_without_date_counts():
    assert criteria.neuro_deficit(context(make_facts(finding("foot-drop", None)))).status is MET


def test_resolved_deficit_condition_is_history():
    facts = make_facts(finding("muscle-weakness", days=30, current=False))
    assert criteria.neuro_deficit(context(facts)).status is NOT_MET


def test_normal_sensation_test_is_not_a_deficit():
    facts = make_facts(finding("sensation-test", days=3, q="normal"))
    assert criteria.neuro_deficit(context(facts)).status is NOT_MET


def test_no_examination_at_all():
    result = criteria.neuro_deficit(context(make_facts()))
    assert (result.status, result.reason, result.evidence) == (NOT_MET, "no-deficit", ())


def test_mrc_thresholds_come_from_policy():
    stricter = replace(policy(), neuro_mrc_severe_max=4)
    assert criteria.neuro_deficit(context(make_facts(mrc(4)), stricter)).reason == "deficit-severe"


# --- neuro-exam-missing -------------------------------------------------------------------------


@pytest.mark.parametrize("symptom", ["sciatica", "radicular-symptoms"])
def test_radicular_symptoms_without_examination_is_missing_exam(symptom):
    radicular = finding(symptom, days=20)
    result = criteria.neuro_exam_missing(context(make_facts(radicular)))
    assert (result.status, result.outcome) == (MET, Outcome.INSUFFICIENT_DATA)
    assert result.evidence == (radicular.reference,)


@pytest.mark.parametrize(
    ("days", "missing"),
    [
        pytest.param(41, False, id="41-days"),
        pytest.param(42, False, id="42-days-6-weeks"),
        pytest.param(43, True, id="43-days"),
    ],
)
@pytest.mark.parametrize("where", ["findings", "absent"])
def test_examination_within_six_weeks_satisfies_the_check(days, missing, where):
    exam = finding("reflex-test", days, q="normal")
    facts = make_facts(finding("sciatica", 60))
    facts = replace(facts, **{where: (*getattr(facts, where), exam)})
    result = criteria.neuro_exam_missing(context(facts))
    assert (result.status is MET) is missing


@pytest.mark.parametrize(
    "exam",
    ["muscle-strength", "sensation-test", "neuro-exam", "muscle-weakness", "foot-drop"],
)
def test_every_examination_kind_counts(exam):
    facts = make_facts(finding("sciatica", 60), finding(exam, 5, value=4.0))
    result = criteria.neuro_exam_missing(context(facts))
    assert (result.status, result.reason) == (NOT_MET, "exam-recorded")


def test_no_radicular_symptoms_needs_no_examination():
    assert criteria.neuro_exam_missing(context(make_facts())).reason == "no-radicular-symptoms"


def test_resolved_sciatica_needs_no_examination():
    facts = make_facts(finding("sciatica", 400, current=False))
    assert criteria.neuro_exam_missing(context(facts)).status is NOT_MET


# --- red-flag: cauda equina ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "concept", ["cauda-equina", "saddle-anaesthesia", "loss-of-anal-tone"], ids=str
)
def test_cauda_equina_signs_are_urgent_at_any_date(concept):
    sign = finding(concept, days=200)
    result = criteria.cauda_equina(context(make_facts(sign)))
    assert (result.status, result.reason, result.outcome) == (MET, "cauda-equina", URGENT)
    assert result.evidence == (sign.reference,)


@pytest.mark.parametrize(
    "concept", ["urinary-retention", "urinary-incontinence", "faecal-incontinence"], ids=str
)
@pytest.mark.parametrize(
    ("days", "met"), [pytest.param(30, True, id="30-days"), pytest.param(31, False, id="31-days")]
)
def test_sphincter_symptoms_are_urgent_only_when_new(concept, days, met):
    result = criteria.cauda_equina(context(make_facts(finding(concept, days))))
    expected = (MET, "cauda-equina") if met else (NOT_MET, "sphincter-symptoms-not-new")
    assert status(result) == expected


def test_resolved_cauda_equina_is_not_urgent():
    facts = make_facts(finding("cauda-equina", 10, current=False))
    assert criteria.cauda_equina(context(facts)) is None


# --- red-flag: infection ------------------------------------------------------------------------


def temperature(celsius: float, days: int = 2) -> Finding:
    """A body temperature Observation."""
    return finding("body-temperature", days, value=celsius)


@pytest.mark.parametrize(
    ("celsius", "expected"),
    [
        pytest.param(38.0, (MET, "infection-fever-risk-factor"), id="38.0-fever"),
        pytest.param(37.9, None, id="37.9-no-fever"),
    ],
)
def test_fever_threshold_with_risk_factor(celsius, expected):
    facts = make_facts(temperature(celsius), finding("diabetes", 900))
    assert status(criteria.infection(context(facts))) == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        pytest.param(14, "infection-fever-risk-factor", id="14-days"),
        pytest.param(15, None, id="15-days"),
    ],
)
@pytest.mark.parametrize("source", ["measured", "coded"])
def test_fever_window(days, expected, source):
    fever = temperature(38.5, days) if source == "measured" else finding("fever", days)
    result = criteria.infection(context(make_facts(fever, finding("immunosuppression"))))
    assert (result and result.reason) == expected


@pytest.mark.parametrize(
    ("risk", "urgent"),
    [
        pytest.param(finding("iv-drug-use", 500), True, id="iv-drug-use"),
        pytest.param(finding("immunosuppression", 500), True, id="immunosuppression"),
        pytest.param(finding("diabetes", 500), True, id="diabetes"),
        pytest.param(finding("diabetes", 500, current=False), False, id="diabetes-resolved"),
        pytest.param(finding("spinal-procedure", 90), True, id="procedure-90-days"),
        pytest.param(finding("spinal-procedure", 91), False, id="procedure-91-days"),
        pytest.param(finding("spinal-procedure", 5, q="planned"), False, id="procedure-planned"),
        pytest.param(finding("recent-infection", 30), True, id="infection-30-days"),
        pytest.param(finding("recent-infection", 31), False, id="infection-31-days"),
    ],
)
def test_fever_with_and_without_each_risk_factor(risk, urgent):
    fever = temperature(38.4)
    result = criteria.infection(context(make_facts(fever, risk)))
    if urgent:
        assert (result.status, result.reason, result.outcome) == (
            MET,
            "infection-fever-risk-factor",
            URGENT,
        )
        assert result.evidence == (fever.reference, risk.reference)
    else:
        assert (result.status, result.reason, result.outcome) == (
            MET,
            "fever-no-risk-factor",
            INDICATED,
        )
        assert result.evidence == (fever.reference,)


@pytest.mark.parametrize(
    ("pain", "expected"),
    [
        pytest.param(lambda: nrs(7, 10), "infection-post-procedure-pain", id="nrs-7-after"),
        pytest.param(lambda: nrs(6, 10), "post-procedure-no-severe-pain", id="nrs-6-after"),
        pytest.param(lambda: nrs(9, 30), "post-procedure-no-severe-pain", id="nrs-9-before"),
        pytest.param(lambda: nrs(9, 20), "post-procedure-no-severe-pain", id="nrs-9-same-day"),
    ],
)
def test_severe_pain_score_after_spinal_procedure(pain, expected):
    procedure = finding("spinal-procedure", 20)
    score = pain()
    result = criteria.infection(context(make_facts(procedure, scores=(score,))))
    assert result.reason == expected
    if expected.startswith("infection"):
        assert (result.outcome, result.evidence) == (URGENT, (procedure.reference, score.reference))


@pytest.mark.parametrize(
    "pain",
    [
        pytest.param(finding("severe-pain", 5), id="severe-pain-text"),
        pytest.param(finding("low-back-pain", 5, severity="severe"), id="episode-severity"),
        pytest.param(finding("sciatica", 5, q="severe"), id="episode-qualifier"),
        pytest.param(finding("pain-score", 5, value=8), id="pain-score-observation"),
    ],
)
def test_other_severe_pain_records_after_procedure(pain):
    result = criteria.infection(context(make_facts(finding("spinal-procedure", 20), pain)))
    assert status(result) == (MET, "infection-post-procedure-pain")


def test_severe_pain_after_old_procedure_is_not_infection():
    facts = make_facts(finding("spinal-procedure", 91), finding("severe-pain", 5))
    assert criteria.infection(context(facts)) is None


def test_coded_spinal_infection_is_urgent():
    result = criteria.spinal_infection(context(make_facts(finding("spinal-infection", 3))))
    assert (result.status, result.outcome) == (MET, URGENT)


# --- red-flag: malignancy -----------------------------------------------------------------------


@pytest.mark.parametrize("current", [True, False], ids=["active", "history"])
@pytest.mark.parametrize(
    ("onset", "expected"),
    [
        pytest.param(30, (MET, "malignancy-new-pain"), id="pain-30-days"),
        pytest.param(31, (NOT_MET, "malignancy-no-new-pain"), id="pain-31-days"),
        pytest.param(None, (UNKNOWN, "malignancy-onset-unknown"), id="onset-unknown"),
    ],
)
def test_malignancy_with_new_back_pain(current, onset, expected):
    cancer = finding("malignancy", 2000, current=current)
    result = criteria.malignancy(context(make_facts(cancer, onset=onset)))
    if current and expected[1] == "malignancy-new-pain":
        expected = (MET, "malignancy-active-new-pain")  # an active cancer is no history
    assert status(result) == expected
    assert result.evidence[0] == cancer.reference


def test_malignancy_with_deficit_is_urgent_even_with_old_pain():
    cancer, weak = finding("malignancy", 900, current=False), mrc(4, 3)
    result = criteria.malignancy(context(make_facts(cancer, weak, onset=300)))
    assert (result.status, result.reason, result.outcome) == (MET, "malignancy-deficit", URGENT)
    assert result.evidence == (cancer.reference, weak.reference)


# --- red-flag: weight loss ----------------------------------------------------------------------


def weight(kg: float, days: int) -> Finding:
    """A body weight Observation."""
    return finding("body-weight", days, value=kg)


@pytest.mark.parametrize(
    ("before", "after", "met"),
    [
        pytest.param(100.0, 95.0, True, id="5.0-percent"),
        pytest.param(100.0, 95.1, False, id="4.9-percent"),
        pytest.param(80.0, 76.0, True, id="5.0-percent-float-rounding"),
        pytest.param(90.0, 91.0, False, id="weight-gain"),
    ],
)
def test_measured_weight_loss_threshold(before, after, met):
    heavy, light = weight(before, 120), weight(after, 3)
    result = criteria.weight_loss(context(make_facts(heavy, light)))
    assert status(result) == (
        (MET, "weight-loss") if met else (NOT_MET, "weight-loss-below-threshold")
    )
    assert result.evidence == (heavy.reference, light.reference)


def test_weight_loss_compares_the_heaviest_earlier_weight_with_the_latest():
    facts = make_facts(weight(100, 150), weight(97, 60), weight(95, 1))
    assert criteria.weight_loss(context(facts)).status is MET


@pytest.mark.parametrize(
    ("days", "judged"),
    [pytest.param(183, True, id="183-days"), pytest.param(184, False, id="184-days")],
)
def test_weight_loss_window(days, judged):
    result = criteria.weight_loss(context(make_facts(weight(100, days), weight(90, 1))))
    assert (result is not None) is judged


def test_coded_weight_loss():
    result = criteria.weight_loss(context(make_facts(finding("weight-loss", 40))))
    assert status(result) == (MET, "weight-loss")


def test_single_weight_is_not_judged():
    assert criteria.weight_loss(context(make_facts(weight(70, 1)))) is None


# --- red-flag: simple states --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "concept"),
    [
        (criteria.immunosuppression, "immunosuppression"),
        (criteria.iv_drug_use, "iv-drug-use"),
        (criteria.night_pain, "night-pain"),
    ],
    ids=["immunosuppression", "iv-drug-use", "night-pain"],
)
def test_present_state_is_indicated_and_resolved_is_not(check, concept):
    sign = finding(concept, 400)
    result = check(context(make_facts(sign)))
    assert (result.status, result.reason, result.outcome) == (MET, concept, INDICATED)
    assert result.evidence == (sign.reference,)
    assert check(context(make_facts(finding(concept, 400, current=False)))) is None


def test_negated_night_pain_does_not_count():
    facts = replace(make_facts(), absent=(finding("night-pain", 2),))
    assert criteria.night_pain(context(facts)) is None


# --- red-flag: corticosteroids ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("course", "met"),
    [
        pytest.param(lambda: steroid(90), True, id="90-days-active"),
        pytest.param(lambda: steroid(89), False, id="89-days-active"),
        pytest.param(
            lambda: steroid(120, active=False, start=485, end=365), True, id="ended-365-days-ago"
        ),
        pytest.param(
            lambda: steroid(120, active=False, start=486, end=366), False, id="ended-366-days-ago"
        ),
        pytest.param(lambda: steroid(None, start=90), True, id="derived-90-days"),
        pytest.param(lambda: steroid(None, start=89), False, id="derived-89-days"),
    ],
)
def test_long_term_corticosteroids(course, met):
    medication = course()
    result = criteria.corticosteroids(context(make_facts(medications=(medication,))))
    expected = "corticosteroids-long-term" if met else "corticosteroids-short-or-past"
    assert (result.status is MET, result.reason) == (met, expected)
    assert result.evidence == (medication.reference,)


# --- red-flag: osteoporosis, first episode ------------------------------------------------------


@pytest.mark.parametrize(
    ("onset", "expected"),
    [
        pytest.param(30, (MET, "osteoporosis-new-pain"), id="pain-30-days"),
        pytest.param(31, (NOT_MET, "osteoporosis-no-new-pain"), id="pain-31-days"),
        pytest.param(None, (UNKNOWN, "osteoporosis-onset-unknown"), id="onset-unknown"),
    ],
)
def test_osteoporosis_with_new_pain(onset, expected):
    facts = make_facts(finding("osteoporosis", 1000), onset=onset)
    assert status(criteria.osteoporosis_new_pain(context(facts))) == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        pytest.param(50, (MET, "first-episode-age"), id="age-50"),
        pytest.param(49, (NOT_MET, "first-episode-under-age"), id="age-49"),
        pytest.param(None, (UNKNOWN, "first-episode-age-unknown"), id="age-unknown"),
    ],
)
def test_documented_first_episode_by_age(age, expected):
    first = finding("first-episode", 10)
    result = criteria.first_episode_age(context(make_facts(first, age=age)))
    assert status(result) == expected
    assert result.evidence == (first.reference,)


@pytest.mark.parametrize(
    ("history_days", "prior", "expected"),
    [
        pytest.param(730, (), (MET, "first-episode-age"), id="history-730-days"),
        pytest.param(729, (), None, id="history-729-days"),
        pytest.param(
            3000, (finding("low-back-pain", 1500, current=False),), None, id="earlier-episode"
        ),
    ],
)
def test_first_episode_inferred_from_a_record_with_history(history_days, prior, expected):
    facts = make_facts(age=62, earliest_other_condition=ago(history_days), prior_episodes=prior)
    result = criteria.first_episode_age(context(facts))
    assert status(result) == expected
    if result:
        assert result.evidence == EPISODE


def test_empty_problem_list_does_not_prove_a_first_episode():
    assert criteria.first_episode_age(context(make_facts(age=70))) is None


def test_no_red_flag_is_one_not_met_entry():
    result = only(criteria.red_flag(context(make_facts())))
    assert (result.id, result.status, result.reason) == ("red-flag", NOT_MET, "no-red-flag")


def test_red_flag_lists_every_pattern_found():
    facts = make_facts(finding("night-pain"), finding("iv-drug-use"), temperature(38.2))
    reasons = [r.reason for r in criteria.red_flag(context(facts))]
    assert reasons == ["infection-fever-risk-factor", "iv-drug-use", "night-pain"]


# --- trauma -------------------------------------------------------------------------------------


@pytest.mark.parametrize("concept", ["trauma-major", "lumbar-injury"])
@pytest.mark.parametrize(
    ("days", "met"),
    [
        pytest.param(89, True, id="89-days"),
        pytest.param(90, True, id="90-days"),
        pytest.param(91, False, id="91-days"),
    ],
)
def test_major_trauma_and_injury_window(concept, days, met):
    event = finding(concept, days)
    result = only(criteria.trauma(context(make_facts(event))))
    if met:
        assert (result.status, result.reason, result.evidence) == (
            MET,
            concept,
            (event.reference,),
        )
    else:
        assert (result.status, result.reason) == (NOT_MET, "trauma-outside-window")


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        pytest.param(70, (MET, "trauma-minor-risk-factor"), id="age-70"),
        pytest.param(69, (NOT_MET, "trauma-minor-no-risk-factor"), id="age-69"),
        pytest.param(None, (UNKNOWN, "trauma-minor-age-unknown"), id="age-unknown"),
    ],
)
def test_minor_trauma_by_age(age, expected):
    result = only(criteria.trauma(context(make_facts(finding("trauma-minor", 10), age=age))))
    assert status(result) == expected


@pytest.mark.parametrize(
    ("risk", "medications", "met"),
    [
        pytest.param((finding("osteoporosis", 800),), (), True, id="osteoporosis"),
        pytest.param((), (steroid(120),), True, id="long-term-steroids"),
        pytest.param((), (steroid(30),), False, id="short-steroids"),
        pytest.param((finding("osteoporosis", 800, current=False),), (), False, id="resolved"),
    ],
)
def test_minor_trauma_with_fracture_risk_factor(risk, medications, met):
    minor = finding("trauma-minor", 10)
    facts = make_facts(minor, *risk, age=55, medications=medications)
    result = only(criteria.trauma(context(facts)))
    assert (result.status is MET) is met
    if met:
        assert len(result.evidence) == 2
        assert result.evidence[0] == minor.reference


@pytest.mark.parametrize(
    ("days", "judged"),
    [pytest.param(90, True, id="90-days"), pytest.param(91, False, id="91-days")],
)
def test_minor_trauma_window(days, judged):
    result = only(criteria.trauma(context(make_facts(finding("trauma-minor", days), age=80))))
    assert (result.status is MET) is judged


def test_no_trauma():
    assert status(only(criteria.trauma(context(make_facts())))) == (NOT_MET, "no-trauma")


# --- surgical planning --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        pytest.param(finding("surgical-referral", 20), "surgical-referral", id="referral"),
        pytest.param(finding("spinal-procedure", -14, q="planned"), "planned-procedure", id="plan"),
        pytest.param(finding("surgical-indication", 5), "surgical-indication", id="indication"),
    ],
)
def test_surgical_planning_met(plan, expected):
    result = criteria.surgical_planning(context(make_facts(plan)))
    assert (result.status, result.reason, result.evidence) == (MET, expected, (plan.reference,))


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(finding("surgical-referral", 200, current=False), id="referral-closed"),
        pytest.param(finding("spinal-procedure", 30), id="procedure-performed"),
        pytest.param(
            finding("surgical-referral", 0, ref="ServiceRequest/draft-1"), id="the-order-itself"
        ),
    ],
)
def test_surgical_planning_not_met(plan):
    result = criteria.surgical_planning(context(make_facts(plan)))
    assert (result.status, result.reason) == (NOT_MET, "no-surgical-plan")


# --- failed conservative care -------------------------------------------------------------------


def care_facts(*scores: Score, onset: int | None = 120, care_days: int = 84, **fields: object):
    """An episode `onset` days old with active care over the last `care_days` days."""
    return make_facts(onset=onset, care=(care(care_days),), scores=scores, **fields)


def failed_care(facts: PatientFacts) -> list[CriterionResult]:
    return criteria.failed_conservative_care(context(facts))


@pytest.mark.parametrize(
    ("start", "end", "met"),
    [
        pytest.param(7, 6, True, id="nrs-7-to-6-not-improved"),
        pytest.param(7, 5, False, id="nrs-7-to-5-two-points"),
        pytest.param(3, 2, False, id="nrs-3-to-2-33-percent"),
        pytest.param(4, 3, True, id="nrs-4-to-3-25-percent-one-point"),
        pytest.param(10, 7, False, id="nrs-10-to-7-30-percent"),
        pytest.param(6, 7, True, id="nrs-worse"),
    ],
)
def test_pain_score_improvement_thresholds(start, end, met):
    result = only(failed_care(care_facts(nrs(start, 90), nrs(end, 2))))
    assert (result.status, result.reason) == (
        (MET, "failed-care") if met else (NOT_MET, "improved")
    )


@pytest.mark.parametrize(
    ("start", "end", "met"),
    [
        pytest.param(40, 30, False, id="odi-10-points"),
        pytest.param(40, 31, True, id="odi-9-points"),
    ],
)
def test_oswestry_improvement_threshold(start, end, met):
    result = only(failed_care(care_facts(odi(start, 90), odi(end, 2))))
    assert (result.status is MET) is met


def test_either_score_improving_is_improvement():
    facts = care_facts(nrs(7, 90), nrs(7, 2), odi(50, 90), odi(30, 2))
    assert only(failed_care(facts)).reason == "improved"


def test_baseline_is_the_last_score_before_care_started():
    # 3 long before care, 8 just before the first session, 6 now: measured from 8 it improved.
    facts = care_facts(nrs(3, 200), nrs(8, 85), nrs(6, 2))
    assert only(failed_care(facts)).reason == "improved"


def test_a_score_on_the_first_session_day_is_the_baseline():
    # Care runs from 84 days ago: the 8 measured that day is the start, not the older 3.
    facts = care_facts(nrs(3, 200), nrs(8, 84), nrs(6, 2))
    assert only(failed_care(facts)).reason == "improved"


def test_baseline_is_the_first_score_when_none_precede_care():
    facts = care_facts(nrs(8, 80), nrs(5, 40), nrs(7, 2))
    assert only(failed_care(facts)).reason == "failed-care"


def test_evidence_names_episode_care_and_scores():
    first, last = nrs(7, 90), nrs(7, 2)
    facts = care_facts(first, last)
    result = only(failed_care(facts))
    assert result.evidence == (*EPISODE, *facts.care[0].references, first.reference, last.reference)


@pytest.mark.parametrize(
    ("onset", "care_days", "expected"),
    [
        pytest.param(84, 84, (MET, "failed-care"), id="episode-and-care-12-weeks"),
        pytest.param(83, 83, (NOT_MET, "episode-too-short"), id="episode-83-days"),
        pytest.param(120, 83, (NOT_MET, "active-care-too-short"), id="care-83-days"),
    ],
)
def test_twelve_week_thresholds(onset, care_days, expected):
    facts = care_facts(nrs(7, 84), nrs(7, 1), onset=onset, care_days=care_days)
    assert status(only(failed_care(facts))) == expected


def test_active_care_weeks_come_from_policy():
    facts = care_facts(nrs(7, 84), nrs(7, 1))
    longer = replace(policy(), conservative_care_active_care_min_weeks=26)
    result = only(criteria.failed_conservative_care(context(facts, longer)))
    assert result.reason == "active-care-too-short"


def test_passive_care_alone_never_counts():
    facts = make_facts(
        onset=200, care=(care(150, kind="passive"),), scores=(nrs(8, 150), nrs(8, 1))
    )
    assert status(only(failed_care(facts))) == (NOT_MET, "passive-care-only")


def test_care_that_ended_before_the_episode_does_not_count():
    facts = make_facts(onset=100, care=(care(400, 200),), scores=(nrs(8, 400), nrs(8, 1)))
    assert status(only(failed_care(facts))) == (NOT_MET, "no-active-care")


@pytest.mark.parametrize(
    "scores",
    [
        pytest.param((), id="no-scores"),
        pytest.param((nrs(7, 30),), id="one-score"),
        pytest.param((nrs(7, 100), nrs(7, 90)), id="all-before-care"),
    ],
)
def test_unjudgeable_scores_are_outcome_scores_missing(scores):
    care_result, missing = failed_care(care_facts(*scores))
    assert status(care_result) == (UNKNOWN, "outcome-scores-missing")
    assert (missing.id, missing.status, missing.outcome) == (
        "outcome-scores-missing",
        MET,
        Outcome.INSUFFICIENT_DATA,
    )


def test_unknown_onset_with_failed_care_is_unknown():
    result = only(failed_care(care_facts(nrs(7, 90), nrs(7, 2), onset=None)))
    assert status(result) == (UNKNOWN, "episode-onset-unknown")


def test_unknown_onset_without_care_is_not_met():
    facts = make_facts(onset=None)
    assert status(only(failed_care(facts))) == (NOT_MET, "no-active-care")


# --- repeat imaging -----------------------------------------------------------------------------


def imaging(days: int) -> PriorImaging:
    return PriorImaging(Modality.MRI, ago(days), f"ImagingStudy/mri-{next(_ids)}")


@pytest.mark.parametrize(
    ("days", "met"),
    [pytest.param(365, True, id="365-days"), pytest.param(366, False, id="366-days")],
)
def test_repeat_imaging_window(days, met):
    scan = imaging(days)
    result = criteria.repeat_imaging(context(make_facts(prior_imaging=(scan,))), [])
    assert (result.status is MET) is met
    assert result.evidence == (scan.reference,)


@pytest.mark.parametrize(
    ("flag_days", "met"),
    [
        pytest.param(101, True, id="flag-before-scan"),
        pytest.param(100, True, id="flag-on-scan-day"),
        pytest.param(99, False, id="flag-after-scan"),
    ],
)
def test_repeat_imaging_is_broken_by_a_later_red_flag(flag_days, met):
    flag = finding("night-pain", flag_days)
    ctx = context(make_facts(flag, prior_imaging=(imaging(100),)))
    result = criteria.repeat_imaging(ctx, criteria.red_flag(ctx))
    assert (result.status is MET) is met
    if not met:
        assert result.reason == "new-finding-since-imaging"
        assert flag.reference in result.evidence


def test_repeat_imaging_ignores_later_findings_of_unmet_criteria():
    ctx = context(make_facts(finding("diabetes", 10), prior_imaging=(imaging(100),)))
    assert criteria.repeat_imaging(ctx, criteria.red_flag(ctx)).status is MET


def test_no_prior_imaging():
    result = criteria.repeat_imaging(context(make_facts()), [])
    assert status(result) == (NOT_MET, "no-prior-imaging")


def test_care_is_cut_to_the_current_episode():
    from datetime import date

    from cds_service.rules.model import CareEpisode

    sessions = (
        (date(2026, 1, 5), date(2026, 1, 5), "Procedure/a"),
        (date(2026, 5, 1), date(2026, 5, 20), "Procedure/b"),  # a course spanning the onset
        (date(2026, 7, 1), date(2026, 7, 1), "Procedure/c"),
    )
    care = CareEpisode("active", date(2026, 1, 5), date(2026, 7, 1), 3, ("a", "b", "c"), sessions)
    within = care.since(date(2026, 5, 10))
    assert within is not None
    assert (within.first, within.last, within.sessions) == (date(2026, 5, 10), date(2026, 7, 1), 2)
    assert within.references == ("Procedure/b", "Procedure/c")
    assert care.since(date(2026, 8, 1)) is None
