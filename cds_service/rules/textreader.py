"""The clinical text reader: findings in free text with their context, in linear time.

A ConText-style reader (Harkema 2009; the Dutch ContextD) for GP journal lines and notes: it
finds concept keywords (whole words, with a few words allowed between a keyword's words, one
typing error in long words, Dutch compounds), and gives each finding its context — affirmed,
negated, conditional, family, historical, suspected, or reported (a deficit in the patient's
own words) — from the cue families, SOEP sections and scope rules of mappings/context.yaml.

Every step is a pass over the tokens or a binary search over the cues, so the reading time
grows with the length of the text, however dense its keywords; texts longer than
`max_chars` are read up to that limit and say so.
"""

from __future__ import annotations

import bisect
import gc
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import compress, islice
from typing import Any, NamedTuple, TypeVar, cast

T = TypeVar("T")
# Contexts a finding read from text can have; only AFFIRMED counts as the patient's finding now.
AFFIRMED = "affirmed"
NEGATED = "negated"
CONDITIONAL = "conditional"
FAMILY = "family"
HISTORICAL = "historical"
SUSPECTED = "suspected"
REPORTED = "reported"
CONTEXTS = (AFFIRMED, NEGATED, CONDITIONAL, FAMILY, HISTORICAL, SUSPECTED, REPORTED)
CUE_FAMILIES = (NEGATED, CONDITIONAL, FAMILY, HISTORICAL, SUSPECTED, REPORTED)
QUALIFIERS = ("severe", "progressive", "bilateral", "left", "right")
SECTIONS = ("S", "O", "E", "P", "VG", "FA", "DD")

# Tokens, in order of preference: spinal levels (kept whole, so "L4-L5" holds no "-" sign),
# MRC grades "4/5" "4-/5", numbers, dotted abbreviations ("i.v."), words, signs and punctuation.
# Two alternatives come first because nothing else can match where they do, and they are most
# tokens: punctuation, and a "plain" word, whose second character rules out a level, an
# abbreviation and a slash ("koorts"; not "l5", "i.v.", "r/o").
_TOKEN = re.compile(
    # every token starts with one of these: a position that holds none tries no alternative
    r"(?=[^\W_]|[+\-/?().;:,!\n])(?:"
    r"(?P<punct>[.;:,!\n])"
    r"|(?P<plain>[^\W\d_](?![\d./])[^\W_]*)"
    r"|(?=[lstc]\d)(?P<level>(?<![^\W_])[lstc]\d{1,2}(?:\s?-\s?[lstc]?\d{1,2})?(?![^\W_]))"
    r"|(?=[0-5][+-]?/)(?P<grade>(?<![\w/])[0-5][+-]?/5(?![\w/]))"
    r"|(?P<num>\d+(?:[.,]\d+)?)"
    r"|(?=[^\W\d_]\.[^\W\d_]\.)(?P<abbr>(?<![^\W_])(?:[^\W\d_]\.){2,}(?![^\W_]))"
    r"|(?=[^\W\d_]/[^\W\d_])(?P<slash>(?<![^\W_/])[^\W\d_]/[^\W\d_](?![^\W_/]))"
    r"|(?P<word>[^\W_]+)"
    r"|(?P<join>(?<=[^\W_])-(?=[^\W\d_]))"
    r"|(?P<sign>[+\-/?()])"
    r")"
)
SENTENCE_ENDS = frozenset({".", ";", "!", "?", "\n"})
# from this length on, a reading pauses the garbage collector (see TextReader.read)
_GC_PAUSE_CHARS = 2_000
_PUNCT = frozenset({".", ";", ":", ",", "!", "?", "\n"})
# tokens that can change the structure of a text (sentences, clauses, lists, brackets)
_STRUCTURE_TOKENS = _PUNCT | {"-", "(", ")"}
_UNIT_AFTER_NUMBER = frozenset(
    {"mg", "ml", "kg", "g", "gram", "mcg", "ug", "x", "keer", "stappen", "m", "km", "cm", "eh"}
)
# A comma may stand in a keyword only as "heftige, bonkende pijn": first, before one word.
_GAP_TOKENS_FORBIDDEN = SENTENCE_ENDS | {":"}


def fold_keep_length(text: str) -> str:
    """Lower-case without accents, one character per character, so offsets stay valid."""
    if "\u0130" in text:
        # "İ" is the one character whose lower case is two ("i" and a combining dot): folded
        # as "I" first, so that every later offset still points at the same character.
        text = text.replace("\u0130", "I")
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    # str.translate looks every character up in the table, ASCII or not: replacing only the
    # few non-ASCII ones is some ten times faster on a long note
    table = _fold_table(frozenset(_NON_ASCII.findall(lowered)))
    return _NON_ASCII.sub(lambda m: table[ord(m.group())], lowered)


_FOLD_CACHE: dict[str, str] = {}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_DIGIT = re.compile(r"\d")
_DIGIT_COMMA = re.compile(r"\d,\d")


def _fold_table(chars: frozenset[str]) -> dict[int, str]:
    table = {}
    for ch in chars:
        folded = _FOLD_CACHE.get(ch)
        if folded is None:
            decomposed = unicodedata.normalize("NFKD", ch)
            base = "".join(c for c in decomposed if not unicodedata.combining(c))
            folded = base[:1] if len(base) >= 1 else ch
            if not folded.isalnum():
                folded = " " if not ch.isalnum() else ch
            _FOLD_CACHE[ch] = folded
        table[ord(ch)] = folded
    return table


def phrase_words(phrase: str) -> tuple[str, ...]:
    """The tokens of a configured phrase, read exactly as text is read; `word*` is a stem."""
    words: list[str] = []
    for chunk in phrase.split():
        stem = chunk.endswith("*") and len(chunk) > 1
        tokens = [t for t, _, _ in _tokens(fold_keep_length(chunk.rstrip("*") if stem else chunk))]
        if stem:
            if len(tokens) != 1 or len(tokens[0]) < 3:
                raise ValueError(
                    f"phrase {phrase!r}: a stem needs one word of 3 letters before '*'"
                )
            tokens = [tokens[0] + "*"]
        words.extend(tokens)
    if not words:
        raise ValueError(f"phrase {phrase!r} has no words")
    return tuple(words)


def _tokens(folded: str) -> list[tuple[str, int, int]]:
    """(token, start, end) of a folded text; joining hyphens are dropped, abbreviations joined."""
    out: list[tuple[str, int, int]] = []
    for m in _TOKEN.finditer(folded):
        kind = m.lastgroup
        if kind != "join":
            out.append((_normal_token(kind, m.group()), m.start(), m.end()))
    return out


_MATCH_TEXT = re.Match.group
_MATCH_KIND = operator.attrgetter("lastgroup")
_MATCH_START = re.Match.start
_MATCH_END = re.Match.end
_FIRST = operator.itemgetter(0)
# the words before an MRC grade given as a bare number ("kracht 4")
_GRADE_WORD_SET = frozenset(("mrc", "kracht", "kr", "strength", "power"))
# the kinds of token that _normal_token changes
_NORMALISED_KINDS = frozenset({"abbr", "level", "num"})


def _filled(items: list[T | None], fill: Callable[[int], T]) -> list[T]:
    """`items` with each None replaced, in place, by `fill(index)`."""
    if None in items:
        for i in _positions(items, None):
            items[i] = fill(i)
    return cast("list[T]", items)  # no None is left


def _positions(items: list[Any], value: Any) -> list[int]:
    """The indices of `value` in `items`, found by list.index (a scan at C speed)."""
    found: list[int] = []
    i = -1
    for _ in range(items.count(value)):
        i = items.index(value, i + 1)
        found.append(i)
    return found


def _normal_token(kind: str | None, token: str) -> str:
    """A token as the phrases hold it: "i.v." -> "iv", "L4 - L5" -> "l4-l5", "38,5" -> "38.5"."""
    if kind == "abbr":
        return token.replace(".", "")
    if kind == "level":
        return token.replace(" ", "")
    if kind == "num":
        return token.replace(",", ".")
    return token


@dataclass(frozen=True, slots=True)
class Cue:
    """A cue phrase of one family and its role."""

    family: str
    role: str  # pre | post | colon | pseudo | closed | closer | term | form


