"""Names the data a check used in a clinician's words: "kracht MRC 3 re, 12 nov (onderzoek)".

A card never shows a FHIR reference ("Observation/o-mrc3", "urn:uuid:…"): each reference is
looked up in the patient's facts and named by what was found there, its date in the card's
language and the kind of record it came from. The references themselves stay in the response's
decisions extension and in the audit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.cards.catalogue import Catalogue
from cds_service.rules.model import EPISODE_CONCEPTS, PatientFacts, Strength

# Resource types whose text is the clinician's own note (the GP journal, a consultation).
NOTE_TYPES = frozenset({"Observation", "Encounter"})
SIDES = ("bilateral", "left", "right")
QUALIFIER_ORDER = (*SIDES, "severe", "moderate", "mild", "progressive", "normal", "abnormal")
# Score kinds as the concepts they are measured as (for the source word "meting").
SCORE_CONCEPTS = {"pain-nrs": "pain-score", "oswestry": "oswestry"}
MAX_LABELS = 3  # finding labels named per resource
MAX_DATES = 3  # dates listed per group of like records
MAX_NAMED = 30  # references looked at per list; the rest are counted


@dataclass(frozen=True, slots=True)
class _Item:
    """One thing a reference stands for: what it is called, when, and how it was read."""

    what: str | None
    when: date | None
    concept: str | None = None
    from_text: bool = False
    absent: bool = False  # recorded as absent ("geen koorts"): named only when nothing else is


def _number(value: float, language: str) -> str:
    """A value as a clinician writes it: no ".0", a decimal comma in Dutch."""
    text = str(int(value)) if float(value).is_integer() else f"{value:.1f}"
    return text.replace(".", ",") if language == "nl" else text


def format_date(day: date, language: str, catalogue: Catalogue, today: date | None) -> str:
    """ "12 nov" / "12 Nov"; the year is added when it is not the current one."""
    month = catalogue.findings.months[language][day.month - 1]
    text = f"{day.day} {month}"
    return text if today is not None and day.year == today.year else f"{text} {day.year}"


RawIndex = dict[str, list[tuple[str, Any]]]
# The index of the last facts indexed, per thread: every card of one hook call (up to 50 orders)
# names references of the same facts, and a large record takes tens of milliseconds to index.
_LAST = threading.local()


def reference_index(facts: PatientFacts) -> RawIndex:
    """Reference -> what the facts hold for it: (kind, finding / medication / care / ...)."""
    cached = getattr(_LAST, "entry", None)
    if cached is not None and cached[0] is facts:
        return cached[1]
    raw: RawIndex = {}
    groups: list[tuple[str, Iterable[Any]]] = [
        ("finding", facts.findings),
        ("finding", facts.prior_episodes),
        ("suspected", facts.suspected),
        ("absent", facts.absent),
        ("medication", facts.medications),
        ("score", facts.scores),
        ("imaging", facts.prior_imaging),
    ]
    for kind, things in groups:
        for thing in things:
            raw.setdefault(thing.reference, []).append((kind, thing))
    for care in facts.care:
        dated = care.dated or tuple((care.first, care.last, r) for r in care.references)
        for start, _, reference in dated:
            raw.setdefault(reference, []).append(("care", (care.kind, start)))
    if facts.episode_onset is not None:
        for reference in facts.episode_references:
            raw.setdefault(reference, []).append(("episode", facts.episode_onset))
    _LAST.entry = (facts, raw)
    return raw


class EvidenceNames:
    """Human names for the references in one patient's facts, in one language."""

    def __init__(self, catalogue: Catalogue, language: str, facts: PatientFacts | None) -> None:
        """Names for the references of `facts`, labelled as a card asks for them."""
        self.catalogue = catalogue
        self.language = language
        self.today = facts.today if facts is not None else None
        # reference -> what the facts hold for it, labelled only when a card names it: a record
        # can hold thousands of findings, and a card names a few
        self._raw = reference_index(facts) if facts is not None else {}
        self._items: dict[str, list[_Item]] = {}
        self._described: dict[tuple[str, bool], tuple[str | None, date | None, str]] = {}

    # --- the index

    def _label(self, concept: str, value: float | None, qualifiers: Iterable[str]) -> str:
        findings = self.catalogue.findings
        template = findings.labels.get(concept)
        shown = "" if value is None else _number(value, self.language)
        label = (
            template[self.language].render(value=shown).strip()
            if template is not None
            else concept.replace("-", " ")
        )
        present = set(qualifiers)
        if "bilateral" in present:
            present -= {"left", "right"}
        words = [
            findings.qualifiers[q][self.language]
            for q in QUALIFIER_ORDER
            if q in present and q in findings.qualifiers
        ]
        # "ernstige pijn", not "ernstige pijn ernstig"
        words = [w for w in words if w.lower() not in label.lower()]
        return " ".join([label, *words])

    def _item(self, reference: str, kind: str, thing: Any) -> _Item:
        """One indexed thing in words."""
        language = self.language
        findings = self.catalogue.findings
        things = findings.things
        if kind in ("finding", "suspected", "absent"):
            what = self._label(thing.concept, thing.value, thing.qualifiers)
            if kind == "suspected":
                what = f"{findings.qualifiers['suspected'][language]} {what}"
            if kind == "absent":
                what = f"{what} {findings.qualifiers['absent'][language]}"
            from_text = thing.strength is Strength.TEXT
            return _Item(what, thing.when, thing.concept, from_text, kind == "absent")
        if kind == "medication":
            return _Item(self._label(thing.concept, None, ()), thing.start, thing.concept)
        if kind == "care":
            care_kind, start = thing
            what = things[f"{care_kind}-care"][language].render().strip()
            # care recorded in a note (a journal line) was read from its text
            note = reference.split("/", 1)[0] in NOTE_TYPES
            return _Item(what, start, f"{care_kind}-care", note)
        if kind == "score":
            template = things.get(thing.kind)
            score = (
                template[language].render(value=_number(thing.value, language)).strip()
                if template is not None
                else None
            )
            return _Item(score, thing.when, SCORE_CONCEPTS.get(thing.kind))
        if kind == "imaging":
            name = (
                self.catalogue.order_labels[thing.modality.value][language]
                if thing.modality is not None
                else ""
            )
            return _Item(things["imaging"][language].render(modality=name).strip(), thing.when)
        return _Item(None, thing)  # the episode: its onset

    def _items_of(self, reference: str) -> list[_Item]:
        if reference not in self._items:
            raw = self._raw.get(reference, [])
            self._items[reference] = [self._item(reference, k, t) for k, t in raw]
        return self._items[reference]

    # --- naming

    def source(self, reference: str, items: list[_Item]) -> str:
        """The kind of record a reference is, in the card's language ("huisartsjournaal")."""
        sources = self.catalogue.findings.sources
        if reference.endswith("#reason"):
            key = "order"
        else:
            kind = reference.split("/", 1)[0] if "/" in reference else ""
            named = [i for i in items if i.concept]
            # an examination or a measurement, even when its code was read from its text
            kinds = sorted({self.catalogue.findings.kinds.get(i.concept or "", "") for i in named})
            if kind == "Observation" and kinds[-1:] != [""] and kinds:
                key = kinds[-1]
            elif kind in NOTE_TYPES and named and all(i.from_text for i in named):
                key = "text"
            else:
                key = kind
        return sources.get(key, sources["record"])[self.language]

    def describe(
        self, reference: str, episode: bool = False
    ) -> tuple[str | None, date | None, str]:
        """(what was found, its date, the source word) for one reference.

        `episode`: the reference is cited for the back-pain episode, so its episode concept is
        named; otherwise the episode concept gives way to anything else found there.
        """
        key = (reference, episode)
        if key in self._described:
            return self._described[key]
        items = self._items_of(reference)
        named = [i for i in items if i.what]
        if any(not i.absent for i in named):
            named = [i for i in named if not i.absent]
        # Every back-pain note carries an episode concept, so beside another finding of the same
        # resource it only repeats what the card is about.
        if episode and any(i.concept in EPISODE_CONCEPTS for i in named):
            named = [i for i in named if i.concept in EPISODE_CONCEPTS]
        elif any(i.concept not in EPISODE_CONCEPTS for i in named):
            named = [i for i in named if i.concept not in EPISODE_CONCEPTS]
        labels = list(dict.fromkeys(i.what for i in named if i.what))
        what = ", ".join(labels[:MAX_LABELS]) if labels else None
        dates = [i.when for i in items if i.when is not None]
        described = what, (min(dates) if dates else None), self.source(reference, items)
        self._described[key] = described
        return described

    def phrases(self, references: Iterable[str], limit: int, episode: bool = False) -> list[str]:
        """Like records grouped ("oefentherapie, 3 okt, 10 okt (verrichting)"), at most `limit`
        groups and "+N" for the rest."""
        groups: dict[tuple[str | None, str], list[date | None]] = {}
        unique = list(dict.fromkeys(references))
        # a record can cite thousands (every back-pain consult): the first ones are named, the
        # rest counted
        for reference in unique[:MAX_NAMED]:
            what, when, source = self.describe(reference, episode)
            groups.setdefault((what, source), []).append(when)
        unnamed = len(unique) - min(len(unique), MAX_NAMED)
        phrases = []
        for (what, source), dates in groups.items():
            known = sorted(d for d in dates if d is not None)
            shown = [format_date(d, self.language, self.catalogue, self.today) for d in known]
            if len(shown) > MAX_DATES:
                shown = [*shown[:MAX_DATES], f"+{len(shown) - MAX_DATES}"]
            head = ", ".join(p for p in (what, *shown) if p)
            phrases.append(f"{head} ({source})" if head else source)
        more = max(0, len(phrases) - limit) + unnamed
        return [*phrases[:limit], f"+{more}"] if more else phrases
