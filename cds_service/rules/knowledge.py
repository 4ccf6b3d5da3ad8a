"""Clinical knowledge loaded from mappings/: value sets, keywords, order recognition, policy.

INTERFACE CONTRACT (filled in by the mappings work; signatures are fixed):

- `load_knowledge(mappings_dir: Path | None = None) -> Knowledge` loads and validates every file
  under mappings/ once, raising `RuleDataError` (cds_service.errors) with the file and line on any
  problem: unknown concept, undeclared code system, the same (system, code) in two concepts,
  a policy key missing/unknown/out of range. `default_knowledge()` caches the result for the
  default directory.
- `Knowledge.policy` is a `Policy` (below).
- `Knowledge.concepts_for_coding(system, code) -> frozenset[str]`: concept ids whose value set
  holds the coding. ICD-10 family systems (icd-10, icd-10-cm, Dutch variants) are one family;
  dots are ignored for ICD-10 and ICPC; rows whose code ends in `*` match by prefix.
- `Knowledge.read_text(text, section=None) -> Reading`: the findings of a free text, each with
  its context (affirmed, negated, conditional, family, historical, suspected, reported), the
  words it came from and the qualifiers of its own clause ("severe", "progressive",
  "bilateral", "left", "right"); see textreader.py and mappings/context.yaml.
- `Knowledge.order_modality(text) -> Modality | None`: lumbar X-ray/MRI/CT recognised from an
  order's text (a modality word and a lumbar region word), else None.

Extras beyond the contract: `Knowledge.version` (policy version + short hash of the mapping
files, for audit), `Knowledge.concepts` (id -> `Concept`), `concepts_of_kind(kind)`,
`order_concept(modality)` / `modality_of(concept)`, and `concepts_for_codeable(codeable)`,
which reads a FHIR CodeableConcept dict (codings and text) in one call.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from cds_service.errors import RuleDataError
from cds_service.rules.model import Modality
from cds_service.rules.textmatch import OrderMatcher
from cds_service.rules.textreader import (
    CUE_FAMILIES,
    SECTIONS,
    ContextRules,
    Cue,
    Family,
    Reading,
    TextFinding,
    TextReader,
    phrase_words,
)
from cds_service.shipped import MAPPINGS_DIR


@dataclass(frozen=True, slots=True)
class Policy:
    """Every threshold and window of POLICY.md, loaded from mappings/policy.yaml."""

    version: str
    trauma_window_days: int
    trauma_fracture_risk_age: int
    neuro_mrc_deficit_max: int
    neuro_mrc_severe_max: int
    neuro_exam_window_days: int
    neuro_finding_lookback_days: int
    red_flags_new_days: int
    red_flags_fever_celsius: float
    red_flags_fever_window_days: int
    red_flags_spinal_procedure_window_days: int
    red_flags_recent_infection_days: int
    red_flags_severe_pain_nrs: float
    red_flags_weight_loss_percent: float
    red_flags_weight_loss_window_days: int
    red_flags_corticosteroid_min_days: int
    red_flags_corticosteroid_recent_days: int
    red_flags_immunosuppressive_drug_days: int
    modality_pregnancy_window_days: int
    population_min_age: int
    red_flags_first_episode_age: int
    red_flags_history_min_days: int
    conservative_care_episode_min_weeks: int
    conservative_care_active_care_min_weeks: int
    conservative_care_nrs_improvement_percent: float
    conservative_care_nrs_improvement_points: float
    conservative_care_oswestry_improvement_points: float
    repeat_imaging_window_days: int


@dataclass(frozen=True, slots=True)
class Concept:
    """One clinical concept of mappings/concepts.yaml."""

    id: str
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class CodeableMatch:
    """What one CodeableConcept means: concepts from its codings and keyword matches in its text.

    `coded` is strong evidence (a value-set code); `text` holds the findings read from `text`
    and the codings' `display`, in every context.
    """

    coded: frozenset[str]
    text: tuple[TextFinding, ...]

    @property
    def text_concepts(self) -> frozenset[str]:
        """Concepts the text affirms for the patient now."""
        return frozenset(m.concept for m in self.text if m.affirmed)

    @property
    def negated_concepts(self) -> frozenset[str]:
        """Concepts named only as absent in the text ("geen koorts")."""
        negated = frozenset(m.concept for m in self.text if m.context == "negated")
        return negated - self.text_concepts

    @property
    def concepts(self) -> frozenset[str]:
        """Coded concepts plus positive text concepts."""
        return self.coded | self.text_concepts


@dataclass(frozen=True, slots=True)
class CodeSystem:
    """A declared code system of mappings/code_systems.yaml."""

    key: str
    uri: str
    aliases: tuple[str, ...]
    family: str
    hierarchical: bool
    ignore_dots: bool
    ignore_case: bool

    def normalise(self, code: str) -> str:
        """The code as compared: trimmed, and without dots / upper-cased where the system says."""
        code = code.strip()
        if self.ignore_dots:
            code = code.replace(".", "")
        if self.ignore_case:
            code = code.upper()
        return code


KINDS = frozenset({"order", "condition", "measurement", "procedure", "medication", "text"})
TEXT_LANGUAGES = ("nl", "en")  # every concept of kind text needs keywords in both
QUALIFIERS = frozenset({"severe", "progressive", "bilateral", "left", "right"})
DEFAULT_MAPPINGS_DIR = MAPPINGS_DIR
_ID = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_LANG = re.compile(r"^[a-z]{2}$")
_MATCH_CACHE_SIZE = 4096  # displays such as "Low back pain" repeat across resources and calls
_NO_READING = Reading(())


class Knowledge:
    """The validated rule data: policy, concepts, value sets and text recognition."""

    def __init__(
        self,
        *,
        policy: Policy,
        concepts: Mapping[str, Concept],
        systems: Sequence[CodeSystem],
        exact: Mapping[tuple[str, str], frozenset[str]],
        prefixes: Mapping[tuple[str, str], frozenset[str]],
        text_reader: TextReader,
        order_matcher: OrderMatcher[Modality],
        order_concepts: Mapping[Modality, str],
        version: str,
        rules: Mapping[str, PolicyRule] | None = None,
    ) -> None:
        self.policy = policy
        self.rules: Mapping[str, PolicyRule] = MappingProxyType(dict(rules or {}))
        self.concepts: Mapping[str, Concept] = MappingProxyType(dict(concepts))
        self.version = version
        self._systems = {
            _system_key(uri): system for system in systems for uri in (system.uri, *system.aliases)
        }
        self._exact = dict(exact)
        self._prefixes = dict(prefixes)
        lengths: dict[str, set[int]] = {}
        for family, prefix in prefixes:
            lengths.setdefault(family, set()).add(len(prefix))
        self._prefix_lengths = {family: sorted(ls) for family, ls in lengths.items()}
        self.text_reader = text_reader
        self._orders = order_matcher
        self._order_concepts = MappingProxyType(dict(order_concepts))
        self._modality_of = {concept: modality for modality, concept in order_concepts.items()}
        self._read_cached: Callable[[str, str | None], Reading] = functools.lru_cache(
            maxsize=_MATCH_CACHE_SIZE
        )(self._read_uncached)

    def __repr__(self) -> str:
        return f"<Knowledge {self.version}: {len(self.concepts)} concepts>"

    def concepts_for_coding(self, system: str | None, code: str | None) -> frozenset[str]:
        """Concept ids whose value set holds this coding; empty for unknown systems or codes."""
        if not system or not code:
            return frozenset()
        known = self._systems.get(_system_key(system))
        if known is None:
            return frozenset()
        value = known.normalise(code)
        if not value:
            return frozenset()
        family = known.family
        found = self._exact.get((family, value), frozenset())
        for length in self._prefix_lengths.get(family, ()):
            if length > len(value):
                break
            hit = self._prefixes.get((family, value[:length]))
            if hit:
                found = found | hit
        return found

    def read_text(self, text: str | None, section: str | None = None) -> Reading:
        """The findings of a free text with their context; `section` is its SOEP line type."""
        if not text or not isinstance(text, str):
            return _NO_READING
        return self._read_cached(text, section)

    def match_text(self, text: str | None) -> tuple[TextFinding, ...]:
        """The findings of a free text (every context), in order of appearance."""
        return self.read_text(text).findings

    def _read_uncached(self, text: str, section: str | None) -> Reading:
        return self.text_reader.read(text, section=section)

    def order_modality(self, text: str | None) -> Modality | None:
        """Lumbar X-ray / MRI / CT recognised from an order's text, else None."""
        if not text or not isinstance(text, str):
            return None
        return self._orders.modality(text)

    def order_concept(self, modality: Modality) -> str:
        """The order concept id of a modality ("lumbar-mri" for MRI)."""
        return self._order_concepts[modality]

    def modality_of(self, concept: str) -> Modality | None:
        """The modality of an order concept id, None for any other concept."""
        return self._modality_of.get(concept)

    def concepts_of_kind(self, kind: str) -> frozenset[str]:
        """Concept ids of one kind ("order", "condition", ...)."""
        return frozenset(c.id for c in self.concepts.values() if c.kind == kind)

    def concepts_for_codeable(self, codeable: Mapping[str, Any] | None) -> CodeableMatch:
        """Read a FHIR CodeableConcept dict: value-set hits of its codings, keyword hits in text.

        Malformed parts (a coding that is not an object, a non-string code) are skipped.
        """
        if not isinstance(codeable, Mapping):
            return CodeableMatch(frozenset(), ())
        coded: set[str] = set()
        texts: list[str] = []
        if isinstance(codeable.get("text"), str):
            texts.append(codeable["text"])
        codings = codeable.get("coding")
        for coding in codings if isinstance(codings, list) else ():
            if not isinstance(coding, Mapping):
                continue
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                coded |= self.concepts_for_coding(system, code)
            display = coding.get("display")
            if isinstance(display, str) and display not in texts:
                texts.append(display)
        # one call, one line per text: a newline ends the sentence, so qualifiers and negation
        # of one display never leak into the next
        matches = self.match_text("\n".join(texts)) if texts else ()
        return CodeableMatch(frozenset(coded), matches)


