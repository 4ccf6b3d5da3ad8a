"""The validated-resource cache: same content, same model; changed content validated afresh."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cds_service.fhir import validated as cache

CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "subject": {"reference": "Patient/p1"},
    "code": {"text": "lage rugpijn"},
}


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def test_the_same_resource_is_validated_once():
    first = cache.validated("Condition", dict(CONDITION))
    again = cache.validated("Condition", {**CONDITION})  # equal content, another dict
    assert again is first


def test_changed_content_is_validated_again():
    first = cache.validated("Condition", CONDITION)
    changed = cache.validated("Condition", {**CONDITION, "code": {"text": "ischias"}})
    assert changed is not first
    assert changed.code.text == "ischias"


def test_invalid_resources_raise_every_time_and_are_not_cached():
    broken = {**CONDITION, "subject": "not a reference"}
    for _ in range(2):
        with pytest.raises(ValidationError):
            cache.validated("Condition", broken)
    assert len(cache._cache) == 0


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    for index in range(5):
        cache.validated("Condition", {**CONDITION, "id": f"c{index}"})
    assert len(cache._cache) == 3
