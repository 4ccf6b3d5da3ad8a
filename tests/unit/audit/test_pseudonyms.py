"""Pseudonyms are stable per key, separate per kind, and useless without the key."""

from __future__ import annotations

import hashlib

import pytest

from cds_service.audit.pseudonyms import Pseudonymiser, safe_token

KEY = "k" * 40


def test_same_identifier_same_key_same_pseudonym():
    assert Pseudonymiser(KEY)("patient", "123") == Pseudonymiser(KEY)("patient", "123")


def test_kinds_and_keys_separate_name_spaces():
    p = Pseudonymiser(KEY)
    assert p("patient", "123") != p("clinician", "123")
    assert p("patient", "123") != Pseudonymiser("x" * 40)("patient", "123")


def test_pseudonym_is_not_a_plain_hash_of_the_identifier():
    pseudonym = Pseudonymiser(KEY)("patient", "123")
    assert len(pseudonym) == 64 and int(pseudonym, 16) >= 0
    assert "123" not in pseudonym
    for guess in ("123", "patient\x1f123", "patient:123"):
        assert pseudonym != hashlib.sha256(guess.encode()).hexdigest()


def test_a_key_is_required():
    with pytest.raises(ValueError):
        Pseudonymiser("")


def test_optional_pseudonym():
    p = Pseudonymiser(KEY)
    assert p.optional("encounter", None) is None
    assert p.optional("encounter", "") is None
    assert p.optional("encounter", "e1") == p("encounter", "e1")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("6a2e2b7e-4a7b-4c3c-9f5e-0f3b4d1c2a10", "6a2e2b7e-4a7b-4c3c-9f5e-0f3b4d1c2a10"),
        ("72148", "72148"),
        ("Jan Jansen", None),
        ("x" * 65, None),
        ("", None),
        (12, None),
    ],
)
def test_safe_token_lets_through_identifiers_only(value, expected):
    assert safe_token(value) == expected


@pytest.mark.parametrize("value", ["abc\n", "expert-contradicts\n", "a\nb"])
def test_a_trailing_newline_is_no_safe_token(value):
    assert safe_token(value) is None
