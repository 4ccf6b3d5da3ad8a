"""The reader's cost grows linearly with the text, however dense its keywords and cues.

A ratio, not a stopwatch: a 10x longer keyword-dense note must take at most 15x the time
(the old matcher re-walked each clause per match: quadratic). The absolute figures are
measured by `make bench` (bench/text.py).
"""

from __future__ import annotations

import copy
import dataclasses
import time

import pytest

from cds_service.rules.knowledge import Knowledge, load_knowledge
from cds_service.rules.textreader import TextReader

# Every cue family, lists, a question, grades, a year, sections: the worst case per byte.
DENSE = (
    "S: geen koorts, gewichtsverlies of nachtzweten; wel uitstraling li been, kr 4/5. "
    "Bij urineretentie of krachtsverlies direct contact. Moeder borstkanker. VG: HNP 2015. "
    "DD: maligniteit? O: KPR li verminderd, sens L5 re verminderd, Lasègue re pos, "
    "ontkent koorts, afvallen, nachtpijn, mictieklachten, zadelanesthesie en incontinentie.\n"
)


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped mappings."""
    return load_knowledge()


def unlimited(reader: TextReader) -> TextReader:
    """The same reader without its size limit, to time a long text read in full."""
    other = copy.copy(reader)
    other.rules = dataclasses.replace(reader.rules, max_chars=4_000_000)
    return other


def best_of(reader: TextReader, text: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        reader.read(text)
        best = min(best, time.perf_counter() - start)
    return best


def test_ten_times_longer_note_takes_at_most_fifteen_times_longer(knowledge: Knowledge) -> None:
    reader = unlimited(knowledge.text_reader)
    short = (DENSE * 60)[:20_000]
    long = (DENSE * 600)[:200_000]
    reader.read(short)  # warm the word-form cache
    ratio = best_of(reader, long) / best_of(reader, short)
    assert ratio <= 15, f"10x the text took {ratio:.1f}x the time"


def test_every_line_of_a_long_note_is_read(knowledge: Knowledge) -> None:
    reader = unlimited(knowledge.text_reader)
    lines = [f"Consult {n}: geen koorts; uitstraling li been, kr {n % 6}/5." for n in range(2000)]
    reading = reader.read("\n".join(lines))
    grades = {f.value for f in reading.findings if f.concept == "muscle-strength" and f.value}
    assert grades == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert not reading.truncated


def test_a_note_over_the_limit_is_read_up_to_it(knowledge: Knowledge) -> None:
    reader = knowledge.text_reader
    limit = reader.rules.max_chars
    assert limit == 65536  # the documented default (mappings/context.yaml, limits)
    # the fever stands past the limit: it is not read, and the reading says it was cut
    note = "rugpijn, geen uitstraling. " * (limit // 27 + 10) + "Koorts 39,5."
    reading = reader.read(note)
    assert reading.truncated and reading.characters == limit
    assert "fever" not in {f.concept for f in reading.findings}
