"""Unit conversion for the measurements the rules compare: temperature, weight, durations, MRC."""

from __future__ import annotations

import math
import re
from decimal import Decimal

# UCUM codes first, then the spellings seen in `Quantity.unit` from GP systems. Keys are
# lower-cased: lookups normalise once instead of listing every capitalisation.
_CELSIUS = frozenset({"cel", "°c", "degc", "c", "celsius", "graden celsius", "℃"})
_FAHRENHEIT = frozenset({"[degf]", "degf", "°f", "f", "fahrenheit", "℉"})
_KG_FACTOR = {
    "kg": 1.0,
    "kilogram": 1.0,
    "kilograms": 1.0,
    "g": 0.001,
    "gram": 0.001,
    "[lb_av]": 0.45359237,
    "lb": 0.45359237,
    "lbs": 0.45359237,
    "pound": 0.45359237,
    "pounds": 0.45359237,
}
# Durations in days; a month counts as 30 days and a year as 365, which is exact enough for a
# "three months of corticosteroids" threshold and keeps the arithmetic in whole days.
_DAYS_FACTOR = {
    "d": 1,
    "day": 1,
    "days": 1,
    "dag": 1,
    "dagen": 1,
    "wk": 7,
    "week": 7,
    "weeks": 7,
    "weken": 7,
    "mo": 30,
    "month": 30,
    "months": 30,
    "maand": 30,
    "maanden": 30,
    "a": 365,
    "year": 365,
    "years": 365,
    "jaar": 365,
}
# Plausible ranges used only when a quantity carries no unit at all: they do not overlap, so a
# bare 38.4 is Celsius and a bare 101.2 is Fahrenheit.
_BARE_CELSIUS = (25.0, 46.0)
_BARE_FAHRENHEIT = (77.0, 115.0)

# "4", "4/5", "4+/5", "MRC 4", "graad 3/5": one grade 0-5, optionally out of 5.
_MRC = re.compile(r"^\s*(?:mrc|graad|grade)?\s*([0-5])\s*([+-]?)\s*(?:/\s*5)?\s*$", re.IGNORECASE)


def as_float(value: object) -> float | None:
    """A finite float from an int, float or Decimal; None for anything else (and for bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def unit_key(code: str | None, unit: str | None) -> str | None:
    """The unit to interpret, UCUM `code` preferred over the display `unit`, lower-cased."""
    for candidate in (code, unit):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip().lower()
    return None


def celsius(value: float, unit: str | None) -> float | None:
    """A temperature in °C, converting °F; None when the unit is not a temperature unit."""
    if unit is None:
        if _BARE_CELSIUS[0] <= value <= _BARE_CELSIUS[1]:
            return value
        if _BARE_FAHRENHEIT[0] <= value <= _BARE_FAHRENHEIT[1]:
            return round((value - 32.0) * 5.0 / 9.0, 2)
        return None
    if unit in _CELSIUS:
        return value
    if unit in _FAHRENHEIT:
        return round((value - 32.0) * 5.0 / 9.0, 2)
    return None


def kilograms(value: float, unit: str | None) -> float | None:
    """A body weight in kg, converting lb and g; None when the unit is unknown or missing."""
    factor = _KG_FACTOR.get(unit) if unit is not None else None
    if factor is None:
        return None
    return round(value * factor, 3)


def duration_days(value: float, unit: str | None) -> int | None:
    """A FHIR Duration in whole days (d, wk, mo, a and their spellings); None if unknown."""
    factor = _DAYS_FACTOR.get(unit) if unit is not None else None
    if factor is None or value < 0:
        return None
    return round(value * factor)


def mrc_grade(text: str) -> float | None:
    """MRC grade from text such as "4", "4/5" or "4+/5"; "5-" is 4.5 (not full strength)."""
    match = _MRC.match(text)
    if match is None:
        return None
    grade = float(match.group(1))
    # A plus or minus refines within a grade; only "5-" changes what the rules see: it is
    # neither full strength (no proof of a normal exam) nor a grade <= 4.
    if grade == 5 and match.group(2) == "-":
        return 4.5
    return grade
