"""FHIR date, dateTime and instant values reduced to calendar dates, and age in whole years."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Any


def to_date(value: Any, tz: tzinfo | None = None) -> date | None:
    """Calendar date of a FHIR date/dateTime/instant value; partial dates give their first day.

    fhir.resources hands back `date`, `datetime` or, for the partial forms "YYYY" and
    "YYYY-MM", the string itself. An aware datetime is moved into `tz` (the zone of the hook
    call) so that it lands on the same calendar as "today"; without `tz` its own date is used.
    """
    if isinstance(value, datetime):
        moment = value.astimezone(tz) if tz is not None and value.tzinfo is not None else value
        return moment.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return parse_partial(value)
    return None


def is_partial(value: Any) -> bool:
    """True for a FHIR partial date ("YYYY" or "YYYY-MM") as fhir.resources keeps it."""
    return isinstance(value, str) and parse_partial(value) is not None


def parse_partial(text: str) -> date | None:
    """First day of a "YYYY" or "YYYY-MM" partial date, else None."""
    # Plain slicing instead of a regex: this runs for every dated resource.
    if len(text) == 4 and text.isdigit():
        year, month = int(text), 1
    elif len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit():
        year, month = int(text[:4]), int(text[5:])
    else:
        return None
    if not (1 <= year <= 9999 and 1 <= month <= 12):
        return None
    return date(year, month, 1)


def age_in_years(birth: date, today: date) -> int:
    """Completed years between a birth date and today (negative when birth is in the future)."""
    before_birthday = (today.month, today.day) < (birth.month, birth.day)
    return today.year - birth.year - int(before_birthday)


def earliest(*values: date | None) -> date | None:
    """The earliest of the dates given, ignoring None."""
    present = [v for v in values if v is not None]
    return min(present) if present else None
