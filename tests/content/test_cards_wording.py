"""Patient-facing words: no avoid-list word anywhere, and the age figures of WORDING.md."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from cds_service.cards.patient_page import render_patient_page
from cds_service.cards.render import age_sentence, patient_text, render_card
from tests.support.cards import (
    AGES,
    WORDING,
    catalogue,
    context,
    decisions,
    expected_decade,
    patient_section,
    wording_table,
)

# WORDING.md rule 5, as word / stem patterns ('tear' only as a word of its own).
AVOID = {
    "nl": [
        r"slijtage",
        r"versleten",
        r"degenera\w*",
        r"kapot\w*",
        r"defect\w*",
        r"beschadig\w*",
        r"scheur\w*",
        r"afwijk\w*",
        r"uitgedroogde\s+(tussenwervel)?schijf",
        r"zwakke\s+rug",
        r"sche(e)?f\w*",
        r"sche(v)e\w*",
        r"tussen\s+de\s+oren",
    ],
    "en": [
        r"wear\s+and\s+tear",
        r"worn\s+out",
        r"degenerat\w*",
        r"damag\w*",
        r"tear(s|ing)?",
        r"abnormal\w*",
        r"crumbl\w*",
        r"slipped\s+dis[ck]s?",
        r"weak\s+back",
    ],
}
LANGUAGE_VARIANTS = (("nl", None), ("nl", "nl-BE"), ("en", None))


def avoid_hits(text: str, language: str) -> list[str]:
    """Avoid-list words found in a text (whole words or stems at a word start)."""
    hits = []
    for pattern in AVOID[language]:
        hits += [m.group(0) for m in re.finditer(rf"\b{pattern}\b", text, re.IGNORECASE)]
    return hits


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = False

    def handle_starttag(self, tag, attrs):
        self._skip = tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip = False

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The visible text of an HTML page."""
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def test_the_matcher_catches_every_avoid_word_and_not_lookalikes():
    assert avoid_hits("Uw rug is versleten, een scheurtje, afwijkingen", "nl") == [
        "versleten",
        "scheurtje",
        "afwijkingen",
    ]
    assert avoid_hits("Degeneratieve veranderingen; het zit tussen de oren", "nl")
    assert sorted(
        avoid_hits("wear and tear; a tear; damaged; abnormality; slipped disc", "en")
    ) == sorted(["wear and tear", "tear", "tear", "damaged", "abnormality", "slipped disc"])
    assert avoid_hits("We can steer this together; a teardrop; straight", "en") == []
    assert avoid_hits("defecatie, ouder worden, uitpuilt", "nl") == []


def _patient_texts():
    cat = catalogue()
    for language, variant in LANGUAGE_VARIANTS:
        for age in AGES:
            for kind in cat.templates:
                text = patient_text(cat, kind, language, age, variant)
                if text:
                    yield f"{kind}.patient {language}/{variant}/{age}", language, text
            for name, decision in decisions().items():
                card = render_card(decision, language, cat, context(age, variant))
                section = patient_section(card, decision.outcome.value, language, cat)
                yield f"card {name} {language}/{variant}/{age}", language, section
            for topic in cat.topics():
                html = render_patient_page(cat, language, topic, age, variant)
                yield f"page {topic} {language}/{variant}/{age}", language, html_text(html)


def test_no_patient_facing_text_uses_an_avoid_list_word():
    checked = 0
    for where, language, text in _patient_texts():
        assert avoid_hits(text, language) == [], where
        checked += bool(text)
    assert checked > 100


def test_patient_sections_exist_where_policy_wants_them():
    cat = catalogue()
    for name in ("not-indicated", "indicated"):
        card = render_card(decisions()[name], "nl", cat, context(40))
        assert patient_section(card, name, "nl", cat).strip().startswith("> Uw pijn is echt")


FIGURE = {
    "nl": r"bij (\d+) van hen tussenwervelschijven .* bij (\d+) van hen een schijf",
    "en": r"ageing discs in (\d+) of them, and a bulging disc in (\d+) of them",
}
# The card's short script names one figure, the ageing discs; the patient page both.
SHORT_FIGURE = {
    "nl": r"zonder rugpijn hebben er (\d+) op een MRI tussenwervelschijven",
    "en": r"with no back pain, (\d+) have ageing discs on an MRI",
}


@pytest.mark.parametrize("age", [19, 20, 35, 50, 64, 80, 95])
@pytest.mark.parametrize("language", ["nl", "en"])
def test_age_figures_match_the_wording_table(age, language):
    # shared/ sits beside the checkout in development and CI: a missing table is a failure.
    assert WORDING.is_file(), f"{WORDING} not found (set CDS_WORDING_MD)"
    table = wording_table()
    decade = expected_decade(age)
    expected = (table["disc degeneration"][decade], table["disc bulge"][decade])
    cat = catalogue()
    full = [
        age_sentence(cat, language, age),
        html_text(render_patient_page(cat, language, "no-scan-needed", age)),
        html_text(render_patient_page(cat, language, "scan-planned", age)),
    ]
    for text in full:
        found = re.search(FIGURE[language], text)
        assert found, text
        assert (int(found.group(1)), int(found.group(2))) == expected
    short = [
        patient_text(cat, "not-indicated", language, age),
        patient_text(cat, "indicated", language, age),
        render_card(decisions()["not-indicated"], language, cat, context(age))["detail"],
        render_card(decisions()["indicated"], language, cat, context(age))["detail"],
    ]
    for text in short:
        found = re.search(SHORT_FIGURE[language], text)
        assert found, text
        assert int(found.group(1)) == expected[0]


@pytest.mark.parametrize("language", ["nl", "en"])
def test_unknown_age_gives_a_sentence_without_numbers(language):
    cat = catalogue()
    sentence = age_sentence(cat, language, None)
    assert sentence and not re.search(r"\d", sentence)
    card = render_card(decisions()["not-indicated"], language, cat, context(None))
    assert sentence in card["detail"]
    assert "age=" not in card["links"][0]["url"]
