"""What every reader of the facts package shares: code, text and date helpers and constants."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

from cds_service.fhir.units import as_float

_NUMBER = re.compile(r"^\s*(\d{1,3}(?:[.,]\d+)?)\s*(?:/\s*(?:10|100))?\s*%?\s*$")

CARE_KIND = {"active-care": "active", "passive-care": "passive"}


def normalise_references(references: Collection[str]) -> frozenset[str]:
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


def codes_of(concept: Any) -> set[str]:
    """The codes of a CodeableConcept (any system), e.g. a clinicalStatus."""
    if concept is None:
        return set()
    return {c.code for c in concept.coding or () if c.code}


def note_texts(model: Any) -> list[str]:
    """The texts of a resource's notes (Annotation.text)."""
    return [n.text for n in getattr(model, "note", None) or () if n.text]


def period_start(period: Any) -> Any:
    """A Period's start, or None without a period."""
    return period.start if period is not None else None


def period_end(period: Any) -> Any:
    """A Period's end, or None without a period."""
    return period.end if period is not None else None


def texts_of(concept: Any) -> list[str]:
    """code.text and every coding.display of a CodeableConcept."""
    if concept is None:
        return []
    texts = [c.display for c in concept.coding or () if c.display]
    if concept.text:
        texts.append(concept.text)
    return texts


def side_of(qualifiers: frozenset[str]) -> str:
    """ "bilateral", "left", "right" or "" (no side) from a finding's qualifiers."""
    for side in ("bilateral", "left", "right"):
        if side in qualifiers:
            return side
    return ""


def plain_number(text: str) -> float | None:
    """A number from text such as "6", "6/10", "42 %" or "4,5"."""
    match = _NUMBER.match(text)
    return float(match.group(1).replace(",", ".")) if match else None


def number_value(
    observation: Any, parse_text: Callable[[str], float | None] | None
) -> float | None:
    """valueInteger, valueQuantity.value, or valueString read by `parse_text`."""
    if observation.valueInteger is not None:
        return as_float(observation.valueInteger)
    if observation.valueQuantity is not None:
        return as_float(observation.valueQuantity.value)
    if parse_text is not None:
        for text in (observation.valueString, *texts_of(observation.valueCodeableConcept)):
            if text:
                number = parse_text(text)
                if number is not None:
                    return number
    return None
