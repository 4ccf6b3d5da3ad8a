"""Content checks of mappings/: value sets, code systems and keywords, as a reviewer would."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.rules.knowledge import DEFAULT_MAPPINGS_DIR, Knowledge, load_knowledge
from cds_service.rules.textmatch import normalise
from cds_service.rules.textreader import CUE_FAMILIES

MAPPINGS = DEFAULT_MAPPINGS_DIR
VALUESETS = sorted((MAPPINGS / "valuesets").glob("*.csv"))
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICPC = "http://hl7.org/fhir/sid/icpc-2"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
ATC = "http://www.whocc.no/atc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def read_yaml(name: str) -> Any:
    """A mappings YAML file, read without the loader under test."""
    return yaml.safe_load((MAPPINGS / name).read_text(encoding="utf-8"))


CONCEPTS: dict[str, dict[str, Any]] = read_yaml("concepts.yaml")["concepts"]
SYSTEMS: dict[str, dict[str, Any]] = read_yaml("code_systems.yaml")["systems"]


def rows(path: Path) -> list[list[str]]:
    """The data rows of a value set CSV."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))[1:]


def family_key(system: str, code: str) -> tuple[str, str]:
    """(family, code as compared) for a CSV row, from code_systems.yaml."""
    entry = SYSTEMS[system]
    if entry.get("ignore_dots"):
        code = code.replace(".", "")
    if entry.get("ignore_case"):
        code = code.upper()
    return entry.get("family", system), code


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped mappings."""
    return load_knowledge()


def test_shipped_mappings_load(knowledge: Knowledge) -> None:
    assert len(knowledge.concepts) == len(CONCEPTS)


def test_there_are_value_sets() -> None:
    assert len(VALUESETS) >= 30


@pytest.mark.parametrize("path", VALUESETS, ids=lambda p: p.name)
def test_valueset_is_well_formed(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not text.startswith("\ufeff"), "no byte-order mark"
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == "system,code,display"
    assert path.stem in CONCEPTS, "the file name is a concept id"
    data = rows(path)
    assert data, "a value set file is not empty"
    for number, row in enumerate(data, start=2):
        assert len(row) == 3, f"line {number}"
        system, code, display = row
        assert system in SYSTEMS, f"line {number}: undeclared system {system!r}"
        assert code and code == code.strip() and " " not in code, f"line {number}"
        assert display and display == display.strip(), f"line {number}"
        if code.endswith("*"):
            assert SYSTEMS[system].get("hierarchical"), f"line {number}: prefix on flat system"
            assert "*" not in code[:-1]
        else:
            assert "*" not in code


def test_every_system_has_a_canonical_uri() -> None:
    expected = {
        "snomed": SNOMED,
        "loinc": LOINC,
        "icd-10": ICD10,
        "icd-10-cm": ICD10CM,
        "icpc-2": ICPC,
        "cpt": CPT,
        "atc": ATC,
        "rxnorm": RXNORM,
    }
    for key, uri in expected.items():
        assert SYSTEMS[key]["uri"] == uri
    assert SYSTEMS["icd-10"]["family"] == SYSTEMS["icd-10-cm"]["family"]


def test_prefix_systems_are_exactly_the_classifications() -> None:
    hierarchical = {key for key, entry in SYSTEMS.items() if entry.get("hierarchical")}
    assert hierarchical == {"icd-10", "icd-10-cm", "icpc-2", "icpc-1-nl", "atc"}


def test_no_code_in_two_concepts() -> None:
    owners: dict[tuple[str, str], list[str]] = {}
    for path in VALUESETS:
        for system, code, _ in rows(path):
            owners.setdefault(family_key(system, code), []).append(path.stem)
    duplicates = {key: names for key, names in owners.items() if len(names) > 1}
    assert duplicates == {}


@pytest.mark.parametrize(
    ("concept", "system", "code"),
    [
        (None, SNOMED, "271594007"),  # syncope, never saddle anaesthesia
        ("low-back-pain", ICPC, "L02"),  # thoracic back complaint
        ("sensory-loss", ICD10, "R20.2"),  # paraesthesia is not a deficit
        ("sensory-loss", ICD10, "R20.3"),
        ("iv-drug-use", ICD10, "F12.1"),  # cannabis
        ("iv-drug-use", ICD10, "F13.2"),
        ("iv-drug-use", ICD10, "F16.0"),
        ("iv-drug-use", ICD10, "F19.9"),
        ("lumbar-injury", ICD10, "S36.1"),  # abdominal organ injury is not lumbar trauma
        ("lumbar-injury", ICD10, "S32.4"),  # acetabulum
        ("muscle-weakness", ICD10, "R20.2"),
    ],
)
def test_banned_codes(knowledge: Knowledge, concept: str | None, system: str, code: str) -> None:
    hits = knowledge.concepts_for_coding(system, code)
    if concept is None:
        assert hits == frozenset()
    else:
        assert concept not in hits


def test_banned_codes_are_not_in_the_files() -> None:
    for path in VALUESETS:
        codes = {code.rstrip("*") for _, code, _ in rows(path)}
        assert "271594007" not in codes, path.name
    low_back = rows(MAPPINGS / "valuesets" / "low-back-pain.csv")
    assert "L02" not in {code.rstrip("*") for _, code, _ in low_back}


@pytest.mark.parametrize(
    ("system", "code", "concept"),
    [
        # orders
        (CPT, "72100", "lumbar-xray"),
        (CPT, "72120", "lumbar-xray"),
        (LOINC, "36332-5", "lumbar-xray"),
        (SNOMED, "840361000", "lumbar-xray"),
        (CPT, "72158", "lumbar-mri"),
        (LOINC, "30679-5", "lumbar-mri"),
        (SNOMED, "394451000119106", "lumbar-mri"),
        (CPT, "72133", "lumbar-ct"),
        (LOINC, "36402-6", "lumbar-ct"),
        (SNOMED, "711224009", "lumbar-ct"),
        # episode
        (SNOMED, "278860009", "low-back-pain"),
        (SNOMED, "278862001", "low-back-pain"),
        (SNOMED, "279040009", "low-back-pain"),
        (ICD10CM, "M54.51", "low-back-pain"),
        (ICPC, "L84", "low-back-pain"),
        (SNOMED, "23056005", "sciatica"),
        (SNOMED, "128196005", "sciatica"),
        (SNOMED, "2415007", "sciatica"),
        (SNOMED, "202735001", "sciatica"),
        (ICD10CM, "M54.41", "sciatica"),
        (ICD10CM, "M51.16", "sciatica"),
        (ICD10, "M54.17", "sciatica"),
        (ICPC, "L86", "sciatica"),
        (SNOMED, "18347007", "lumbar-stenosis"),
        # red flags and deficits
        (ICD10, "G83.4", "cauda-equina"),
        (ICPC, "U08", "urinary-retention"),
        (ICPC, "D17", "faecal-incontinence"),
        (ICD10, "R32", "urinary-incontinence"),
        (ICPC, "N18", "muscle-weakness"),
        (ICD10CM, "M21.371", "foot-drop"),
        (ICD10, "R20.1", "sensory-loss"),
        (ICD10, "R50.9", "fever"),
        (ICPC, "T08", "weight-loss"),
        (ICD10, "C50.9", "malignancy"),
        (ICD10CM, "Z85.3", "malignancy"),
        (ICD10, "M81.0", "osteoporosis"),
        (ICPC, "L95", "osteoporosis"),
        (ICD10, "Z94.0", "immunosuppression"),
        (ICD10, "Z21", "immunosuppression"),
        (SNOMED, "228388006", "iv-drug-use"),
        (ICD10CM, "F11.20", "iv-drug-use"),
        (ICD10, "S32.0", "lumbar-injury"),
        (ICD10CM, "S33.5XXA", "lumbar-injury"),
        (SNOMED, "125608002", "lumbar-injury"),
        (ICPC, "L76", "lumbar-injury"),
        (ICD10CM, "V89.2XXA", "trauma-major"),
        (ICD10, "W17", "trauma-major"),
        (ICD10, "W19", "trauma-minor"),
        (ICD10CM, "M46.46", "spinal-infection"),
        (ICD10, "G06.1", "spinal-infection"),
        (RXNORM, "8640", "systemic-corticosteroid"),
        (ATC, "H02AB07", "systemic-corticosteroid"),
        (ICD10, "E11.9", "diabetes"),
        (ICPC, "T90", "diabetes"),
        (ICD10, "N39.0", "recent-infection"),
        (ICPC, "U71", "recent-infection"),
        (CPT, "62323", "spinal-procedure"),
        (CPT, "22612", "spinal-procedure"),
        (ICPC, "W78", "pregnancy"),
        (ICD10CM, "O09.90", "pregnancy"),
        # care and measurements
        (SNOMED, "91251008", "active-care"),
        (CPT, "97163", "active-care"),
        (CPT, "98942", "passive-care"),
        (CPT, "98929", "passive-care"),
        (LOINC, "72514-3", "pain-score"),
        (LOINC, "10202-0", "neuro-exam"),
        (LOINC, "29463-7", "body-weight"),
        (LOINC, "8310-5", "body-temperature"),
    ],
)
def test_codes_md_codes_are_recognised(
    knowledge: Knowledge, system: str, code: str, concept: str
) -> None:
    assert concept in knowledge.concepts_for_coding(system, code)


def test_major_and_minor_falls_do_not_overlap(knowledge: Knowledge) -> None:
    for number in range(20):
        hits = knowledge.concepts_for_coding(ICD10, f"W{number:02d}")
        assert len(hits & {"trauma-major", "trauma-minor"}) <= 1, number


def test_text_concepts_have_dutch_and_english_keywords() -> None:
    for cid, entry in CONCEPTS.items():
        if entry["kind"] == "text":
            keywords = entry.get("keywords") or {}
            assert keywords.get("nl") and keywords.get("en"), cid


def test_non_order_concepts_without_codes_have_keywords() -> None:
    with_codes = {p.stem for p in VALUESETS}
    for cid, entry in CONCEPTS.items():
        if entry["kind"] != "order" and cid not in with_codes:
            assert entry.get("keywords"), f"{cid} can be recognised neither by code nor by text"


def test_keywords_are_unique_per_language() -> None:
    # the same word under nl and en is fine ("lumbago"); twice in one list is a slip
    for cid, entry in CONCEPTS.items():
        for lang, keywords in (entry.get("keywords") or {}).items():
            words = Counter(normalise(k) for k in keywords)
            assert [w for w, n in words.items() if n > 1] == [], f"{cid}.{lang}"


def test_no_keyword_is_a_bare_negation_cue() -> None:
    cues = read_yaml("context.yaml")["contexts"]["negated"]["pre"]
    bare = {normalise(c) for cs in cues.values() for c in cs}
    for cid, entry in CONCEPTS.items():
        for ks in (entry.get("keywords") or {}).values():
            assert not {normalise(k) for k in ks} & bare, cid


def test_context_lists_are_in_the_mappings() -> None:
    context = read_yaml("context.yaml")
    assert set(context["qualifiers"]) == {"severe", "progressive", "bilateral", "left", "right"}
    assert "reflex-loss" in context["contexts"]["negated"]["absence_is_finding"]
    assert set(context["contexts"]) == set(CUE_FAMILIES)


@pytest.mark.parametrize(
    ("concept", "keywords"),
    [
        ("fever", ["koorts", "fever", "febrile"]),
        ("saddle-anaesthesia", ["zadelanesthesie", "rijbroekanesthesie", "perineal numbness"]),
        ("reflex-loss", ["APR afwezig", "areflexie", "absent reflex", "diminished reflex"]),
        ("first-episode", ["nooit eerder rugklachten", "first episode", "no previous back pain"]),
        ("night-pain", ["nachtelijke pijn", "pijn in rust", "night pain", "pain at rest"]),
        ("trauma-major", ["verkeersongeval", "val van hoogte", "fall from height"]),
        ("trauma-minor", ["vanuit stand", "uitgegleden", "tillen", "lifting", "twisting"]),
        ("active-care", ["oefentherapie", "fysiotherapie", "Mensendieck", "physical therapy"]),
        ("passive-care", ["massage", "manuele therapie", "wervels rechtzetten", "chiropractic"]),
        ("surgical-referral", ["neurochirurg", "wervelkolomchirurg", "spine surgeon"]),
        ("radicular-symptoms", ["tintelingen", "lasègue positief", "positive SLR"]),
        ("sensory-loss", ["hypesthesie", "O: doof gevoel", "numbness on examination"]),
        ("muscle-weakness", ["krachtsverlies", "parese", "weakness"]),
    ],
)
def test_brief_keywords_match(knowledge: Knowledge, concept: str, keywords: list[str]) -> None:
    for keyword in keywords:
        hits = {m.concept for m in knowledge.match_text(keyword) if m.affirmed}
        assert concept in hits, keyword


@pytest.mark.parametrize("text", ["doof gevoel", "numbness", "voelt slap"])
def test_lay_words_for_a_deficit_are_radicular_symptoms(knowledge: Knowledge, text: str) -> None:
    hits = {m.concept for m in knowledge.match_text(text) if m.affirmed}
    assert "radicular-symptoms" in hits
    assert not hits & {"sensory-loss", "muscle-weakness"}
