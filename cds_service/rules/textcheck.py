"""Scores the text reader on a labelled sentence corpus: per concept, per context family, errors.

A corpus file is a YAML list of entries `{id, lang, text, affirmed: [...], not: {concept:
context}, tags: [...], qualifiers: {concept: [...]}}` (tests/text/corpus/). A concept counts as
read right when the reader affirms exactly the concepts of `affirmed`; a `not` entry is read
right when the reader does not affirm the concept and gives it that context.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds_service.rules.textreader import AFFIRMED, CUE_FAMILIES, QUALIFIERS, TextReader

# The concepts behind the red-flag criterion (POLICY "Red flags"): the recall that must not fail.
RED_FLAG_CONCEPTS = frozenset(
    {
        "cauda-equina",
        "urinary-retention",
        "urinary-incontinence",
        "faecal-incontinence",
        "saddle-anaesthesia",
        "loss-of-anal-tone",
        "fever",
        "spinal-infection",
        "iv-drug-use",
        "immunosuppression",
        "malignancy",
        "weight-loss",
        "systemic-corticosteroid",
        "osteoporosis",
        "night-pain",
        "severe-pain",
        "first-episode",
    }
)
_ENTRY_KEYS = {"id", "lang", "text", "affirmed", "not", "tags", "qualifiers"}
_TAGS = {
    "negation",
    *CUE_FAMILIES,
    "pseudo",
    "list",
    "question",
    "shorthand",
    "typo",
    "soep",
    "exam",
    "compound",
    "gap",
    "affirmed",
    "physio",
    "red-flag",
}


class CorpusError(ValueError):
    """A corpus entry that does not follow the format (file, entry id, what is wrong)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One labelled sentence."""

    id: str
    lang: str
    text: str
    affirmed: frozenset[str]
    not_affirmed: Mapping[str, str]
    tags: frozenset[str]
    qualifiers: Mapping[str, frozenset[str]]
    source: str


@dataclass(slots=True)
class Counts:
    """True positives, false positives and false negatives, with the derived scores."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 1 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 1 when nothing was expected."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """The harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(slots=True)
class Score:
    """The reader's score on a corpus."""

    entries: int = 0
    micro: Counts = field(default_factory=Counts)
    concepts: dict[str, Counts] = field(default_factory=dict)
    families: dict[str, Counts] = field(default_factory=dict)
    red_flags: Counts = field(default_factory=Counts)
    qualifiers: Counts = field(default_factory=Counts)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds_per_entry: list[float] = field(default_factory=list)
    languages: Counter[str] = field(default_factory=Counter)
    tags: Counter[str] = field(default_factory=Counter)

    @property
    def median_microseconds(self) -> float:
        """Median reading time of one entry, in microseconds."""
        if not self.seconds_per_entry:
            return 0.0
        return statistics.median(self.seconds_per_entry) * 1e6


def load_corpus(root: Path, concepts: Iterable[str]) -> list[Entry]:
    """Every entry of every *.yaml file under `root`; CorpusError on any format problem."""
    known = frozenset(concepts)
    entries: list[Entry] = []
    seen: set[str] = set()
    files = sorted(Path(root).glob("*.yaml"))
    if not files:
        raise CorpusError(f"{root}: no corpus files (*.yaml)")
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise CorpusError(f"{path.name}: expected a list of entries")
        for raw in data:
            entry = _entry(path.name, raw, known)
            if entry.id in seen:
                raise CorpusError(f"{path.name}: {entry.id}: id used twice")
            seen.add(entry.id)
            entries.append(entry)
    return entries


def _entry(source: str, raw: Any, known: frozenset[str]) -> Entry:
    where = f"{source}: {raw.get('id', '?') if isinstance(raw, dict) else '?'}"
    if not isinstance(raw, dict) or not {"id", "lang", "text", "affirmed"} <= raw.keys():
        raise CorpusError(f"{where}: an entry needs id, lang, text and affirmed")
    unknown = raw.keys() - _ENTRY_KEYS
    if unknown:
        raise CorpusError(f"{where}: unknown keys {sorted(unknown)}")
    if raw["lang"] not in ("nl", "en") or not isinstance(raw["text"], str):
        raise CorpusError(f"{where}: lang must be nl or en and text a string")
    affirmed = frozenset(raw.get("affirmed") or ())
    not_affirmed = dict(raw.get("not") or {})
    qualifiers = {c: frozenset(q) for c, q in (raw.get("qualifiers") or {}).items()}
    tags = frozenset(raw.get("tags") or ())
    for concept in affirmed | not_affirmed.keys() | qualifiers.keys():
        if concept not in known:
            raise CorpusError(f"{where}: unknown concept {concept!r}")
    for concept, context in not_affirmed.items():
        if context not in CUE_FAMILIES:
            raise CorpusError(f"{where}: {concept}: unknown context {context!r}")
    if affirmed & not_affirmed.keys():
        raise CorpusError(f"{where}: a concept is both affirmed and not")
    for concept, names in qualifiers.items():
        if concept not in affirmed or not names <= set(QUALIFIERS):
            raise CorpusError(f"{where}: qualifiers only for affirmed concepts, from {QUALIFIERS}")
    if not tags <= _TAGS:
        raise CorpusError(f"{where}: unknown tags {sorted(tags - _TAGS)}")
    return Entry(
        str(raw["id"]),
        raw["lang"],
        raw["text"],
        affirmed,
        not_affirmed,
        tags,
        qualifiers,
        source,
    )