def _system_key(uri: str) -> str:
    return uri.strip().rstrip("/").lower()


# --------------------------------------------------------------------------- loading


def load_knowledge(mappings_dir: Path | None = None) -> Knowledge:
    """Load and validate every file under mappings/; RuleDataError names file and line."""
    root = Path(mappings_dir) if mappings_dir is not None else DEFAULT_MAPPINGS_DIR
    if not root.is_dir():
        raise RuleDataError(f"{root}: mappings directory not found")
    policy = load_policy(root / "policy.yaml")
    rules = load_rules(root / "policy.yaml")
    concepts, texts = _load_concepts(root / "concepts.yaml")
    systems = _load_code_systems(root / "code_systems.yaml")
    exact, prefixes = _load_valuesets(root / "valuesets", concepts, systems)
    order_matcher, order_concepts = _load_orders(root / "orders.yaml", concepts)
    text_reader = _load_context(root / "context.yaml", concepts, texts, policy)
    return Knowledge(
        policy=policy,
        concepts=concepts,
        systems=list(systems.values()),
        exact=exact,
        prefixes=prefixes,
        text_reader=text_reader,
        order_matcher=order_matcher,
        order_concepts=order_concepts,
        version=f"{policy.version}+{_digest(root)}",
        rules=rules,
    )


