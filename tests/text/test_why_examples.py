"""Every example sentence of issue 9 ("Read clinical notes as a GP would"), read as a GP would.

The decisions these sentences change are tested over HTTP in tests/functional/test_scenarios.py
(text_context.json); here each sentence is read on its own.
"""

from __future__ import annotations

import pytest

from cds_service.rules.knowledge import Knowledge, load_knowledge
from cds_service.rules.textreader import TextFinding


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped mappings."""
    return load_knowledge()


def read(knowledge: Knowledge, text: str, section: str | None = None) -> list[TextFinding]:
    return list(knowledge.read_text(text, section).findings)


def affirmed(knowledge: Knowledge, text: str, section: str | None = None) -> set[str]:
    return {f.concept for f in read(knowledge, text, section) if f.affirmed}


def contexts(knowledge: Knowledge, text: str, concept: str) -> set[str]:
    return {f.context for f in read(knowledge, text) if f.concept == concept}


# --- alarms that were missed -----------------------------------------------------------------


def test_heftige_bonkende_pijn_is_severe_pain(knowledge: Knowledge) -> None:
    assert "severe-pain" in affirmed(knowledge, "heftige, bonkende pijn")


def test_gevoelloos_in_het_rijbroekgebied_is_saddle_anaesthesia(knowledge: Knowledge) -> None:
    found = affirmed(knowledge, "gevoelloos in het rijbroekgebied")
    assert "saddle-anaesthesia" in found
    # the saddle area is no leg: no radicular symptom, no sensory loss of a dermatome
    assert not found & {"sensory-loss", "radicular-symptoms"}


def test_geen_mictie_meer_is_urinary_retention(knowledge: Knowledge) -> None:
    assert "urinary-retention" in affirmed(knowledge, "geen mictie meer")


def test_drugsgebruik_iv_is_iv_drug_use(knowledge: Knowledge) -> None:
    assert "iv-drug-use" in affirmed(knowledge, "drugsgebruik i.v.")


def test_kpr_li_verminderd_is_reflex_loss_on_the_left(knowledge: Knowledge) -> None:
    loss = [f for f in read(knowledge, "KPR li verminderd") if f.concept == "reflex-loss"]
    assert loss and loss[0].affirmed and "left" in loss[0].qualifiers


def test_bilateral_mrc_4_is_a_bilateral_motor_deficit(knowledge: Knowledge) -> None:
    weakness = [
        f
        for f in read(knowledge, "Kracht dorsaalflexie bdz MRC 4")
        if f.concept == "muscle-weakness" and f.affirmed
    ]
    assert weakness, "MRC 4 is a deficit"
    assert weakness[0].value == 4 and "bilateral" in weakness[0].qualifiers
    assert "severe" not in weakness[0].qualifiers  # <= 3 is severe


# --- the safety-net line that raised a critical card ------------------------------------------


def test_safety_net_line_holds_no_finding(knowledge: Knowledge) -> None:
    text = "Bij koorts, urineretentie of krachtsverlies direct contact opnemen"
    findings = read(knowledge, text)
    assert {f.concept for f in findings} == {"fever", "urinary-retention", "muscle-weakness"}
    assert {f.context for f in findings} == {"conditional"}
    assert all(f.cue and f.cue.lower() == "bij" for f in findings)


# --- read wrongly before ----------------------------------------------------------------------


def test_moeder_had_borstkanker_is_family_history(knowledge: Knowledge) -> None:
    assert contexts(knowledge, "moeder had borstkanker", "malignancy") == {"family"}


def test_in_2019_wervelfractuur_is_history(knowledge: Knowledge) -> None:
    assert contexts(knowledge, "in 2019 wervelfractuur", "lumbar-injury") == {"historical"}


def test_dd_maligniteit_is_a_suspicion(knowledge: Knowledge) -> None:
    assert contexts(knowledge, "DD: maligniteit", "malignancy") == {"suspected"}


def test_koorts_vraag_nee_is_negated(knowledge: Knowledge) -> None:
    assert contexts(knowledge, "koorts? nee", "fever") == {"negated"}


def test_gn_gewichtsverlies_is_negated(knowledge: Knowledge) -> None:
    assert contexts(knowledge, "gn gewichtsverlies", "weight-loss") == {"negated"}


def test_ontkent_a_b_en_c_negates_each(knowledge: Knowledge) -> None:
    text = "ontkent koorts, nachtzweten en gewichtsverlies"
    assert contexts(knowledge, text, "fever") == {"negated"}
    assert contexts(knowledge, text, "weight-loss") == {"negated"}


# --- the rules of POLICY "Reading clinical text" that the examples stand for -------------------


@pytest.mark.parametrize(
    ("text", "concept", "context"),
    [
        ("P: evt. fysio", "active-care", "conditional"),
        ("vangnetadvies: bij krachtsverlies bellen", "muscle-weakness", "conditional"),
        ("return if numbness or weakness", "muscle-weakness", "conditional"),
        ("FA: vader prostaatca", "malignancy", "family"),
        ("VG: HNP 2015, hersteld", "sciatica", "historical"),
        ("verdenking cauda equina", "cauda-equina", "suspected"),
        ("r/o cauda equina", "cauda-equina", "suspected"),
        ("E: HNP L5-S1?", "sciatica", "suspected"),
        ("pt voelt doof gevoel li voet", "sensory-loss", "reported"),
        ("Lasègue neg", "radicular-symptoms", "negated"),
        ("APR li -", "reflex-loss", "affirmed"),  # a minus after a reflex is its absence
        ("afebriel", "fever", "negated"),
        ("koortsvrij", "fever", "negated"),
    ],
)
def test_context_rules(knowledge: Knowledge, text: str, concept: str, context: str) -> None:
    assert context in contexts(knowledge, text, concept), read(knowledge, text)


def test_pseudo_negation_keeps_the_finding(knowledge: Knowledge) -> None:
    found = affirmed(knowledge, "geen verbetering na 12 wk fysio")
    assert "active-care" in found


def test_text_examination_is_an_examination(knowledge: Knowledge) -> None:
    findings = read(knowledge, "kr/sens/refl z.a.")
    assert {"neuro-exam", "muscle-strength", "sensation-test", "reflex-test"} <= {
        f.concept for f in findings if f.affirmed
    }
    negated = {f.concept for f in findings if f.context == "negated"}
    assert {"muscle-weakness", "sensory-loss", "reflex-loss"} <= negated


def test_objective_means_examined(knowledge: Knowledge) -> None:
    # the same words: the patient's report on an S line, an examination result on an O line
    assert "sensory-loss" not in affirmed(knowledge, "doof gevoel li voet", "S")
    assert "radicular-symptoms" in affirmed(knowledge, "doof gevoel li voet", "S")
    assert "sensory-loss" in affirmed(knowledge, "doof gevoel li voet", "O")


def test_typing_errors_are_tolerated_but_never_turn_a_negation(knowledge: Knowledge) -> None:
    assert "urinary-retention" in affirmed(knowledge, "urineretenite sinds gisteren")
    assert "weight-loss" in affirmed(knowledge, "ongewild gewichtsverleis")
    assert "fever" not in affirmed(knowledge, "afebriel")
    assert "fever" not in affirmed(knowledge, "subfebriel")


def test_compounds_and_side_prefixes(knowledge: Knowledge) -> None:
    assert "malignancy" in affirmed(knowledge, "prostaatkanker")
    weakness = [
        f for f in read(knowledge, "O: parese rechterbeen") if f.concept == "muscle-weakness"
    ]
    assert weakness and "right" in weakness[0].qualifiers


def test_qualifiers_bind_to_their_own_clause(knowledge: Knowledge) -> None:
    findings = read(knowledge, "O: kr voetheffers li 4/5, re 5/5")
    weak = [f for f in findings if f.concept == "muscle-weakness" and f.affirmed]
    assert weak and weak[0].qualifiers == {"left"}


def test_codes_first_region_words_take_generic_pain_elsewhere(knowledge: Knowledge) -> None:
    assert "low-back-pain" not in affirmed(knowledge, "rugklachten thoracaal")
    assert "low-back-pain" in affirmed(knowledge, "nekpijn, rugpijn laag")


def test_explanation_names_words_and_cue(knowledge: Knowledge) -> None:
    finding = read(knowledge, "Geen koorts")[0]
    assert finding.explain() == "fever: negated by 'Geen' ('koorts')"
    family = read(knowledge, "moeder had borstkanker")[0]
    assert family.explain() == "malignancy: family: 'moeder' ('borstkanker')"
