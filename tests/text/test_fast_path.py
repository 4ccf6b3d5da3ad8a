"""The reader's fast paths read exactly what its full paths read.

TextReader skips work where it can prove the work finds nothing (a token that starts no
phrase, a phrase whose next word is not within reach, a text without a word to split) and
builds its token lists by map(). `_fast_paths = False` takes every full path; these tests read
every corpus and held-out entry, the benchmark's dense note and mixes of corpus sentences
both ways and demand the same Reading, explain() strings included.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.rules.knowledge import Knowledge, load_knowledge
from cds_service.rules.textcheck import load_corpus
from cds_service.rules.textreader import _TOKEN, SECTIONS, Reading, TextReader

HERE = Path(__file__).parent
# the benchmark's dense line (bench/text.py) and the linear-time test's (test_linear_time.py)
DENSE_LINES = (
    "S: geen koorts, gewichtsverlies of nachtzweten; wel uitstraling li been, kr 4/5. "
    "Bij urineretentie of krachtsverlies direct contact. Moeder borstkanker. VG: HNP 2015. "
    "DD: maligniteit? O: KPR li verminderd, sens L5 re verminderd, Lasègue re pos.\n",
    "S: geen koorts, gewichtsverlies of nachtzweten; wel uitstraling li been, kr 4/5. "
    "Bij urineretentie of krachtsverlies direct contact. Moeder borstkanker. VG: HNP 2015. "
    "DD: maligniteit? O: KPR li verminderd, sens L5 re verminderd, Lasègue re pos, "
    "ontkent koorts, afvallen, nachtpijn, mictieklachten, zadelanesthesie en incontinentie.\n",
)
# The token pattern before its alternatives were reordered for speed: the reference that the
# shipped pattern must tokenise exactly like ("plain" is a "word").
REFERENCE_TOKEN = re.compile(
    r"(?=[lstc]\d)(?P<level>(?<![^\W_])[lstc]\d{1,2}(?:\s?-\s?[lstc]?\d{1,2})?(?![^\W_]))"
    r"|(?=[0-5][+-]?/)(?P<grade>(?<![\w/])[0-5][+-]?/5(?![\w/]))"
    r"|(?P<num>\d+(?:[.,]\d+)?)"
    r"|(?=[^\W\d_]\.[^\W\d_]\.)(?P<abbr>(?<![^\W_])(?:[^\W\d_]\.){2,}(?![^\W_]))"
    r"|(?=[^\W\d_]/[^\W\d_])(?P<slash>(?<![^\W_/])[^\W\d_]/[^\W\d_](?![^\W_/]))"
    r"|(?P<word>[^\W_]+)"
    r"|(?P<join>(?<=[^\W_])-(?=[^\W\d_]))"
    r"|(?P<sign>[+\-/?()])"
    r"|(?P<punct>[.;:,!\n])"
)
# characters and pieces that reach every kind of token and every fast-path exit
TRICKY = st.sampled_from(
    [
        " ", "\n", ".", ",", ";", ":", "?", "!", "-", " - ", "/", "(", ")", "+", "_", "\t",
        "l4", "L4-L5", "L4 - 5", "s1", "4/5", "4-/5", "5-/5", "38,5", "38.5", "2015", "i.v.",
        "r/o", "pt. heeft", "evt. fysio", "pt..", "dd.", "linkerbeen", "rechter", "Lasègue",
        "İ", "ß", "urine-incontinentie", "geen", "niet", "koorts", "kr 4", "MRC 3", "T 38,6",
        "van de trap gevallen", "doof gevoel", "cauda equina", "VG:", "O:", "DD:", "nee",
        # overlapping labels ("onderzoek:" inside "lichamelijk onderzoek:"), one-sentence ones
        "Lichamelijk onderzoek: Lasègue neg", "assessment and plan: MRI bij uitval",
        "VG: HNP. Geen koorts", "FA: moeder borstkanker\n", "# Plan\n",
    ]
)  # fmt: skip


def unlimited(reader: TextReader, *, fast: bool) -> TextReader:
    """The same reader (same index, same caches) without its size limit, fast or full."""
    other = copy.copy(reader)
    other.rules = dataclasses.replace(reader.rules, max_chars=4_000_000)
    other._fast_paths = fast
    return other


def described(reading: Reading) -> tuple[object, ...]:
    """Everything a Reading says, explain() strings included."""
    return (
        tuple((f.explain(), tuple(f)) for f in reading.findings),
        reading.truncated,
        reading.characters,
    )


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped mappings."""
    return load_knowledge()


