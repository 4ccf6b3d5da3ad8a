"""EpisodeOfCare and Encounter: the GP episode and the consults that belong to it.

Dutch GP systems send the episode ("episode" in the HIS) as an EpisodeOfCare whose ICPC code is
not on the episode itself but on the Condition named in `diagnosis.condition`, with the title
("Rughernia") in an extension, and each consult as an Encounter pointing at its episode
(shared/reference/real-records.md a). So an episode is read in two steps: each resource is noted
while reading, and the links are resolved once every resource is in (`resolve`):

- an EpisodeOfCare is a back-pain episode when its own words or codes name one (title, type,
  the diagnosis' display) or when it points at a back-pain Condition. Active or on hold it is the
  current episode, from `period.start` (the first contact; the Condition's onset may be later:
  episodes are re-labelled); finished, or ended, it is an earlier episode;
- an Encounter linked to the current back-pain episode (through its EpisodeOfCare or its
  diagnosis' Condition) is a contact of that episode: its date can only move the onset earlier;
- an Encounter's other reasons are findings on its date (the mechanism of an injury);
- consults for back pain linked to no episode (US EHRs send reasonCode only) make the episode
  when the record holds no other: the run of such consults ending with the latest, each within
  `CONTACT_GAP_DAYS` of the next. A run that ended more than that long ago is an earlier episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from cds_service.fhir.facts.common import (
    normalise_references,
    period_end,
    period_start,
)
from cds_service.fhir.facts.registry import finishes, reads
from cds_service.rules.model import EPISODE_CONCEPTS, Finding, Strength

if TYPE_CHECKING:
    from cds_service.fhir.facts.builder import FactsBuilder, Recognised

# Consults more than this far apart belong to different episodes (a GP closes an episode of
# low back pain after three months without contact; NHG guideline follow-up is within weeks).
CONTACT_GAP_DAYS = 90

_EPISODE_CURRENT = frozenset({"active", "onhold"})
_EPISODE_PAST = frozenset({"finished"})
_ENCOUNTER_IGNORED = frozenset({"planned", "cancelled"})
# Title extensions of nl-core EpisodeOfCare: STU3 "EpisodeOfCare-Title", R4 "EpisodeOfCareName".
_TITLE_EXTENSIONS = ("EpisodeOfCare-Title", "EpisodeOfCareName", "episodeofcare-title")
_FIRST_CONTACT_EXTENSION = "DateFirstEncounter"


@dataclass(frozen=True, slots=True)
class EpisodeNote:
    """An EpisodeOfCare as read, before its links are resolved."""

    reference: str
    start: date | None
    current: bool
    concept: str | None  # the back-pain concept its own words or codes name
    strength: Strength
    conditions: frozenset[str]


@dataclass(frozen=True, slots=True)
class ContactNote:
    """An Encounter as read: its date, its links and whether its reason is back pain."""

    reference: str
    when: date
    episodes: frozenset[str]  # EpisodeOfCare and Condition references it belongs to
    concept: str | None
    strength: Strength


def _episode_concept(recognised: Recognised) -> tuple[str | None, Strength]:
    """The back-pain concept recognised (sciatica before low back pain), with its strength."""
    for concept in ("sciatica", "lumbar-stenosis", "low-back-pain"):
        hit = recognised.hits.get(concept)
        if hit is not None:
            return concept, hit.strength
    return None, Strength.TEXT


def _extension_texts(resource: Any, names: tuple[str, ...]) -> list[str]:
    texts = []
    for extension in getattr(resource, "extension", None) or ():
        url = extension.url or ""
        if any(url.endswith(name) for name in names) and extension.valueString:
            texts.append(extension.valueString)
    return texts


@reads("EpisodeOfCare")
def read_episode_of_care(b: FactsBuilder, episode: Any, reference: str) -> None:
    """Note one EpisodeOfCare: its words, its period and the Conditions it names."""
    status = episode.status
    if status not in _EPISODE_CURRENT and status not in _EPISODE_PAST:
        return  # planned, waitlist, cancelled: no episode of this patient (yet)
    start = b.when(period_start(episode.period))
    if start is None:
        for extension in episode.extension or ():
            if (extension.url or "").endswith(_FIRST_CONTACT_EXTENSION):
                start = b.when(extension.valueDateTime or extension.valueDate)
    ended = b.when(period_end(episode.period))
    current = status in _EPISODE_CURRENT and (ended is None or ended >= b.today)
    diagnoses = list(episode.diagnosis or ())
    texts = _extension_texts(episode, _TITLE_EXTENSIONS)
    texts += [d.condition.display for d in diagnoses if d.condition and d.condition.display]
    recognised = b.recognise(list(episode.type or ()), texts)
    concept, strength = _episode_concept(recognised)
    if concept is not None and concept in recognised.negated:
        concept = None
    conditions = normalise_references(
        [d.condition.reference for d in diagnoses if d.condition and d.condition.reference]
    )
    b.episodes_of_care.append(EpisodeNote(reference, start, current, concept, strength, conditions))


@reads("Encounter")
def read_encounter(b: FactsBuilder, encounter: Any, reference: str) -> None:
    """Note one consult: its date, its episode links and whether its reason is back pain."""
    if encounter.status in _ENCOUNTER_IGNORED:
        return
    when = b.when(period_start(encounter.period))
    if when is None or when > b.today:
        return
    diagnoses = list(encounter.diagnosis or ())
    links = [e.reference for e in encounter.episodeOfCare or () if e.reference]
    links += [d.condition.reference for d in diagnoses if d.condition and d.condition.reference]
    links += [r.reference for r in encounter.reasonReference or () if r.reference]
    texts = [d.condition.display for d in diagnoses if d.condition and d.condition.display]
    recognised = b.recognise(list(encounter.reasonCode or ()), texts)
    concept, strength = _episode_concept(recognised)
    # Why the patient came is a finding on the consult's date: US EHRs record the mechanism
    # of an injury ("Motor vehicle accident") or a red flag as the encounter's reason.
    for found, hit in recognised.hits.items():
        if found in EPISODE_CONCEPTS or b.kind(found) in ("order", "measurement", None):
            continue
        b.put(Finding(found, reference, when, hit.strength, qualifiers=frozenset(hit.qualifiers)))
    b.encounters.append(
        ContactNote(reference, when, normalise_references(links), concept, strength)
    )


@finishes
def resolve(b: FactsBuilder) -> None:
    """Resolve episodes and consults against the back-pain Conditions once all are read."""
    conditions = b.episode_conditions  # Condition reference -> current
    current_episodes: set[str] = set(r for r, now in conditions.items() if now)
    for note in b.episodes_of_care:
        linked = [ref for ref in note.conditions if ref in conditions]
        if note.concept is None and not linked:
            continue
        concept = note.concept or _linked_concept(b, linked)
        if note.current:
            current_episodes.add(note.reference)
            b.episode_references.append(note.reference)
            if note.start is not None:
                b.episode_dates.append(note.start)
        else:
            b.prior_episodes.append(
                Finding(concept, note.reference, note.start, note.strength, current=False)
            )

    loose: list[ContactNote] = []
    for contact in b.encounters:
        if contact.episodes & current_episodes:
            b.episode_dates.append(contact.when)
        elif contact.concept is not None and not contact.episodes:
            loose.append(contact)
    if loose and not b.episode_references:
        _episode_from_contacts(b, loose)


def _linked_concept(b: FactsBuilder, linked: list[str]) -> str:
    """The concept of the first linked back-pain Condition (low back pain if none is found)."""
    for key, finding in b.findings.items():
        if key[1] in linked and key[0] in EPISODE_CONCEPTS:
            return finding.concept
    return "low-back-pain"


def _episode_from_contacts(b: FactsBuilder, contacts: list[ContactNote]) -> None:
    """The run of back-pain consults ending with the latest: the current or an earlier episode."""
    contacts = sorted(contacts, key=lambda c: c.when)
    run = [contacts[-1]]
    for contact in reversed(contacts[:-1]):
        if (run[-1].when - contact.when).days > CONTACT_GAP_DAYS:
            break
        run.append(contact)
    first = run[-1]
    if (b.today - contacts[-1].when).days > CONTACT_GAP_DAYS:
        b.prior_episodes.append(
            Finding(
                first.concept or "low-back-pain",
                first.reference,
                first.when,
                first.strength,
                current=False,
            )
        )
        return
    b.episode_references.extend(c.reference for c in reversed(run))
    b.episode_dates.append(first.when)
