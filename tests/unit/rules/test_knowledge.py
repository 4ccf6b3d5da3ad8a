"""Tests for the mappings loader: policy, value sets, code systems and their validation."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from cds_service.errors import RuleDataError
from cds_service.rules.knowledge import (
    DEFAULT_MAPPINGS_DIR,
    Knowledge,
    Policy,
    default_knowledge,
    load_knowledge,
)
from cds_service.rules.model import Modality

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10_OID = "urn:oid:2.16.840.1.113883.6.3"
ICPC = "http://hl7.org/fhir/sid/icpc-2"
ICPC_NL = "urn:oid:2.16.840.1.113883.2.4.4.31.1"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
ATC = "http://www.whocc.no/atc"


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    """The shipped mappings, loaded once for this module."""
    return load_knowledge()


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    """A writable copy of the shipped mappings directory, to break on purpose."""
    target = tmp_path / "mappings"
    shutil.copytree(DEFAULT_MAPPINGS_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact piece of a file, failing loudly when the piece is not there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def load_error(mappings: Path) -> str:
    """The RuleDataError message produced by loading a broken mappings copy."""
    with pytest.raises(RuleDataError) as caught:
        load_knowledge(mappings)
    return str(caught.value)


# --- happy path ------------------------------------------------------------------------


def test_loads_policy_with_flattened_keys(knowledge: Knowledge) -> None:
    policy = knowledge.policy
    assert isinstance(policy, Policy)
    assert policy.version == "2026.12.1"
    assert policy.trauma_window_days == 90
    assert policy.red_flags_fever_celsius == 38.0
    assert isinstance(policy.red_flags_severe_pain_nrs, float)  # int in YAML, float field
    assert policy.conservative_care_active_care_min_weeks == 12
    assert policy.repeat_imaging_window_days == 365


def test_concepts_are_loaded_with_kind_and_label(knowledge: Knowledge) -> None:
    fever = knowledge.concepts["fever"]
    assert (fever.id, fever.kind, fever.label) == ("fever", "condition", "Fever")
    assert knowledge.concepts_of_kind("order") == {"lumbar-xray", "lumbar-mri", "lumbar-ct"}
    with pytest.raises(TypeError):
        knowledge.concepts["x"] = fever  # type: ignore[index]


def test_version_combines_policy_version_and_content_hash(knowledge: Knowledge) -> None:
    assert re.fullmatch(r"2026\.12\.1\+[0-9a-f]{10}", knowledge.version)


def test_version_changes_when_a_value_set_changes(mappings: Path) -> None:
    before = load_knowledge(mappings).version
    with (mappings / "valuesets" / "fever.csv").open("a", encoding="utf-8") as f:
        f.write("snomed,999999001,Local fever code\n")
    assert load_knowledge(mappings).version != before


def test_default_knowledge_is_cached() -> None:
    assert default_knowledge() is default_knowledge()


def test_order_concepts_map_to_modalities(knowledge: Knowledge) -> None:
    assert knowledge.order_concept(Modality.MRI) == "lumbar-mri"
    assert knowledge.modality_of("lumbar-xray") is Modality.XRAY
    assert knowledge.modality_of("fever") is None


# --- coding matches --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code", "concept"),
    [
        (SNOMED, "279039007", "low-back-pain"),
        (ICD10, "M54.5", "low-back-pain"),
        (ICD10, "M545", "low-back-pain"),  # dots ignored
        (ICD10, "m54.5", "low-back-pain"),  # case ignored
        (ICD10CM, "M54.50", "low-back-pain"),  # family + prefix M54.5*
        (ICD10_OID, "M54.59", "low-back-pain"),  # OID alias in the same family
        (ICD10CM, "M48.062", "lumbar-stenosis"),
        (ICD10, "C79.5", "malignancy"),  # C* covers the whole chapter
        (ICD10CM, "W11.XXXA", "trauma-major"),  # ladder fall
        (ICD10CM, "W01.0XXA", "trauma-minor"),  # slip on the same level
        (ICD10, "V43.5", "trauma-major"),
        (ICPC, "L03", "low-back-pain"),
        (ICPC_NL, "L86.01", "sciatica"),  # Dutch ICPC-1 sub-code under L86
        (CPT, "72148", "lumbar-mri"),
        (LOINC, "24972-2", "lumbar-xray"),
        (LOINC, "8310-5", "body-temperature"),
        (ATC, "H02AB06", "systemic-corticosteroid"),
        (ATC, "h02ab06", "systemic-corticosteroid"),
        (SNOMED + "/", "386661006", "fever"),  # a trailing slash on the system is tolerated
    ],
)
def test_concepts_for_coding_matches(
    knowledge: Knowledge, system: str, code: str, concept: str
) -> None:
    assert concept in knowledge.concepts_for_coding(system, code)


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (SNOMED, "27903900"),  # SNOMED is not hierarchical: no prefix match
        (SNOMED, "2790390071"),  # nor the other way round
        (ICD10, "M54"),  # shorter than the M54.5 prefix
        (ICD10, "M54.2"),  # cervicalgia
        (ICPC, "L02"),  # thoracic back complaint, not low back
        (ICD10, "R20.2"),  # paraesthesia is not a sensory deficit
        (ICD10, "F12.1"),  # cannabis is not IV drug use
        (CPT, "7214"),  # CPT is not hierarchical
        ("http://example.org/unknown", "279039007"),
        (SNOMED, ""),
        ("", "279039007"),
    ],
)
def test_concepts_for_coding_rejects(knowledge: Knowledge, system: str, code: str) -> None:
    assert knowledge.concepts_for_coding(system, code) == frozenset()


def test_snomed_code_under_icd_system_does_not_match(knowledge: Knowledge) -> None:
    # code spaces are per family: a SNOMED id sent as ICD-10 means nothing
    assert knowledge.concepts_for_coding(ICD10, "279039007") == frozenset()


def test_overlapping_prefixes_return_every_concept(knowledge: Knowledge) -> None:
    # B20 (HIV) is immunosuppression and, through B*, an infectious disease
    assert knowledge.concepts_for_coding(ICD10, "B20") == {"immunosuppression", "recent-infection"}


def test_icpc_and_icd_codes_with_same_text_stay_apart(knowledge: Knowledge) -> None:
    # ICPC A03 is fever; ICD-10 A03 is shigellosis (an infection)
    assert knowledge.concepts_for_coding(ICPC, "A03") == {"fever"}
    assert knowledge.concepts_for_coding(ICD10, "A03.9") == {"recent-infection"}


def test_concepts_for_codeable_reads_codings_and_text(knowledge: Knowledge) -> None:
    result = knowledge.concepts_for_codeable(
        {
            "coding": [
                {"system": ICPC_NL, "code": "L03", "display": "Lage-rugpijn"},
                "not a coding",
                {"system": SNOMED, "code": 123},
            ],
            "text": "Lage rugpijn, geen koorts",
        }
    )
    assert result.coded == {"low-back-pain"}
    assert "low-back-pain" in result.text_concepts
    assert result.negated_concepts == {"fever"}
    assert result.concepts == {"low-back-pain"}


def test_concepts_for_codeable_tolerates_junk(knowledge: Knowledge) -> None:
    assert knowledge.concepts_for_codeable(None).concepts == frozenset()
    assert knowledge.concepts_for_codeable({"coding": "x"}).concepts == frozenset()


# --- policy validation -----------------------------------------------------------------


def test_policy_unknown_key(mappings: Path) -> None:
    edit(mappings / "policy.yaml", "  window_days: 90 ", "  window_days: 90\n  windows: 3 ")
    message = load_error(mappings)
    assert "policy.yaml:" in message and "trauma.windows" in message and "unknown" in message


def test_policy_rules_are_loaded_with_their_yields(knowledge: Knowledge) -> None:
    rule = knowledge.rules["cauda-equina"]
    assert rule.section == "3 Red flags" and rule.yields == ("red-flag:cauda-equina",)


def test_policy_rule_with_a_malformed_yield(mappings: Path) -> None:
    edit(mappings / "policy.yaml", '"red-flag:night-pain"', '"night pain"')
    message = load_error(mappings)
    assert "rules.night-pain" in message and "criterion:reason" in message


def test_policy_rule_without_section(mappings: Path) -> None:
    edit(mappings / "policy.yaml", 'night-pain: {section: "3 Red flags", ', "night-pain: {")
    assert "rules.night-pain: needs exactly 'section' and 'yields'" in load_error(mappings)


def test_policy_unknown_section(mappings: Path) -> None:
    edit(mappings / "policy.yaml", "repeat_imaging:", "extra: 1\nrepeat_imaging:")
    assert "unknown key 'extra'" in load_error(mappings)


def test_policy_missing_key(mappings: Path) -> None:
    edit(mappings / "policy.yaml", "  fever_window_days: 14\n", "")
    message = load_error(mappings)
    assert "policy.yaml" in message and "missing key 'red_flags.fever_window_days'" in message


def test_policy_missing_version(mappings: Path) -> None:
    edit(mappings / "policy.yaml", 'version: "2026.12.1"', "")
    assert "missing key 'version'" in load_error(mappings)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("window_days: 90 ", 'window_days: "90" ', "trauma.window_days"),
        ("window_days: 90 ", "window_days: 90.5 ", "trauma.window_days"),
        ("window_days: 90 ", "window_days: true ", "trauma.window_days"),
        ("fever_celsius: 38.0", "fever_celsius: warm", "red_flags.fever_celsius"),
        ('version: "2026.12.1"', "version: [1]", "version"),
    ],
)
def test_policy_wrong_type(mappings: Path, old: str, new: str, key: str) -> None:
    edit(mappings / "policy.yaml", old, new)
    message = load_error(mappings)
    assert f"'{key}' must be" in message
    assert re.search(r"policy\.yaml:\d+:", message)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("active_care_min_weeks: 12", "active_care_min_weeks: 11", "active_care_min_weeks"),
        ("active_care_min_weeks: 12", "active_care_min_weeks: 27", "active_care_min_weeks"),
        ("weight_loss_percent: 5.0", "weight_loss_percent: 101", "weight_loss_percent"),
        ("nrs_improvement_percent: 30", "nrs_improvement_percent: -1", "nrs_improvement"),
        ("window_days: 365", "window_days: 0", "repeat_imaging.window_days"),
        ("new_days: 30", "new_days: -5", "red_flags.new_days"),
        ("mrc_deficit_max: 4", "mrc_deficit_max: 6", "mrc_deficit_max"),
        ("severe_pain_nrs: 7", "severe_pain_nrs: 11", "severe_pain_nrs"),
    ],
)
def test_policy_out_of_range(mappings: Path, old: str, new: str, key: str) -> None:
    edit(mappings / "policy.yaml", old, new)
    message = load_error(mappings)
    assert "out of range" in message and key in message and "policy.yaml:" in message


def test_policy_in_range_edge_is_accepted(mappings: Path) -> None:
    edit(mappings / "policy.yaml", "active_care_min_weeks: 12", "active_care_min_weeks: 26")
    assert load_knowledge(mappings).policy.conservative_care_active_care_min_weeks == 26


def test_policy_severe_above_deficit_is_refused(mappings: Path) -> None:
    edit(mappings / "policy.yaml", "mrc_severe_max: 3", "mrc_severe_max: 5")
    assert "mrc_severe_max exceeds" in load_error(mappings)


def test_policy_field_list_matches_the_file(knowledge: Knowledge) -> None:
    # every Policy field is loaded from the file (none silently defaulted)
    assert all(getattr(knowledge.policy, f.name) is not None for f in dataclasses.fields(Policy))


# --- value set validation --------------------------------------------------------------


def test_valueset_undeclared_system(mappings: Path) -> None:
    with (mappings / "valuesets" / "fever.csv").open("a", encoding="utf-8") as f:
        f.write("icd-11,1D01,Fever\n")
    message = load_error(mappings)
    assert "fever.csv:" in message and "'icd-11' is not declared" in message


def test_valueset_duplicate_code_across_concepts(mappings: Path) -> None:
    with (mappings / "valuesets" / "fever.csv").open("a", encoding="utf-8") as f:
        f.write("snomed,279039007,Low back pain\n")
    message = load_error(mappings)
    assert "279039007" in message and "low-back-pain.csv:" in message


def test_valueset_duplicate_through_family_and_dots(mappings: Path) -> None:
    # M54.5* in icd-10 and M545* in icd-10-cm are the same row once normalised
    with (mappings / "valuesets" / "sciatica.csv").open("a", encoding="utf-8") as f:
        f.write("icd-10-cm,M545*,Low back pain\n")
    assert "already listed" in load_error(mappings)


def test_valueset_prefix_on_flat_system(mappings: Path) -> None:
    with (mappings / "valuesets" / "fever.csv").open("a", encoding="utf-8") as f:
        f.write("snomed,38666*,Fever-ish\n")
    assert "not hierarchical" in load_error(mappings)


def test_valueset_star_in_the_middle(mappings: Path) -> None:
    with (mappings / "valuesets" / "fever.csv").open("a", encoding="utf-8") as f:
        f.write("icd-10,R5*0,Fever\n")
    assert "only allowed at the end" in load_error(mappings)


def test_valueset_bad_header(mappings: Path) -> None:
    path = mappings / "valuesets" / "fever.csv"
    edit(path, "system,code,display", "system,code")
    assert "fever.csv:1: header" in load_error(mappings)


def test_valueset_wrong_column_count_names_the_line(mappings: Path) -> None:
    path = mappings / "valuesets" / "fever.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(2, "snomed,1234")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "fever.csv:3: expected 3 columns" in load_error(mappings)


def test_valueset_for_unknown_concept(mappings: Path) -> None:
    shutil.copy(mappings / "valuesets" / "fever.csv", mappings / "valuesets" / "fevers.csv")
    assert "no concept 'fevers'" in load_error(mappings)


def test_valueset_empty_display(mappings: Path) -> None:
    with (mappings / "valuesets" / "fever.csv").open("a", encoding="utf-8") as f:
        f.write("snomed,999999001,\n")
    assert "display is empty" in load_error(mappings)


def test_valueset_local_system_can_be_declared(mappings: Path) -> None:
    with (mappings / "code_systems.yaml").open("a", encoding="utf-8") as f:
        f.write("  umcx-local:\n    uri: https://fhir.umcx.example/CodeSystem/orders\n")
    with (mappings / "valuesets" / "lumbar-mri.csv").open("a", encoding="utf-8") as f:
        f.write("umcx-local,MR-LWK,MRI lumbale wervelkolom\n")
    knowledge = load_knowledge(mappings)
    assert knowledge.concepts_for_coding(
        "https://fhir.umcx.example/CodeSystem/orders", "MR-LWK"
    ) == {"lumbar-mri"}


# --- code system / concept / orders / modifiers validation ---------------------------


def test_code_system_duplicate_uri(mappings: Path) -> None:
    with (mappings / "code_systems.yaml").open("a", encoding="utf-8") as f:
        f.write("  snomed-again:\n    uri: http://snomed.info/sct\n")
    assert "already declared" in load_error(mappings)


def test_code_system_family_members_must_agree(mappings: Path) -> None:
    with (mappings / "code_systems.yaml").open("a", encoding="utf-8") as f:
        f.write("  icd-10-nl:\n    uri: urn:example:icd10nl\n    family: icd-10\n")
    assert "differ from icd-10" in load_error(mappings)


def test_code_system_unknown_key(mappings: Path) -> None:
    edit(mappings / "code_systems.yaml", "    hierarchical: true\n", "    hierarchy: true\n")
    message = load_error(mappings)
    assert "code_systems.yaml:" in message and "unknown key 'hierarchy'" in message


def test_concept_unknown_kind(mappings: Path) -> None:
    edit(mappings / "concepts.yaml", "kind: text", "kind: txt")
    assert re.search(r"concepts\.yaml:\d+: .*unknown kind 'txt'", load_error(mappings))


def test_concept_duplicate_id_is_refused(mappings: Path) -> None:
    edit(
        mappings / "concepts.yaml",
        "  lumbar-ct: {",
        '  lumbar-mri: {kind: order, label: "again"}\n  lumbar-ct: {',
    )
    assert "duplicate key 'lumbar-mri'" in load_error(mappings)


def test_text_concept_needs_both_languages(mappings: Path) -> None:
    edit(mappings / "concepts.yaml", "      en: [night pain,", "      de: [night pain,")
    assert "night-pain: a text concept needs 'en' keywords" in load_error(mappings)


def test_order_concept_keywords_are_refused(mappings: Path) -> None:
    edit(
        mappings / "concepts.yaml",
        'lumbar-ct: {kind: order, label: "Lumbar spine CT"}',
        'lumbar-ct: {kind: order, label: "Lumbar spine CT", keywords: {nl: [ct lwk]}}',
    )
    assert "orders.yaml" in load_error(mappings)


def test_too_short_stem_is_refused(mappings: Path) -> None:
    edit(mappings / "concepts.yaml", "[koorts, ", "[ko*, koorts, ")
    assert "a stem needs one word of 3 letters" in load_error(mappings)


def test_non_string_keyword_is_refused(mappings: Path) -> None:
    # YAML 1.1 reads a bare `no` as false: the loader must not let it through
    edit(mappings / "context.yaml", '["no", not, without', "[no, not, without")
    error = load_error(mappings)
    assert re.search(r"context\.yaml:\d+: contexts\.negated\.pre\.en: False", error)


def test_orders_unknown_concept(mappings: Path) -> None:
    edit(mappings / "orders.yaml", "concept: lumbar-ct", "concept: lumbar-pet")
    assert "'lumbar-pet' is not an order concept" in load_error(mappings)


def test_orders_unknown_modality(mappings: Path) -> None:
    edit(mappings / "orders.yaml", "  ct:\n", "  pet:\n")
    assert "unknown modality 'pet'" in load_error(mappings)


def test_context_unknown_concept_in_absence_list(mappings: Path) -> None:
    edit(
        mappings / "context.yaml",
        "absence_is_finding: [reflex-loss,",
        "absence_is_finding: [reflex-lost,",
    )
    assert "unknown concept 'reflex-lost'" in load_error(mappings)


def test_context_missing_qualifier(mappings: Path) -> None:
    edit(mappings / "context.yaml", "  bilateral:\n    nl:", "  both:\n    nl:")
    assert "qualifiers: unknown key 'both'" in load_error(mappings)


def test_context_unknown_family(mappings: Path) -> None:
    edit(mappings / "context.yaml", "  suspected:\n    pre:", "  doubted:\n    pre:")
    assert "contexts: unknown key 'doubted'" in load_error(mappings)


def test_context_priority_names_every_family(mappings: Path) -> None:
    edit(mappings / "context.yaml", "priority: [negated, family,", "priority: [family,")
    assert "priority must list each of" in load_error(mappings)


def test_context_unknown_section(mappings: Path) -> None:
    edit(mappings / "context.yaml", "  DD:\n    labels:", "  XX:\n    labels:")
    assert "unknown section 'XX'" in load_error(mappings)


def test_context_unknown_concept_in_applies_to(mappings: Path) -> None:
    edit(mappings / "context.yaml", "applies_to: [muscle-weakness,", "applies_to: [muscle-weak,")
    assert "unknown concept 'muscle-weak'" in load_error(mappings)


def test_missing_file(mappings: Path) -> None:
    (mappings / "orders.yaml").unlink()
    assert "orders.yaml: file not found" in load_error(mappings)


def test_invalid_yaml_names_the_line(mappings: Path) -> None:
    edit(mappings / "orders.yaml", "modalities:", "modalities: [")
    assert re.search(r"orders\.yaml:\d+", load_error(mappings))


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleDataError, match="not found"):
        load_knowledge(tmp_path / "nowhere")