@pytest.fixture(scope="module")
def readers(knowledge: Knowledge) -> tuple[TextReader, TextReader]:
    """The shipped reader with its fast paths, and the same reader on its full paths."""
    reader = knowledge.text_reader
    return unlimited(reader, fast=True), unlimited(reader, fast=False)


@pytest.fixture(scope="module")
def texts(knowledge: Knowledge) -> list[str]:
    """Every corpus and held-out text."""
    entries = [*load_corpus(HERE / "corpus", knowledge.concepts)]
    entries += load_corpus(HERE / "heldout", knowledge.concepts)
    return [e.text for e in entries]


def assert_same(readers: tuple[TextReader, TextReader], text: str, section: str | None) -> None:
    fast, full = readers
    assert described(fast.read(text, section=section)) == described(
        full.read(text, section=section)
    ), text[:200]


def test_every_corpus_and_heldout_entry_reads_the_same(
    readers: tuple[TextReader, TextReader], texts: list[str]
) -> None:
    for text in texts:
        for section in (None, *SECTIONS):
            assert_same(readers, text, section)


def test_the_corpus_as_one_note_reads_the_same(
    readers: tuple[TextReader, TextReader], texts: list[str]
) -> None:
    assert_same(readers, " ".join(texts), None)
    assert_same(readers, "\n".join(texts), None)


@pytest.mark.parametrize("line", DENSE_LINES)
def test_the_dense_notes_read_the_same(readers: tuple[TextReader, TextReader], line: str) -> None:
    for size in (1_000, 10_000, 30_000):
        assert_same(readers, (line * (size // len(line) + 1))[:size], None)


def test_a_note_over_the_limit_reads_the_same(knowledge: Knowledge) -> None:
    fast = copy.copy(knowledge.text_reader)
    full = copy.copy(knowledge.text_reader)
    full._fast_paths = False
    note = DENSE_LINES[0] * 400
    assert described(fast.read(note)) == described(full.read(note))
    assert fast.read(note).truncated


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mixes_of_corpus_sentences_read_the_same(
    readers: tuple[TextReader, TextReader], texts: list[str], data: st.DataObject
) -> None:
    pieces = data.draw(st.lists(st.one_of(st.sampled_from(texts), TRICKY), min_size=1, max_size=12))
    glue = data.draw(st.sampled_from([" ", "\n", ". ", "; ", ", ", " - ", ": ", ""]))
    section = data.draw(st.sampled_from([None, *SECTIONS]))
    assert_same(readers, glue.join(pieces), section)


@settings(max_examples=300, deadline=None)
@given(text=st.lists(TRICKY, max_size=20).map("".join))
def test_tricky_texts_tokenise_and_read_the_same(
    readers: tuple[TextReader, TextReader], text: str
) -> None:
    fast, full = readers
    a, b = fast._doc(text), full._doc(text)
    assert (a.tokens, a.starts, a.ends) == (b.tokens, b.starts, b.ends)
    assert_same(readers, text, None)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="lstcaxyLé0123456789 .,/-+?()\n;:!_\t", max_size=16))
def test_the_token_pattern_tokenises_like_its_reference(text: str) -> None:
    def stream(pattern: re.Pattern[str]) -> list[tuple[str | None, tuple[int, int]]]:
        kinds = {"plain": "word"}
        return [
            (kinds.get(m.lastgroup or "", m.lastgroup), m.span()) for m in pattern.finditer(text)
        ]

    assert stream(_TOKEN) == stream(REFERENCE_TOKEN)
