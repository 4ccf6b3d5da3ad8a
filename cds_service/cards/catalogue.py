"""The card catalogue: every text of cards/*.yaml, loaded and checked once at start-up.

A gap (a text missing in a language, an unknown template variable, a summary that could pass
139 characters, a finding without a label) stops the service with a message naming the file,
never a request. The small lookups that turn the catalogue's data into words (variant terms,
the age sentence, the patient's sentences) live here too, because the checks render them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined, Template, TemplateError

from cds_service.errors import RuleDataError
from cds_service.rules.model import Modality, Outcome

LANGUAGES = ("nl", "en")
VARIANTS = ("nl-BE",)
INDICATORS = {
    Outcome.URGENT: "critical",
    Outcome.INDICATED: "info",
    Outcome.NOT_INDICATED: "warning",
    Outcome.INSUFFICIENT_DATA: "info",
    Outcome.OUT_OF_POPULATION: "info",
}
SUMMARY_LIMIT = 139
MRI_SUGGESTION_TEXTS = ("label", "delete", "create", "code_text")
COMMON_TEXTS = (
    "source_label",
    "patient_link",
    "patient_page_link",
    "no_evidence",
    "no_indication",
    "duration",
    "safety_net",
    "age_group",
    "age_sentence",
    "age_sentence_no_age",
    "age_sentence_short",
    "all_checks",
)
# The words an "All checks" line ends on: what was looked for was found, not found, not known,
# or the check did not apply.
CHECK_RESULTS = ("found", "not-found", "unknown", "not-needed")
# Every variable a card summary or detail template may use (cards/README.md).
CARD_VARIABLES = (
    "order",
    "reason",
    "criteria",
    "findings",
    "advice",
    "checklist",
    "patient",
    "patient_heading",
    "patient_link",
)

_ENV = Environment(undefined=StrictUndefined, autoescape=False)  # noqa: S701 - Markdown, not HTML

Bilingual = Mapping[str, Template]


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
class Checks:
    """How the "All checks" lines read: what each check looked for and the result words."""

    # criterion id -> what it looked for, when its own label is not that ("neurological
    # examination" for neuro-exam-missing)
    subjects: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # criteria met when what they looked for was NOT found (the data checks)
    inverted: frozenset[str] = frozenset()
    # reasons that mean the check did not apply (no radicular symptoms: no examination needed)
    not_needed: frozenset[str] = frozenset()
    # reasons that only repeat "not found" ("no trauma recorded"): the line leaves them out
    quiet: frozenset[str] = frozenset()
    results: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Findings:
    """How a finding is named in a card: its label, the source word and the date."""

    labels: Mapping[str, Bilingual] = field(default_factory=dict)  # concept -> label template
    kinds: Mapping[str, str] = field(default_factory=dict)  # concept -> source kind
    qualifiers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    months: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # other things a criterion cites: care, scores, medications, prior imaging, the order
    things: Mapping[str, Bilingual] = field(default_factory=dict)


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
    checks: Checks = field(default_factory=Checks)
    findings: Findings = field(default_factory=Findings)

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


def _load_checks(data: Mapping[str, Any], path: Path) -> Checks:
    where = f"{path}: checks"
    results = {
        key: _bilingual((data.get("results") or {}).get(key), f"{where}.results.{key}")
        for key in CHECK_RESULTS
    }
    return Checks(
        subjects={
            k: _bilingual(v, f"{where}.subjects.{k}")
            for k, v in (data.get("subjects") or {}).items()
        },
        inverted=frozenset(data.get("inverted") or ()),
        not_needed=frozenset(data.get("not_needed") or ()),
        quiet=frozenset(data.get("quiet") or ()),
        results=results,
    )


def _load_findings(path: Path) -> Findings:
    data = _yaml(path)
    labels: dict[str, Bilingual] = {}
    kinds: dict[str, str] = {}
    sources = {
        k: _bilingual(v, f"{path}: sources.{k}") for k, v in (data.get("sources") or {}).items()
    }
    for concept, entry in (data.get("findings") or {}).items():
        where = f"{path}: findings.{concept}"
        if not isinstance(entry, Mapping):
            raise RuleDataError(f"{where}: must be a mapping")
        labels[concept] = _compile(entry, where)
        kind = entry.get("source")
        if kind is not None:
            if kind not in sources:
                raise RuleDataError(f"{where}: unknown source {kind!r}")
            kinds[concept] = kind
    months: dict[str, tuple[str, ...]] = {}
    for language in LANGUAGES:
        names = (data.get("months") or {}).get(language)
        if not isinstance(names, list) or len(names) != 12:
            raise RuleDataError(f"{path}: months.{language} needs the 12 month names")
        months[language] = tuple(str(n) for n in names)
    return Findings(
        labels=labels,
        kinds=kinds,
        qualifiers={
            k: _bilingual(v, f"{path}: qualifiers.{k}")
            for k, v in (data.get("qualifiers") or {}).items()
        },
        sources=sources,
        months=months,
        things={
            k: _compile(v, f"{path}: things.{k}") for k, v in (data.get("things") or {}).items()
        },
    )


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
    common = {key: _compile(common_data.get(key), f"{common_path}: {key}") for key in COMMON_TEXTS}
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
        checks=_load_checks(labels.get("checks") or {}, labels_path),
        findings=_load_findings(cards_dir / "findings.yaml"),
    )
    check_catalogue(catalogue)
    return catalogue


# --- words from the catalogue -----------------------------------------------------------------


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


def age_sentence(catalogue: Catalogue, language: str, age: int | None, short: bool = False) -> str:
    """The age-specific figure sentence, or a sentence without numbers when age is unknown.

    `short` gives the card's one-figure sentence (ageing discs only); the patient page keeps
    the full sentence with both figures.
    """
    if age is None or age < 0:
        return catalogue.common["age_sentence_no_age"][language].render().strip()
    decade = decade_of(age)
    group = catalogue.common["age_group"][language].render(age=age, decade=decade).strip()
    figures = {key: shares[decade] for key, shares in catalogue.age_figures.items()}
    key = "age_sentence_short" if short else "age_sentence"
    return catalogue.common[key][language].render(age_group=group, **figures).strip()


def patient_variables(
    catalogue: Catalogue, language: str, age: int | None, variant: str | None
) -> dict[str, Any]:
    """Variables every patient-facing template may use."""
    terms = terms_for(catalogue, language, variant)
    return {
        **terms,
        "age_sentence": age_sentence(catalogue, language, age),
        "age_sentence_short": age_sentence(catalogue, language, age, short=True),
        "safety_net": catalogue.common["safety_net"][language].render(**terms).strip(),
    }


def patient_text(
    catalogue: Catalogue, kind: str, language: str, age: int | None, variant: str | None = None
) -> str | None:
    """The sentences a card offers to say to the patient, or None if its kind has none."""
    template = catalogue.templates[kind].patient
    if template is None:
        return None
    text = template[language].render(patient_variables(catalogue, language, age, variant))
    return apply_variant(" ".join(text.split()), catalogue, language, variant)


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
        **dict.fromkeys(CARD_VARIABLES, "x"),
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
    _check_findings(catalogue)


def _check_findings(catalogue: Catalogue) -> None:
    """Every finding label renders with a value; every thing a criterion cites has a name."""
    findings = catalogue.findings
    for concept, label in findings.labels.items():
        for language in LANGUAGES:
            try:
                label[language].render(value="1")
            except TemplateError as exc:
                raise RuleDataError(f"cards/findings.yaml: findings.{concept}: {exc}") from exc
    needed_sources = {"record", "text", "order"}
    missing = needed_sources - set(findings.sources)
    if missing:
        raise RuleDataError(f"cards/findings.yaml: sources needs {sorted(missing)}")
    for thing in ("active-care", "passive-care", "pain-nrs", "oswestry", "imaging"):
        if thing not in findings.things:
            raise RuleDataError(f"cards/findings.yaml: things.{thing} is missing")
        for language in LANGUAGES:
            try:
                findings.things[thing][language].render(value="1", modality="MRI", sessions=2)
            except TemplateError as exc:
                raise RuleDataError(f"cards/findings.yaml: things.{thing}: {exc}") from exc
