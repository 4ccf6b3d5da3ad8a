"""Free-text reading: normalisation, whole-word phrase matching, negation and qualifiers.

Text is folded (accents stripped, casefolded) and cut into word tokens plus the punctuation
tokens that end clauses. Phrases are matched token by token through a dictionary keyed by the
first word, so a 200-character note is checked against every keyword in tens of microseconds,
and overlapping matches of different concepts ("nooit eerder rugklachten" / "rugklachten") are
all found. A phrase word ending in `*` is a stem and matches any word that starts with it.
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


@dataclass(frozen=True, slots=True)
class NegationRules:
    """Cue phrases and scope rules for negation (see mappings/modifiers.yaml)."""

    window: int
    post_window: int
    pre: tuple[str, ...]
    pseudo: tuple[str, ...]
    post: tuple[str, ...]
    post_after_colon: tuple[str, ...]
    absence: tuple[str, ...]
    absence_is_finding: frozenset[str]
    clause_breaks: tuple[str, ...]
    # "geen koorts, gewichtsverlies of nachtzweten": a cue carries over comma-separated list
    # items when an item is followed by one of these words before the sentence ends
    list_words: tuple[str, ...] = ()
    list_item_max: int = 4


@dataclass(frozen=True, slots=True)
class Hit:
    """A keyword match as found in text, before knowledge.py wraps it as a TextMatch."""

    concept: str
    keyword: str
    negated: bool
    qualifiers: frozenset[str]


class _Doc:
    """A tokenised text with clause and sentence numbers per token."""

    __slots__ = ("clause", "clause_start", "sentence", "tokens")

    def __init__(self, tokens: tuple[str, ...], clause_words: frozenset[str]) -> None:
        self.tokens = tokens
        clause: list[int] = []
        sentence: list[int] = []
        clause_start: list[int] = []
        c = s = 0
        for i, token in enumerate(tokens):
            # a breaker gets a clause (and a sentence end a sentence) number of its own: it
            # belongs to neither side
            breaker = token in CLAUSE_ENDS or token in clause_words
            if breaker:
                c += 1
            clause.append(c)
            clause_start.append(clause_start[-1] if i and clause[i - 1] == c else i)
            if breaker:
                c += 1
            if token in SENTENCE_ENDS:
                s += 1
                sentence.append(s)
                s += 1
            else:
                sentence.append(s)
        self.clause = clause
        self.sentence = sentence
        self.clause_start = clause_start


class TextMatcher:
    """Finds concept keywords in free text, with negation and same-sentence qualifiers."""

    def __init__(
        self,
        keywords: Mapping[str, Sequence[str]],
        negation: NegationRules,
        qualifiers: Mapping[str, Sequence[str]],
        exclusions: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        # one index for keywords, exclusions, cues and qualifiers: a text is walked once
        entries: list[tuple[str, tuple[str, str]]] = []
        entries += [(kw, ("kw", c)) for c, kws in keywords.items() for kw in kws]
        # phrases that cancel an overlapping keyword of the same concept ("angina pectoris"
        # is no throat infection)
        entries += [(p, ("excl", c)) for c, ps in (exclusions or {}).items() for p in ps]
        entries += [(p, ("pre", "")) for p in negation.pre]
        entries += [(p, ("pseudo", "")) for p in negation.pseudo]
        entries += [(p, ("post", "post")) for p in negation.post]
        entries += [(p, ("post", "colon")) for p in negation.post_after_colon]
        entries += [(p, ("post", "absence")) for p in negation.absence]
        entries += [(p, ("qual", name)) for name, ps in qualifiers.items() for p in ps]
        self._index: PhraseIndex[tuple[str, str]] = PhraseIndex(entries)
        self._rules = negation
        clause_words: set[str] = set()
        for phrase in negation.clause_breaks:
            words = phrase_tokens(phrase)
            if len(words) != 1 or words[0].endswith("*"):
                raise ValueError(f"clause break {phrase!r} must be a single plain word")
            clause_words.add(words[0])
        self._clause_words = frozenset(clause_words)
        self._list_words = frozenset(w for p in negation.list_words for w in phrase_tokens(p))
        # negators used to drop a negated qualifier ("niet progressief")
        self._single_pre = frozenset(
            w[0] for w in (phrase_tokens(p) for p in negation.pre) if len(w) == 1
        )

    def match(self, text: str) -> list[Hit]:
        """All keyword matches in `text`, in order of appearance, without exact duplicates."""
        tokens = tokenize(text)
        if not tokens:
            return []
        roles: dict[str, list[Span[str]]] = {}
        for span in self._index.find(tokens):
            role, value = span.payload
            roles.setdefault(role, []).append(Span(span.start, span.end, span.phrase, value))
        spans = roles.get("kw")
        if not spans:
            return []
        if "excl" in roles:
            spans = self._without_exclusions(spans, roles["excl"])
        spans = self._longest_per_concept(spans)
        if not spans:
            return []
        doc = _Doc(tokens, self._clause_words)
        # a cue word that is part of a matched keyword ("geen eerdere rugklachten") or of a
        # pseudo-negation ("geen verbetering") is no cue
        covered = [False] * len(tokens)
        for span in (*spans, *roles.get("pseudo", ())):
            for j in range(span.start, span.end):
                covered[j] = True
        pre = [c for c in roles.get("pre", ()) if not any(covered[c.start : c.end])]
        post = [c for c in roles.get("post", ()) if not any(covered[c.start : c.end])]
        by_sentence = self._qualifiers_by_sentence(doc, roles.get("qual", []))
        hits: dict[Hit, None] = {}
        for span in spans:
            negated = self._pre_negated(doc, span, pre) or self._post_negated(doc, span, post)
            quals = by_sentence.get(doc.sentence[span.start], frozenset())
            hits.setdefault(Hit(span.payload, span.phrase, negated, quals), None)
        return list(hits)

    @staticmethod
    def _without_exclusions(spans: list[Span[str]], excluded: list[Span[str]]) -> list[Span[str]]:
        """Drop keyword spans that overlap an exclusion phrase of their own concept."""
        if not excluded:
            return spans
        return [
            s
            for s in spans
            if not any(
                x.payload == s.payload and x.start < s.end and s.start < x.end for x in excluded
            )
        ]

    @staticmethod
    def _longest_per_concept(spans: list[Span[str]]) -> list[Span[str]]:
        """Per concept, keep the longest match where two of its keywords overlap."""
        spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
        taken: dict[str, int] = {}  # concept -> end of its last kept span
        kept: list[Span[str]] = []
        for span in spans:
            if taken.get(span.payload, -1) > span.start:
                continue
            taken[span.payload] = span.end
            kept.append(span)
        return kept

    def _pre_negated(self, doc: _Doc, span: Span[str], cues: list[Span[str]]) -> bool:
        clause = doc.clause[span.start]
        lowest = span.start - self._rules.window
        for cue in cues:
            if lowest <= cue.start and cue.end <= span.start and doc.clause[cue.start] == clause:
                return True
        return bool(self._list_words) and self._list_negated(doc, span, cues)

    def _list_negated(self, doc: _Doc, span: Span[str], cues: list[Span[str]]) -> bool:
        """True when the match is an item of a negated comma list ("geen A, B of C")."""
        tokens, n = doc.tokens, len(doc.tokens)
        # the list must hold "of"/"or" in this item or a later one, before the sentence or a
        # clause (other than by a comma) ends
        j = doc.clause_start[span.start]
        while j < n and tokens[j] not in self._list_words:
            if (tokens[j] in CLAUSE_ENDS and tokens[j] != ",") or tokens[j] in self._clause_words:
                return False
            j += 1
        if j >= n:
            return False
        # walk back over short comma-separated items to the clause holding the cue
        limit = self._rules.list_item_max
        start = doc.clause_start[span.start]
        if span.start - start > limit:
            return False
        while start >= 2 and tokens[start - 1] == ",":
            end = start - 1  # the comma
            start = doc.clause_start[end - 1]
            clause = doc.clause[end - 1]
            if any(doc.clause[c.start] == clause and c.end <= end for c in cues):
                return True
            if end - start > limit:
                return False
        return False

    def _post_negated(self, doc: _Doc, span: Span[str], cues: list[Span[str]]) -> bool:
        i = span.end
        tokens = doc.tokens
        if i >= len(tokens):
            return False
        colon = tokens[i] == ":"
        if colon:
            i += 1
            if i >= len(tokens):
                return False
        clause = doc.clause[i]
        if not colon and clause != doc.clause[span.start]:
            return False
        highest = i + self._rules.post_window
        absence_counts = span.payload not in self._rules.absence_is_finding
        for cue in cues:
            if not (i <= cue.start < highest) or doc.clause[cue.start] != clause:
                continue
            if cue.payload == "post":
                return True
            if cue.payload == "colon" and colon and cue.start == i and self._ends(doc, cue.end):
                # "Koorts: geen." negates; "Rugpijn: geen koorts" is about the fever
                return True
            if cue.payload == "absence" and absence_counts:
                return True
        return False

    def _ends(self, doc: _Doc, i: int) -> bool:
        """True when token i closes a clause (or the text ends there)."""
        return i >= len(doc.tokens) or doc.clause[i] != doc.clause[i - 1]

    def _qualifiers_by_sentence(
        self, doc: _Doc, spans: list[Span[str]]
    ) -> dict[int, frozenset[str]]:
        found: dict[int, set[str]] = {}
        for span in spans:
            before = doc.tokens[span.start - 1] if span.start else ""
            if before in self._single_pre:
                continue  # "niet progressief", "not severe"
            found.setdefault(doc.sentence[span.start], set()).add(span.payload)
        return {k: frozenset(v) for k, v in found.items()}


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