@functools.cache
def default_knowledge() -> Knowledge:
    """The knowledge of the project's own mappings/ directory, loaded once per process."""
    return load_knowledge(DEFAULT_MAPPINGS_DIR)


def _digest(root: Path) -> str:
    """A short hash over every mapping file, so an audit row names the exact rule data."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".yaml", ".csv"))
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:10]


# --- YAML with line numbers -------------------------------------------------------------


class _Map(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers its own line and the line of each key."""

    line: int = 0
    lines: dict[Any, int]


class _Seq(list):  # type: ignore[type-arg]
    """A YAML sequence that remembers its own line and the line of each item."""

    line: int = 0
    lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """A safe YAML loader that records line numbers and refuses duplicate keys."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            # PyYAML would silently keep the last one: a duplicated concept id would vanish
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r} (first on line {result.lines[key]})",
                problem_mark=key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def _fail(path: Path, line: int | None, message: str) -> RuleDataError:
    where = f"{path}:{line}" if line else str(path)
    return RuleDataError(f"{where}: {message}")


def _read_yaml(path: Path) -> _Map:
    if not path.is_file():
        raise _fail(path, None, "file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise _fail(path, mark.line + 1 if mark else None, str(exc.problem)) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(path, None, f"not valid YAML: {exc}") from exc
    if not isinstance(data, _Map):
        raise _fail(path, 1, "expected a mapping at the top level")
    return data


def _check_keys(path: Path, node: _Map, allowed: set[str], required: set[str], what: str) -> None:
    for key in node:
        if key not in allowed:
            raise _fail(path, node.lines.get(key), f"{what}: unknown key {key!r}")
    for key in sorted(required - set(node)):
        raise _fail(path, node.line, f"{what}: missing key {key!r}")


def _line(node: Any, key: Any) -> int | None:
    if isinstance(node, _Map):
        return node.lines.get(key, node.line)
    if isinstance(node, _Seq) and isinstance(key, int) and key < len(node.lines):
        return node.lines[key]
    return getattr(node, "line", None)


# --- policy.yaml ------------------------------------------------------------------------

# Explicit ranges (inclusive); keys not listed get a range from their suffix below.
_POLICY_RANGES: dict[str, tuple[float, float]] = {
    "conservative_care_active_care_min_weeks": (12, 26),  # POLICY.md: configurable 12-26
    "conservative_care_episode_min_weeks": (1, 104),
    "neuro_mrc_deficit_max": (0, 5),
    "neuro_mrc_severe_max": (0, 5),
    "red_flags_fever_celsius": (37.0, 42.0),
    "red_flags_severe_pain_nrs": (0, 10),
    "conservative_care_nrs_improvement_points": (0, 10),
    "conservative_care_oswestry_improvement_points": (0, 100),
    "trauma_fracture_risk_age": (0, 120),
    "red_flags_first_episode_age": (0, 120),
    "population_min_age": (0, 120),
}
_SUFFIX_RANGES: dict[str, tuple[float, float]] = {
    "_days": (1, 3650),
    "_weeks": (1, 520),
    "_percent": (0, 100),
}
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str}


def load_policy(path: Path) -> Policy:
    """Read policy.yaml into a Policy: `section.key` becomes field `section_key`."""
    data = _read_yaml(path)
    fields = {f.name: _TYPES[str(f.type)] for f in dataclasses.fields(Policy)}
    values: dict[str, Any] = {}
    lines: dict[str, int | None] = {}
    for section, content in data.items():
        if section == "rules":
            continue  # the rule ids (traceability): load_rules
        if isinstance(content, _Map):
            for key, value in content.items():
                name = f"{section}_{key}"
                if name not in fields or name == "version":
                    raise _fail(path, content.lines[key], f"unknown key '{section}.{key}'")
                values[name], lines[name] = value, content.lines[key]
        elif section == "version":
            values[section], lines[section] = content, data.lines[section]
        else:
            raise _fail(path, data.lines[section], f"unknown key {section!r}")
    for name in fields:
        if name not in values:
            dotted = name if name == "version" else _dotted(name, data)
            raise _fail(path, None, f"missing key '{dotted}'")
    for name, kind in fields.items():
        values[name] = _policy_value(path, lines[name], name, values[name], kind)
    policy = Policy(**values)
    if policy.neuro_mrc_severe_max > policy.neuro_mrc_deficit_max:
        raise _fail(
            path,
            lines["neuro_mrc_severe_max"],
            "neuro.mrc_severe_max exceeds neuro.mrc_deficit_max",
        )
    return policy


_YIELD = re.compile(r"[a-z][a-z0-9-]*:[a-z][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule of POLICY.md: where it is stated and the criterion:reason pairs it yields."""

    id: str
    section: str
    yields: tuple[str, ...]


