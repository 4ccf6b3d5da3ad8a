"""Figures written for a reader's language: thousands separators, percentages, money, dates.

Dutch and English only, by hand rather than with Babel: a dozen rules, and the report's
figures must read the same on every machine whatever its system locale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

LANGUAGES = ("nl", "en")
MONTHS = {
    "nl": (
        "januari februari maart april mei juni juli augustus september oktober november december"
    ).split(),
    "en": (
        "January February March April May June July August September October November December"
    ).split(),
}
MISSING = "–"
MINUS = "−"  # U+2212: a minus sign, not a hyphen, so a change never reads as a dash


def pick_language(accept_language: str | None, default: str) -> str:
    """The first of LANGUAGES in an Accept-Language header (by q-value), else `default`."""
    choices = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else default


@dataclass(frozen=True, slots=True)
class Formatter:
    """Writes numbers and dates the way a reader of `language` expects them."""

    language: str

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")

    def _separators(self) -> tuple[str, str]:
        return (".", ",") if self.language == "nl" else (",", ".")

    def number(self, value: float | None, digits: int = 0) -> str:
        """1.234.567 / 1,234,567; with `digits` decimals (12,5 / 12.5)."""
        if value is None:
            return MISSING
        thousands, decimal = self._separators()
        separators: dict[str, str | int | None] = {",": thousands, ".": decimal}
        text = f"{abs(value):,.{digits}f}".translate(str.maketrans(separators))
        return f"{MINUS}{text}" if value < 0 and text.strip("0.,") else text

    def percent(self, rate: float | None, digits: int = 1) -> str:
        """A fraction as a percentage: 0.125 → 12,5% / 12.5%."""
        if rate is None:
            return MISSING
        return f"{self.number(rate * 100, digits)}%"

    def money(self, value: float | None, currency: str) -> str:
        """€ 18.220 / €18,220 (whole units: the figures are estimates)."""
        if value is None:
            return MISSING
        symbol = {"EUR": "€", "GBP": "£", "USD": "$"}.get(currency)
        amount = self.number(value)
        if symbol is None:
            return f"{currency} {amount}"
        return f"{symbol} {amount}" if self.language == "nl" else f"{symbol}{amount}"

    def change(self, delta: float | None, digits: int = 0) -> str:
        """A signed difference: +12 / −3 / 0."""
        if delta is None:
            return MISSING
        text = self.number(delta, digits)
        return f"+{text}" if delta > 0 and text.strip("0.,") else text

    def points(self, delta: float | None, digits: int = 1) -> str:
        """A difference of two rates in percentage points: +2,5 pp / −1.0 pp."""
        if delta is None:
            return MISSING
        return f"{self.change(delta * 100, digits)} pp"

    def day(self, iso: str | None) -> str:
        """2026-01-05 → 5 januari 2026 / 5 January 2026."""
        if not iso:
            return MISSING
        value = date.fromisoformat(iso[:10])
        return f"{value.day} {MONTHS[self.language][value.month - 1]} {value.year}"

    def month(self, key: str | None) -> str:
        """2026-01 → januari 2026 / January 2026."""
        if not key:
            return MISSING
        year, month = key.split("-")
        return f"{MONTHS[self.language][int(month) - 1]} {year}"
