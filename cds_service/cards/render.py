"""Turns a Decision into a CDS Hooks card in Dutch or English, from the templates in cards/.

Everything a card says is data in cards/*.yaml (see cards/README.md); this module only picks
the texts, fills in the variables (Jinja2 in strict mode: a missing variable is an error) and
assembles the card: summary, Markdown detail, suggestions, override reasons and links.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from jinja2 import Environment, StrictUndefined, Template, TemplateError

from cds_service.errors import RuleDataError
from cds_service.rules.model import Decision, Modality, Outcome, PatientFacts, Status

LANGUAGES = ("nl", "en")
VARIANTS = ("nl-BE",)
INDICATORS = {
    Outcome.URGENT: "critical",
    Outcome.INDICATED: "info",
    Outcome.NOT_INDICATED: "warning",
    Outcome.INSUFFICIENT_DATA: "info",
    Outcome.OUT_OF_POPULATION: "info",
}
DECISION_SYSTEM = "https://lumbar-imaging-cds.local/CodeSystem/decision"
STATUS_MARK = {Status.MET: "✔", Status.NOT_MET: "✘", Status.UNKNOWN: "?"}
DATA_CHECKS = frozenset({"neuro-exam-missing", "outcome-scores-missing", "no-episode-data"})
SUMMARY_LIMIT = 139
# References listed per criterion: a record can cite thousands (every back-pain consult); the
# card shows the first ones and how many more, the decisions extension lists more.
CARD_EVIDENCE_REFS = 10
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
PATIENT_PAGE_PATH = "/patient-info"
SNOMED = "http://snomed.info/sct"
# The referral the "replace" suggestion creates: SNOMED CT 91251008 |Physical therapy procedure|.
THERAPY_CODE = {"system": SNOMED, "code": "91251008", "display": "Physical therapy procedure"}
# A lumbar MRI order, coded as mappings/valuesets/lumbar-mri.csv recognises it (codes only:
# CPT descriptors are not ours to ship).
MRI_CODES = (
    {"system": "http://www.ama-assn.org/go/cpt", "code": "72148"},
    {"system": SNOMED, "code": "41333006"},
)
MRI_SUGGESTION_TEXTS = ("label", "delete", "create", "code_text")
# Reasons of failed-conservative-care that explain a long episode without an indication.
CARE_GAP_REASONS = ("no-active-care", "passive-care-only", "active-care-too-short", "improved")
CARE_GAP_MIN_WEEKS = 12

_ENV = Environment(undefined=StrictUndefined, autoescape=False)  # noqa: S701 - Markdown, not HTML
# The ASCII punctuation Markdown gives a meaning to (CommonMark allows a backslash before any
# of it): escaped, EHR text opens no link, image, HTML tag, entity, emphasis or heading, and
# ':', '.' and '@' escaped keep GitHub's bare autolinks (http://…, www.…, a@b) from forming.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:@])")
# Type/id, urn:uuid:…, a #fragment: nothing in these can open Markdown syntax mid-line, so the
# trail stays readable (and searchable) as the references the decisions extension gives.
_PLAIN_REFERENCE = re.compile(r"[A-Za-z][A-Za-z0-9/._:#-]{0,255}")

Bilingual = Mapping[str, Template]


@dataclass(frozen=True, slots=True)
class CardContext:
    """What a card needs beyond the decision: the patient's facts, the draft order, where we live.

    `variant` is "nl-BE" for Flemish patients (Dutch texts with Flemish words), else None.
    """

    facts: PatientFacts | None = None
    draft: Mapping[str, Any] | None = None
    patient_id: str | None = None
    base_url: str = DEFAULT_BASE_URL
    variant: str | None = None

    @property
    def age(self) -> int | None:
        """The patient's age in years, if known."""
        return self.facts.age if self.facts is not None else None


