"""A long reading pauses the garbage collector and leaves it as it found it."""

from __future__ import annotations

import gc

import pytest

from cds_service.rules.knowledge import load_knowledge
from cds_service.rules.textreader import TextReader

NOTE = "S: geen koorts, wel uitstraling li been, kr 4/5. O: Lasègue re pos.\n" * 100


@pytest.fixture(scope="module")
def reader() -> TextReader:
    """The shipped reader."""
    return load_knowledge().text_reader


def test_a_long_reading_leaves_the_collector_on(reader: TextReader) -> None:
    assert gc.isenabled()
    assert reader.read(NOTE).findings
    assert gc.isenabled()


def test_a_collector_switched_off_stays_off(reader: TextReader) -> None:
    gc.disable()
    try:
        reader.read(NOTE)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_failing_reading_leaves_the_collector_on(
    reader: TextReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(reader, "_doc", fail)
    with pytest.raises(RuntimeError):
        reader.read(NOTE)
    assert gc.isenabled()
