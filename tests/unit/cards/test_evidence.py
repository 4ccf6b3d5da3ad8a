"""Naming the data a check used in words: dates, values, sides, sources (cards/evidence.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cds_service.cards.evidence import EvidenceNames, format_date
from cds_service.rules.model import (
    CareEpisode,
    Finding,
    Modality,
    PatientFacts,
    PriorImaging,
    Score,
    Strength,
)
from tests.support.cards import catalogue

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _names(language: str, *findings: Finding, **extra) -> EvidenceNames:
    facts = PatientFacts(evaluated_at=NOW, findings=findings, **extra)
    return EvidenceNames(catalogue(), language, facts)


@pytest.mark.parametrize(
    ("day", "language", "text"),
    [
        (date(2026, 11, 12), "nl", "12 nov"),
        (date(2026, 3, 1), "en", "1 Mar"),
        (date(2025, 5, 15), "nl", "15 mei 2025"),  # another year: the year is said
        (date(2025, 10, 3), "en", "3 Oct 2025"),
    ],
)
def test_dates_in_the_card_language(day, language, text):
    assert format_date(day, language, catalogue(), NOW.date()) == text


def test_a_measured_value_with_its_side_and_a_dutch_decimal_comma():
    mrc = Finding(
        "muscle-strength",
        "Observation/m",
        date(2026, 2, 28),
        value=3.0,
        qualifiers=frozenset({"right"}),
    )
    fever = Finding("body-temperature", "Observation/t", date(2026, 3, 1), value=38.6)
    assert _names("nl", mrc).phrases(["Observation/m"], 3) == [
        "kracht MRC 3 re, 28 feb (onderzoek)"
    ]
    assert _names("nl", fever).phrases(["Observation/t"], 3) == [
        "temperatuur 38,6 °C, 1 mrt (meting)"
    ]
    assert _names("en", fever).phrases(["Observation/t"], 3) == [
        "temperature 38.6 °C, 1 Mar (measurement)"
    ]


def test_both_sides_and_a_severity_named_once():
    both = Finding(
        "muscle-weakness",
        "Condition/w",
        None,
        qualifiers=frozenset({"left", "right", "bilateral", "severe"}),
    )
    pain = Finding(
        "severe-pain", "Observation/p", None, Strength.TEXT, qualifiers=frozenset({"severe"})
    )
    names = _names("nl", both, pain)
    assert names.phrases(["Condition/w"], 3) == ["krachtsverlies beiderzijds ernstig (diagnose)"]
    # read from a journal line: the GP's note, and "ernstig" not said twice
    assert names.phrases(["Observation/p"], 3) == ["ernstige pijn (huisartsjournaal)"]


def test_an_absent_finding_is_named_only_when_nothing_else_is():
    note = "Observation/journal"
    fever_absent = Finding("fever", note, date(2026, 3, 1), Strength.TEXT)
    names = EvidenceNames(
        catalogue(),
        "en",
        PatientFacts(
            evaluated_at=NOW,
            findings=(Finding("night-pain", note, date(2026, 3, 1), Strength.TEXT),),
            absent=(fever_absent, Finding("fever", "Observation/other", None, Strength.TEXT)),
        ),
    )
    assert names.phrases([note], 3) == ["night pain, 1 Mar (GP note)"]
    assert names.phrases(["Observation/other"], 3) == ["fever absent (GP note)"]


def test_the_episode_names_its_episode_concept_other_checks_the_other_finding():
    ref = "Condition/c"
    names = _names(
        "en",
        Finding("sciatica", ref, date(2026, 1, 5)),
        Finding("radicular-symptoms", ref, date(2026, 1, 5)),
    )
    assert names.phrases([ref], 3, episode=True) == [
        "sciatica / radicular syndrome, 5 Jan (condition)"
    ]
    assert names.phrases([ref], 3) == ["radiating pain or tingling, 5 Jan (condition)"]


def test_care_scores_and_imaging_grouped_and_capped():
    sessions = tuple(
        (date(2026, 1, d), date(2026, 1, d), f"Procedure/s{d}") for d in (5, 12, 19, 26)
    )
    care = CareEpisode(
        "active", date(2026, 1, 5), date(2026, 1, 26), 4, tuple(r for _, _, r in sessions), sessions
    )
    names = _names(
        "nl",
        care=(care,),
        scores=(Score("oswestry", date(2026, 1, 5), 40.0, "Observation/odi"),),
        prior_imaging=(PriorImaging(Modality.MRI, date(2025, 10, 3), "ImagingStudy/i"),),
    )
    refs = [r for _, _, r in sessions]
    assert names.phrases(refs, 3) == ["oefentherapie, 5 jan, 12 jan, 19 jan, +1 (verrichting)"]
    assert names.phrases(["Observation/odi", "ImagingStudy/i"], 1) == [
        "Oswestry 40, 5 jan (meting)",
        "+1",
    ]
    assert names.phrases(["ImagingStudy/i"], 3) == ["MRI LWK, 3 okt 2025 (beeldvorming)"]


def test_references_the_facts_do_not_know_are_named_by_their_source():
    names = _names("en")
    assert names.phrases(["Procedure/x", "ServiceRequest/o#reason", "urn:uuid:1"], 5) == [
        "procedure",
        "the order",
        "record",
    ]
