"""Tests for free-text reading: keywords, word bounds, negation, qualifiers and order texts."""

from __future__ import annotations

import pytest

from cds_service.rules.knowledge import Knowledge, load_knowledge
from cds_service.rules.model import Modality
from cds_service.rules.textmatch import PhraseIndex, fold, normalise, phrase_tokens, tokenize
from cds_service.rules.textreader import (
    ContextRules,
    Cue,
    Family,
    TextFinding,
    TextReader,
    phrase_words,
)


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped mappings, loaded once for this module."""
    return load_knowledge()


def found(knowledge: Knowledge, text: str) -> dict[str, TextFinding]:
    """Findings by concept (the first finding of each concept)."""
    result: dict[str, TextFinding] = {}
    for match in knowledge.match_text(text):
        result.setdefault(match.concept, match)
    return result


def positive(knowledge: Knowledge, text: str) -> set[str]:
    """Concepts the text affirms for the patient now."""
    return {m.concept for m in knowledge.match_text(text) if m.affirmed}


def negated(knowledge: Knowledge, text: str) -> set[str]:
    """Concepts named in the text only as negated."""
    negations = {m.concept for m in knowledge.match_text(text) if m.context == "negated"}
    return negations - positive(knowledge, text)


# --- normalisation ---------------------------------------------------------------------


def test_fold_strips_accents_and_case() -> None:
    assert fold("Kóórts Röntgen LASÈGUE") == "koorts rontgen lasegue"


def test_tokenize_keeps_clause_punctuation_and_decimals() -> None:
    assert tokenize("Temp 38.5, geen koorts; X-LWK") == (
        "temp",
        "38.5",
        ",",
        "geen",
        "koorts",
        ";",
        "x",
        "lwk",
    )


def test_normalise_turns_punctuation_into_spaces() -> None:
    assert normalise("  Lage-rugpijn: 's nachts!  ") == "lage rugpijn s nachts"


def test_phrase_tokens_accepts_stems_and_refuses_empty() -> None:
    assert phrase_tokens("Reflex* afwezig") == ("reflex*", "afwezig")
    with pytest.raises(ValueError, match="no words"):
        phrase_tokens(" -- ")


def test_phrase_index_finds_overlapping_phrases() -> None:
    index = PhraseIndex([("pijn in rust", "a"), ("rust", "b"), ("reflex*", "c")])
    spans = index.find(tokenize("pijn in rust, reflexen"))
    assert [(s.start, s.end, s.payload) for s in spans] == [(0, 3, "a"), (2, 3, "b"), (4, 5, "c")]


# --- keyword matching ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Koorts", "KOORTS", "kóórts", "koorts.", "(koorts)", "fever"])
def test_case_and_accent_insensitive(knowledge: Knowledge, text: str) -> None:
    assert positive(knowledge, text) == {"fever"}


@pytest.mark.parametrize(
    "text",
    ["subfebriel", "afebriel", "afebrile", "koortsvrij", "koortsthermometer", "feverfew"],
)
def test_word_bounded(knowledge: Knowledge, text: str) -> None:
    assert "fever" not in positive(knowledge, text)


def test_stem_keyword_matches_endings(knowledge: Knowledge) -> None:
    assert "reflex-loss" in positive(knowledge, "verminderde reflexen beiderzijds")


def test_keyword_does_not_cross_a_clause(knowledge: Knowledge) -> None:
    assert "night-pain" not in positive(knowledge, "veel pijn. In rust beter")


def test_multiword_keyword_over_a_colon(knowledge: Knowledge) -> None:
    assert "radicular-symptoms" in positive(knowledge, "Lasègue: positief rechts")


def test_exclusion_cancels_overlapping_keyword(knowledge: Knowledge) -> None:
    assert "recent-infection" not in positive(knowledge, "bekend met angina pectoris")
    assert "recent-infection" in positive(knowledge, "angina sinds 3 dagen")


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("bang voor kanker", "malignancy"),
        ("family history of cancer", "malignancy"),
        ("bewust afgevallen", "weight-loss"),
        ("HIV-test gedaan", "immunosuppression"),
        ("wil zwanger worden", "pregnancy"),
        ("pijn bij bukken", "trauma-minor"),
    ],
)
def test_look_alikes_are_not_findings(knowledge: Knowledge, text: str, concept: str) -> None:
    assert concept not in positive(knowledge, text)


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("Zadelanesthesie sinds gisteren", "saddle-anaesthesia"),
        ("perineal numbness", "saddle-anaesthesia"),
        ("APR afwezig links", "reflex-loss"),
        ("areflexie", "reflex-loss"),
        ("absent ankle reflex", "reflex-loss"),
        ("'s nachts wakker van de pijn", "night-pain"),
        ("pain at rest", "night-pain"),
        ("heftige pijn na de injectie", "severe-pain"),
        ("van ladder gevallen", "trauma-major"),
        ("motor vehicle accident", "trauma-major"),
        ("uitgegleden in de badkamer", "trauma-minor"),
        ("pijn na tillen", "trauma-minor"),
        ("oefentherapie Cesar", "active-care"),
        ("graded activity", "active-care"),
        ("wervels rechtzetten bij chiropractor", "passive-care"),
        ("Spierkracht", "muscle-strength"),
        ("MRC", "muscle-strength"),
        ("verwijzing neurochirurg", "surgical-referral"),
        ("orthopaedic spine clinic", "surgical-referral"),
        ("operatie-indicatie besproken", "surgical-indication"),
        ("positieve lasègue", "radicular-symptoms"),
        ("tintelingen in de voet", "radicular-symptoms"),
        ("hypesthesie dermatoom L5", "sensory-loss"),
        ("krachtsverlies voet", "muscle-weakness"),
        ("klapvoet rechts", "foot-drop"),
        ("first ever episode", "first-episode"),
        ("verminderde sfinctertonus", "loss-of-anal-tone"),
        ("spuitende druggebruiker", "iv-drug-use"),
        ("urineweginfectie vorige week", "recent-infection"),
        ("epidurale injectie in maart", "spinal-procedure"),
    ],
)
def test_recognises_keywords(knowledge: Knowledge, text: str, concept: str) -> None:
    assert concept in positive(knowledge, text)


def test_tingling_is_not_a_deficit(knowledge: Knowledge) -> None:
    assert positive(knowledge, "tintelingen en paresthesie") == {"radicular-symptoms"}


# --- negation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "geen koorts",
        "Geen koorts.",
        "no fever",
        "patient denies fever",
        "zonder koorts",
        "geen aanwijzingen voor koorts",
        "no evidence of fever",
        "negative for fever",
        "koorts uitgesloten",
        "fever ruled out",
        "Koorts: nee",
        "Fever: no",
        "koorts: geen",
        "koorts negatief",
        "geen pijn of koorts",
    ],
)
def test_negated(knowledge: Knowledge, text: str) -> None:
    assert "fever" in negated(knowledge, text)


def test_negation_stops_at_the_clause(knowledge: Knowledge) -> None:
    matches = found(knowledge, "geen koorts, wel nachtelijke pijn")
    assert matches["fever"].context == "negated"
    assert matches["night-pain"].affirmed


@pytest.mark.parametrize(
    "text",
    [
        "geen koorts maar wel nachtelijke pijn",
        "no fever but night pain",
        "geen koorts. Nachtelijke pijn",
        "no fever; however night pain",
    ],
)
def test_clause_breaks(knowledge: Knowledge, text: str) -> None:
    assert "night-pain" in positive(knowledge, text)
    assert "fever" in negated(knowledge, text)


@pytest.mark.parametrize(
    "text",
    [
        "Geen koorts, gewichtsverlies of nachtelijke pijn.",
        "geen koorts, gewichtsverlies, mictieklachten of nachtelijke pijn",
        "no fever, weight loss, or night pain",
    ],
)
def test_negation_carries_over_a_comma_list(knowledge: Knowledge, text: str) -> None:
    assert negated(knowledge, text) >= {"fever", "weight-loss", "night-pain"}


@pytest.mark.parametrize(
    "text",
    [
        "geen koorts, gewichtsverlies",  # no list word: the comma ends the negation
        "geen koorts, wel gewichtsverlies of nachtzweten",  # "wel" ends it
        "geen koorts. Gewichtsverlies of nachtzweten",  # so does the sentence
        "geen koorts, in de afgelopen drie maanden wel duidelijk gewichtsverlies of zo",
    ],
)
def test_comma_list_carry_over_is_limited(knowledge: Knowledge, text: str) -> None:
    assert "weight-loss" in positive(knowledge, text)


def test_cue_further_than_the_window_does_not_negate(knowledge: Knowledge) -> None:
    assert "fever" in positive(knowledge, "geen idee waar het vandaan komt maar koorts")
    assert "fever" in positive(knowledge, "niet gewerkt sinds maandag wegens hoge koorts")


def test_cue_inside_a_keyword_is_a_positive(knowledge: Knowledge) -> None:
    matches = found(knowledge, "nooit eerder rugklachten gehad")
    assert matches["first-episode"].affirmed
    assert matches["low-back-pain"].affirmed
    assert found(knowledge, "geen eerdere rugklachten")["first-episode"].affirmed
    assert found(knowledge, "no previous back pain")["first-episode"].affirmed


def test_colon_cue_must_close_the_clause(knowledge: Knowledge) -> None:
    matches = found(knowledge, "Rugklachten: geen koorts, geen uitstraling")
    assert matches["low-back-pain"].affirmed
    assert matches["fever"].context == "negated"
    assert found(knowledge, "Nachtelijke pijn: geen. Koorts: ja")["night-pain"].context == "negated"


def test_pseudo_negation_does_not_negate(knowledge: Knowledge) -> None:
    assert "night-pain" in positive(knowledge, "geen verbetering van de nachtelijke pijn")
    assert "night-pain" in positive(knowledge, "no improvement of night pain")


def test_absence_is_the_finding_for_reflex_loss(knowledge: Knowledge) -> None:
    assert "reflex-loss" in positive(knowledge, "reflex afwezig")
    assert "reflex-loss" in positive(knowledge, "reflexes absent on the left")


def test_absence_negates_other_concepts(knowledge: Knowledge) -> None:
    assert "fever" in negated(knowledge, "koorts afwezig")
    assert "saddle-anaesthesia" in negated(knowledge, "zadelanesthesie afwezig")


def test_negated_deficit(knowledge: Knowledge) -> None:
    assert "reflex-loss" in negated(knowledge, "geen verminderde reflexen")
    assert "muscle-weakness" in negated(knowledge, "geen krachtsverlies")
    assert "radicular-symptoms" in negated(
        knowledge, "lage rugpijn zonder uitstraling naar het been"
    )
    assert "radicular-symptoms" in negated(knowledge, "no radiating leg pain")


def test_same_keyword_twice_reports_both_readings(knowledge: Knowledge) -> None:
    readings = {m.context for m in knowledge.match_text("gisteren koorts; vandaag geen koorts")}
    assert readings == {"affirmed", "negated"}


# --- qualifiers ------------------------------------------------------------------------


def test_qualifiers_from_the_sentence(knowledge: Knowledge) -> None:
    match = found(knowledge, "ernstig krachtsverlies linker been")["muscle-weakness"]
    assert match.qualifiers == {"severe", "left"}


@pytest.mark.parametrize(
    ("text", "qualifier"),
    [
        ("toenemend krachtsverlies", "progressive"),
        ("krachtsverlies, neemt toe", "progressive"),
        ("progressive weakness", "progressive"),
        ("krachtsverlies beide benen", "bilateral"),
        ("bilateral weakness", "bilateral"),
        ("weakness in both legs", "bilateral"),
        ("krachtsverlies rechts", "right"),
        ("severe weakness", "severe"),
        ("forse parese", "severe"),
    ],
)
def test_qualifier_words(knowledge: Knowledge, text: str, qualifier: str) -> None:
    weakness = [m for m in knowledge.match_text(text) if m.concept == "muscle-weakness"]
    assert weakness and qualifier in weakness[0].qualifiers


def test_qualifiers_stay_in_their_sentence(knowledge: Knowledge) -> None:
    matches = found(knowledge, "Krachtsverlies links. Ernstige pijn rechts.")
    assert matches["muscle-weakness"].qualifiers == {"left"}


def test_negated_qualifier_is_dropped(knowledge: Knowledge) -> None:
    match = found(knowledge, "krachtsverlies, niet progressief")["muscle-weakness"]
    assert "progressive" not in match.qualifiers


# --- order texts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "modality"),
    [
        ("MRI lumbale wervelkolom", Modality.MRI),
        ("MRI LWK", Modality.MRI),
        ("X-LWK", Modality.XRAY),
        ("X LWK", Modality.XRAY),
        ("röntgen lage rug", Modality.XRAY),
        ("Rontgen LWK", Modality.XRAY),
        ("lumbar spine MRI", Modality.MRI),
        ("XR lumbar spine", Modality.XRAY),
        ("CT LWK", Modality.CT),
        ("MRI of the lumbar spine without contrast", Modality.MRI),
        ("X-ray lumbosacral spine 2 views", Modality.XRAY),
        ("MRT LWS", Modality.MRI),
        ("L-spine radiograph", Modality.XRAY),
        ("CT-scan lumbaal", Modality.CT),
    ],
)
def test_order_in_scope(knowledge: Knowledge, text: str, modality: Modality) -> None:
    assert knowledge.order_modality(text) is modality


@pytest.mark.parametrize(
    "text",
    [
        "MRI thoracale wervelkolom",
        "MRI cervical spine",
        "X bekken",
        "MRI SI-gewrichten",
        "X heup",
        "CT abdomen",
        "echo lage rug",
        "lumbale wervelkolom",  # a region without a modality
        "MRI",  # a modality without a region
        "MRI-scan lumbaalpunctie",  # a lumbar word inside another word does not count
        "",
    ],
)
def test_order_out_of_scope(knowledge: Knowledge, text: str) -> None:
    assert knowledge.order_modality(text) is None


def test_order_modality_first_named_wins(knowledge: Knowledge) -> None:
    assert knowledge.order_modality("MRI LWK, eerder X-LWK") is Modality.MRI


# --- the reader on its own ------------------------------------------------------------


def _rules(**changes: object) -> ContextRules:
    """A small rule set: one negation cue "geen" (window 1), one qualifier, clause break "maar"."""
    families = {
        name: Family(name, window=1 if name == "negated" else 0)
        for name in ("negated", "conditional", "family", "historical", "suspected", "reported")
    }
    base = dict(
        families=families,
        cues={"negated": [("geen", Cue("negated", "pre"))]},
        priority=("negated", "family", "conditional", "suspected", "historical", "reported"),
        sections={},
        clause_breaks=("maar",),
        list_words=(),
        list_item_max=4,
        answers=(),
        abbreviations=frozenset(),
        absence=(),
        absence_is_finding=frozenset(),
        forms={},
        examination_cues=(),
        exam_items={},
        exam_abnormal=(),
        exam_normal=(),
        qualifiers={"severe": ["hoge"]},
    )
    base.update(changes)
    return ContextRules(**base)  # type: ignore[arg-type]


def test_text_reader_with_custom_rules() -> None:
    reader = TextReader({"x": ["koorts"]}, _rules())
    assert [f.context for f in reader.read("geen koorts").findings] == ["negated"]
    # a window of one word: "hoge" stands between the cue and the finding
    assert [f.context for f in reader.read("geen hoge koorts").findings] == ["affirmed"]
    assert reader.read("hoge koorts").findings[0].qualifiers == {"severe"}
    assert [f.context for f in reader.read("geen pijn maar koorts").findings] == ["affirmed"]


def test_text_reader_cuts_a_text_at_its_limit() -> None:
    reader = TextReader({"x": ["koorts"]}, _rules(max_chars=1024))
    reading = reader.read("rugpijn " * 200 + "koorts")
    assert reading.truncated and reading.characters == 1024
    assert reading.findings == ()


def test_phrase_words_read_like_text() -> None:
    assert phrase_words("i.v. drugsgebruik") == ("iv", "drugsgebruik")
    assert phrase_words("reflex* afwezig") == ("reflex*", "afwezig")
    assert phrase_words("r/o") == ("r/o",)
    with pytest.raises(ValueError, match="no words"):
        phrase_words("  ")


def test_empty_and_non_text_input(knowledge: Knowledge) -> None:
    assert knowledge.match_text("") == ()
    assert knowledge.match_text(None) == ()
    assert knowledge.match_text("...,;") == ()
    assert knowledge.order_modality(None) is None


# --- a typical note ---------------------------------------------------------------------

NOTE = (
    "Pt 54 jr, sinds 3 wk lage rugpijn na tillen, uitstraling naar het been links tot onder "
    "de knie. Geen koorts, geen mictieklachten. Lasègue positief links. Kracht 5/5, APR "
    "beiderzijds aanwezig, geen zadelanesthesie. Beleid: oefentherapie."
)


def test_typical_note_reading(knowledge: Knowledge) -> None:
    assert positive(knowledge, NOTE) >= {
        "low-back-pain",
        "trauma-minor",
        "radicular-symptoms",
        "muscle-strength",
        "reflex-test",
    }
    # "Beleid:" is the plan: exercise therapy is planned, not done
    assert "active-care" not in positive(knowledge, NOTE)
    assert negated(knowledge, NOTE) == {
        "fever",
        "saddle-anaesthesia",
        "urinary-retention",
        "urinary-incontinence",
        "muscle-weakness",  # MRC 5/5
        "reflex-loss",  # APR present
    }
