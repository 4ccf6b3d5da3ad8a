"""Turns a Decision into a CDS Hooks card in Dutch or English, from the templates in cards/."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined, Template

from cds_service.errors import RuleDataError
from cds_service.rules.model import Decision, Outcome, Status

LANGUAGES = ("nl", "en")
INDICATORS = {
    Outcome.URGENT: "critical",
    Outcome.INDICATED: "info",
    Outcome.NOT_INDICATED: "warning",
    Outcome.INSUFFICIENT_DATA: "info",
}
SOURCE_LABEL = {
    "nl": "Beslisondersteuning lumbale beeldvorming",
    "en": "Lumbar imaging decision support",
}
DECISION_SYSTEM = "https://lumbar-imaging-cds.local/CodeSystem/decision"
STATUS_MARK = {Status.MET: "✔", Status.NOT_MET: "✘", Status.UNKNOWN: "?"}
NO_INDICATION = {
    "nl": "geen indicatie voor beeldvorming gevonden",
    "en": "no indication for imaging found",
}
SUMMARY_LIMIT = 139


@dataclass(frozen=True, slots=True)
class CardTemplate:
    """One card kind: indicator plus summary and detail templates per language."""

    kind: str
    indicator: str
    summary: Mapping[str, Template]
    detail: Mapping[str, Template]


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All card templates and criterion labels, loaded and checked once."""

    templates: Mapping[str, CardTemplate]
    criteria: Mapping[str, Mapping[str, str]]
    reasons: Mapping[str, Mapping[str, str]]

    def criterion_label(self, criterion_id: str, language: str) -> str:
        """The clinician-facing name of a criterion id."""
        return self.criteria.get(criterion_id, {}).get(language, criterion_id)

    def reason_label(self, reason: str, criterion_id: str, language: str) -> str:
        """The clinician-facing name of a reason code, falling back to its criterion."""
        label = self.reasons.get(reason, {}).get(language)
        return label or self.criterion_label(criterion_id, language)


def _bilingual(data: Any, where: str) -> dict[str, str]:
    if not isinstance(data, Mapping) or any(
        not isinstance(data.get(lang), str) or not data[lang].strip() for lang in LANGUAGES
    ):
        raise RuleDataError(f"{where}: needs non-empty 'nl' and 'en' texts")
    return {lang: data[lang] for lang in LANGUAGES}


@cache
def load_catalogue(cards_dir: Path) -> Catalogue:
    """Load cards/*.yaml: one template per outcome plus criteria.yaml; fail loudly on gaps."""
    env = Environment(undefined=StrictUndefined, autoescape=False)  # noqa: S701 - Markdown, not HTML
    templates = {}
    for outcome in Outcome:
        path = Path(cards_dir) / f"{outcome.value}.yaml"
        if not path.is_file():
            raise RuleDataError(f"{path}: missing card template for {outcome.value}")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if data.get("indicator") != INDICATORS[outcome]:
            raise RuleDataError(f"{path}: indicator must be {INDICATORS[outcome]}")
        templates[outcome.value] = CardTemplate(
            kind=outcome.value,
            indicator=data["indicator"],
            summary={
                k: env.from_string(v)
                for k, v in _bilingual(data.get("summary"), f"{path}: summary").items()
            },
            detail={
                k: env.from_string(v)
                for k, v in _bilingual(data.get("detail"), f"{path}: detail").items()
            },
        )
    labels_path = Path(cards_dir) / "criteria.yaml"
    labels = yaml.safe_load(labels_path.read_text(encoding="utf-8")) or {}
    criteria = {
        k: _bilingual(v, f"{labels_path}: criteria.{k}")
        for k, v in (labels.get("criteria") or {}).items()
    }
    reasons = {
        k: _bilingual(v, f"{labels_path}: reasons.{k}")
        for k, v in (labels.get("reasons") or {}).items()
    }
    return Catalogue(templates, criteria, reasons)


def _trail(decision: Decision, catalogue: Catalogue, language: str) -> str:
    lines = []
    for criterion in decision.criteria:
        label = catalogue.criterion_label(criterion.id, language)
        reason = catalogue.reason_label(criterion.reason, criterion.id, language)
        refs = f" ({', '.join(criterion.evidence)})" if criterion.evidence else ""
        text = label if reason == label else f"{label}: {reason}"
        lines.append(f"- {STATUS_MARK[criterion.status]} {text}{refs}")
    for advice in decision.advice:
        lines.append(f"- ℹ {catalogue.criterion_label('modality-advice', language)}: {advice.code}")
    return "\n".join(lines)


def headline_reason(decision: Decision, catalogue: Catalogue, language: str) -> str:
    """The one reason a summary names: the first decisive criterion, else 'no indication'."""
    for criterion in decision.decisive:
        return catalogue.reason_label(criterion.reason, criterion.id, language)
    return NO_INDICATION[language]


def _fit(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def render_card(decision: Decision, language: str, catalogue: Catalogue) -> dict[str, Any]:
    """The CDS Hooks card for one decision, in the given language."""
    template = catalogue.templates[decision.outcome.value]
    criteria = ", ".join(catalogue.criterion_label(c.id, language) for c in decision.decisive)
    variables = {
        "order": decision.order.code_display,
        "reason": headline_reason(decision, catalogue, language),
        "criteria": criteria or "-",
        "findings": _trail(decision, catalogue, language) or "-",
    }
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _fit(template.summary[language].render(variables)),
        "detail": template.detail[language].render(variables).strip(),
        "indicator": template.indicator,
        "source": {
            "label": SOURCE_LABEL[language],
            "topic": {
                "system": DECISION_SYSTEM,
                "code": decision.outcome.value,
                "display": decision.outcome.value,
            },
        },
    }
