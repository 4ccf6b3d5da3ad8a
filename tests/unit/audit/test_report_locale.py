"""Figures written for Dutch and English readers, and the language a request asks for."""

from __future__ import annotations

import pytest

from cds_service.audit.reports.figures import DEFINITIONS
from cds_service.audit.reports.locale import Formatter, pick_language
from cds_service.audit.reports.translations import (
    DEFINITIONS_NL,
    EXTRA_DEFINITIONS,
    NAMES_NL,
    TEXT,
    definitions,
    translator,
)

NL, EN = Formatter("nl"), Formatter("en")


def test_numbers_percentages_money_and_dates_per_language():
    assert (NL.number(1_234_567), EN.number(1_234_567)) == ("1.234.567", "1,234,567")
    assert (NL.number(1.5, 1), EN.number(1.5, 1)) == ("1,5", "1.5")
    assert (NL.percent(0.125), EN.percent(0.125)) == ("12,5%", "12.5%")
    assert (NL.percent(1.0), EN.percent(0.0)) == ("100,0%", "0.0%")
    assert (NL.money(18220.0, "EUR"), EN.money(18220.0, "EUR")) == ("€ 18.220", "€18,220")
    assert EN.money(5, "CHF") == "CHF 5"
    assert (NL.day("2026-01-05"), EN.day("2026-01-05")) == ("5 januari 2026", "5 January 2026")
    assert NL.day("2026-10-05T09:00+00:00") == "5 oktober 2026"
    assert (NL.month("2026-03"), EN.month("2026-12")) == ("maart 2026", "December 2026")
    assert (NL.change(12), NL.change(-3), NL.change(0)) == ("+12", "−3", "0")
    assert (NL.points(-0.405), EN.points(0.0271)) == ("−40,5 pp", "+2.7 pp")
    assert NL.number(-1234) == "−1.234"


def test_missing_figures_are_a_dash():
    for write in (NL.number, NL.percent, NL.change, NL.points, NL.day, NL.month):
        assert write(None) == "–"
    assert NL.money(None, "EUR") == "–"


@pytest.mark.parametrize(
    "header, expected",
    [
        ("nl-NL,nl;q=0.9,en;q=0.8", "nl"),
        ("en-GB,en;q=0.9", "en"),
        ("de-DE,de;q=0.9,en;q=0.5,nl;q=0.4", "en"),
        ("fr", "nl"),
        ("", "nl"),
        (None, "nl"),
        ("en;q=0, nl;q=0.1", "nl"),  # q=0 means "not this one"
        ("en;q=abc, nl", "nl"),
        ("*", "nl"),
    ],
)
def test_accept_language_picks_the_best_supported_language(header, expected):
    assert pick_language(header, "nl") == expected


def test_a_formatter_or_translator_of_another_language_is_refused():
    with pytest.raises(ValueError):
        Formatter("de")
    with pytest.raises(ValueError):
        translator("fr")


def test_every_text_and_definition_has_both_languages():
    for key, texts in TEXT.items():
        assert set(texts) == {"nl", "en"} and all(texts.values()), key
    assert set(DEFINITIONS_NL) == set(DEFINITIONS)  # a new definition needs its Dutch text
    assert set(NAMES_NL) == set(DEFINITIONS) | set(EXTRA_DEFINITIONS)
    assert definitions("en") == {
        **DEFINITIONS,
        **{k: v["en"] for k, v in EXTRA_DEFINITIONS.items()},
    }
    assert list(definitions("nl")) == list(definitions("en"))