@dataclass(frozen=True, slots=True)
class CardTemplate:
    """One card kind: indicator, summary and detail, optional patient text and extras."""

    kind: str
    indicator: str
    summary: Bilingual
    detail: Bilingual
    patient: Bilingual | None = None
    patient_topic: str | None = None
    texts: Mapping[str, Bilingual] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All card texts and labels, loaded and checked once at start-up."""

    templates: Mapping[str, CardTemplate]
    criteria: Mapping[str, Mapping[str, str]]
    reasons: Mapping[str, Mapping[str, str]]
    common: Mapping[str, Bilingual] = field(default_factory=dict)
    patient_heading: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    terms: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    advice: Mapping[str, Bilingual] = field(default_factory=dict)
    mri_suggestion: Mapping[str, Bilingual] = field(default_factory=dict)
    modalities: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the service's own short name of each order in each language ("MRI LWK", "Lumbar MRI")
    order_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    checklist: Mapping[str, Bilingual] = field(default_factory=dict)
    override_reasons: tuple[Mapping[str, Any], ...] = ()
    age_figures: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    patient_page: Mapping[str, Any] = field(default_factory=dict)

    def criterion_label(self, criterion_id: str, language: str) -> str:
        """The clinician-facing name of a criterion id."""
        return self.criteria.get(criterion_id, {}).get(language, criterion_id)

    def reason_label(self, reason: str, criterion_id: str, language: str) -> str:
        """The clinician-facing name of a reason code, falling back to its criterion."""
        label = self.reasons.get(reason, {}).get(language)
        return label or self.criterion_label(criterion_id, language)

    def topics(self) -> tuple[str, ...]:
        """The patient page topics."""
        return tuple(self.patient_page.get("topics", {}))


# --- loading --------------------------------------------------------------------------------


def _bilingual(data: Any, where: str) -> dict[str, str]:
    if not isinstance(data, Mapping) or any(
        not isinstance(data.get(lang), str) or not data[lang].strip() for lang in LANGUAGES
    ):
        raise RuleDataError(f"{where}: needs non-empty 'nl' and 'en' texts")
    return {lang: data[lang] for lang in LANGUAGES}


def _compile(data: Any, where: str) -> dict[str, Template]:
    try:
        return {k: _ENV.from_string(v) for k, v in _bilingual(data, where).items()}
    except TemplateError as exc:
        raise RuleDataError(f"{where}: {exc}") from exc


def _yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RuleDataError(f"{path}: missing card data file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise RuleDataError(f"{path}: must be a mapping")
    return data


def _template(outcome: Outcome, data: dict[str, Any], path: Path) -> CardTemplate:
    if data.get("indicator") != INDICATORS[outcome]:
        raise RuleDataError(f"{path}: indicator must be {INDICATORS[outcome]}")
    texts: dict[str, Bilingual] = {}
    for name in ("main_reason",):
        for key, value in (data.get(name) or {}).items():
            texts[f"{name}.{key}"] = _compile(value, f"{path}: {name}.{key}")
    for name, suggestion in (data.get("suggestions") or {}).items():
        for key, value in suggestion.items():
            texts[f"suggestions.{name}.{key}"] = _compile(value, f"{path}: {name}.{key}")
    patient = data.get("patient")
    return CardTemplate(
        kind=outcome.value,
        indicator=data["indicator"],
        summary=_compile(data.get("summary"), f"{path}: summary"),
        detail=_compile(data.get("detail"), f"{path}: detail"),
        patient=_compile(patient, f"{path}: patient") if patient is not None else None,
        patient_topic=data.get("patient_topic"),
        texts=texts,
    )


def _load_override_reasons(path: Path) -> tuple[Mapping[str, Any], ...]:
    data = _yaml(path)
    systems = data.get("systems") or {}
    reasons = []
    for index, entry in enumerate(data.get("reasons") or []):
        where = f"{path}: reasons[{index}]"
        system = systems.get(entry.get("system"))
        if not system or not entry.get("code"):
            raise RuleDataError(f"{where}: needs a known system and a code")
        reasons.append(
            {
                "system": system,
                "code": entry["code"],
                "display": _bilingual(entry.get("display"), f"{where}.display"),
            }
        )
    if not reasons:
        raise RuleDataError(f"{path}: no override reasons")
    return tuple(reasons)


def _load_patient_page(path: Path) -> dict[str, Any]:
    data = _yaml(path)
    page: dict[str, Any] = {
        "page_title": _compile(data.get("page_title"), f"{path}: page_title"),
        "footer": _compile(data.get("footer"), f"{path}: footer"),
        "icon_array": _compile(data.get("icon_array"), f"{path}: icon_array"),
        "more_info": _compile(data.get("more_info"), f"{path}: more_info"),
        "more_info_url": _compile(data.get("more_info_url"), f"{path}: more_info_url"),
        "topics": {},
    }
    for topic, content in (data.get("topics") or {}).items():
        where = f"{path}: topics.{topic}"
        sections = [
            {
                "heading": _compile(s.get("heading"), f"{where}.sections[{i}].heading"),
                "body": _compile(s.get("body"), f"{where}.sections[{i}].body"),
            }
            for i, s in enumerate(content.get("sections") or [])
        ]
        if not sections:
            raise RuleDataError(f"{where}: needs sections")
        page["topics"][topic] = {
            "title": _compile(content.get("title"), f"{where}.title"),
            "sections": sections,
        }
    return page


@cache
def load_catalogue(cards_dir: Path) -> Catalogue:
    """Load cards/*.yaml and check them: a gap or a template error stops the service."""
    cards_dir = Path(cards_dir)
    templates = {
        outcome.value: _template(outcome, _yaml(cards_dir / f"{outcome.value}.yaml"), cards_dir)
        for outcome in Outcome
    }
    labels_path = cards_dir / "criteria.yaml"
    labels = _yaml(labels_path)
    criteria = {
        k: _bilingual(v, f"{labels_path}: criteria.{k}")
        for k, v in (labels.get("criteria") or {}).items()
    }
    reasons = {
        k: _bilingual(v, f"{labels_path}: reasons.{k}")
        for k, v in (labels.get("reasons") or {}).items()
    }
    common_path = cards_dir / "common.yaml"
    common_data = _yaml(common_path)
    common = {
        key: _compile(common_data.get(key), f"{common_path}: {key}")
        for key in (
            "source_label",
            "patient_link",
            "no_evidence",
            "no_indication",
            "duration",
            "safety_net",
            "age_group",
            "age_sentence",
            "age_sentence_no_age",
        )
    }
    headings = {
        kind: _bilingual(v, f"{common_path}: patient_heading.{kind}")
        for kind, v in (common_data.get("patient_heading") or {}).items()
    }
    terms = {}
    for key, value in (common_data.get("terms") or {}).items():
        terms[key] = {**_bilingual(value, f"{common_path}: terms.{key}"), **value}
    variants = {k: dict(v) for k, v in (common_data.get("variants") or {}).items()}
    figures = {
        key: {int(decade): int(share) for decade, share in entry["by_decade"].items()}
        for key, entry in (common_data.get("age_figures") or {}).items()
    }
    advice_path = cards_dir / "modality-advice.yaml"
    advice_data = _yaml(advice_path)
    advice = {
        k: _compile(v, f"{advice_path}: advice.{k}")
        for k, v in (advice_data.get("advice") or {}).items()
    }
    modalities = {
        k: _bilingual(v, f"{advice_path}: modalities.{k}")
        for k, v in (advice_data.get("modalities") or {}).items()
    }
    order_labels = {
        k: _bilingual(v, f"{advice_path}: order_labels.{k}")
        for k, v in (advice_data.get("order_labels") or {}).items()
    }
    missing_labels = {m.value for m in Modality} - set(order_labels)
    if missing_labels:
        raise RuleDataError(f"{advice_path}: order_labels needs {sorted(missing_labels)}")
    mri_data = advice_data.get("mri_suggestion") or {}
    mri_suggestion = {
        key: _compile(mri_data.get(key), f"{advice_path}: mri_suggestion.{key}")
        for key in MRI_SUGGESTION_TEXTS
    }
    insufficient_path = cards_dir / "insufficient-data.yaml"
    checklist = {
        k: _compile(v, f"{insufficient_path}: checklist.{k}")
        for k, v in (_yaml(insufficient_path).get("checklist") or {}).items()
    }
    catalogue = Catalogue(
        templates=templates,
        criteria=criteria,
        reasons=reasons,
        common=common,
        patient_heading=headings,
        terms=terms,
        variants=variants,
        advice=advice,
        mri_suggestion=mri_suggestion,
        modalities=modalities,
        order_labels=order_labels,
        checklist=checklist,
        override_reasons=_load_override_reasons(cards_dir / "override-reasons.yaml"),
        age_figures=figures,
        patient_page=_load_patient_page(cards_dir / "patient-page.yaml"),
    )
    check_catalogue(catalogue)
    return catalogue


# --- helpers ----------------------------------------------------------------------------------


def _fit(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= SUMMARY_LIMIT:
        return text
    # never cut mid-word (the start-up check keeps every template within the limit)
    return text[: SUMMARY_LIMIT - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def order_label(catalogue: Catalogue, decision: Decision, language: str) -> str:
    """The service's own short name of the judged order in `language` ("MRI LWK")."""
    return catalogue.order_labels[decision.order.modality.value][language]


def term_key(language: str, variant: str | None) -> str:
    """The key into `terms`: the variant when it belongs to the language, else the language."""
    return variant if variant and variant.split("-")[0] == language else language


def terms_for(catalogue: Catalogue, language: str, variant: str | None) -> dict[str, str]:
    """Variant-aware words (physio, emergency, ...) for templates."""
    key = term_key(language, variant)
    return {name: words.get(key, words[language]) for name, words in catalogue.terms.items()}


def apply_variant(text: str, catalogue: Catalogue, language: str, variant: str | None) -> str:
    """Replace words for a language variant (e.g. fysiotherapie -> kinesitherapie in nl-BE)."""
    key = term_key(language, variant)
    table = catalogue.variants.get(key) if key != language else None
    if not table:
        return text
    stems = sorted(table, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in stems) + ")", re.IGNORECASE)

    def swap(match: re.Match[str]) -> str:
        found = match.group(1)
        new = table[found.lower()]
        return new[:1].upper() + new[1:] if found[:1].isupper() else new

    return pattern.sub(swap, text)


def decade_of(age: int) -> int:
    """The WORDING.md table column for an age: its decade (floor), clamped to 20..80."""
    return min(80, max(20, (age // 10) * 10))


def age_sentence(catalogue: Catalogue, language: str, age: int | None) -> str:
    """The age-specific figure sentence, or a sentence without numbers when age is unknown."""
    if age is None or age < 0:
        return catalogue.common["age_sentence_no_age"][language].render().strip()
    decade = decade_of(age)
    group = catalogue.common["age_group"][language].render(age=age, decade=decade).strip()
    figures = {key: shares[decade] for key, shares in catalogue.age_figures.items()}
    return catalogue.common["age_sentence"][language].render(age_group=group, **figures).strip()


def patient_variables(
    catalogue: Catalogue, language: str, age: int | None, variant: str | None
) -> dict[str, Any]:
    """Variables every patient-facing template may use."""
    terms = terms_for(catalogue, language, variant)
    return {
        **terms,
        "age_sentence": age_sentence(catalogue, language, age),
        "safety_net": catalogue.common["safety_net"][language].render(**terms).strip(),
    }


def patient_text(
    catalogue: Catalogue, kind: str, language: str, age: int | None, variant: str | None = None
) -> str | None:
    """The sentences offered to say to the patient for a card kind, or None if it has none."""
    template = catalogue.templates[kind].patient
    if template is None:
        return None
    text = template[language].render(patient_variables(catalogue, language, age, variant))
    return apply_variant(text.strip(), catalogue, language, variant)


def patient_page_url(
    base_url: str, language: str, variant: str | None, topic: str, age: int | None
) -> str:
    """Absolute URL of the printable patient page; nothing about the patient but the age."""
    params: dict[str, Any] = {"lang": term_key(language, variant), "topic": topic}
    if age is not None and age >= 0:
        params["age"] = age
    return f"{base_url.rstrip('/')}{PATIENT_PAGE_PATH}?{urlencode(params)}"


def markdown_text(value: str) -> str:
    """EHR-supplied text as literal Markdown: one line, every special character escaped."""
    # One line, so the text cannot start a block (heading, quote, list, code, HTML block).
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(value.split()))


def markdown_reference(reference: str) -> str:
    """A FHIR reference for the card: as it is when it is plainly one, else escaped text."""
    if _PLAIN_REFERENCE.fullmatch(reference) and "://" not in reference:
        return reference
    return markdown_text(reference)


def _ref_list(refs: Iterable[str]) -> str:
    """The first CARD_EVIDENCE_REFS references, comma-separated, then "+N" for the rest."""
    refs = list(refs)
    shown = ", ".join(markdown_reference(ref) for ref in refs[:CARD_EVIDENCE_REFS])
    more = len(refs) - CARD_EVIDENCE_REFS
    return f"{shown}, +{more}" if more > 0 else shown


def _refs(refs: Iterable[str]) -> str:
    listed = _ref_list(refs)
    return f" ({listed})" if listed else ""


def _checks(decision: Decision, catalogue: Catalogue, language: str, facts: Any) -> str:
    """Every criterion checked, with its result and the FHIR references it used."""
    lines = []
    duration = _duration(catalogue, language, facts)
    if duration:
        refs = facts.episode_references if facts is not None else ()
        lines.append(f"- ℹ {duration}{_refs(refs)}")
    for criterion in decision.criteria:
        if criterion.id == "modality-advice":
            continue
        label = catalogue.criterion_label(criterion.id, language)
        reason = catalogue.reason_label(criterion.reason, criterion.id, language)
        if criterion.id in DATA_CHECKS and criterion.status is Status.NOT_MET:
            # A data check that did not fire means the data was there: say so plainly.
            lines.append(f"- ✔ {reason}{_refs(criterion.evidence)}")
            continue
        text = label if reason == label else f"{label}: {reason}"
        lines.append(f"- {STATUS_MARK[criterion.status]} {text}{_refs(criterion.evidence)}")
    return "\n".join(lines)


def _evidence(decision: Decision, catalogue: Catalogue, language: str) -> str:
    lines = []
    for criterion in decision.decisive:
        reason = catalogue.reason_label(criterion.reason, criterion.id, language)
        refs = _ref_list(criterion.evidence)
        refs = refs or catalogue.common["no_evidence"][language].render()
        lines.append(f"- {reason}: {refs}")
    return "\n".join(lines) or "-"


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


def _weeks(facts: Any) -> float | None:
    return getattr(facts, "episode_weeks", None) if facts is not None else None


def _duration(catalogue: Catalogue, language: str, facts: Any) -> str | None:
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


def _not_indicated_reason(
    decision: Decision, template: CardTemplate, catalogue: Catalogue, language: str, facts: Any
) -> str:
    if any(c.id == "repeat-imaging" for c in decision.decisive):
        return template.texts["main_reason.prior-imaging"][language].render()
    care = None
    weeks = _weeks(facts)
    if weeks is not None and weeks >= CARE_GAP_MIN_WEEKS:
        gap = next(
            (
                c
                for c in decision.criteria
                if c.id == "failed-conservative-care" and c.reason in CARE_GAP_REASONS
            ),
            None,
        )
        if gap is not None:
            care = catalogue.reason_label(gap.reason, gap.id, language)
    return template.texts["main_reason.default"][language].render(
        duration=_duration(catalogue, language, facts), care=care
    )


# --- suggestions, override reasons, links ------------------------------------------------------


def _suggestion(label: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"label": label, "uuid": str(uuid.uuid4()), "actions": actions}


def _clean_codeable(concepts: Any) -> list[dict[str, Any]]:
    """CodeableConcepts from a draft order with empty codings (Sandbox quirk) dropped."""
    cleaned = []
    for concept in concepts or []:
        if not isinstance(concept, Mapping):
            continue
        codings = [
            {k: v for k, v in c.items() if v not in (None, "")}
            for c in concept.get("coding") or []
            if isinstance(c, Mapping) and c.get("code")
        ]
        item: dict[str, Any] = {}
        if codings:
            item["coding"] = codings
        if isinstance(concept.get("text"), str) and concept["text"].strip():
            item["text"] = concept["text"]
        if item:
            cleaned.append(item)
    return cleaned


def _order_in_place_of(
    draft: Mapping[str, Any] | None, patient_id: str | None, code: dict[str, Any]
) -> dict[str, Any] | None:
    """A new draft ServiceRequest with `code` for the draft's patient, encounter, requester and
    reasons; None when the patient cannot be named."""
    draft = draft or {}
    subject = draft.get("subject")
    if not (isinstance(subject, Mapping) and subject.get("reference")):
        subject = {"reference": f"Patient/{patient_id}"} if patient_id else None
    if subject is None:
        return None
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": code,
        "subject": dict(subject),
    }
    for key in ("encounter", "requester"):
        value = draft.get(key)
        if isinstance(value, Mapping) and value.get("reference"):
            resource[key] = dict(value)
    reasons = _clean_codeable(draft.get("reasonCode"))
    if reasons:
        resource["reasonCode"] = reasons
    return resource


def therapy_referral(
    draft: Mapping[str, Any] | None, patient_id: str | None, code_text: str, note: str
) -> dict[str, Any] | None:
    """A new draft ServiceRequest for exercise therapy / physiotherapy, for the same patient."""
    code = {"coding": [dict(THERAPY_CODE)], "text": code_text}
    resource = _order_in_place_of(draft, patient_id, code)
    if resource is not None:
        resource["note"] = [{"text": note}]
    return resource


def _not_indicated_suggestions(
    decision: Decision,
    template: CardTemplate,
    language: str,
    variables: Mapping[str, Any],
    context: CardContext,
    localise: Any,
) -> list[dict[str, Any]]:
    def text(name: str) -> str:
        return localise(template.texts[name][language].render(variables).strip())

    delete_id = decision.order.reference
    cancel = _suggestion(
        text("suggestions.cancel.label"),
        [
            {
                "type": "delete",
                "description": text("suggestions.cancel.delete"),
                "resourceId": delete_id,
            }
        ],
    )
    suggestions = [cancel]
    referral = therapy_referral(
        context.draft,
        context.patient_id,
        text("suggestions.replace.code_text"),
        text("suggestions.replace.note"),
    )
    if referral is not None:
        suggestions.append(
            _suggestion(
                text("suggestions.replace.label"),
                [
                    {
                        "type": "delete",
                        "description": text("suggestions.replace.delete"),
                        "resourceId": delete_id,
                    },
                    {
                        "type": "create",
                        "description": text("suggestions.replace.create"),
                        "resource": referral,
                    },
                ],
            )
        )
    return suggestions


def mri_order(
    draft: Mapping[str, Any] | None, patient_id: str | None, code_text: str, urgent: bool
) -> dict[str, Any] | None:
    """A new draft lumbar MRI order taking the draft's subject, context and reasons."""
    draft = draft or {}
    code = {"coding": [dict(c) for c in MRI_CODES], "text": code_text}
    resource = _order_in_place_of(draft, patient_id, code)
    if resource is None:
        return None
    if draft.get("intent") == "plan":
        resource["intent"] = "plan"
    if urgent:
        resource["priority"] = "urgent"
    elif draft.get("priority") in ("routine", "urgent", "asap", "stat"):
        resource["priority"] = draft["priority"]
    return resource


def _mri_suggestions(
    decision: Decision,
    catalogue: Catalogue,
    language: str,
    context: CardContext,
    localise: Any,
) -> list[dict[str, Any]]:
    """Replace an X-ray or CT with MRI when the engine's advice suggests MRI for this case."""
    if decision.order.modality is Modality.MRI or not any(
        a.suggested is Modality.MRI for a in decision.advice
    ):
        return []

    def text(name: str) -> str:
        template = catalogue.mri_suggestion[name][language]
        return localise(template.render(order=order_label(catalogue, decision, language)).strip())

    order = mri_order(
        context.draft, context.patient_id, text("code_text"), decision.outcome is Outcome.URGENT
    )
    if order is None:
        return []
    actions = [
        {"type": "delete", "description": text("delete"), "resourceId": decision.order.reference},
        {"type": "create", "description": text("create"), "resource": order},
    ]
    return [_suggestion(text("label"), actions)]


def override_reasons(catalogue: Catalogue, language: str) -> list[dict[str, str]]:
    """The coded override reasons with display text in the card language."""
    return [
        {"system": r["system"], "code": r["code"], "display": r["display"][language]}
        for r in catalogue.override_reasons
    ]


# --- the card ---------------------------------------------------------------------------------


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
    variables = {
        **terms,
        "order": order,
        "reason": reason,
        "criteria": criteria or "-",
        "checks": _checks(decision, catalogue, language, facts) or "-",
        "evidence": _evidence(decision, catalogue, language),
        "advice": _advice(decision, catalogue, language),
        "checklist": checklist or "-",
    }
    # The summary and suggestion labels are plain text; only the Markdown detail needs the
    # order's name (the EHR's text) escaped.
    markdown_variables = {**variables, "order": markdown_text(order)}
    detail = template.detail[language].render(markdown_variables).strip()
    patient = patient_text(catalogue, kind, language, context.age, variant)
    if patient:
        heading = catalogue.patient_heading[kind][language]
        quoted = "\n".join(f"> {line}" if line else ">" for line in patient.splitlines())
        detail = f"{detail}\n\n### {heading}\n\n{quoted}"
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
        card["suggestions"] = _not_indicated_suggestions(
            decision, template, language, variables, context, localise
        )
        card["selectionBehavior"] = "at-most-one"
        card["overrideReasons"] = override_reasons(catalogue, language)
    else:
        alternatives = _mri_suggestions(decision, catalogue, language, context, localise)
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


# --- start-up checks --------------------------------------------------------------------------


def check_catalogue(catalogue: Catalogue) -> None:
    """Fail loudly when a card kind or label lacks something a card will need."""
    for key, shares in catalogue.age_figures.items():
        if set(shares) != {20, 30, 40, 50, 60, 70, 80}:
            raise RuleDataError(f"cards/common.yaml: age_figures.{key} needs decades 20..80")
    longest = max(
        (label[lang] for label in catalogue.reasons.values() for lang in LANGUAGES),
        key=len,
        default="",
    )
    for kind, template in catalogue.templates.items():
        if (template.patient is None) != (template.patient_topic is None):
            raise RuleDataError(f"cards/{kind}.yaml: patient and patient_topic go together")
        if template.patient is not None and kind not in catalogue.patient_heading:
            raise RuleDataError(f"cards/common.yaml: patient_heading.{kind} is missing")
        if template.patient_topic and template.patient_topic not in catalogue.topics():
            raise RuleDataError(f"cards/{kind}.yaml: unknown patient_topic")
        for language in LANGUAGES:
            try:
                label = max(
                    (labels[language] for labels in catalogue.order_labels.values()), key=len
                )
                summary = template.summary[language].render(order=label, reason=longest)
            except TemplateError as exc:
                raise RuleDataError(f"cards/{kind}.yaml: summary.{language}: {exc}") from exc
            if len(" ".join(summary.split())) > SUMMARY_LIMIT:
                raise RuleDataError(
                    f"cards/{kind}.yaml: summary.{language} is over {SUMMARY_LIMIT} characters"
                    f" with the longest reason label"
                )
    sample = {
        **{name: words["en"] for name, words in catalogue.terms.items()},
        **dict.fromkeys(
            ("order", "reason", "criteria", "checks", "evidence", "advice", "checklist"), "x"
        ),
    }
    for kind, template in catalogue.templates.items():
        for language in LANGUAGES:
            for age in (None, 19, 50, 95):
                try:
                    template.detail[language].render(sample)
                    patient_text(catalogue, kind, language, age)
                except (TemplateError, KeyError) as exc:
                    raise RuleDataError(f"cards/{kind}.yaml: {language}: {exc}") from exc
    required = {"main_reason.prior-imaging", "main_reason.default"} | {
        f"suggestions.{s}.{k}"
        for s, keys in (
            ("cancel", ("label", "delete")),
            ("replace", ("label", "delete", "create", "code_text", "note")),
        )
        for k in keys
    }
    missing = required - set(catalogue.templates[Outcome.NOT_INDICATED.value].texts)
    if missing:
        raise RuleDataError(f"cards/not-indicated.yaml: missing {', '.join(sorted(missing))}")
    for code in ("neuro-exam", "outcome-scores", "episode", "episode-onset"):
        if code not in catalogue.checklist:
            raise RuleDataError(f"cards/insufficient-data.yaml: checklist.{code} is missing")