def load_rules(path: Path) -> dict[str, PolicyRule]:
    """The `rules` of policy.yaml: id -> PolicyRule (each with a section and yields)."""
    data = _read_yaml(path)
    rules = data.get("rules")
    if not isinstance(rules, _Map) or not rules:
        raise _fail(path, None, "missing key 'rules' (the POLICY.md rule ids)")
    found: dict[str, PolicyRule] = {}
    for rule_id, entry in rules.items():
        line = rules.lines[rule_id]
        if not isinstance(rule_id, str) or not _YIELD.fullmatch(f"{rule_id}:x"):
            raise _fail(path, line, f"rules: bad rule id {rule_id!r}")
        if not isinstance(entry, _Map) or set(entry) != {"section", "yields"}:
            raise _fail(path, line, f"rules.{rule_id}: needs exactly 'section' and 'yields'")
        yields = entry["yields"]
        if not isinstance(entry["section"], str) or not isinstance(yields, list) or not yields:
            raise _fail(path, line, f"rules.{rule_id}: a section text and a list of yields")
        for pair in yields:
            if not isinstance(pair, str) or not _YIELD.fullmatch(pair):
                raise _fail(path, line, f"rules.{rule_id}: {pair!r} is not 'criterion:reason'")
        found[rule_id] = PolicyRule(rule_id, entry["section"], tuple(yields))
    return found


def _dotted(name: str, data: _Map) -> str:
    """`red_flags_new_days` -> `red_flags.new_days`, using the sections present in the file."""
    for section in sorted(
        {"trauma", "neuro", "red_flags", "conservative_care", "repeat_imaging", *data},
        key=len,
        reverse=True,
    ):
        if isinstance(section, str) and name.startswith(section + "_"):
            return f"{section}.{name[len(section) + 1 :]}"
    return name


def _policy_value(path: Path, line: int | None, name: str, value: Any, kind: type) -> Any:
    label = _dotted(name, _Map())
    # bool is an int in Python; "true" for a number of days is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _fail(path, line, f"'{label}' must be {kind.__name__}, got {value!r}")
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise _fail(path, line, f"'{label}' must be a non-empty string, got {value!r}")
        return value
    if kind is int and not isinstance(value, int):
        raise _fail(path, line, f"'{label}' must be an integer, got {value!r}")
    if kind is float and not isinstance(value, (int, float)):
        raise _fail(path, line, f"'{label}' must be a number, got {value!r}")
    bounds = _POLICY_RANGES.get(name) or next(
        (r for suffix, r in _SUFFIX_RANGES.items() if name.endswith(suffix)), None
    )
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise _fail(
            path, line, f"'{label}' = {value!r} is out of range {bounds[0]:g}-{bounds[1]:g}"
        )
    return float(value) if kind is float else value


# --- concepts.yaml ----------------------------------------------------------------------


def _load_concepts(
    path: Path,
) -> tuple[dict[str, Concept], dict[str, dict[str, list[str]]]]:
    """Concepts by id, and their phrases: `keywords`, `exclude` and `reported` per concept."""
    data = _read_yaml(path)
    _check_keys(path, data, {"concepts"}, {"concepts"}, "concepts.yaml")
    entries = data["concepts"]
    if not isinstance(entries, _Map) or not entries:
        raise _fail(path, data.lines["concepts"], "'concepts' must be a non-empty mapping")
    concepts: dict[str, Concept] = {}
    keywords: dict[str, list[str]] = {}
    exclusions: dict[str, list[str]] = {}
    reported: dict[str, list[str]] = {}
    checked: dict[str, list[str]] = {}
    for cid, entry in entries.items():
        line = entries.lines[cid]
        if not isinstance(cid, str) or not _ID.match(cid):
            raise _fail(path, line, f"concept id {cid!r} must be lower-case words joined by '-'")
        if not isinstance(entry, _Map):
            raise _fail(path, line, f"concept {cid!r} must be a mapping")
        _check_keys(
            path,
            entry,
            {"kind", "label", "keywords", "exclude", "reported", "checked"},
            {"kind", "label"},
            cid,
        )
        kind, label = entry["kind"], entry["label"]
        if kind not in KINDS:
            raise _fail(path, _line(entry, "kind"), f"{cid}: unknown kind {kind!r}")
        if not isinstance(label, str) or not label.strip():
            raise _fail(path, _line(entry, "label"), f"{cid}: label must be a non-empty string")
        phrases = _phrases(path, entry, "keywords", cid) if "keywords" in entry else {}
        if kind == "order" and phrases:
            raise _fail(path, _line(entry, "keywords"), f"{cid}: order text belongs in orders.yaml")
        if kind == "text":
            for lang in TEXT_LANGUAGES:
                if not phrases.get(lang):
                    raise _fail(path, line, f"{cid}: a text concept needs {lang!r} keywords")
        if "exclude" in entry:
            if not phrases:
                raise _fail(path, _line(entry, "exclude"), f"{cid}: exclude without keywords")
            excluded = _phrases(path, entry, "exclude", cid)
            exclusions[cid] = [p for ps in excluded.values() for p in ps]
        if "reported" in entry:
            # lay words for a deficit: a finding only in an examination (POLICY "Objective
            # means examined")
            lay = _phrases(path, entry, "reported", cid)
            reported[cid] = [p for ps in lay.values() for p in ps]
        if "checked" in entry:
            names = _phrases(path, entry, "checked", cid)
            checked[cid] = [p for ps in names.values() for p in ps]
        concepts[cid] = Concept(cid, kind, label)
        keywords[cid] = [kw for kws in phrases.values() for kw in kws]
    return concepts, {
        "keywords": keywords,
        "exclude": exclusions,
        "reported": reported,
        "checked": checked,
    }


