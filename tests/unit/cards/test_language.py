"""Language negotiation: Accept-Language, then Patient.communication, then the default."""

from __future__ import annotations

import pytest

from cds_service.cards.language import negotiate, variant


def patient(*tags: str, preferred: str | None = None) -> dict:
    return {
        "resourceType": "Patient",
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": tag}]},
                **({"preferred": True} if tag == preferred else {}),
            }
            for tag in tags
        ],
    }


@pytest.mark.parametrize(
    ("header", "pat", "default", "expected"),
    [
        ("en-GB,en;q=0.9", patient("nl-NL"), "nl", "en"),  # header wins
        ("fr-FR, en;q=0.3, nl;q=0.8", None, "en", "nl"),  # q-values honoured
        (None, patient("en"), "nl", "en"),  # patient
        (None, patient("nl", "en", preferred="en"), "nl", "en"),  # preferred first
        (None, {"communication": [{"language": {"text": "en"}}]}, "nl", "en"),
        (None, None, "nl", "nl"),  # default
        (None, None, "en", "en"),
        ("fr, de;q=0.5", patient("tr"), "nl", "nl"),  # unknown -> default
        ("*", None, "en", "en"),
        ("en;q=0", None, "nl", "nl"),
        (None, patient("nl-BE"), "en", "nl"),
    ],
)
def test_negotiate(header, pat, default, expected):
    assert negotiate(header, pat, default) == expected


@pytest.mark.parametrize(
    ("header", "pat", "expected"),
    [
        (None, patient("nl-BE"), "nl-BE"),
        ("nl-BE,nl;q=0.9", None, "nl-BE"),
        ("nl", patient("nl-BE"), "nl-BE"),  # bare nl: the patient's region decides
        ("nl-NL", patient("nl-BE"), None),  # an explicit region in the header wins
        (None, patient("nl-NL"), None),
        (None, patient("nl_be"), "nl-BE"),
    ],
)
def test_flemish_variant(header, pat, expected):
    language = negotiate(header, pat, "nl")
    assert language == "nl"
    assert variant(header, pat, language) == expected


def test_no_variant_for_english():
    assert variant("en", patient("nl-BE"), "en") is None