@dataclass(frozen=True, slots=True)
class Family:
    """The scope rules of one cue family (mappings/context.yaml, `contexts`)."""

    name: str
    window: int = 0  # 0: to the end of the clause (or sentence with scope sentence)
    post_window: int = 3
    sentence_scope: bool = False
    applies_to: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ContextRules:
    """Everything the reader needs besides the concept keywords, loaded from context.yaml."""

    families: Mapping[str, Family]
    cues: Mapping[str, Sequence[tuple[str, Cue]]]  # family -> (phrase, cue)
    priority: tuple[str, ...]
    # label -> (section name, context, source, whether it lasts one sentence only)
    sections: Mapping[str, tuple[str, str | None, str | None, bool]]
    clause_breaks: tuple[str, ...]
    list_words: tuple[str, ...]
    list_item_max: int
    answers: tuple[str, ...]
    abbreviations: frozenset[str]
    absence: tuple[str, ...]
    absence_is_finding: frozenset[str]
    forms: Mapping[str, Sequence[str]]  # concept -> words that are its negation
    examination_cues: tuple[str, ...]
    exam_items: Mapping[str, str]  # examined item concept -> its deficit concept ("" none)
    exam_abnormal: tuple[str, ...]
    exam_normal: tuple[str, ...]
    qualifiers: Mapping[str, Sequence[str]]
    max_chars: int = 65536
    gap: int = 2
    typo_min_length: int = 7
    never_fuzzy: frozenset[str] = frozenset()
    compound_prefix_min: int = 3
    compound_head_min: int = 5
    not_compound_heads: frozenset[str] = frozenset()
    split_prefixes: tuple[str, ...] = ()
    compound_tails: tuple[str, ...] = ()
    # concepts that one family never applies to ("nooit eerder rugpijn gehad" is no history)
    exempt: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # a severity word right before or after these concepts makes the pain severe ("forse rugpijn")
    severe_pain_from: frozenset[str] = frozenset()
    # generic words of a concept that a region word in the same clause takes elsewhere:
    # "rugpijn tussen de schouderbladen", "thoracale rugklachten" are no low back pain
    regional: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # concepts a section's context never applies to ("VG: DM2" is diabetes today)
    section_exempt: Mapping[str, frozenset[str]] = field(default_factory=dict)
    elsewhere: tuple[str, ...] = ()
    mrc_deficit_max: float = 4
    mrc_severe_max: float = 3
    fever_celsius: float = 38.0


class TextFinding(NamedTuple):
    """One concept read from text, with its context and the words it came from.

    A named tuple: the reader makes one or two per keyword, so it must be cheap to build.
    """

    concept: str
    words: str
    context: str = AFFIRMED
    cue: str | None = None
    qualifiers: frozenset[str] = frozenset()
    value: float | None = None
    section: str | None = None
    examined: bool = False

    @property
    def affirmed(self) -> bool:
        """True when the text states the finding for this patient, now."""
        return self.context == AFFIRMED

    def explain(self) -> str:
        """How the finding was read, in one line: "fever: negated by 'geen' ('koorts')"."""
        how = self.context
        if self.cue:
            by = {
                NEGATED: "by",
                CONDITIONAL: "by",
                SUSPECTED: "by",
                HISTORICAL: "by",
                REPORTED: "by",
            }.get(self.context, "")
            how = f"{self.context} {by} '{self.cue}'" if by else f"{self.context}: '{self.cue}'"
        extra = []
        if self.section:
            extra.append(f"section {self.section}")
        if self.qualifiers:
            extra.append(", ".join(sorted(self.qualifiers)))
        if self.value is not None:
            extra.append(f"value {self.value:g}")
        if self.examined:
            extra.append("examined")
        tail = f" [{'; '.join(extra)}]" if extra else ""
        return f"{self.concept}: {how} ('{self.words}'){tail}"


class Reading(NamedTuple):
    """The findings of one text, and whether the text was cut at the size limit."""

    findings: tuple[TextFinding, ...]
    truncated: bool = False
    characters: int = 0


@dataclass(slots=True)
class _Span:
    start: int  # first token
    end: int  # one past the last token
    payload: Any
    inner: tuple[int, ...] = ()  # tokens inside the span that are not its own words
    nested: bool = False  # inside a longer keyword of another concept


def _longest_first(span: _Span) -> tuple[int, int]:
    """The order of keyword spans: by start, the longest first."""
    return span.start, span.start - span.end


class _Doc:
    """A tokenised text and its structure: sentence, clause, list group and section per token."""

    __slots__ = (
        "clause",
        "ends",
        "group",
        "item_start",
        "section",
        "section_start",
        "sentence",
        "starts",
        "text",
        "tokens",
    )

    def __init__(self, text: str, tokens: list[str], starts: list[int], ends: list[int]) -> None:
        self.text, self.tokens, self.starts, self.ends = text, tokens, starts, ends
        # set by _structure and _sections
        self.sentence: list[int] = []
        self.clause: list[int] = []
        self.group: list[int] = []
        self.item_start: list[int] = []
        self.section: list[str | None] = []
        self.section_start: list[int] = []

    def surface(self, start: int, end: int) -> str:
        """The words of tokens [start, end) as written."""
        if start >= end:
            return ""
        words = self.text[self.starts[start] : self.ends[end - 1]]
        if " " not in words and words.isprintable():
            return words  # no white space (the others are not printable): nothing to join
        return " ".join(words.split())


class _Bucket:
    """The phrases that start with one word: one-word phrases, then by their second word."""

    __slots__ = ("by_second", "multi", "single", "stem_second", "thirds")

    def __init__(self) -> None:
        self.multi = False  # any phrase of more than one word
        self.single: list[Any] = []
        self.by_second: dict[str, list[tuple[tuple[str, ...], Any, bool]]] = {}
        self.stem_second: list[tuple[tuple[str, ...], Any, bool]] = []
        # second word -> the third words of its phrases, when all have a plain third word
        # (None otherwise): none of them near, and none of the phrases can match
        self.thirds: dict[str, set[str] | None] = {}


class _PhraseIndex:
    """Phrases by first word (and stems by prefix), matched with bounded gaps between words.

    Each bucket indexes its phrases by their second word, so a position costs a few dict
    look-ups however many phrases start with the same word ("geen ...").
    """

    def __init__(self) -> None:
        self.exact: dict[str, _Bucket] = {}
        self.stems: dict[str, _Bucket] = {}
        self.stem_lengths: list[int] = []
        self._stem_heads: set[str] = set()
        self._words: set[str] = set()
        # token -> the buckets of the phrases it can start, in the order find() tries them:
        # most tokens start no phrase, and one dict look-up tells so
        self._plans: dict[str, tuple[_Bucket, ...]] = {}

    def add(self, words: tuple[str, ...], payload: Any, gaps: bool) -> None:
        self._plans.clear()
        first = words[0]
        if first.endswith("*"):
            bucket = self.stems.setdefault(first[:-1], _Bucket())
            self.stem_lengths = sorted({len(s) for s in self.stems})
            shortest = self.stem_lengths[0]
            self._stem_heads = {stem[:shortest] for stem in self.stems}
        else:
            bucket = self.exact.setdefault(first, _Bucket())
        self._words.update(w for w in words if not w.endswith("*"))
        bucket.multi = bucket.multi or len(words) > 1
        if len(words) == 1:
            bucket.single.append(payload)
        elif words[1].endswith("*"):
            bucket.stem_second.append((words, payload, gaps))
        else:
            bucket.by_second.setdefault(words[1], []).append((words, payload, gaps))
            thirds = bucket.thirds.setdefault(words[1], set())
            if len(words) == 2 or words[2].endswith("*"):
                bucket.thirds[words[1]] = None
            elif thirds is not None:
                thirds.add(words[2])

    def vocabulary(self) -> set[str]:
        """Every plain word of every phrase."""
        return set(self._words)

    def find(
        self, forms: Sequence[str], hard: Sequence[bool], gap: int, fast: bool = True
    ) -> list[_Span]:
        """Every occurrence of every phrase in token order (overlaps included).

        `fast`: visit only the tokens that start a phrase, and match two-word phrases here;
        False takes every token and every phrase through _rest (the same spans, slower).
        """
        found: list[_Span] = []
        match = self._match
        n = len(forms)
        plans = _filled(list(map(self._plans.get, forms)), lambda i: self._plan(forms[i]))
        for i in compress(range(n), plans) if fast else range(n):
            for bucket in plans[i]:
                for payload in bucket.single:
                    found.append(_Span(i, i + 1, payload))
                if (
                    bucket.multi
                    and (
                        not fast
                        or bucket.stem_second
                        # no second word of any phrase within reach: _match would find nothing
                        or not bucket.by_second.keys().isdisjoint(forms[i + 1 : i + gap + 2])
                    )
                ):
                    match(found, forms, hard, i, bucket, gap, n, fast)
        return found

    def _plan(self, token: str) -> tuple[_Bucket, ...]:
        """The buckets a token starts: its exact word, then the stems it begins with."""
        buckets = []
        bucket = self.exact.get(token)
        if bucket is not None:
            buckets.append(bucket)
        lengths = self.stem_lengths
        if lengths and token[: lengths[0]] in self._stem_heads:
            for length in lengths:
                if length > len(token):
                    break
                stem = self.stems.get(token[:length])
                if stem is not None:
                    buckets.append(stem)
        plan = tuple(buckets)
        if len(self._plans) < 50_000:  # bounded: a hostile text cannot grow it further
            self._plans[token] = plan
        return plan

    @classmethod
    def _match(
        cls,
        found: list[_Span],
        forms: Sequence[str],
        hard: Sequence[bool],
        i: int,
        bucket: _Bucket,
        gap: int,
        n: int,
        fast: bool,
    ) -> None:
        """The phrases of more than one word of a bucket that start at token i."""
        by_second = bucket.by_second
        j = i + 1
        for k in range(j, min(n, j + gap + 1)):
            if k > j and (hard[k - 1] or (forms[k - 1] == "," and k - 1 != j)):
                break
            candidates = by_second.get(forms[k])
            if candidates:
                if fast:
                    thirds = bucket.thirds[forms[k]]
                    if thirds is not None and thirds.isdisjoint(forms[k + 1 : k + 2 + gap]):
                        continue
                for words, payload, gaps in candidates:
                    if k != j and not gaps:
                        continue
                    if fast and len(words) == 2:
                        # _rest for two words: the loop above has checked the gap's tokens
                        # (none hard, a comma only first), so only "heftige, bonkende" remains
                        if k == j:
                            found.append(_Span(i, j + 1, payload))
                        elif forms[j] != "," or k - j == 2:
                            found.append(_Span(i, k + 1, payload, tuple(range(j, k))))
                        continue
                    allowed = gap if gaps else 0
                    if fast and not words[2].endswith("*"):
                        # _rest looks for the third word within `allowed` tokens of the second
                        if words[2] not in forms[k + 1 : k + 2 + allowed]:
                            continue
                    cls._rest(found, forms, hard, i, j, k, words, payload, allowed, n)
        for words, payload, gaps in bucket.stem_second:
            cls._rest(found, forms, hard, i, j, None, words, payload, gap if gaps else 0, n)

    @staticmethod
    def _rest(
        found: list[_Span],
        forms: Sequence[str],
        hard: Sequence[bool],
        i: int,
        j: int,
        second: int | None,
        words: tuple[str, ...],
        payload: Any,
        allowed: int,
        n: int,
    ) -> None:
        """Match words[1:] from token j (the second word already found at `second`)."""
        inner: list[int] = []
        for index, word in enumerate(words[1:]):
            if index == 0 and second is not None:
                k = second
            else:
                k = j
                matched = False
                while k < n and k - j <= allowed:
                    token = forms[k]
                    if token.startswith(word[:-1]) if word.endswith("*") else token == word:
                        matched = True
                        break
                    if hard[k] or (token == "," and k != j):
                        break
                    k += 1
                if not matched:
                    return
            if k > j:
                gap_tokens = forms[j:k]
                if any(hard[x] for x in range(j, k)):
                    return
                if "," in gap_tokens and (gap_tokens[0] != "," or len(gap_tokens) != 2):
                    return  # a comma only as in "heftige, bonkende pijn"
                inner.extend(range(j, k))
            j = k + 1
        found.append(_Span(i, j, payload, tuple(inner)))