def _phrases(path: Path, node: _Map, key: str, what: str) -> dict[str, list[str]]:
    """A `{nl: [...], en: [...]}` phrase map, each phrase checked for matchable words."""
    langs = node[key]
    line = _line(node, key)
    if not isinstance(langs, _Map) or not langs:
        raise _fail(path, line, f"{what}: {key} must map languages (nl, en) to lists")
    result: dict[str, list[str]] = {}
    for lang in langs:
        lang_line = langs.lines[lang]
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise _fail(path, lang_line, f"{what}: {lang!r} is not a two-letter language code")
        result[lang] = _phrase_list(path, langs, lang, f"{what}.{key}.{lang}")
    return result


def _phrase_list(path: Path, node: _Map, key: str, what: str) -> list[str]:
    items = node[key]
    if not isinstance(items, _Seq) or not items:
        raise _fail(path, _line(node, key), f"{what}: expected a non-empty list")
    for index, item in enumerate(items):
        where = _line(items, index)
        if not isinstance(item, str) or not item.strip():
            raise _fail(path, where, f"{what}: {item!r} is not a phrase")
        try:
            phrase_words(item)
        except ValueError as exc:
            raise _fail(path, where, f"{what}: {exc}") from exc
    return list(items)


# --- code_systems.yaml ------------------------------------------------------------------


def _load_code_systems(path: Path) -> dict[str, CodeSystem]:
    """Declared systems by key, uri and alias (all lower-cased), families checked."""
    data = _read_yaml(path)
    _check_keys(path, data, {"systems"}, {"systems"}, "code_systems.yaml")
    entries = data["systems"]
    if not isinstance(entries, _Map) or not entries:
        raise _fail(path, data.lines["systems"], "'systems' must be a non-empty mapping")
    by_name: dict[str, CodeSystem] = {}
    uri_lines: dict[str, int] = {}
    families: dict[str, CodeSystem] = {}
    allowed = {"uri", "aliases", "family", "hierarchical", "ignore_dots", "ignore_case"}
    for key, entry in entries.items():
        line = entries.lines[key]
        if not isinstance(key, str) or not _ID.match(key):
            raise _fail(path, line, f"system key {key!r} must be lower-case words joined by '-'")
        if not isinstance(entry, _Map):
            raise _fail(path, line, f"system {key!r} must be a mapping")
        _check_keys(path, entry, allowed, {"uri"}, key)
        uri = entry["uri"]
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            raise _fail(path, _line(entry, "aliases"), f"{key}: aliases must be a list of URIs")
        for name in (uri, *aliases):
            if not isinstance(name, str) or ":" not in name:
                raise _fail(path, _line(entry, "uri"), f"{key}: {name!r} is not a URI")
            norm = _system_key(name)
            if norm in uri_lines:
                raise _fail(
                    path, line, f"{key}: {name} is already declared (line {uri_lines[norm]})"
                )
            uri_lines[norm] = line
        flags = {}
        for flag in ("hierarchical", "ignore_dots", "ignore_case"):
            value = entry.get(flag, False)
            if not isinstance(value, bool):
                raise _fail(path, _line(entry, flag), f"{key}: {flag} must be true or false")
            flags[flag] = value
        family = entry.get("family", key)
        if not isinstance(family, str) or not _ID.match(family):
            raise _fail(path, _line(entry, "family"), f"{key}: family must be an id")
        system = CodeSystem(key, uri, tuple(aliases), family, **flags)
        first = families.setdefault(family, system)
        if (first.hierarchical, first.ignore_dots, first.ignore_case) != (
            system.hierarchical,
            system.ignore_dots,
            system.ignore_case,
        ):
            raise _fail(
                path, line, f"{key}: hierarchical/ignore_* differ from {first.key} in its family"
            )
        by_name[key] = system
        for name in (uri, *aliases):
            by_name[_system_key(name)] = system
    return by_name


# --- valuesets/*.csv --------------------------------------------------------------------

_HEADER = ["system", "code", "display"]


