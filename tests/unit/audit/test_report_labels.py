"""Readable labels: stable per pseudonym, unique within a report, lengthened only on a clash."""

from __future__ import annotations

import re

import pytest

from cds_service.audit.pseudonyms import Pseudonymiser
from cds_service.audit.reports import labels
from cds_service.audit.reports.labels import FULL_LENGTH, label_of, label_report, labels_for

KEY = "a-pseudonym-key-of-at-least-32-characters"
LABEL = re.compile(r"H-[0-9A-HJKMNP-TV-Z]{4,12}")  # Crockford: no I, L, O or U


def test_a_label_is_short_readable_and_the_same_every_time():
    pseudonym = Pseudonymiser(KEY)("clinician", "Practitioner/123")
    first = label_of("clinician", pseudonym)
    assert LABEL.fullmatch(first) and len(first) == 6
    # Fixed values: a label that changed between releases would no longer be recognised.
    assert first == label_of("clinician", pseudonym) == "H-PSR2"
    assert label_of("clinician", "c-A") == "H-EJ6R"
    assert label_of("patient", "c-A").startswith("P-")
    assert label_of("patient", "c-A")[2:] != "EJ6R"  # name spaces differ per kind


def test_the_label_needs_the_key():
    """Another organisation's key gives the same practitioner another pseudonym and label."""
    ours = Pseudonymiser(KEY)("clinician", "Practitioner/123")
    theirs = Pseudonymiser(KEY[::-1])("clinician", "Practitioner/123")
    assert label_of("clinician", ours) != label_of("clinician", theirs)


def test_labels_are_unique_among_two_thousand_clinicians():
    pseudonym = Pseudonymiser(KEY)
    pseudonyms = [pseudonym("clinician", f"Practitioner/{i}") for i in range(2000)]
    found = labels_for("clinician", pseudonyms)
    assert len(set(found.values())) == 2000
    assert all(LABEL.fullmatch(label) for label in found.values())
    short = [label for label in found.values() if len(label) == 6]
    assert len(short) >= 1990  # only the few that would clash are longer
    for p, label in found.items():
        assert label.startswith(label_of("clinician", p))  # a longer label keeps its start
    # The same clinicians in another report, in another order: the same labels.
    assert labels_for("clinician", reversed(pseudonyms)) == found


def test_only_the_clashing_labels_are_lengthened(monkeypatch):
    codes = {"a": "7Q3KAAAAAAAA", "b": "7Q3KBBBBBBBB", "c": "ZZZZCCCCCCCC", "d": "7Q3KACCCCCCC"}
    monkeypatch.setattr(labels, "_code", lambda kind, p: codes[p])
    assert labels_for("clinician", codes) == {
        "a": "H-7Q3KAA",  # shares 7Q3KA with d: lengthened once more
        "b": "H-7Q3KB",
        "c": "H-ZZZZ",
        "d": "H-7Q3KAC",
    }


def test_two_pseudonyms_with_one_full_code_are_refused(monkeypatch):
    monkeypatch.setattr(labels, "_code", lambda kind, p: "7" * FULL_LENGTH)
    with pytest.raises(ValueError, match="share"):
        labels_for("clinician", ["a", "b"])


def test_the_report_gets_labels_beside_its_keys():
    report = {
        "by": "clinician",
        "clinicians": [{"key": "c-A"}, {"key": "c-B"}],
        "groups": [{"key": "c-A"}, {"key": "c-B"}],
        "missedAlarms": {"items": [{"patient": "pM0"}, {"patient": "pM0"}]},
    }
    label_report(report)
    assert [c["label"] for c in report["clinicians"]] == ["H-EJ6R", "H-2HTF"]
    assert [g["label"] for g in report["groups"]] == ["H-EJ6R", "H-2HTF"]
    assert [c["key"] for c in report["clinicians"]] == ["c-A", "c-B"]  # keys stay
    assert {i["patientLabel"] for i in report["missedAlarms"]["items"]} == {"P-BK7X"}
