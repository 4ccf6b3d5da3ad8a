"""The words a finding quotes are the words of the note, whatever characters come before them."""

from __future__ import annotations

import pytest

from cds_service.rules.knowledge import load_knowledge
from cds_service.rules.textreader import TextReader, fold_keep_length

LINE = "Geen mictie meer, gevoelloos in het rijbroekgebied."


@pytest.fixture(scope="module")
def reader() -> TextReader:
    """The shipped reader."""
    return load_knowledge().text_reader


@pytest.mark.parametrize(
    "before", ["Uit Izmir. ", "Uit İzmir. ", "İİİ İstanbul. ", "Ærø, Œuvre, ß. "]
)
def test_quoted_words_are_not_shifted_by_what_comes_before(reader: TextReader, before: str):
    words = {f.concept: f.words for f in reader.read(before + LINE).findings}
    assert words == {
        "urinary-retention": "Geen mictie meer",
        "saddle-anaesthesia": "gevoelloos in het rijbroekgebied",
    }


def test_folding_keeps_one_character_per_character():
    # "İ" lower-cases to two characters; every other character to one.
    for text in ("İzmir", "İİ koorts", "ÆØÅ æøå", "Straße", "ﬁ"):
        assert len(fold_keep_length(text)) == len(text)
    assert fold_keep_length("İzmir koorts") == "izmir koorts"