def score(reader: TextReader, entries: Sequence[Entry]) -> Score:
    """Read every entry and count what the reader got right and wrong."""
    result = Score()
    for entry in entries:
        begin = time.perf_counter()
        findings = reader.read(entry.text).findings
        result.seconds_per_entry.append(time.perf_counter() - begin)
        result.entries += 1
        result.languages[entry.lang] += 1
        result.tags.update(entry.tags)
        affirmed = {f.concept for f in findings if f.context == AFFIRMED}
        contexts: dict[str, set[str]] = {}
        for f in findings:
            if f.context != AFFIRMED:
                contexts.setdefault(f.concept, set()).add(f.context)
        problems: list[str] = []
        for concept in entry.affirmed | affirmed:
            counts = result.concepts.setdefault(concept, Counts())
            expected, got = concept in entry.affirmed, concept in affirmed
            red = result.red_flags if concept in RED_FLAG_CONCEPTS else None
            if expected and got:
                counts.tp += 1
                result.micro.tp += 1
                if red is not None:
                    red.tp += 1
            elif got:
                counts.fp += 1
                result.micro.fp += 1
                if red is not None:
                    red.fp += 1
                why = entry.not_affirmed.get(concept, "not in the text")
                problems.append(f"{concept} affirmed, expected {why}")
            else:
                counts.fn += 1
                result.micro.fn += 1
                if red is not None:
                    red.fn += 1
                seen = sorted(contexts.get(concept, ())) or ["not found"]
                problems.append(f"{concept} not affirmed ({', '.join(seen)}), expected affirmed")
                for family in contexts.get(concept, ()):
                    result.families.setdefault(family, Counts()).fp += 1
        for concept, family in entry.not_affirmed.items():
            counts = result.families.setdefault(family, Counts())
            read_as = contexts.get(concept, set())
            if concept in affirmed:
                counts.fn += 1
            elif family in read_as:
                counts.tp += 1
            else:
                counts.fn += 1
                for other in read_as:
                    result.families.setdefault(other, Counts()).fp += 1
                named = ", ".join(sorted(read_as)) or "not found"
                problems.append(f"{concept}: {named}, expected {family}")
        for concept, names in entry.qualifiers.items():
            have = set().union(
                *(f.qualifiers for f in findings if f.concept == concept and f.affirmed)
            )
            for name in names:
                if name in have:
                    result.qualifiers.tp += 1
                else:
                    result.qualifiers.fn += 1
                    problems.append(f"{concept}: qualifier {name} not read")
        if problems:
            result.errors.append(
                {
                    "id": entry.id,
                    "file": entry.source,
                    "text": entry.text,
                    "problems": problems,
                    "reading": [f.explain() for f in findings],
                }
            )
    return result


def report_lines(result: Score, *, errors: bool = True) -> list[str]:
    """The score as a plain-text table, then (optionally) every error with the reading."""
    m, red = result.micro, result.red_flags
    languages = ", ".join(f"{k} {v}" for k, v in sorted(result.languages.items()))
    lines = [
        f"entries: {result.entries} ({languages})",
        f"micro: precision {m.precision:.3f}  recall {m.recall:.3f}  F1 {m.f1:.3f}"
        f"  (tp {m.tp}, fp {m.fp}, fn {m.fn})",
        f"red-flag recall: {red.recall:.3f}  precision {red.precision:.3f}"
        f"  (tp {red.tp}, fp {red.fp}, fn {red.fn})",
        f"qualifiers read: {result.qualifiers.recall:.3f}"
        f" ({result.qualifiers.tp} of {result.qualifiers.tp + result.qualifiers.fn})",
        f"median reading time per entry: {result.median_microseconds:.1f} µs",
        "",
        f"{'context family':<16}{'n':>5}{'precision':>11}{'recall':>9}{'F1':>7}",
    ]
    for family in CUE_FAMILIES:
        c = result.families.get(family, Counts())
        lines.append(
            f"{family:<16}{c.tp + c.fn:>5}{c.precision:>11.3f}{c.recall:>9.3f}{c.f1:>7.3f}"
        )
    lines += ["", f"{'concept':<26}{'n':>5}{'precision':>11}{'recall':>9}{'F1':>7}"]
    for concept in sorted(result.concepts):
        c = result.concepts[concept]
        lines.append(
            f"{concept:<26}{c.tp + c.fn:>5}{c.precision:>11.3f}{c.recall:>9.3f}{c.f1:>7.3f}"
        )
    if errors:
        lines += ["", f"errors: {len(result.errors)} entries"]
        for error in result.errors:
            lines.append(f"- {error['id']} ({error['file']}): {error['text']}")
            for problem in error["problems"]:
                lines.append(f"    ✘ {problem}")
            for reading in error["reading"]:
                lines.append(f"      read: {reading}")
    return lines


def as_json(result: Score) -> dict[str, Any]:
    """The score as a JSON-ready dict."""

    def counts(c: Counts) -> dict[str, float]:
        return {
            "tp": c.tp,
            "fp": c.fp,
            "fn": c.fn,
            "precision": round(c.precision, 4),
            "recall": round(c.recall, 4),
            "f1": round(c.f1, 4),
        }

    return {
        "entries": result.entries,
        "languages": dict(result.languages),
        "micro": counts(result.micro),
        "redFlags": counts(result.red_flags),
        "qualifiers": counts(result.qualifiers),
        "medianMicroseconds": round(result.median_microseconds, 1),
        "families": {f: counts(result.families.get(f, Counts())) for f in CUE_FAMILIES},
        "concepts": {c: counts(v) for c, v in sorted(result.concepts.items())},
        "errors": result.errors,
    }
