"""Every card of every scenario, Dutch and English, as a clinician takes it in (issue 13).

The summary is whole, under 140 characters, and names the decisive reason; the detail names
data in words (never a FHIR reference), reads in the card's language, stays within its length
before "All checks" (not-indicated 900, urgent 500) and ends on every check as found / not
found / not known. `python -m tests.support.scenario_cards` prints the figures.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from cds_service.cards.render import CardContext, all_checks_heading, render_card
from cds_service.rules.model import (
    CriterionResult,
    Decision,
    Finding,
    LumbarOrder,
    Modality,
    Outcome,
    PatientFacts,
    Status,
    Strength,
)
from tests.scenarios.loader import scenarios
from tests.support.cards import catalogue
from tests.support.scenario_cards import ScenarioCard, scenario_cards

LEAD_LIMIT = {"not-indicated": 900, "urgent": 500}
# A FHIR reference as a card must never show one: Type/id, a urn:uuid, an order's #reason.
REFERENCE = re.compile(r"\b[A-Z][A-Za-z]+/[A-Za-z0-9.\-]+|urn:uuid:|#reason\b")
SYMBOLS = ("✔", "✘", "ℹ")
RESULTS = {
    "nl": ("gevonden", "niet gevonden", "onbekend", "niet nodig"),
    "en": ("found", "not found", "not known", "not needed"),
}
MONTHS = {
    "nl": ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
# Words only a Dutch card says, and only an English card: a card must not mix them.
MARKERS = {
    "nl": ("niet gevonden", "Alle controles", "geïndiceerd", "diagnose)", "onderzoek)"),
    "en": ("not found", "All checks", "indicated", "(condition)", "(examination)"),
}
OTHER = {"nl": "en", "en": "nl"}
CARDS = list(scenario_cards())
IDS = [f"{c.scenario}-{c.language}-{c.entry['order'].split('/')[-1]}" for c in CARDS]


def test_every_card_kind_of_the_scenarios_is_checked_in_both_languages():
    kinds = {(c.decision, c.language) for c in CARDS}
    for kind in ("not-indicated", "urgent", "indicated", "insufficient-data", "out-of-population"):
        assert {(kind, "nl"), (kind, "en")} <= kinds
    # every scenario with a card is here, in both languages
    assert len({c.scenario for c in CARDS}) > 140
    assert len([c for c in CARDS if c.language == "nl"]) == len(
        [c for c in CARDS if c.language == "en"]
    )


def _decisive_reason(item: ScenarioCard) -> str:
    """What the summary must name: the first decisive reason, or the not-indicated reason."""
    cat = catalogue()
    entry = item.entry
    decisive = entry.get("criteria", [])
    met = [c for c in entry["checked"] if c["status"] == "met" and c["id"] in decisive]
    if item.decision == "not-indicated":
        texts = cat.templates["not-indicated"].texts
        if any(c["id"] == "repeat-imaging" for c in met):
            return texts["main_reason.prior-imaging"][item.language].render()
        # the default reason ends on what was not found
        return {"nl": "geen alarmsignalen, trauma of uitval", "en": "no red flags, trauma"}[
            item.language
        ]
    return cat.reason_label(met[0]["reason"], met[0]["id"], item.language)


@pytest.mark.parametrize("item", CARDS, ids=IDS)
def test_summary_is_whole_short_and_names_the_decisive_reason(item: ScenarioCard):
    summary = item.card["summary"]
    assert 0 < len(summary) < 140
    # whole: never cut, so it ends on a whole word (or the word's closing bracket)
    assert not summary.endswith("…") and re.search(r"\w\)?$", summary), summary
    assert _decisive_reason(item) in summary
    order = catalogue().order_labels[item.modality][item.language]
    if item.decision != "urgent":  # urgent names the alarm pattern first
        assert summary.startswith(order)


@pytest.mark.parametrize("item", CARDS, ids=IDS)
def test_no_fhir_reference_in_clinician_text(item: ScenarioCard):
    card = item.card
    # the patient page's own address is defined after the trail; it is no FHIR reference
    detail = card["detail"].split("\n[patient-page]: ")[0]
    texts = [card["summary"], detail, *(s["label"] for s in card.get("suggestions", []))]
    for text in texts:
        assert not REFERENCE.search(text), text
    # ... while the references stay in the decisions extension
    assert all("evidence" not in c or c["evidence"] for c in item.entry["checked"])


@pytest.mark.parametrize("item", CARDS, ids=IDS)
def test_detail_before_all_checks_is_short_enough(item: ScenarioCard):
    heading = all_checks_heading(catalogue(), item.language)
    assert item.card["detail"].count(heading) == 1
    limit = LEAD_LIMIT.get(item.decision)
    if limit is not None:
        assert len(item.lead) <= limit, f"{len(item.lead)} > {limit}:\n{item.lead}"


@pytest.mark.parametrize("item", CARDS, ids=IDS)
def test_card_speaks_its_own_language(item: ScenarioCard):
    cat = catalogue()
    card = item.card
    text = card["summary"] + "\n" + card["detail"]
    other = OTHER[item.language]
    # the order by the service's own label in this language, never the other language's
    for labels in cat.order_labels.values():
        assert labels[other] == labels[item.language] or labels[other] not in text
    # never the EHR's display or text of the order (a Dutch card once began in English CPT)
    for order in scenarios()[item.scenario].orders:
        code = order.get("code") or {}
        names = [c.get("display") for c in code.get("coding", [])] + [code.get("text")]
        ours = {labels[item.language] for labels in cat.order_labels.values()}
        for name in filter(None, names):
            assert name in ours or name not in text, name  # an EHR may say "MRI LWK" too
    # dates with the card's month names, and the other language's markers nowhere
    for month in re.findall(r"\b\d{1,2} ([A-Za-z]{3})\b", card["detail"]):
        assert month in MONTHS[item.language], month
    for marker in MARKERS[other]:
        assert marker not in text, marker


@pytest.mark.parametrize("item", CARDS, ids=IDS)
def test_all_checks_read_found_not_found_not_known(item: ScenarioCard):
    heading = all_checks_heading(catalogue(), item.language)
    detail = item.card["detail"]
    assert not any(symbol in detail for symbol in SYMBOLS)  # no marks that read backwards
    trail = detail.split(heading, 1)[1].split("\n[patient-page]: ")[0]
    lines = [line[2:] for line in trail.strip().splitlines()]
    assert all(line for line in lines)
    checked = [c for c in item.entry["checked"] if c["id"] != "modality-advice"]
    results = [line.split(" · ")[0].split(" — ")[0] for line in lines]
    with_result = [r for r in results if r.rsplit(": ", 1)[-1] in RESULTS[item.language]]
    # one line per check of the trail, each ending on its result (plus the episode duration)
    assert len(with_result) == len(checked), lines
    assert len(lines) - len(with_result) <= 1


def _facts() -> PatientFacts:
    return PatientFacts(
        evaluated_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        age=50,
        findings=(
            Finding("cauda-equina", "Condition/x](javascript:alert(1))", date(2026, 3, 1)),
            Finding(
                "urinary-retention",
                "<b>Observation/1</b>",
                date(2026, 3, 2),
                strength=Strength.TEXT,
            ),
        ),
    )


@pytest.mark.parametrize("language", ["nl", "en"])
def test_hostile_references_are_named_in_words_and_never_shown(language):
    refs = ("Condition/x](javascript:alert(1))", "<b>Observation/1</b>", "urn:uuid:0b1c2d3e")
    decision = Decision(
        LumbarOrder("ServiceRequest/o1", Modality.MRI, "MRI", Strength.CODE),
        Outcome.URGENT,
        (CriterionResult("red-flag", Status.MET, "cauda-equina", Outcome.URGENT, refs),),
    )
    card = render_card(decision, language, catalogue(), CardContext(facts=_facts()))
    for ref in refs:
        assert ref not in card["detail"]
    assert "javascript" not in card["detail"] and "<" not in card["detail"]
    named = {
        "nl": ("caudasyndroom, 1 mrt (diagnose)", "urineretentie, 2 mrt (dossier); dossier"),
        "en": ("cauda equina syndrome, 1 Mar (condition)", "retention, 2 Mar (record); record"),
    }
    # named by what was found there; a reference of no known type (or unknown to the facts,
    # the urn:uuid) by the source word alone
    for words in named[language]:
        assert words in card["detail"]
