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
- `Knowledge.match_text(text) -> tuple[TextMatch, ...]`: keyword matches in free text, case-
  and accent-insensitive, word-bounded, with negation ("geen koorts", "no fever") reported as
  `negated=True` and modifiers found in the same sentence as `qualifiers`
  ("severe", "progressive", "bilateral", "left", "right").
- `Knowledge.order_modality(text) -> Modality | None`: lumbar X-ray/MRI/CT recognised from an
  order's text (a modality word and a lumbar region word), else None.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    red_flags_first_episode_age: int
    red_flags_history_min_days: int
    conservative_care_episode_min_weeks: int
    conservative_care_active_care_min_weeks: int
    conservative_care_nrs_improvement_percent: float
    conservative_care_nrs_improvement_points: float
    conservative_care_oswestry_improvement_points: float
    repeat_imaging_window_days: int


@dataclass(frozen=True, slots=True)
class TextMatch:
    """A keyword of one concept found in a piece of text."""

    concept: str
    keyword: str
    negated: bool
    qualifiers: frozenset[str]
