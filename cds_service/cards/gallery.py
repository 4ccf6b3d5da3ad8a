"""The card gallery: every card kind, Dutch and English, drawn the way a CDS Hooks client shows it.

For clinical review of all wording on one page (`cds-service cards --html OUT`, and in
development `/dev/cards`). Each sample is a small patient record decided by the real engine
(`decide`), so the gallery shows what the service would answer, not a copy of it. The page is
self-contained: Markdown is rendered to HTML with raw HTML off (everything the card says is
escaped), styles are inline and nothing is loaded from elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from cds_service.cards.catalogue import LANGUAGES, Catalogue
from cds_service.cards.render import CardContext, render_card
from cds_service.rules.decide import decide
from cds_service.rules.degrade import degrade
from cds_service.rules.knowledge import Knowledge
from cds_service.rules.model import (
    Decision,
    Finding,
    LumbarOrder,
    Modality,
    Outcome,
    PatientFacts,
    PriorImaging,
    Strength,
)
from cds_service.runtime import runtime

TEMPLATES = Path(__file__).resolve().parent / "templates"
PATIENT_ID = "gallery-patient"
DRAFT_ID = "gallery-order"
# The EHR's own text of each sample order (the card shows the service's label instead).
ORDER_TEXT = {
    Modality.MRI: "MRI lumbale wervelkolom",
    Modality.XRAY: "X-LWK staand",
    Modality.CT: "CT LWK",
}
# The colours a CDS Hooks client gives a card's indicator (the Sandbox's palette).
INDICATOR_COLOURS = {"info": "#1f6fb2", "warning": "#c77700", "critical": "#b3261e"}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_HTML = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)
# GitHub-flavoured as far as cards use it (tables, strikethrough) and raw HTML off: a card's
# text can never become markup in the gallery, whatever it holds.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)

bp = Blueprint("card_gallery", __name__)


@dataclass(frozen=True, slots=True)
class Sample:
    """One gallery entry: a small record, the order, and the card kind it must give."""

    name: str
    title: str
    kind: Outcome
    modality: Modality
    facts: Callable[[date], dict[str, Any]]
    unavailable: frozenset[str] = frozenset()


def _days(today: date, days: int) -> date:
    return today - timedelta(days=days)


def _episode(today: date, days: int, concept: str = "low-back-pain") -> dict[str, Any]:
    onset = _days(today, days)
    return {
        "episode_onset": onset,
        "episode_references": ("Condition/episode",),
        "findings": (Finding(concept, "Condition/episode", onset),),
    }


def _with(base: dict[str, Any], *findings: Finding, **extra: Any) -> dict[str, Any]:
    return {**base, "findings": (*base["findings"], *findings), **extra}


SAMPLES = (
    Sample(
        "not-indicated",
        "Low back pain for 3 weeks, nothing alarming",
        Outcome.NOT_INDICATED,
        Modality.MRI,
        lambda t: _episode(t, 21),
    ),
    Sample(
        "not-indicated-repeat",
        "MRI five months ago, nothing new since",
        Outcome.NOT_INDICATED,
        Modality.MRI,
        lambda t: (
            _episode(t, 200)
            | {
                "prior_imaging": (
                    PriorImaging(Modality.MRI, _days(t, 150), "DiagnosticReport/mri"),
                )
            }
        ),
    ),
    Sample(
        "not-indicated-ct",
        "CT ordered for 3 weeks of low back pain",
        Outcome.NOT_INDICATED,
        Modality.CT,
        lambda t: _episode(t, 21),
    ),
    Sample(
        "urgent",
        "Cauda equina pattern written in the GP journal",
        Outcome.URGENT,
        Modality.MRI,
        lambda t: _with(
            _episode(t, 10),
            Finding("urinary-retention", "Observation/journal-1", _days(t, 1), Strength.TEXT),
            Finding("saddle-anaesthesia", "Observation/journal-1", _days(t, 1), Strength.TEXT),
        ),
    ),
    Sample(
        "urgent-xray",
        "X-ray ordered for severe weakness (MRC 3)",
        Outcome.URGENT,
        Modality.XRAY,
        lambda t: _with(
            _episode(t, 20, "sciatica"),
            Finding(
                "muscle-strength",
                "Observation/mrc",
                _days(t, 2),
                value=3.0,
                qualifiers=frozenset({"right"}),
            ),
        ),
    ),
    Sample(
        "indicated",
        "Sciatica with weakness MRC 4",
        Outcome.INDICATED,
        Modality.MRI,
        lambda t: _with(
            _episode(t, 25, "sciatica"),
            Finding(
                "muscle-strength",
                "Observation/mrc",
                _days(t, 3),
                value=4.0,
                qualifiers=frozenset({"left"}),
            ),
        ),
    ),
    Sample(
        "insufficient-data",
        "Sciatica without a neurological examination",
        Outcome.INSUFFICIENT_DATA,
        Modality.MRI,
        lambda t: _episode(t, 25, "sciatica"),
    ),
    Sample(
        "data-unavailable",
        "The FHIR server did not deliver the observations",
        Outcome.INSUFFICIENT_DATA,
        Modality.MRI,
        lambda t: _episode(t, 21),
        frozenset({"fhir:observations"}),
    ),
    Sample(
        "out-of-population",
        "A 16-year-old: the rules are for adults",
        Outcome.OUT_OF_POPULATION,
        Modality.MRI,
        lambda t: _episode(t, 21),
    ),
)


def _draft(modality: Modality) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": DRAFT_ID,
        "status": "draft",
        "intent": "order",
        "code": {"text": ORDER_TEXT[modality]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }


def sample_decision(
    sample: Sample, knowledge: Knowledge, now: datetime
) -> tuple[Decision, PatientFacts]:
    """The engine's decision for a sample's record, degraded for its unavailable data."""
    age = 16 if sample.kind is Outcome.OUT_OF_POPULATION else 46
    facts = PatientFacts(evaluated_at=now, age=age, **sample.facts(now.date()))
    order = LumbarOrder(
        f"ServiceRequest/{DRAFT_ID}", sample.modality, ORDER_TEXT[sample.modality], Strength.CODE
    )
    decision = degrade(decide(facts, order, knowledge.policy), sample.unavailable)
    return decision, facts


def gallery_cards(
    catalogue: Catalogue, knowledge: Knowledge, base_url: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every sample's card in every language: name, title, language, decision and card."""
    now = now or datetime.now(UTC)
    entries = []
    for sample in SAMPLES:
        decision, facts = sample_decision(sample, knowledge, now)
        for language in LANGUAGES:
            context = CardContext(
                facts=facts,
                draft=_draft(sample.modality),
                patient_id=PATIENT_ID,
                base_url=base_url,
            )
            entries.append(
                {
                    "name": sample.name,
                    "title": sample.title,
                    "language": language,
                    "expected": sample.kind.value,
                    "decision": decision.outcome.value,
                    "card": render_card(decision, language, catalogue, context),
                }
            )
    return entries


def markdown_html(text: str) -> Markup:
    """A card's Markdown as the HTML a client shows; raw HTML in it stays text."""
    return Markup(_MARKDOWN.render(text))  # noqa: S704 - markdown-it escapes, html is off


def render_gallery(entries: Sequence[Mapping[str, Any]]) -> str:
    """The gallery page: the cards side by side, Dutch and English, per sample."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        row = rows.setdefault(entry["name"], {"name": entry["name"], "title": entry["title"]})
        card = entry["card"]
        row[entry["language"]] = {
            **entry,
            "colour": INDICATOR_COLOURS.get(card["indicator"], "#555"),
            "detail_html": markdown_html(card.get("detail", "")),
        }
    return _HTML.get_template("card-gallery.html").render(
        rows=list(rows.values()), languages=LANGUAGES
    )


@bp.get("/dev/cards")
def dev_cards() -> Response:
    """The card gallery, in development only (app.py registers this blueprint only then)."""
    state = runtime()
    entries = gallery_cards(state.catalogue, state.knowledge, state.settings.public_base_url)
    response = Response(render_gallery(entries), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response