def _load_valuesets(
    folder: Path, concepts: Mapping[str, Concept], systems: Mapping[str, CodeSystem]
) -> tuple[dict[tuple[str, str], frozenset[str]], dict[tuple[str, str], frozenset[str]]]:
    """Exact and prefix indexes: (family, normalised code) -> concept ids."""
    if not folder.is_dir():
        raise _fail(folder, None, "value set folder not found")
    exact: dict[tuple[str, str], set[str]] = {}
    prefixes: dict[tuple[str, str], set[str]] = {}
    seen: dict[tuple[str, str, bool], str] = {}  # -> "file:line" of the first occurrence
    for path in sorted(folder.glob("*.csv")):
        concept = path.stem
        if concept not in concepts:
            raise _fail(path, None, f"no concept {concept!r} in concepts.yaml")
        for line, system, code, is_prefix in _read_valueset(path, systems):
            key = (system.family, code, is_prefix)
            if key in seen:
                raise _fail(
                    path,
                    line,
                    f"{system.key} {code}{'*' if is_prefix else ''} is already listed at "
                    f"{seen[key]}: one code, one concept",
                )
            seen[key] = f"{path.name}:{line}"
            index = prefixes if is_prefix else exact
            index.setdefault((system.family, code), set()).add(concept)
    return (
        {k: frozenset(v) for k, v in exact.items()},
        {k: frozenset(v) for k, v in prefixes.items()},
    )


