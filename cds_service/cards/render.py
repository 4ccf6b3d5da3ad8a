"""Turns a Decision into a CDS Hooks card in Dutch or English, from the templates in cards/.

Everything a card says is data in cards/*.yaml (see cards/README.md, loaded and checked by
cards/catalogue.py); this module picks the texts, fills in the variables and assembles the
card: summary, Markdown detail, suggestions (cards/suggestions.py), override reasons and links.

The detail reads in the order a clinician needs it: one lead line (decision and why), the
decisive findings in words with their dates and sources (cards/evidence.py), what to do now,
a short script for the patient with a link to the full patient page, and last, under its own
heading, every check as "found / not found / not known".
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cds_service.cards.catalogue import (
    INDICATORS,
    LANGUAGES,
    SUMMARY_LIMIT,
    VARIANTS,
    CardTemplate,
    Catalogue,
    age_sentence,
    apply_variant,
    check_catalogue,
    decade_of,
    load_catalogue,
    patient_text,
    patient_variables,
    term_key,
    terms_for,
)
from cds_service.cards.evidence import EvidenceNames
from cds_service.cards.suggestions import (
    mri_order,
    mri_suggestions,
    not_indicated_suggestions,
    override_reasons,
    therapy_referral,
)
from cds_service.config import DEFAULT_PUBLIC_BASE_URL
from cds_service.rules.model import CriterionResult, Decision, Outcome, PatientFacts, Status

__all__ = [
    "INDICATORS",
    "LANGUAGES",
    "SUMMARY_LIMIT",
    "VARIANTS",
    "CardContext",
    "Catalogue",
    "age_sentence",
    "all_checks_heading",
    "apply_variant",
    "check_catalogue",
    "decade_of",
    "headline_reason",
    "load_catalogue",
    "mri_order",
    "order_label",
    "override_reasons",
    "patient_page_url",
    "patient_text",
    "patient_variables",
    "render_card",
    "term_key",
    "terms_for",
    "therapy_referral",
]

DECISION_SYSTEM = "https://lumbar-imaging-cds.local/CodeSystem/decision"
PATIENT_PAGE_PATH = "/patient-info"
PATIENT_LINK_LABEL = "patient-page"  # the Markdown reference of the patient page link
# Records named per decisive criterion in the lead part of the card, and per line of "All
# checks": a record can cite thousands (every back-pain consult); the decisions extension keeps
# the references.
CARD_EVIDENCE_GROUPS = 3
CARE_EVIDENCE_GROUPS = 2
# Reasons of failed-conservative-care that explain a long episode without an indication.
CARE_GAP_REASONS = ("no-active-care", "passive-care-only", "active-care-too-short", "improved")
CARE_GAP_MIN_WEEKS = 12
# Criteria that cite a record for its back-pain episode: the record is named by the episode.
EPISODE_CRITERIA = frozenset(
    {"failed-conservative-care", "no-episode-data", "episode-onset-missing"}
)


@dataclass(frozen=True, slots=True)
class CardContext:
    """What a card needs beyond the decision: the patient's facts, the draft order, where we live.

    `variant` is "nl-BE" for Flemish patients (Dutch texts with Flemish words), else None.
    """

    facts: PatientFacts | None = None
    draft: Mapping[str, Any] | None = None
    patient_id: str | None = None
    base_url: str = DEFAULT_PUBLIC_BASE_URL
    variant: str | None = None

    @property
    def age(self) -> int | None:
        """The patient's age in years, if known."""
        return self.facts.age if self.facts is not None else None


# --- small texts ------------------------------------------------------------------------------


def all_checks_heading(catalogue: Catalogue, language: str) -> str:
    """The Markdown heading of every card's last section, "All checks", in `language`."""
    return f"### {catalogue.common['all_checks'][language].render().strip()}"


