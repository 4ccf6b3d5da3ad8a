"""Order texts: normalisation and whole-word phrase matching for "MRI LWK", "X-LWK", ...

Text is folded (accents stripped, casefolded) and cut into word tokens plus the punctuation
tokens that end clauses. Phrases are matched token by token through a dictionary keyed by the
first word. A phrase word ending in `*` is a stem and matches any word that starts with it.
Clinical free text is read by textreader.py, which adds context to every finding.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Decimal numbers stay one token ("38.5", "38,5") so their dot/comma does not end a clause.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+|[.;:,!?\n]")
_PHRASE_WORD = re.compile(r"[^\W_]+\*?|\*")
SENTENCE_ENDS = frozenset({".", ";", "!", "?", "\n"})
CLAUSE_ENDS = SENTENCE_ENDS | {",", ":"}
PUNCTUATION = CLAUSE_ENDS
MIN_STEM = 3  # shorter stems ("ko*") would match far too much


def fold(text: str) -> str:
    """Casefold and strip accents: "Kóórts" -> "koorts", "Röntgen" -> "rontgen"."""
    if text.isascii():
        return text.lower()  # the common case, ten times faster than decomposing
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> tuple[str, ...]:
    """Folded word tokens of a text, keeping clause punctuation (. ; : , ! ? newline) as tokens."""
    return tuple(_TOKEN.findall(fold(text)))


def normalise(text: str) -> str:
    """Folded words joined by single spaces; all punctuation counts as a space."""
    return " ".join(t for t in tokenize(text) if t not in PUNCTUATION)


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """The words of a configured phrase; a word may end in `*` (stem). Raises ValueError."""
    words = tuple(_PHRASE_WORD.findall(fold(phrase)))
    if not words:
        raise ValueError(f"phrase {phrase!r} has no words")
    for word in words:
        if word.endswith("*") and len(word) - 1 < MIN_STEM:
            raise ValueError(
                f"phrase {phrase!r}: a stem needs at least {MIN_STEM} letters before '*'"
            )
    return words


@dataclass(frozen=True, slots=True)
class Span(Generic[T]):
    """One phrase found in a token sequence: tokens [start, end), the phrase and its payload."""

    start: int
    end: int
    phrase: str
    payload: T


class PhraseIndex(Generic[T]):
    """Phrases indexed by their first word, for fast whole-word matching over tokens."""

    def __init__(self, entries: Iterable[tuple[str, T]]) -> None:
        self._exact: dict[str, list[tuple[tuple[str, ...], str, T]]] = {}
        self._stems: dict[str, list[tuple[tuple[str, ...], str, T]]] = {}
        for phrase, payload in entries:
            words = phrase_tokens(phrase)
            first = words[0]
            if first.endswith("*"):
                self._stems.setdefault(first[:-1], []).append((words, phrase, payload))
            else:
                self._exact.setdefault(first, []).append((words, phrase, payload))
        self._stem_lengths = sorted({len(stem) for stem in self._stems})
        for bucket in (*self._exact.values(), *self._stems.values()):
            bucket.sort(key=lambda entry: -len(entry[0]))  # longest phrase first

    def __bool__(self) -> bool:
        return bool(self._exact or self._stems)

    def find(self, tokens: Sequence[str]) -> list[Span[T]]:
        """Every occurrence of every phrase, overlapping ones included, in token order."""
        found: list[Span[T]] = []
        exact, stems, lengths = self._exact, self._stems, self._stem_lengths
        for i, token in enumerate(tokens):
            bucket = exact.get(token)
            if bucket:
                self._extend(found, tokens, i, bucket)
            for length in lengths:
                if length > len(token):
                    break
                bucket = stems.get(token[:length])
                if bucket:
                    self._extend(found, tokens, i, bucket)
        return found

    @staticmethod
    def _extend(
        found: list[Span[T]],
        tokens: Sequence[str],
        i: int,
        bucket: list[tuple[tuple[str, ...], str, T]],
    ) -> None:
        n = len(tokens)
        for words, phrase, payload in bucket:
            j = i + 1
            for word in words[1:]:
                # one colon may sit between two words: "Lasègue: positief", "APR: afwezig"
                if j < n and tokens[j] == ":":
                    j += 1
                if j >= n:
                    break
                token = tokens[j]
                if word.endswith("*"):
                    if not token.startswith(word[:-1]):
                        break
                elif word != token:
                    break
                j += 1
            else:
                found.append(Span(i, j, phrase, payload))


class OrderMatcher(Generic[T]):
    """Recognises lumbar imaging order texts: a modality phrase and a lumbar region phrase."""

    def __init__(
        self,
        modalities: Mapping[T, Sequence[str]],
        regions: Sequence[str],
        exclude: Sequence[str],
    ) -> None:
        self._modalities: PhraseIndex[T] = PhraseIndex(
            (p, modality) for modality, phrases in modalities.items() for p in phrases
        )
        self._regions: PhraseIndex[None] = PhraseIndex((p, None) for p in regions)
        self._exclude: PhraseIndex[None] = PhraseIndex((p, None) for p in exclude)

    def modality(self, text: str) -> T | None:
        """The modality named first in an in-scope order text, else None."""
        tokens = tokenize(text)
        if not tokens or self._exclude.find(tokens) or not self._regions.find(tokens):
            return None
        found = self._modalities.find(tokens)
        return found[0].payload if found else None