def _read_valueset(
    path: Path, systems: Mapping[str, CodeSystem]
) -> list[tuple[int, CodeSystem, str, bool]]:
    rows: list[tuple[int, CodeSystem, str, bool]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate the BOM spreadsheets write
    except UnicodeDecodeError as exc:
        raise _fail(path, None, f"not UTF-8: {exc}") from exc
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != _HEADER:
        raise _fail(path, 1, f"header must be {','.join(_HEADER)}")
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(_HEADER):
            raise _fail(path, line, f"expected 3 columns (system,code,display), got {len(row)}")
        name, raw, display = (cell.strip() for cell in row)
        system = systems.get(name) or systems.get(_system_key(name))
        if system is None:
            raise _fail(path, line, f"code system {name!r} is not declared in code_systems.yaml")
        if not raw or any(ch.isspace() for ch in raw):
            raise _fail(path, line, f"code {raw!r} is empty or contains whitespace")
        if not display:
            raise _fail(path, line, f"code {raw}: display is empty")
        is_prefix = raw.endswith("*")
        body = raw[:-1] if is_prefix else raw
        if "*" in body:
            raise _fail(path, line, f"code {raw!r}: '*' is only allowed at the end")
        if is_prefix and not system.hierarchical:
            raise _fail(
                path, line, f"code {raw!r}: {system.key} is not hierarchical, no '*' prefixes"
            )
        code = system.normalise(body)
        if not code:
            raise _fail(path, line, f"code {raw!r} is empty once normalised")
        rows.append((line, system, code, is_prefix))
    return rows


# --- orders.yaml ------------------------------------------------------------------------


def _load_orders(
    path: Path, concepts: Mapping[str, Concept]
) -> tuple[OrderMatcher[Modality], dict[Modality, str]]:
    data = _read_yaml(path)
    _check_keys(
        path, data, {"modalities", "regions", "exclude"}, {"modalities", "regions"}, "orders.yaml"
    )
    modalities = data["modalities"]
    if not isinstance(modalities, _Map):
        raise _fail(path, data.lines["modalities"], "'modalities' must be a mapping")
    phrases: dict[Modality, list[str]] = {}
    order_concepts: dict[Modality, str] = {}
    for name, entry in modalities.items():
        line = modalities.lines[name]
        try:
            modality = Modality(name)
        except ValueError:
            known = ", ".join(m.value for m in Modality)
            raise _fail(path, line, f"unknown modality {name!r} (known: {known})") from None
        if not isinstance(entry, _Map):
            raise _fail(path, line, f"modality {name!r} must be a mapping")
        _check_keys(path, entry, {"concept", "phrases"}, {"concept", "phrases"}, name)
        concept = entry["concept"]
        if concept not in concepts or concepts[concept].kind != "order":
            raise _fail(
                path, _line(entry, "concept"), f"{name}: {concept!r} is not an order concept"
            )
        order_concepts[modality] = concept
        phrases[modality] = [
            p for ps in _phrases(path, entry, "phrases", name).values() for p in ps
        ]
    for modality in Modality:
        if modality not in phrases:
            raise _fail(path, modalities.line, f"missing modality {modality.value!r}")
    regions = [p for ps in _phrases(path, data, "regions", "orders").values() for p in ps]
    exclude = (
        [p for ps in _phrases(path, data, "exclude", "orders").values() for p in ps]
        if "exclude" in data
        else []
    )
    return OrderMatcher(phrases, regions, exclude), order_concepts


# --- context.yaml -------------------------------------------------------------------------

_CONTEXT_KEYS = {
    "limits",
    "matching",
    "abbreviations",
    "sections",
    "clause_breaks",
    "list_words",
    "list_item_max",
    "answers",
    "priority",
    "contexts",
    "examination_cues",
    "examination_results",
    "qualifiers",
    "severe_pain_from",
    "regions",
}
_FAMILY_KEYS = {
    "window",
    "post_window",
    "scope",
    "applies_to",
    "pre",
    "post",
    "after_colon",
    "pseudo",
    "terminators",
    "pre_if_closed",
    "closers",
    "absence",
    "absence_is_finding",
    "forms",
    "normal",
    "blockers",
    "not_for",
    "post_clause",
    "pre_sentence",
}
_CUE_ROLES = {
    "pre": "pre",
    "post": "post",
    "after_colon": "colon",
    "pseudo": "pseudo",
    "terminators": "term",
    "pre_if_closed": "closed",
    "post_clause": "clause_post",
    "pre_sentence": "sentence_pre",
    "closers": "closer",
    "normal": "normal",
    "blockers": "blocker",
}


def _load_context(
    path: Path,
    concepts: Mapping[str, Concept],
    texts: Mapping[str, Mapping[str, list[str]]],
    policy: Policy,
) -> TextReader:
    """The text reader from context.yaml and the concepts' keywords, checked phrase by phrase."""
    data = _read_yaml(path)
    _check_keys(
        path,
        data,
        _CONTEXT_KEYS,
        _CONTEXT_KEYS - {"limits", "answers", "severe_pain_from", "regions"},
        "context.yaml",
    )
    limits = _map(path, data, "limits") if "limits" in data else _Map()
    _check_keys(path, limits, {"max_chars"}, set(), "limits")
    matching = _map(path, data, "matching")
    _check_keys(
        path,
        matching,
        {
            "gap",
            "typo_min_length",
            "never_fuzzy",
            "compound_prefix_min",
            "compound_head_min",
            "not_compound_heads",
            "split_prefixes",
            "compound_tails",
        },
        {"gap", "typo_min_length"},
        "matching",
    )

    def number(node: _Map, key: str, low: int, high: int, default: int) -> int:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(path, _line(node, key), f"{key} must be an integer {low}-{high}")
        return value

    def words(node: _Map, key: str, what: str = "") -> tuple[str, ...]:
        if key not in node:
            return ()
        value = node[key]
        where = what or key
        if isinstance(value, _Map):
            return tuple(p for ps in _phrases(path, node, key, where).values() for p in ps)
        return tuple(_phrase_list(path, node, key, f"{where}.{key}" if what else key))

    def single_words(node: _Map, key: str) -> frozenset[str]:
        found = set()
        for phrase in words(node, key):
            tokens = phrase_words(phrase)
            if len(tokens) != 1:
                raise _fail(path, _line(node, key), f"{key}: {phrase!r} must be one word")
            found.add(tokens[0])
        return frozenset(found)

    sections: dict[str, tuple[str, str | None, str | None, bool]] = {}
    section_exempt: dict[str, frozenset[str]] = {}
    section_map = _map(path, data, "sections")
    for name, entry in section_map.items():
        if name not in SECTIONS or not isinstance(entry, _Map):
            raise _fail(path, section_map.lines[name], f"unknown section {name!r}")
        _check_keys(
            path,
            entry,
            {"labels", "context", "source", "scope", "not_for"},
            {"labels"},
            f"sections.{name}",
        )
        ids = entry.get("not_for", [])
        for cid in ids if isinstance(ids, list) else [None]:
            if cid not in concepts:
                raise _fail(
                    path, _line(entry, "not_for"), f"sections.{name}: unknown concept {cid!r}"
                )
        section_exempt[name] = frozenset(ids)
        one_sentence = entry.get("scope", "section") == "sentence"
        if entry.get("scope", "section") not in ("section", "sentence"):
            raise _fail(
                path, _line(entry, "scope"), f"sections.{name}: scope is section or sentence"
            )
        context = entry.get("context")
        if context is not None and context not in CUE_FAMILIES:
            raise _fail(path, _line(entry, "context"), f"sections.{name}: unknown context")
        source = entry.get("source")
        if source not in (None, "examined", "reported"):
            raise _fail(
                path,
                _line(entry, "source"),
                f"sections.{name}: source must be examined or reported",
            )
        for label in _phrase_list(path, entry, "labels", f"sections.{name}.labels"):
            sections[label] = (name, context, source, one_sentence)

    priority = data["priority"]
    if not isinstance(priority, list) or sorted(priority) != sorted(CUE_FAMILIES):
        raise _fail(path, _line(data, "priority"), f"priority must list each of {CUE_FAMILIES}")
    families: dict[str, Family] = {}
    cues: dict[str, list[tuple[str, Cue]]] = {}
    absence: tuple[str, ...] = ()
    absence_ids: frozenset[str] = frozenset()
    forms: dict[str, list[str]] = {}
    contexts = _map(path, data, "contexts")
    _check_keys(path, contexts, set(CUE_FAMILIES), set(CUE_FAMILIES), "contexts")
    for name in CUE_FAMILIES:
        entry = contexts[name]
        if not isinstance(entry, _Map):
            raise _fail(path, contexts.lines[name], f"contexts.{name} must be a mapping")
        _check_keys(path, entry, _FAMILY_KEYS, {"pre"}, f"contexts.{name}")
        applies = entry.get("applies_to", [])
        for cid in applies if isinstance(applies, list) else [None]:
            if cid not in concepts:
                raise _fail(
                    path, _line(entry, "applies_to"), f"contexts.{name}: unknown concept {cid!r}"
                )
        scope = entry.get("scope", "clause")
        if scope not in ("clause", "sentence"):
            raise _fail(
                path, _line(entry, "scope"), f"contexts.{name}: scope is clause or sentence"
            )
        families[name] = Family(
            name,
            window=number(entry, "window", 0, 20, 0),
            post_window=number(entry, "post_window", 0, 10, 3),
            sentence_scope=scope == "sentence",
            applies_to=frozenset(applies),
        )
        for key, role in _CUE_ROLES.items():
            for phrase in words(entry, key, f"contexts.{name}"):
                cues.setdefault(name, []).append((phrase, Cue(name, role)))
        if "absence" in entry:
            absence = words(entry, "absence")
        if "absence_is_finding" in entry:
            ids = entry["absence_is_finding"]
            for cid in ids if isinstance(ids, list) else [None]:
                if cid not in concepts:
                    raise _fail(
                        path, _line(entry, "absence_is_finding"), f"unknown concept {cid!r}"
                    )
            absence_ids = frozenset(ids)
        if "forms" in entry:
            form_map = entry["forms"]
            if not isinstance(form_map, _Map):
                raise _fail(path, _line(entry, "forms"), "forms must map concept ids to phrases")
            for cid in form_map:
                if cid not in concepts:
                    raise _fail(path, form_map.lines[cid], f"forms: unknown concept {cid!r}")
                forms[cid] = [p for ps in _phrases(path, form_map, cid, cid).values() for p in ps]

    exempt: dict[str, frozenset[str]] = {}
    for name in CUE_FAMILIES:
        ids = contexts[name].get("not_for", [])
        for cid in ids if isinstance(ids, list) else [None]:
            if cid not in concepts:
                raise _fail(path, _line(contexts[name], "not_for"), f"unknown concept {cid!r}")
        exempt[name] = frozenset(ids)
    severe_from = data.get("severe_pain_from", [])
    for cid in severe_from if isinstance(severe_from, list) else [None]:
        if cid not in concepts:
            raise _fail(path, _line(data, "severe_pain_from"), f"unknown concept {cid!r}")
    regional: dict[str, list[str]] = {}
    elsewhere: tuple[str, ...] = ()
    if "regions" in data:
        regions = _map(path, data, "regions")
        _check_keys(path, regions, {"generic", "elsewhere"}, {"generic", "elsewhere"}, "regions")
        generic = _map(path, regions, "generic")
        for cid in generic:
            if cid not in concepts:
                raise _fail(path, generic.lines[cid], f"regions.generic: unknown concept {cid!r}")
            regional[cid] = [p for ps in _phrases(path, generic, cid, cid).values() for p in ps]
        elsewhere = words(regions, "elsewhere")
    results = _map(path, data, "examination_results")
    _check_keys(
        path,
        results,
        {"items", "abnormal", "normal"},
        {"items", "abnormal", "normal"},
        "examination_results",
    )
    items = _map(path, results, "items")
    exam_items: dict[str, str] = {}
    for item, deficit in items.items():
        if item not in concepts or (deficit and deficit not in concepts):
            raise _fail(
                path, items.lines[item], f"examination_results.items: unknown concept in {item!r}"
            )
        exam_items[item] = deficit or ""

    qualifiers = _map(path, data, "qualifiers")
    _check_keys(path, qualifiers, set(QUALIFIERS), set(QUALIFIERS), "qualifiers")
    qualifier_phrases = {
        name: [p for ps in _phrases(path, qualifiers, name, "qualifiers").values() for p in ps]
        for name in qualifiers
    }
    rules = ContextRules(
        families=families,
        cues=cues,
        priority=tuple(priority),
        sections=sections,
        clause_breaks=words(data, "clause_breaks"),
        list_words=words(data, "list_words"),
        list_item_max=number(data, "list_item_max", 1, 10, 4),
        answers=words(data, "answers"),
        abbreviations=single_words(data, "abbreviations"),
        absence=absence,
        absence_is_finding=absence_ids,
        forms=forms,
        examination_cues=words(data, "examination_cues"),
        exam_items=exam_items,
        exam_abnormal=words(results, "abnormal"),
        exam_normal=words(results, "normal"),
        qualifiers=qualifier_phrases,
        max_chars=number(limits, "max_chars", 1024, 16 * 1024 * 1024, 65536),
        gap=number(matching, "gap", 0, 5, 2),
        typo_min_length=number(matching, "typo_min_length", 4, 30, 7),
        never_fuzzy=single_words(matching, "never_fuzzy"),
        compound_prefix_min=number(matching, "compound_prefix_min", 2, 10, 3),
        compound_head_min=number(matching, "compound_head_min", 3, 20, 5),
        not_compound_heads=single_words(matching, "not_compound_heads"),
        split_prefixes=words(matching, "split_prefixes"),
        compound_tails=words(matching, "compound_tails"),
        exempt=exempt,
        severe_pain_from=frozenset(severe_from),
        regional=regional,
        elsewhere=elsewhere,
        section_exempt=section_exempt,
        mrc_deficit_max=policy.neuro_mrc_deficit_max,
        mrc_severe_max=policy.neuro_mrc_severe_max,
        fever_celsius=policy.red_flags_fever_celsius,
    )
    try:
        return TextReader(
            texts["keywords"],
            rules,
            exclusions=texts["exclude"],
            reported=texts["reported"],
            checked=texts["checked"],
            measurements=[c for c, concept in concepts.items() if concept.kind == "measurement"],
        )
    except ValueError as exc:
        raise _fail(path, None, str(exc)) from exc


def _map(path: Path, node: _Map, key: str) -> _Map:
    value = node[key]
    if not isinstance(value, _Map):
        raise _fail(path, _line(node, key), f"{key!r} must be a mapping")
    return value