class _CueSet:
    """The cues of one text, by sentence, with the positions of terminators, blockers, closers.

    A cue inside a keyword ("geen eerdere rugklachten") or covered by a pseudo phrase of its
    family ("geen verbetering") is no cue. A finding looks at the cues of its own sentence
    within `REACH` words only: every scope ends at the sentence, and the bound keeps the cost
    per finding constant, so reading stays linear in the text.
    """

    __slots__ = ("blockers", "closers", "families_in", "scoped", "scoped_starts", "terms")
    BACK, AHEAD = 40, 12

    def __init__(self, spans: list[_Span], covered: list[bool], sentence: list[int]) -> None:
        hidden: dict[tuple[str, int], int] = {}
        for span in spans:
            _, family, role = span.payload
            if role == "pseudo":
                for j in range(span.start, span.end):
                    key = (family, j)
                    hidden[key] = max(hidden.get(key, -1), span.end)
        self.scoped: dict[int, list[_Span]] = {}
        self.terms: dict[str, list[int]] = {}
        self.blockers: dict[str, list[_Span]] = {}
        self.closers: dict[str, list[int]] = {}
        self.families_in: dict[int, set[str]] = {}
        for span in spans:
            _, family, role = span.payload
            if role == "pseudo" or any(covered[span.start : span.end]):
                continue
            if hidden and hidden.get((family, span.start), -1) >= span.end:
                continue
            if role == "term":
                self.terms.setdefault(family, []).append(span.start)
            elif role == "blocker":
                self.blockers.setdefault(family, []).append(span)
            elif role == "closer":
                self.closers.setdefault(family, []).append(span.start)
            else:
                s = sentence[span.start]
                self.scoped.setdefault(s, []).append(span)
                self.families_in.setdefault(s, set()).add(family)
        self.scoped_starts = {s: [c.start for c in cs] for s, cs in self.scoped.items()}

    def near(self, sentence: int, low: int, high: int) -> list[_Span]:
        """The cues of a sentence starting in [low, high), in token order."""
        cues = self.scoped.get(sentence)
        if not cues:
            return []
        starts = self.scoped_starts[sentence]
        return cues[bisect.bisect_left(starts, low) : bisect.bisect_left(starts, high)]

    def terminated(self, family: str, begin: int, end: int) -> bool:
        """True when a terminator of the family starts in [begin, end)."""
        starts = self.terms.get(family)
        if not starts:
            return False
        k = bisect.bisect_left(starts, begin)
        return k < len(starts) and starts[k] < end

    def closer_after(self, family: str, end: int) -> int | None:
        """The first closer of the family starting at or after `end`."""
        starts = self.closers.get(family)
        if not starts:
            return None
        k = bisect.bisect_left(starts, end)
        return starts[k] if k < len(starts) else None


