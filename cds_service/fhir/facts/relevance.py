"""Which raw resources can contribute a finding: the rest is never validated (issue 11).

R4B validation is most of the cost of a large record (~130 µs per Observation), and most of a
US record is labs and vital signs no rule reads. A resource is skipped only when reading it
could not change the facts, decided on the raw JSON:

- an Observation whose code (every coding, its display and text) names no concept the rules
  know and no lumbar scan, with no valueString and no note, whose coded value (if any) names
  nothing either — alone, or read as the result of the code's test as the reader reads it
  ("Lasègue" + "positief") — and whose components (a blood-pressure panel) each pass the same
  test: what remains (a number, a unit, an interpretation) only qualifies a concept the code
  would have had to name;
- an Observation coded only as a body temperature, dated (effectiveDateTime) more than
  `window + 2` days before the call, where `window` is the policy's fever window — the one rule
  that reads temperatures looks back that far (the 2 days absorb time-zone shifts) — or whose
  valueQuantity, converted exactly as the reader converts it, is more than 0.05 °C below the
  policy's fever threshold: that rule reads only temperatures at or above it;
- an Encounter with no reason, no diagnosis, no episode and no reason reference: a wellness
  visit that links nothing.

Everything else is validated and read, including anything odd (a code that is not an object,
a coding without a system): the readers note what they cannot read. The differential test
(tests/functional/test_relevance_differential.py) runs every scenario, every corpus record and
generated records through both paths and asserts identical decisions.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cds_service.fhir.exam import without_laterality
from cds_service.fhir.units import celsius, unit_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cds_service.fhir.facts.builder import FactsBuilder

_ENCOUNTER_READ = ("reasonCode", "diagnosis", "episodeOfCare", "reasonReference")
# Days added to the fever window before an old temperature is skipped (time zones, rounding).
_WINDOW_MARGIN_DAYS = 2
# A temperature this far below the fever threshold is no fever however it is rounded.
_THRESHOLD_MARGIN_CELSIUS = 0.05

_NOTHING = "nothing"  # the code names nothing the rules read
_TEMPERATURE = "temperature"  # the code names a body temperature and nothing else
_READ = "read"  # the code names something: validate and read


class Screen:
    """Per hook call: decides from the raw dict whether a resource can be skipped."""

    def __init__(self, builder: FactsBuilder) -> None:
        self.builder = builder
        self.verdicts: dict[tuple[Any, ...], str] = {}
        policy = builder.knowledge.policy
        window = policy.red_flags_fever_window_days + _WINDOW_MARGIN_DAYS
        # an ISO date string compares as the date it names
        self.temperature_cutoff = (builder.today - timedelta(days=window)).isoformat()
        self.no_fever_below = policy.red_flags_fever_celsius - _THRESHOLD_MARGIN_CELSIUS

    def skip(self, kind: str, item: Mapping[str, Any]) -> bool:
        """True when the resource cannot contribute a finding (see the module's rules)."""
        if kind == "Observation":
            return self._observation(item)
        if kind == "Encounter":
            return not any(key in item for key in _ENCOUNTER_READ)
        return False

    def _observation(self, item: Mapping[str, Any], *, component: bool = False) -> bool:
        if "valueString" in item or "note" in item:
            return False
        signature = _signature(item.get("code"))
        if signature is None:
            return False
        verdict = self._verdict_of(signature)
        value = item.get("valueCodeableConcept")
        components = item.get("component")
        if value is not None or components is not None:
            # a coded value or a panel: skipped only when neither names anything either
            if verdict != _NOTHING:
                return False
            if value is not None and not self._value_says_nothing(signature, value):
                return False
            if components is None:
                return True
            if component or not isinstance(components, list):
                return False
            return all(
                isinstance(part, dict) and self._observation(part, component=True)
                for part in components
            )
        if verdict == _NOTHING:
            return True
        if verdict == _TEMPERATURE and not component:
            when = item.get("effectiveDateTime")
            if isinstance(when, str) and len(when) >= 10 and when[:10] < self.temperature_cutoff:
                return True
            return self._below_fever(item.get("valueQuantity"))
        return False

    def _verdict_of(self, signature: tuple[Any, ...]) -> str:
        verdict = self.verdicts.get(signature)
        if verdict is None:
            verdict = self.verdicts[signature] = self._verdict(signature)
        return verdict

    def _value_says_nothing(self, code: tuple[Any, ...], value: Any) -> bool:
        """True when a coded value names nothing, alone or as the result of its code's test.

        The reader takes a test's name and result as one phrase ("Lasègue" + "positief"); the
        same phrases are read here.
        """
        signature = _signature(value)
        if signature is None:
            return False
        key = ("value", code, signature)
        verdict = self.verdicts.get(key)
        if verdict is None:
            verdict = _NOTHING if self._verdict_of(signature) == _NOTHING else _READ
            codings, text = code
            name = text or next((display for _, _, display in codings if display), None)
            results = [display for _, _, display in signature[0] if display]
            if signature[1]:
                results.append(signature[1])
            if verdict == _NOTHING and name:
                bare = without_laterality(name)
                for result in results:
                    if self.builder.knowledge.read_text(f"{bare} {result}", None).findings:
                        verdict = _READ
                        break
            self.verdicts[key] = verdict
        return verdict == _NOTHING

    def _below_fever(self, quantity: Any) -> bool:
        """True for a valueQuantity that is a temperature clearly below the fever threshold."""
        if not isinstance(quantity, dict):
            return False
        value, code, unit = quantity.get("value"), quantity.get("code"), quantity.get("unit")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):
            return False
        if not all(part is None or isinstance(part, str) for part in (code, unit)):
            return False
        converted = celsius(float(value), unit_key(code, unit))
        return converted is not None and converted < self.no_fever_below

    def _verdict(self, signature: tuple[Any, ...]) -> str:
        """What a code signature names: nothing, a body temperature only, or more."""
        knowledge = self.builder.knowledge
        codings, text = signature
        concepts: set[str] = set()
        texts = [display for _, _, display in codings if display]
        if text:
            texts.append(text)
        for system, code, _ in codings:
            if system and code:
                concepts |= knowledge.concepts_for_coding(system, code)
        for words in texts:
            concepts |= {found.concept for found in knowledge.read_text(words, None).findings}
            if knowledge.order_modality(words) is not None:
                return _READ
        if not concepts:
            return _NOTHING
        if concepts == {"body-temperature"}:
            return _TEMPERATURE
        return _READ


def _signature(code: Any) -> tuple[Any, ...] | None:
    """(codings as (system, code, display), text) of a raw CodeableConcept; None when odd."""
    if not isinstance(code, dict):
        return None
    text = code.get("text")
    if text is not None and not isinstance(text, str):
        return None
    codings = []
    for coding in code.get("coding") or ():
        if not isinstance(coding, dict):
            return None
        parts = (coding.get("system"), coding.get("code"), coding.get("display"))
        if any(part is not None and not isinstance(part, str) for part in parts):
            return None
        codings.append(parts)
    if not isinstance(code.get("coding") or [], list):
        return None
    return (tuple(codings), text)