def _fit(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= SUMMARY_LIMIT:
        return text
    # never cut mid-word (the start-up check keeps every template within the limit)
    return text[: SUMMARY_LIMIT - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def order_label(catalogue: Catalogue, decision: Decision, language: str) -> str:
    """The service's own short name of the judged order in `language` ("MRI LWK")."""
    return catalogue.order_labels[decision.order.modality.value][language]


def patient_page_url(
    base_url: str, language: str, variant: str | None, topic: str, age: int | None
) -> str:
    """Absolute URL of the printable patient page; nothing about the patient but the age."""
    params: dict[str, Any] = {"lang": term_key(language, variant), "topic": topic}
    if age is not None and age >= 0:
        params["age"] = age
    return f"{base_url.rstrip('/')}{PATIENT_PAGE_PATH}?{urlencode(params)}"


def _weeks(facts: PatientFacts | None) -> float | None:
    return facts.episode_weeks if facts is not None else None


def _duration(catalogue: Catalogue, language: str, facts: PatientFacts | None) -> str | None:
    weeks = _weeks(facts)
    if weeks is None or weeks < 0:
        return None
    days = round(weeks * 7)
    return catalogue.common["duration"][language].render(days=days, weeks=math.floor(weeks)).strip()


def headline_reason(decision: Decision, catalogue: Catalogue, language: str) -> str:
    """The one reason a summary names: the first decisive criterion, else 'no indication'."""
    for criterion in decision.decisive:
        return catalogue.reason_label(criterion.reason, criterion.id, language)
    return catalogue.common["no_indication"][language].render()


def _care_gap(decision: Decision, facts: PatientFacts | None) -> CriterionResult | None:
    """The failed-care criterion that explains a long episode without an indication."""
    weeks = _weeks(facts)
    if weeks is None or weeks < CARE_GAP_MIN_WEEKS:
        return None
    return next(
        (
            c
            for c in decision.criteria
            if c.id == "failed-conservative-care" and c.reason in CARE_GAP_REASONS
        ),
        None,
    )


def _not_indicated_reason(
    decision: Decision,
    template: CardTemplate,
    catalogue: Catalogue,
    language: str,
    facts: PatientFacts | None,
) -> str:
    if any(c.id == "repeat-imaging" for c in decision.decisive):
        return template.texts["main_reason.prior-imaging"][language].render()
    gap = _care_gap(decision, facts)
    care = catalogue.reason_label(gap.reason, gap.id, language) if gap is not None else None
    return template.texts["main_reason.default"][language].render(
        duration=_duration(catalogue, language, facts), care=care
    )


# --- the findings and the checks, in words --------------------------------------------------------


def _findings(
    decision: Decision,
    catalogue: Catalogue,
    language: str,
    facts: PatientFacts | None,
    names: EvidenceNames,
) -> str:
    """The decisive findings, one line per criterion, named with dates and sources.

    A not-indicated decision has nothing decisive but the episode (and prior imaging or the care
    gap): its lines name what the "no" rests on.
    """
    lines = []
    if decision.outcome is Outcome.NOT_INDICATED:
        # the lead line gives the duration; this line says where the episode is recorded
        refs = facts.episode_references if facts is not None else ()
        shown = names.phrases(refs, CARD_EVIDENCE_GROUPS, episode=True)
        if shown:
            lines.append("; ".join(shown))
        gap = _care_gap(decision, facts)
        if gap is not None:
            # the lead line names the care gap; here the care and scores it rests on
            care = [ref for ref in gap.evidence if ref not in refs]
            shown = names.phrases(care, CARE_EVIDENCE_GROUPS)
            if shown:
                lines.append("; ".join(shown))
    for index, criterion in enumerate(decision.decisive):
        shown = names.phrases(criterion.evidence, CARD_EVIDENCE_GROUPS)
        refs_text = "; ".join(shown) or catalogue.common["no_evidence"][language].render()
        # the lead line names the first decisive reason; any further one is named here
        reason = catalogue.reason_label(criterion.reason, criterion.id, language)
        lines.append(refs_text if index == 0 else f"{reason}: {refs_text}")
    return "\n".join(f"- {line}" for line in lines) or "-"


def _check_line(
    criterion: CriterionResult,
    catalogue: Catalogue,
    language: str,
    names: EvidenceNames,
    episode_refs: tuple[str, ...] = (),
) -> str:
    """One check as "<what it looked for>: found / not found / not known — why · sources"."""
    checks = catalogue.checks
    subject = checks.subjects.get(criterion.id, {}).get(language) or catalogue.criterion_label(
        criterion.id, language
    )
    if criterion.reason in checks.not_needed:
        result = "not-needed"
    elif criterion.status is Status.UNKNOWN:
        result = "unknown"
    else:
        # A data check is met when what it looked for (the examination, the episode) is missing.
        found = (criterion.status is Status.MET) != (criterion.id in checks.inverted)
        result = "found" if found else "not-found"
    line = f"{subject}: {checks.results[result][language]}"
    if criterion.reason not in checks.quiet:
        reason = catalogue.reason_label(criterion.reason, criterion.id, language)
        if reason != subject:
            line += f" — {reason}"
    episode = criterion.id in EPISODE_CRITERIA
    evidence = criterion.evidence
    if criterion.id == "failed-conservative-care":
        # the first line names the episode; this one names the care and scores it rests on
        evidence = tuple(ref for ref in evidence if ref not in episode_refs) or evidence
    shown = names.phrases(evidence, CARD_EVIDENCE_GROUPS, episode=episode)
    if shown:
        line += " · " + "; ".join(shown)
    return line


def _all_checks(
    decision: Decision,
    catalogue: Catalogue,
    language: str,
    facts: PatientFacts | None,
    names: EvidenceNames,
) -> str:
    """Every criterion checked, in the engine's order, and the episode's duration first."""
    lines = []
    duration = _duration(catalogue, language, facts)
    if duration:
        refs = facts.episode_references if facts is not None else ()
        shown = names.phrases(refs, CARD_EVIDENCE_GROUPS, episode=True)
        lines.append(" · ".join([duration, "; ".join(shown)]) if shown else duration)
    for criterion in decision.criteria:
        if criterion.id == "modality-advice":
            continue  # shown as advice, and it never changes the decision
        refs = facts.episode_references if facts is not None else ()
        lines.append(_check_line(criterion, catalogue, language, names, refs))
    return "\n".join(f"- {line}" for line in lines) or "-"


def _advice(decision: Decision, catalogue: Catalogue, language: str) -> str:
    lines = []
    for item in decision.advice:
        template = catalogue.advice.get(item.code)
        if template is None:
            continue
        names = catalogue.modalities
        text = template[language].render(
            ordered=names[item.ordered.value][language],
            suggested=names[item.suggested.value][language] if item.suggested else "",
            reason=catalogue.reason_label(item.reason, "modality-advice", language),
        )
        lines.append(f"- {text.strip()}")
    return "\n".join(lines)


# --- the card ---------------------------------------------------------------------------------


def _patient_script(
    catalogue: Catalogue, kind: str, language: str, context: CardContext
) -> dict[str, str]:
    """The short patient script as a Markdown quote, its heading and the link to the full page."""
    template = catalogue.templates[kind]
    text = patient_text(catalogue, kind, language, context.age, context.variant)
    if not text or not template.patient_topic:
        return {"patient": "", "patient_heading": "", "patient_link": "", "patient_url": ""}
    url = patient_page_url(
        context.base_url, language, context.variant, template.patient_topic, context.age
    )
    label = catalogue.common["patient_page_link"][language].render().strip()
    return {
        "patient": f"> {text}",
        "patient_heading": catalogue.patient_heading[kind][language],
        # A reference link: the URL itself is defined at the very end of the detail, so the
        # part a clinician reads is as long whatever the deployment's base URL.
        "patient_link": f"[{label}][{PATIENT_LINK_LABEL}]",
        "patient_url": url,
    }


def render_card(
    decision: Decision,
    language: str,
    catalogue: Catalogue,
    context: CardContext | None = None,
) -> dict[str, Any]:
    """The CDS Hooks card for one decision, in the given language (and variant)."""
    context = context or CardContext()
    variant = context.variant
    facts = context.facts
    kind = decision.outcome.value
    template = catalogue.templates[kind]
    terms = terms_for(catalogue, language, variant)
    names = EvidenceNames(catalogue, language, facts)

    def localise(text: str) -> str:
        return apply_variant(text, catalogue, language, variant)

    if decision.outcome is Outcome.NOT_INDICATED:
        reason = _not_indicated_reason(decision, template, catalogue, language, facts)
    else:
        reason = headline_reason(decision, catalogue, language)
    criteria = ", ".join(catalogue.criterion_label(c.id, language) for c in decision.decisive)
    checklist = "\n".join(
        f"- [ ] {catalogue.checklist[code][language].render().strip()}"
        for code in decision.missing
        if code in catalogue.checklist
    )
    # The card names the order by the service's own label in the card's language, never by the
    # EHR's display (101 characters of CPT text would fill the summary; a Dutch card would start
    # in English). The EHR's name stays on the order itself.
    order = order_label(catalogue, decision, language)
    variables = {**terms, "order": order, "reason": reason}
    detail_variables = {
        **variables,
        "criteria": criteria or "-",
        "findings": _findings(decision, catalogue, language, facts, names),
        "advice": _advice(decision, catalogue, language),
        "checklist": checklist or "-",
        **_patient_script(catalogue, kind, language, context),
    }
    detail = template.detail[language].render(detail_variables).strip()
    # Every card ends on the whole trail, under one heading in every kind and language, so a
    # clinician finds it in the same place and the lead part can be measured before it.
    trail = _all_checks(decision, catalogue, language, facts, names)
    detail = f"{detail}\n\n{all_checks_heading(catalogue, language)}\n\n{trail}"
    if detail_variables["patient_url"]:
        # our own URL (base URL from the settings, urlencoded query): nothing to escape
        detail += f"\n\n[{PATIENT_LINK_LABEL}]: <{detail_variables['patient_url']}>"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _fit(localise(template.summary[language].render(variables))),
        "detail": localise(detail),
        "indicator": template.indicator,
        "source": {
            "label": catalogue.common["source_label"][language].render(),
            "topic": {"system": DECISION_SYSTEM, "code": kind, "display": kind},
        },
    }
    if decision.outcome is Outcome.NOT_INDICATED:
        card["suggestions"] = not_indicated_suggestions(
            decision, template, language, variables, context.draft, context.patient_id, localise
        )
        card["selectionBehavior"] = "at-most-one"
        card["overrideReasons"] = override_reasons(catalogue, language)
    else:
        alternatives = mri_suggestions(
            decision, catalogue, language, order, context.draft, context.patient_id, localise
        )
        if alternatives:
            card["suggestions"] = alternatives
            card["selectionBehavior"] = "at-most-one"
    if template.patient_topic:
        card["links"] = [
            {
                "label": catalogue.common["patient_link"][language].render(),
                "url": patient_page_url(
                    context.base_url, language, variant, template.patient_topic, context.age
                ),
                "type": "absolute",
            }
        ]
    return card