class TextReader:
    """Reads concept findings and their context from free text (see the module docstring)."""

    def __init__(
        self,
        keywords: Mapping[str, Sequence[str]],
        rules: ContextRules,
        *,
        exclusions: Mapping[str, Sequence[str]] | None = None,
        reported: Mapping[str, Sequence[str]] | None = None,
        checked: Mapping[str, Sequence[str]] | None = None,
        measurements: Iterable[str] = (),
    ) -> None:
        self.rules = rules
        # False: every step takes its full path (the fast paths must read exactly the same)
        self._fast_paths = True
        # "normaal", "gb" after an examined item is its result, not its negation
        self._measurements = frozenset(measurements)
        index = _PhraseIndex()

        def add(phrase: str, payload: tuple[str, ...], gaps: bool = False) -> None:
            index.add(phrase_words(phrase), payload, gaps)

        for concept, phrases in keywords.items():
            for p in phrases:
                add(p, ("kw", concept, ""), gaps=True)
        for concept, phrases in (reported or {}).items():
            for p in phrases:
                add(p, ("kw", concept, "reported"), gaps=True)
        for concept, phrases in (checked or {}).items():
            for p in phrases:
                add(p, ("kw", concept, "checked"), gaps=True)
        for concept, phrases in (exclusions or {}).items():
            for p in phrases:
                add(p, ("excl", concept), gaps=True)
        for concept, phrases in rules.forms.items():
            for p in phrases:
                add(p, ("form", concept))
        for family, entries in rules.cues.items():
            for p, cue in entries:
                # "geen betekenisvolle verbetering" is still "geen verbetering"
                add(p, ("cue", family, cue.role), gaps=cue.role == "pseudo" and family == NEGATED)
        for p in rules.absence:
            add(p, ("absence",))
        for label, (name, _, _, _) in rules.sections.items():
            add(label, ("section", name))
        for p in rules.clause_breaks:
            add(p, ("break",))
        for p in rules.examination_cues:
            add(p, ("examcue",))
        for p in rules.exam_abnormal:
            add(p, ("result", "abnormal"))
        for p in rules.exam_normal:
            add(p, ("result", "normal"))
        for name, phrases in rules.qualifiers.items():
            for p in phrases:
                add(p, ("qual", name))
        for p in rules.elsewhere:
            add(p, ("elsewhere",))
        self._regional = {
            concept: frozenset(phrase_words(p) for p in phrases)
            for concept, phrases in rules.regional.items()
        }
        self._index = index
        self._break_words = frozenset(
            w[0] for w in (phrase_words(p) for p in rules.clause_breaks) if len(w) == 1
        )
        self._list_words = frozenset(
            w[0] for w in (phrase_words(p) for p in rules.list_words) if len(w) == 1
        )
        self._answers = frozenset(
            w[0] for w in (phrase_words(p) for p in rules.answers) if len(w) == 1
        )
        self._negators = frozenset(
            words[0]
            for p, cue in rules.cues.get(NEGATED, ())
            if cue.role == "pre" and len(words := phrase_words(p)) == 1
        )
        vocabulary = index.vocabulary() | set(rules.abbreviations)
        self._vocabulary = frozenset(vocabulary)
        # One-word keywords: the targets of typing-error and compound reading.
        singles = {
            words[0]
            for phrases in (*keywords.values(), *(reported or {}).values())
            for p in phrases
            if len(words := phrase_words(p)) == 1 and not words[0].endswith("*")
        }
        multi = {
            w
            for phrases in (*keywords.values(), *(reported or {}).values())
            for p in phrases
            for w in phrase_words(p)
            if not w.endswith("*")
        }
        self._fuzzy_targets: dict[str, set[str]] = {}
        for word in multi:
            if len(word) >= rules.typo_min_length and word.isalpha():
                for variant in {word, *_deletions(word)}:
                    self._fuzzy_targets.setdefault(variant, set()).add(word)
        self._heads = frozenset(
            w
            for w in singles
            if len(w) >= rules.compound_head_min
            and w.isalpha()
            and w not in rules.not_compound_heads
        )
        relatives = {
            words[0]
            for p, cue in rules.cues.get(FAMILY, ())
            if cue.role == "pre" and len(words := phrase_words(p)) == 1 and len(words[0]) >= 3
        }
        self._heads = self._heads | relatives
        self._head_lengths = sorted({len(h) for h in self._heads})
        self._tails = tuple(
            sorted((phrase_words(p)[0] for p in rules.compound_tails), key=len, reverse=True)
        )
        self._split = tuple(
            sorted((phrase_words(p)[0] for p in rules.split_prefixes), key=len, reverse=True)
        )
        self._form_cache: dict[str, str] = {}
        self._split_heads = frozenset(p[:3] for p in self._split)
        self._item_of = {deficit: item for item, deficit in rules.exam_items.items() if deficit}
        self._section_contexts = {n: c for n, c, _, _ in rules.sections.values() if c}
        self._section_sources = {n: src for n, _, src, _ in rules.sections.values() if src}
        self._priority = tuple(f for f in rules.priority if f in rules.families)
        self._sentence_sections = frozenset(
            name for name, _, _, one in rules.sections.values() if one
        )

    # -- public ----------------------------------------------------------------------------

    def read(self, text: str, *, section: str | None = None) -> Reading:
        """Every finding in `text`, with its context; `section` is the SOEP line type, if known."""
        if not text:
            return Reading((), False, 0)
        truncated = len(text) > self.rules.max_chars
        if truncated:
            text = text[: self.rules.max_chars]
        if len(text) < _GC_PAUSE_CHARS or not gc.isenabled():
            return self._read(text, truncated, section)
        # A long note makes many objects that live to the end of the reading and form no
        # cycles: a collection meanwhile frees nothing, yet a full one traverses the whole
        # heap (a tenth of a second in a test session), so reading would not stay linear.
        # Under threaded workers two readings may overlap: the one that switched the collector
        # off switches it on again, so at worst a reading runs with it on, never left off.
        gc.disable()
        try:
            return self._read(text, truncated, section)
        finally:
            gc.enable()

    def _read(self, text: str, truncated: bool, section: str | None) -> Reading:
        doc = self._doc(text)
        if not doc.tokens:
            return Reading((), truncated, len(text))
        return Reading(tuple(self._findings(doc, section)), truncated, len(text))

    # -- tokens and word forms ---------------------------------------------------------------

    def _doc(self, text: str) -> _Doc:
        folded = fold_keep_length(text)
        if not self._fast_paths or (
            # a word may start with "linker", "rechter": the loop splits it
            any(map(folded.__contains__, self._split))
        ):
            return self._doc_loop(text, _TOKEN.finditer(folded))
        # Token by token in Python only where a token needs more than its match: the lists
        # are built by map() at C speed, and the rare cases below go to the full loop.
        tokens: list[str] = []
        kinds: list[str | None] = []
        starts: list[int] = []
        ends: list[int] = []
        matches = _TOKEN.finditer(folded)
        # in slices: a list of all the matches of a long note would keep them alive long
        # enough for the garbage collector to scan them again and again
        while chunk := list(islice(matches, 500) if len(folded) > 1000 else matches):
            tokens += map(_MATCH_TEXT, chunk)
            kinds += map(_MATCH_KIND, chunk)
            starts += map(_MATCH_START, chunk)
            ends += map(_MATCH_END, chunk)
        present = set(kinds)
        if not present.isdisjoint(_NORMALISED_KINDS):
            for kind in present & _NORMALISED_KINDS:
                # _normal_token leaves a number without a comma and a level without a space
                # as they are: the text tells whether any has one
                if kind == "num" and not _DIGIT_COMMA.search(folded):
                    continue
                if kind == "level" and " -" not in folded and "- " not in folded:
                    continue
                for i in _positions(kinds, kind):
                    tokens[i] = _normal_token(kind, tokens[i])
        abbreviations = self.rules.abbreviations
        dropped = []
        for i in _positions(tokens, "."):
            if i and tokens[i - 1] in abbreviations:
                # "pt. heeft", "evt. fysio": an abbreviation's dot, as _doc_loop tells it
                rest = text[ends[i] : ends[i] + 3].lstrip(" ")
                if rest and rest[0].isalnum() and rest[0].islower():
                    if tokens[i + 1 : i + 2] == ["."]:
                        # the dot before it decides
                        return self._doc_loop(text, _TOKEN.finditer(folded))
                    dropped.append(i)
        if "join" in present or dropped:
            keep = [kind != "join" for kind in kinds]
            for i in dropped:
                keep[i] = False
            tokens = list(compress(tokens, keep))
            starts = list(compress(starts, keep))
            ends = list(compress(ends, keep))
        return _Doc(text, tokens, starts, ends)

    def _doc_loop(self, text: str, matches: Iterable[re.Match[str]]) -> _Doc:
        """The tokens of the matches, one by one: the full path that _doc's fast one equals."""
        tokens: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        add_token, add_start, add_end = tokens.append, starts.append, ends.append
        abbreviations = self.rules.abbreviations
        split = self._split
        split_heads = self._split_heads
        for m in matches:
            kind = m.lastgroup
            token = m.group()
            start, end = m.span()
            if kind == "plain" or kind == "word":
                if split and len(token) > 6 and token[:3] in split_heads:
                    for prefix in split:
                        if token.startswith(prefix) and len(token) - len(prefix) >= 3:
                            cut = start + len(prefix)
                            add_token(prefix)
                            add_start(start)
                            add_end(cut)
                            token, start = token[len(prefix) :], cut
                            break
            elif kind == "punct":
                if token == "." and tokens and tokens[-1] in abbreviations:
                    rest = text[end : end + 3].lstrip(" ")
                    if rest and rest[0].isalnum() and rest[0].islower():
                        continue  # "pt. heeft", "evt. fysio": an abbreviation's dot
            elif kind == "join":
                continue
            elif kind != "sign":
                token = _normal_token(kind, token)
            add_token(token)
            add_start(start)
            add_end(end)
        return _Doc(text, tokens, starts, ends)

    def _form(self, token: str) -> str:
        """The word itself, or the keyword word it is a typing error or compound of."""
        cached = self._form_cache.get(token)
        if cached is not None:
            return cached
        result = token
        rules = self.rules
        if (
            token not in self._vocabulary
            and token.isalpha()
            and token not in rules.never_fuzzy
            and len(token) >= 5
        ):
            if len(token) >= rules.typo_min_length - 1:
                result = self._typo(token) or token
            if result == token and len(token) >= 7:
                result = self._head(token) or self._lead(token) or token
        if len(self._form_cache) < 50_000:  # bounded: a hostile text cannot grow it further
            self._form_cache[token] = result
        return result

    def _typo(self, token: str) -> str | None:
        """The keyword word one edit away (same first letter), if exactly one is."""
        targets = self._fuzzy_targets
        candidates: set[str] = set()
        for variant in (token, *_deletions(token)):
            found = targets.get(variant)
            if found:
                candidates |= found
        good = [
            c
            for c in candidates
            if c[0] == token[0] and len(c) >= self.rules.typo_min_length and _one_edit(token, c)
        ]
        if not good:
            return None
        # "methotrexat": methotrexaat and methotrexate are one concept's spellings alike
        return min(good, key=lambda c: (abs(len(c) - len(token)), c))

    def _lead(self, token: str) -> str | None:
        """The one-word keyword that starts `token` before a known tail ("koortspiek")."""
        for tail in self._tails:
            if token.endswith(tail):
                lead = token[: -len(tail)]
                if lead.endswith("s") and lead[:-1] in self._heads:
                    lead = lead[:-1]  # the Dutch linking s: "prednisongebruik", "rugpijnsklachten"
                if lead in self._heads:
                    return lead
        return None

    def _head(self, token: str) -> str | None:
        """The longest one-word keyword that ends the compound `token`."""
        minimum = self.rules.compound_prefix_min
        for length in reversed(self._head_lengths):
            if len(token) - length < minimum:
                continue
            tail = token[-length:]
            if tail in self._heads:
                return tail
        return None

    # -- structure -----------------------------------------------------------------------------

    def _structure(
        self,
        doc: _Doc,
        forms: list[str],
        breaks: set[int],
        enders: AbstractSet[int] = frozenset(),
    ) -> None:
        """Sentence, clause, list group and item start per token.

        A dash between words ("r/o CES - reports ...") ends a clause like a comma; a list item
        that states its own result ("SLR negatief, kracht en gevoel normaal") ends the list.
        Only the tokens that change the structure are visited one by one: the runs of words
        between them are filled at once.
        """
        tokens = forms
        n = len(tokens)
        answers = self._answers
        text, starts, ends = doc.text, doc.starts, doc.ends
        marks = list(compress(range(n), map(_STRUCTURE_TOKENS.__contains__, tokens)))
        breaks = set(breaks)
        sentence_ends: set[int] = set()
        for i in marks:
            t = tokens[i]
            if t in SENTENCE_ENDS:
                # "?" followed by an answer ("koorts? nee") belongs to the clause
                if not (t == "?" and i + 1 < n and tokens[i + 1] in answers):
                    sentence_ends.add(i)
            elif (
                t == "-"
                and 0 < i < n - 1
                and tokens[i + 1] not in _PUNCT
                and text[starts[i] - 1 : starts[i]] == " "
                and text[ends[i] : ends[i] + 1] == " "
            ):
                breaks.add(i)  # " - " between words; "urine- of ontlasting" is no break
        words = self._list_words
        listed: list[int] = []
        hard: list[int] = []  # needed only to look for a list word ahead
        if not words.isdisjoint(tokens):
            listed = list(compress(range(n), map(words.__contains__, tokens)))
            hard = sorted(sentence_ends | breaks | {i for i in marks if tokens[i] == ":"})

        def list_ahead(i: int) -> bool:
            """A list word follows before the sentence or a clause otherwise ends."""
            k = bisect.bisect_right(listed, i)
            if k == len(listed):
                return False
            h = bisect.bisect_right(hard, i)
            return h == len(hard) or listed[k] < hard[h]

        # marks are in order already: a set and a sort only when other events join them
        events = sorted(set(marks) | breaks | enders) if breaks or enders else marks
        sentence: list[int] = []
        clause: list[int] = []
        group: list[int] = []
        item_start: list[int] = []
        s = c = g = 0
        item = depth = 0
        ended = False
        limit = self.rules.list_item_max
        done = 0  # tokens filled so far
        # filled inline, not by a helper: this loop runs once per punctuation mark
        add_sentence, add_clause = sentence.append, clause.append
        add_group, add_item = group.append, item_start.append

        for i in events:
            if i > done:
                run = i - done  # the words between two structure tokens
                sentence += [s] * run
                clause += [c] * run
                group += [g] * run
                item_start += [item] * run
            t = tokens[i]
            if t == "(":
                depth += 1
            elif t == ")":
                depth = max(0, depth - 1)
            if i in enders:
                ended = True
            boundary = i in sentence_ends or t in (":", ",") or i in breaks
            goes_on = False
            if boundary:
                # a comma inside brackets, or in a list that goes on to "of"/"en", keeps the
                # list's group: "geen koorts, afvallen of nachtpijn", "negatief (koorts, UWI)"
                goes_on = t == "," and (
                    depth > 0 or (i - item <= limit and not ended and list_ahead(i))
                )
                ended = False
                c += 1
                if not goes_on:
                    g += 1
            # a boundary belongs to neither side: a clause (and group) of its own
            add_sentence(s)
            add_clause(c)
            add_group(g)
            add_item(item)
            if boundary:
                c += 1
                if not goes_on:
                    g += 1
                item = i + 1
            if i in sentence_ends:
                s += 1
                c += 1
                g += 1
                depth = 0
            done = i + 1
        if n > done:
            run = n - done
            sentence += [s] * run
            clause += [c] * run
            group += [g] * run
            item_start += [item] * run
        doc.sentence, doc.clause, doc.group, doc.item_start = sentence, clause, group, item_start

    # -- findings ------------------------------------------------------------------------------

    def _findings(self, doc: _Doc, line_section: str | None) -> list[TextFinding]:
        fast = self._fast_paths
        # the per-token lists are built by map() where it can: C speed, not a Python loop
        forms = _filled(
            list(map(self._form_cache.get, doc.tokens)), lambda i: self._form(doc.tokens[i])
        )
        n = len(forms)
        # hard stops for the keyword gaps: sentence ends and colons (clause breaks come later)
        hard_gap = list(map(_GAP_TOKENS_FORBIDDEN.__contains__, forms))
        spans = self._index.find(forms, hard_gap, self.rules.gap, fast)
        roles: dict[str, list[_Span]] = {}
        for span in spans:
            roles.setdefault(span.payload[0], []).append(span)
        numbers = (
            list(compress(range(n), map(str.isdigit, map(_FIRST, forms))))
            if _DIGIT.search(doc.text)
            else []
        )
        if "kw" not in roles and "form" not in roles and not self._grade_possible(forms, numbers):
            return []
        keywords = self._keywords(roles)
        grades = self._grades(forms, numbers if fast else None) if numbers else []
        if not keywords and not grades:
            return []
        breaks = {sp.start for sp in roles["break"]} if "break" in roles else set()
        enders = (
            {
                sp.start
                for sp in roles["cue"]
                if sp.payload[1] == NEGATED and sp.payload[2] in ("post", "normal")
            }
            if "cue" in roles
            else set()
        )
        self._structure(doc, forms, breaks, enders)
        if "elsewhere" in roles and self._regional:
            keywords = self._in_region(doc, forms, keywords, roles["elsewhere"])
        label_tokens = self._sections(doc, forms, roles.get("section", []), line_section)

        if "cue" in roles:
            covered = [False] * n
            for j in label_tokens:
                covered[j] = True  # "NO:" is a section label, not a negation
            for span in keywords:
                inner = span.inner
                for j in range(span.start, span.end):
                    if not inner or j not in inner:
                        covered[j] = True
            cues = _CueSet(roles["cue"], covered, doc.sentence)
        else:
            cues = _CueSet([], [], doc.sentence)
        by_sentence = cues.families_in
        sentence = doc.sentence
        for i in _positions(forms, "?"):
            # a doubting "?" may stand just before the next sentence's first word
            by_sentence.setdefault(sentence[i], set()).add(SUSPECTED)
            if i + 1 < n:
                by_sentence.setdefault(sentence[i + 1], set()).add(SUSPECTED)
        for i in numbers:
            if len(forms[i]) == 4 and forms[i][:2] in ("19", "20"):
                by_sentence.setdefault(sentence[i], set()).add(HISTORICAL)  # a past year
        if "qual" in roles:
            quals = self._qualifiers(doc, roles["qual"], forms, keywords, grades)
            severe = [sp for sp in roles["qual"] if sp.payload[1] == "severe"]
            severe_marks = ({sp.end for sp in severe}, {sp.start for sp in severe})
        else:
            quals, severe_marks = {}, (set(), set())
        grade_clauses = {doc.clause[g] for g, _ in grades} if grades else set()
        exam_clauses = (
            {doc.clause[sp.start] for sp in roles["examcue"]} | grade_clauses
            if "examcue" in roles
            else grade_clauses
        )
        result_spans = roles.get("result", [])  # found in token order
        results = (result_spans, [r.start for r in result_spans])
        absence_starts = [sp.start for sp in roles["absence"]] if "absence" in roles else []

        out: dict[tuple[Any, ...], TextFinding] = {}

        def emit(finding: TextFinding) -> None:
            key = (finding.concept, finding.context, finding.words, finding.value)
            out.setdefault(key, finding)

        rules = self.rules
        # looked up once per text, not once per keyword
        exam_items = rules.exam_items
        reported_concepts = rules.families[REPORTED].applies_to
        severe_pain_from = rules.severe_pain_from
        item_of = self._item_of
        sources = self._section_sources
        families_in = cues.families_in
        doc_sentence, doc_section, doc_clause = doc.sentence, doc.section, doc.clause
        context_of = self._context
        no_qualifiers: frozenset[str] = frozenset()
        for span in keywords:
            _, concept, flavour = span.payload
            start = span.start
            section = doc_section[start]
            if section is None and flavour != "form" and not families_in.get(doc_sentence[start]):
                context, cue = AFFIRMED, None  # _context's own first answer, without the call
            else:
                context, cue = context_of(doc, span, cues, concept, absence_starts)
            clause = doc_clause[start]
            q = quals.get(clause, no_qualifiers) if quals else no_qualifiers
            if flavour == "checked" and context not in (NEGATED, CONDITIONAL):
                continue  # "mictie", "anal tone": what was checked, never the finding itself
            examined = False
            words = doc.surface(start, span.end)
            if concept in exam_items and context == AFFIRMED:
                # an examined item in the patient's words is no examination ("voelt minder kracht")
                if not self._objective(doc, span, "", exam_clauses, grade_clauses, cues)[0]:
                    continue
            if concept in reported_concepts:
                examined, reported_cue = self._objective(
                    doc, span, flavour, exam_clauses, grade_clauses, cues
                )
                if context == AFFIRMED and not examined:
                    context, cue = REPORTED, reported_cue or words
            key = (concept, context, words, None)
            exam = concept in exam_items and not (
                concept == "muscle-strength" and clause in grade_clauses
            )
            # a finding like one read before is dropped: made only when kept or needed
            if key not in out:
                finding = out[key] = TextFinding(
                    concept, words, context, cue, q, None, section, examined
                )
            elif exam:
                finding = TextFinding(concept, words, context, cue, q, None, section, examined)
            item = item_of.get(concept)
            if item and examined:
                on_exam = (
                    section is not None and sources.get(section) == "examined"
                ) or clause in exam_clauses
                if context == AFFIRMED or (context == NEGATED and on_exam):
                    # an examined deficit (or its absence) records that the item was examined
                    emit(TextFinding(item, words, AFFIRMED, None, q, None, section, True))
            if context == REPORTED:
                emit(TextFinding("radicular-symptoms", words, AFFIRMED, None, q, None, section))
            if concept in severe_pain_from and self._severity_beside(span, severe_marks):
                emit(TextFinding("severe-pain", words, context, cue, q, None, section))
            if exam:
                self._exam_result(doc, span, finding, results, cues, emit)
        falling = self._falling_grades(doc, grades)
        for index, grade in grades:
            span = _Span(index, index + 1, ("kw", "muscle-strength", ""))
            context, cue = self._context(doc, span, cues, "muscle-strength", absence_starts)
            graded = set(quals.get(doc.clause[index], frozenset()))
            if index in falling:
                graded.add("progressive")
            words = doc.surface(
                max(0, index - 1) if forms[index - 1 : index] == ["mrc"] else index, index + 1
            )
            section = doc.section[index]
            emit(
                TextFinding(
                    "muscle-strength", words, context, cue, frozenset(graded), grade, section, True
                )
            )
            weak = grade <= rules.mrc_deficit_max
            if not weak and grade < 5:
                continue  # "5-/5": no proof of full strength, no deficit either
            if grade <= rules.mrc_severe_max:
                graded.add("severe")
            weakness_context = context if weak else (NEGATED if context == AFFIRMED else context)
            emit(
                TextFinding(
                    "muscle-weakness",
                    words,
                    weakness_context,
                    cue if weak or context != AFFIRMED else f"MRC {grade:g}",
                    frozenset(graded) if weak else frozenset(graded - {"severe"}),
                    grade,
                    section,
                    True,
                )
            )
        if numbers:
            for finding in self._temperatures(
                doc, forms, keywords, cues, numbers if fast else None
            ):
                emit(finding)
        return list(out.values())

    def _keywords(self, roles: dict[str, list[_Span]]) -> list[_Span]:
        """Keyword spans without excluded ones, the longest per concept where they overlap."""
        spans = roles.get("kw", [])
        excluded = roles.get("excl", [])
        if excluded:
            # tokens under an exclusion phrase, per concept ("angina pectoris")
            under: dict[tuple[str, int], tuple[int, int]] = {}
            for x in excluded:
                for j in range(x.start, x.end):
                    under[(x.payload[1], j)] = (x.start, x.end)

            def cancelled(s: _Span) -> bool:
                for j in range(s.start, s.end):
                    x = under.get((s.payload[1], j))
                    # a longer keyword holding the exclusion stands: "niet bewust afgevallen"
                    if x is not None and not (
                        s.start <= x[0] and x[1] <= s.end and s.end - s.start > x[1] - x[0]
                    ):
                        return True
                return False

            spans = [s for s in spans if not cancelled(s)]
        if len(spans) > 1:
            spans.sort(key=_longest_first)
        taken: dict[str, int] = {}
        kept: list[_Span] = []
        for span in spans:
            concept = span.payload[1]
            if taken.get(concept, -1) > span.start:
                continue
            taken[concept] = span.end
            kept.append(span)
        # a negation form ("afebriel", "gewicht stabiel") is a finding of its concept, negated
        forms = roles.get("form", [])
        if forms:
            kept = [
                s
                for s in kept
                if not any(
                    f.payload[1] == s.payload[1] and f.start < s.end and s.start < f.end
                    for f in forms
                )
            ]
            kept += [_Span(f.start, f.end, ("kw", f.payload[1], "form")) for f in forms]
        if len(kept) > 1:
            kept.sort(key=_longest_first)
        outer: _Span | None = None
        for span in kept:
            if outer is not None and span.end <= outer.end and outer.payload[1] != span.payload[1]:
                span.nested = span.end - span.start < outer.end - outer.start
            if outer is None or span.end > outer.end:
                outer = span
        return kept

    def _sections(
        self, doc: _Doc, forms: list[str], labels: list[_Span], line_section: str | None
    ) -> set[int]:
        """Set the SOEP section of each token; returns the tokens of the labels themselves.

        A label and colon start a section that lasts to the next label, or to the end of its
        sentence for the sections that set a context for one statement (VG:, FA:, DD:).
        """
        n = len(forms)
        if not labels:
            doc.section = [line_section] * n
            doc.section_start = [0] * n
            return set()
        starts: dict[int, tuple[int, str]] = {}
        for span in labels:
            end = span.end
            if end >= n or forms[end] != ":":
                # a heading line: "# Plan", "Beleid" alone on its line
                if not (end >= n or forms[end] == "\n") or not (
                    span.start == 0 or forms[span.start - 1] == "\n"
                ):
                    continue
            single = span.end - span.start == 1 and len(forms[span.start]) == 1
            if single and span.start > 0 and forms[span.start - 1] not in SENTENCE_ENDS:
                continue
            best = starts.get(span.start)
            if best is None or best[0] < end:
                starts[span.start] = (end, span.payload[1])
        sections: list[str | None] = [line_section] * n
        section_start = [0] * n
        label_tokens: set[int] = set()
        one_sentence = self._sentence_sections
        current, since, ends_at = line_section, 0, -1
        if self._fast_paths:
            # From label to label, each run between them filled at once (the loop below
            # visits every token): a one-sentence section ends at the first token of a
            # later sentence, found by bisection as sentence numbers only grow.
            sentence = doc.sentence

            def fill(a: int, b: int) -> None:
                nonlocal current, since, ends_at
                cut = bisect.bisect_right(sentence, ends_at, a, b) if ends_at >= 0 else b
                if cut > a:
                    sections[a:cut] = [current] * (cut - a)
                    section_start[a:cut] = [since] * (cut - a)
                if cut < b:  # the rest keeps the line's section, as the lists start
                    current, since, ends_at = line_section, 0, -1

            i = 0
            for at in sorted(starts):
                if at < i:
                    continue  # inside the label before it
                if at > i:
                    fill(i, at)
                end, current = starts[at]
                since = end + 1
                ends_at = sentence[min(end + 1, n - 1)] if current in one_sentence else -1
                for j in range(at, min(end + 1, n)):
                    sections[j] = current
                    section_start[j] = since
                    label_tokens.add(j)
                i = end + 1
            if i < n:
                fill(i, n)
            doc.section = sections
            doc.section_start = section_start
            return label_tokens
        i = 0
        while i < n:
            label = starts.get(i)
            if label is not None:
                end, current = label
                since = end + 1
                ends_at = doc.sentence[min(end + 1, n - 1)] if current in one_sentence else -1
                for j in range(i, min(end + 1, n)):
                    sections[j] = current
                    section_start[j] = since
                    label_tokens.add(j)
                i = end + 1
                continue
            if ends_at >= 0 and doc.sentence[i] != ends_at:
                current, since, ends_at = line_section, 0, -1
            sections[i] = current
            section_start[i] = since
            i += 1
        doc.section = sections
        doc.section_start = section_start
        return label_tokens

    def _qualifiers(
        self,
        doc: _Doc,
        spans: list[_Span],
        forms: list[str],
        keywords: list[_Span],
        grades: list[tuple[int, float]],
    ) -> dict[int, frozenset[str]]:
        """Qualifiers per clause. A clause of qualifiers alone ("krachtsverlies, neemt toe")
        belongs to the clause before it in the same sentence."""
        finding_clauses = {doc.clause[k.start] for k in keywords}
        finding_clauses.update(doc.clause[g] for g, _ in grades)
        found: dict[int, set[str]] = {}
        for span in spans:
            before = forms[span.start - 1] if span.start else ""
            if before in self._negators:
                continue  # "niet progressief", "not severe"
            name = span.payload[1]
            if name in ("left", "right") and forms[span.start] in ("l", "r"):
                # a bare letter is a side ("EHL 4/5 L", "L ankle"), not after a number ("1.1 L")
                if before[:1].isdigit():
                    continue
            clause = doc.clause[span.start]
            if clause not in finding_clauses:
                k = span.start - 1
                lowest = max(-1, span.start - 12)  # a bounded look back: linear time
                while k > lowest and doc.sentence[k] == doc.sentence[span.start]:
                    if doc.clause[k] in finding_clauses:
                        clause = doc.clause[k]
                        break
                    if doc.clause[k] != clause and forms[k] not in (",",):
                        if doc.clause[k] != clause - 1 and doc.clause[k] != clause - 2:
                            break
                    k -= 1
            found.setdefault(clause, set()).add(name)
        result = {}
        for clause, names in found.items():
            if {"left", "right"} <= names:
                names.add("bilateral")
            result[clause] = frozenset(names)
        return result

    # -- context -------------------------------------------------------------------------------

    def _context(
        self,
        doc: _Doc,
        span: _Span,
        cues: _CueSet,
        concept: str,
        absence_starts: list[int],
    ) -> tuple[str, str | None]:
        """The context of one keyword span and the words of the cue that gave it."""
        if span.payload[2] == "form":
            return NEGATED, doc.surface(span.start, span.end)
        sentence_families = cues.families_in.get(doc.sentence[span.start])
        if not sentence_families and doc.section[span.start] is None:
            return AFFIRMED, None
        families = self.rules.families
        exempt = self.rules.exempt
        if sentence_families:
            for family in self._priority:
                if family not in sentence_families:
                    continue  # no cue of this family in the sentence: cues never reach further
                rules = families[family]
                if rules.applies_to and concept not in rules.applies_to:
                    continue
                if concept in exempt.get(family, ()):
                    continue
                if family == SUSPECTED and concept in self._measurements:
                    continue  # "sens twijfelachtig verminderd": the examination was done
                cue = self._family_cue(doc, span, cues, rules, concept, absence_starts)
                if cue is not None and not self._blocked(doc, cues, span, rules):
                    return family, cue  # the first family in priority order decides
        section = doc.section[span.start]
        if section is not None:
            context = self._section_context(section)
            section_rules = self.rules.families.get(context or "")
            if (
                context
                and section_rules is not None
                and not (section_rules.applies_to and concept not in section_rules.applies_to)
                and not (context == SUSPECTED and concept in self._measurements)
                and concept not in self.rules.section_exempt.get(section, ())
                and not cues.terminated(context, doc.section_start[span.start], span.start)
                and not self._blocked(doc, cues, span, section_rules)
            ):
                return context, f"{section}:"
        return AFFIRMED, None

    def _section_context(self, section: str) -> str | None:
        return self._section_contexts.get(section)

    def _family_cue(
        self,
        doc: _Doc,
        span: _Span,
        cues: _CueSet,
        family: Family,
        concept: str,
        absence_starts: list[int],
    ) -> str | None:
        """The words of the cue of one family that reaches the keyword span, if any."""
        name = family.name
        start, end = span.start, span.end
        if name == SUSPECTED:
            mark = self._question(doc, span)
            if mark is not None:
                return mark
        pre = sentence_pre = closed = clause_post = None
        after: list[_Span] = []
        inner = span.inner
        for cue in cues.near(doc.sentence[start], start - cues.BACK, end + cues.AHEAD):
            if cue.payload[1] != name:
                continue
            role = cue.payload[2]
            if cue.end <= start:
                # the nearest cue before the keyword (when the nearest is out of scope —
                # another group, a terminator between — every earlier one is too)
                if role == "pre":
                    pre = cue
                elif role == "sentence_pre":
                    sentence_pre = cue
                elif role == "closed":
                    closed = cue
            elif cue.start >= end:
                if role == "clause_post":
                    if clause_post is None:
                        clause_post = cue
                elif role in ("post", "colon", "normal"):
                    after.append(cue)
            elif role == "pre" and inner and cue.start in inner:
                return doc.surface(cue.start, cue.end)  # "kracht niet verminderd"
        if pre is not None and self._pre_in_scope(doc, cues, pre, start, family):
            return doc.surface(pre.start, pre.end)
        if (
            sentence_pre is not None
            and not cues.terminated(name, sentence_pre.end, start)
            and not self._broken(doc, sentence_pre.end, start)
        ):
            return doc.surface(sentence_pre.start, sentence_pre.end)
        # a cue that opens a scope only when a closer follows ("bij koorts ... contact opnemen")
        if closed is not None and (
            doc.group[closed.start] == doc.group[start] or self._opens_sentence(doc, closed.start)
        ):
            closer = cues.closer_after(name, end)
            if closer is not None and doc.sentence[closer] == doc.sentence[start]:
                return doc.surface(closed.start, closed.end)
        if clause_post is not None and doc.clause[clause_post.start] == doc.clause[start]:
            cue = clause_post
            if cue.end >= len(doc.tokens) or doc.clause[cue.end] != doc.clause[cue.start]:
                return doc.surface(cue.start, cue.end)  # it closes the clause
        for cue in after:
            if cue.start - end > family.post_window + 1:
                break
            role = cue.payload[2]
            if self._post_in_scope(doc, cue, span, family, role, concept, absence_starts):
                return doc.surface(cue.start, cue.end)
        if name == HISTORICAL:
            return self._year_near(doc, span)
        return None

    def _question(self, doc: _Doc, span: _Span) -> str | None:
        """A doubting "?" right before or after a finding: "?CES", "HNP L5-S1?", "koorts?".

        A question answered ("koorts? nee") is no doubt: the answer decides.
        """
        tokens = doc.tokens
        n = len(tokens)
        for k in range(span.start - 1, max(-1, span.start - 3), -1):
            if tokens[k] == "?":
                before = tokens[k - 1] if k else "\n"
                if (
                    before in _PUNCT
                    or before in ("(", "?")
                    or k == 0
                    or doc.section[k - 1] != doc.section[k]
                ):
                    return "?"
                break
            if tokens[k] in _PUNCT:
                break
        for k in range(span.end, min(n, span.end + 3)):
            if tokens[k] == "?":
                after = tokens[k + 1] if k + 1 < n else ""
                return None if after in self._answers else "?"
            if tokens[k] in _PUNCT:
                break
        return None

    @staticmethod
    def _blocked(doc: _Doc, cues: _CueSet, span: _Span, family: Family) -> bool:
        """True when a blocker of the family stands in the finding's clause ("vanochtend")."""
        blockers = cues.blockers.get(family.name)
        if not blockers:
            return False
        clause = doc.clause[span.start]
        low, high = span.start - 12, span.end + 12
        return any(low <= b.start <= high and doc.clause[b.start] == clause for b in blockers)

    def _broken(self, doc: _Doc, begin: int, end: int) -> bool:
        """True when a clause break word ("maar", "but") stands between two tokens."""
        return any(doc.tokens[k] in self._break_words for k in range(begin, min(end, begin + 40)))

    @staticmethod
    def _opens_sentence(doc: _Doc, i: int) -> bool:
        """True when token i starts its sentence (after a section label, if any)."""
        if i == 0 or doc.sentence[i - 1] != doc.sentence[i]:
            return True
        return doc.tokens[i - 1] == ":"

    def _pre_in_scope(
        self, doc: _Doc, cues: _CueSet, cue: _Span, start: int, family: Family
    ) -> bool:
        if family.sentence_scope:
            if doc.sentence[cue.start] != doc.sentence[start]:
                return False
            return not cues.terminated(family.name, cue.end, start)
        anchor = cue.start
        if cue.end < len(doc.tokens) and doc.tokens[cue.end] == ":" and cue.end + 1 <= start:
            anchor = cue.end + 1  # "Vader: multipel myeloom", "Alarmsymptomen: ..."
        if doc.group[anchor] != doc.group[start]:
            return False
        if cues.terminated(family.name, cue.end, start):
            return False
        if family.window:
            # fewer than `window` words between the cue (or the list item's start) and it
            origin = max(cue.end, doc.item_start[start])
            if start - origin >= family.window:
                return False
        return True

    def _post_in_scope(
        self,
        doc: _Doc,
        cue: _Span,
        span: _Span,
        family: Family,
        role: str,
        concept: str,
        absence_starts: list[int],
    ) -> bool:
        end = span.end
        tokens = doc.tokens
        if role == "colon":
            # "Koorts: nee." negates; "Rugpijn: geen koorts" is about the fever
            if end >= len(tokens) or tokens[end] != ":" or cue.start != end + 1:
                return False
            return cue.end >= len(tokens) or doc.clause[cue.end] != doc.clause[cue.start]
        colon = end < len(tokens) and tokens[end] == ":"
        first = end + 1 if colon else end
        if cue.start < first or cue.start - first > family.post_window:
            return False
        if not colon and doc.clause[cue.start] != doc.clause[span.start]:
            return False
        if role == "normal" and concept in self._measurements:
            return False
        if tokens[cue.start] == "-":
            after = tokens[cue.end] if cue.end < len(tokens) else ""
            if after and after not in _PUNCT and after not in ("/", "-"):
                return False  # "cauda equina syndrome - ambulance": a dash, not a minus
        if span.nested:
            return False  # "Eerste keer rugpijn? nee": the answer is about the outer phrase
        if family.name == NEGATED and concept in self.rules.absence_is_finding:
            if cue.start in absence_starts:
                return False
        if family.name == SUSPECTED and tokens[cue.start] == "?":
            # "HNP?" doubts the word before it; "koorts? nee" is a question answered
            nxt = cue.end
            return not (nxt < len(tokens) and tokens[nxt] in self._answers)
        return True

    def _year_near(self, doc: _Doc, span: _Span) -> str | None:
        """A past year in the finding's clause ("in 2019 wervelfractuur", "(2015)")."""
        tokens = doc.tokens
        group = doc.group[span.start]
        lo = max(0, span.start - 10)
        hi = min(len(tokens), span.end + 10)
        since = False
        for i in range(lo, hi):
            t = tokens[i]
            if doc.group[i] != group:
                continue
            if t in ("sinds", "since", "vanaf", "from"):
                since = True  # "sinds 2019 DM2", "sinds de val in 2016 chronische rugklachten"
            if len(t) == 4 and t.isdigit() and t[:2] in ("19", "20"):
                before = tokens[i - 1] if i else ""
                after = tokens[i + 1] if i + 1 < len(tokens) else ""
                if since or after in _UNIT_AFTER_NUMBER:
                    continue
                return doc.surface(i - 1 if before in ("in", "uit", "van") else i, i + 1)
        return None

    def _objective(
        self,
        doc: _Doc,
        span: _Span,
        flavour: str,
        exam_clauses: set[int],
        grade_clauses: set[int],
        cues: _CueSet,
    ) -> tuple[bool, str | None]:
        """Whether a deficit word is an examination finding, else the cue that makes it reported."""
        section = doc.section[span.start]
        clause = doc.clause[span.start]
        source = self._section_source(section)
        if source == "examined":
            return True, None
        reported = self._family_cue(
            doc, span, cues, self.rules.families[REPORTED], span.payload[1], []
        )
        if reported is not None:
            return False, reported
        if source == "reported" and clause not in grade_clauses:
            return False, f"{section}:"
        if clause in exam_clauses:
            return True, None
        if flavour == "reported":
            return False, None
        return True, None

    def _section_source(self, section: str | None) -> str | None:
        return self._section_sources.get(section) if section is not None else None

    def _exam_result(
        self,
        doc: _Doc,
        span: _Span,
        finding: TextFinding,
        results: tuple[list[_Span], list[int]],
        cues: _CueSet,
        emit: Any,
    ) -> None:
        """An examined item's result in its clause: "APR re afwezig", "kr/sens/refl z.a."."""
        deficit = self.rules.exam_items.get(finding.concept, "")
        if not deficit or finding.context != AFFIRMED:
            return
        spans, starts = results
        clause = doc.clause[span.start]
        tokens = doc.tokens
        found = None
        for k in range(bisect.bisect_left(starts, span.end), len(spans)):
            result = spans[k]
            if result.start > span.end + 6 or doc.clause[result.start] != clause:
                break
            if tokens[result.start] == "-":
                after = tokens[result.end] if result.end < len(tokens) else ""
                if after and after not in _PUNCT and after not in ("/", "-"):
                    continue  # a dash inside the clause, not a minus sign
            found = result
            break
        if found is None:
            return
        words = doc.surface(span.start, found.end)
        # a cue between the item and its result: "sens L5 twijfelachtig verminderd"
        between = cues.near(doc.sentence[span.start], span.end, found.start)
        for family in (NEGATED, SUSPECTED):
            hit = next(
                (c for c in between if c.payload[1] == family and c.payload[2] in ("post", "pre")),
                None,
            )
            if hit is not None:
                cue = doc.surface(hit.start, hit.start + 1)
                emit(
                    TextFinding(
                        deficit, words, family, cue, finding.qualifiers, None, finding.section, True
                    )
                )
                return
        if found.payload[1] == "abnormal":
            emit(
                TextFinding(
                    deficit, words, AFFIRMED, None, finding.qualifiers, None, finding.section, True
                )
            )
        else:
            emit(
                TextFinding(
                    deficit,
                    words,
                    NEGATED,
                    doc.surface(found.start, found.end),
                    finding.qualifiers,
                    None,
                    finding.section,
                    True,
                )
            )

    # -- values ----------------------------------------------------------------------------------

    def _in_region(
        self, doc: _Doc, forms: list[str], keywords: list[_Span], elsewhere: list[_Span]
    ) -> list[_Span]:
        """Drop generic keywords whose clause names another region ("thoracale rugpijn")."""
        clauses = {doc.clause[sp.start] for sp in elsewhere}
        kept = []
        for span in keywords:
            generic = self._regional.get(span.payload[1])
            if (
                generic
                and doc.clause[span.start] in clauses
                and tuple(forms[span.start : span.end]) in generic
            ):
                continue
            kept.append(span)
        return kept

    @staticmethod
    def _severity_beside(span: _Span, marks: tuple[set[int], set[int]]) -> bool:
        """A severity word right before or after the span ("forse rugpijn", "LBP, severe")."""
        ends, starts = marks
        return bool({span.start, span.start - 1} & ends or {span.end, span.end + 1} & starts)

    @staticmethod
    def _falling_grades(doc: _Doc, grades: list[tuple[int, float]]) -> set[int]:
        """Grades lower than an earlier grade of the same sentence ("4/5 vorige week, nu 2/5")."""
        falling: set[int] = set()
        best: dict[int, float] = {}
        for index, grade in grades:
            sentence = doc.sentence[index]
            if sentence in best and grade < best[sentence]:
                falling.add(index)
            best[sentence] = max(best.get(sentence, grade), grade)
        return falling

    @staticmethod
    def _grade_possible(forms: list[str], numbers: list[int]) -> bool:
        """A cheap test: could the text hold an MRC grade at all?"""
        return bool(numbers) and ("mrc" in forms or any(forms[i].endswith("/5") for i in numbers))

    def _grades(
        self, forms: list[str], numbers: list[int] | None = None
    ) -> list[tuple[int, float]]:
        """MRC grades: "4/5", "4-/5", "MRC 3", "MRC-graad 4", "kracht 4".

        `numbers` (the tokens that start with a digit): visit only those and the grade words,
        in token order, not every token (the same grades).
        """
        grades: list[tuple[int, float]] = []
        n = len(forms)
        if numbers is None:
            visit: Iterable[int] = range(n)
        else:
            visit = [i for i in numbers if forms[i].endswith("/5")]
            if not _GRADE_WORD_SET.isdisjoint(forms):
                visit += compress(range(n), map(_GRADE_WORD_SET.__contains__, forms))
                visit.sort()
        for i in visit:
            t = forms[i]
            if len(t) >= 3 and t[0].isdigit() and t.endswith("/5"):
                grades.append((i, _grade_value(t[:-2])))
            elif t in _GRADE_WORD_SET:
                # "MRC 4", "MRC-graad 3", "kracht voetheffers li 4", "power 4 L EHL"
                j = i + 1
                while (
                    j < n
                    and j <= i + 4
                    and (
                        forms[j] in ("graad", "grade", "score", ":")
                        or (forms[j].isalpha() and forms[j] not in _PUNCT)
                    )
                ):
                    j += 1
                if j < n and forms[j].isdigit() and len(forms[j]) == 1 and forms[j] <= "5":
                    after = forms[j + 1] if j + 1 < n else ""
                    if after in _UNIT_AFTER_NUMBER or after in ("/", "dagen", "weken", "wk"):
                        continue
                    if after == "-" and j + 2 < n and forms[j + 2].isdigit():
                        continue  # "MRC 0-5": the scale, not a grade
                    grades.append((j, float(forms[j])))
        return grades

    def _temperatures(
        self,
        doc: _Doc,
        forms: list[str],
        keywords: list[_Span],
        cues: _CueSet,
        numbers: list[int] | None = None,
    ) -> list[TextFinding]:
        """A measured temperature ("temp 38,6", "T 38.2", "koorts 38,5", "afebrile (36.8)").

        `numbers` (the tokens that start with a digit): visit only those, not every token.
        """
        anchors: dict[int, _Span] = {}
        for span in keywords:
            if span.payload[1] in ("body-temperature", "fever"):
                anchors[span.end - 1] = span
        found: list[TextFinding] = []
        for j in range(len(forms)) if numbers is None else numbers:
            token = forms[j]
            if not token[:1].isdigit() or not token[-1].isdigit():
                continue
            try:
                value = float(token)
            except ValueError:
                continue
            fahrenheit = 93.0 <= value <= 110.0 or (j + 1 < len(forms) and forms[j + 1] == "f")
            if fahrenheit:
                value = round((value - 32.0) * 5.0 / 9.0, 1)  # "T 101.8 F"
            if not 34.0 <= value <= 43.0:
                continue
            anchor = None
            for k in range(j - 1, max(-1, j - 5), -1):
                if doc.sentence[k] != doc.sentence[j]:
                    break
                if k in anchors or forms[k] in ("t", "temp", "tp"):
                    anchor = k
                    break
            if anchor is None:
                continue
            span = anchors.get(anchor) or _Span(anchor, anchor + 1, ("kw", "body-temperature", ""))
            number = _Span(j, j + 1, ("kw", "body-temperature", ""))
            context, cue = self._context(doc, number, cues, "body-temperature", [])
            words = doc.surface(span.start, j + 1)
            section = doc.section[j]
            found.append(
                TextFinding("body-temperature", words, context, cue, frozenset(), value, section)
            )
            if value >= self.rules.fever_celsius:
                found.append(TextFinding("fever", words, context, cue, frozenset(), value, section))
        return found


def _grade_value(text: str) -> float:
    """ "4", "4-" and "4+" are grade 4 (a 4+ is still weaker than 5); "5-" is 4.5: neither full
    strength nor a deficit (as fhir/units.py reads an Observation's value)."""
    if text == "5-":
        return 4.5
    return float(text[0])


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _one_edit(a: str, b: str) -> bool:
    """True when a and b differ by one substitution, insertion, deletion or adjacent swap."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]
