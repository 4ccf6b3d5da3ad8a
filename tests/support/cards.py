"""Sample decisions for every card kind, and readers of the patient-facing texts and WORDING.md."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cds_service.cards.render import CardContext, Catalogue, load_catalogue
from cds_service.rules.model import (
    CriterionResult,
    Decision,
    Finding,
    LumbarOrder,
    Modality,
    ModalityAdvice,
    Outcome,
    PatientFacts,
    Status,
    Strength,
)
from cds_service.shipped import CARDS_DIR

ROOT = Path(__file__).resolve().parents[2]
CARDS = CARDS_DIR
WORDING = Path(os.environ.get("CDS_WORDING_MD", ROOT.parent / "shared" / "clinical" / "WORDING.md"))
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AGES = (19, 20, 35, 50, 64, 80, 95, None)
BASE_URL = "https://cds.example.org/lumbar"
DRAFT_ID = "draft-order-7"
DRAFT = {
    "resourceType": "ServiceRequest",
    "id": DRAFT_ID,
    "status": "draft",
    "intent": "order",
    "code": {"text": "MRI lumbale wervelkolom zonder contrast"},
    "subject": {"reference": "Patient/p-42"},
    "encounter": {"reference": "Encounter/e-1"},
    "reasonCode": [
        {"coding": [{"system": "http://snomed.info/sct", "code": "279039007"}]},
        {"coding": [{}]},
    ],
}

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN
URGENT, INDICATED = Outcome.URGENT, Outcome.INDICATED
NOT_INDICATED, INSUFFICIENT = Outcome.NOT_INDICATED, Outcome.INSUFFICIENT_DATA


def catalogue() -> Catalogue:
    """The shipped card catalogue."""
    return load_catalogue(CARDS)


def order(modality: Modality = Modality.MRI, display: str | None = None) -> LumbarOrder:
    """The draft order under judgement."""
    return LumbarOrder(
        f"ServiceRequest/{DRAFT_ID}",
        modality,
        display or "MRI lumbale wervelkolom zonder contrast",
        Strength.CODE,
    )


def facts(age: int | None, weeks: float | None = 3) -> PatientFacts:
    """Facts with an age, an episode of the given length and the findings decisions() cite."""
    onset = None if weeks is None else NOW.date() - timedelta(days=round(weeks * 7))
    days_ago = NOW.date() - timedelta(days=2)
    return PatientFacts(
        evaluated_at=NOW,
        age=age,
        episode_onset=onset,
        episode_references=("Condition/lbp-1",) if onset else (),
        findings=(
            Finding("low-back-pain", "Condition/lbp-1", onset),
            Finding("neuro-exam", "Observation/n1", days_ago, qualifiers=frozenset({"normal"})),
            Finding("cauda-equina", "Condition/ces", days_ago),
            Finding("urinary-retention", "Observation/retention", NOW.date()),
            Finding(
                "muscle-strength",
                "Observation/mrc4",
                date(2025, 11, 12),
                value=4.0,
                qualifiers=frozenset({"right"}),
            ),
            Finding("sciatica", "Condition/sciatica", onset),
        ),
    )


def decisions() -> dict[str, Decision]:
    """One realistic decision per card kind (and a few variations), by name."""
    routine = (
        CriterionResult("trauma", NOT_MET, "no-trauma", INDICATED),
        CriterionResult(
            "neuro-deficit", NOT_MET, "no-deficit-on-exam", INDICATED, ("Observation/n1",)
        ),
        CriterionResult("red-flag", NOT_MET, "no-red-flag", INDICATED),
        CriterionResult("surgical-planning", NOT_MET, "no-surgical-plan", INDICATED),
        CriterionResult(
            "failed-conservative-care",
            NOT_MET,
            "episode-too-short",
            INDICATED,
            ("Condition/lbp-1",),
        ),
        CriterionResult("repeat-imaging", NOT_MET, "no-prior-imaging", NOT_INDICATED),
        CriterionResult("modality-advice", NOT_MET, "modality-fits"),
    )
    xray = order(Modality.XRAY, "X-LWK staand")
    return {
        "not-indicated": Decision(order(), NOT_INDICATED, routine),
        "not-indicated-repeat": Decision(
            order(),
            NOT_INDICATED,
            (
                *routine[:5],
                CriterionResult(
                    "repeat-imaging", MET, "prior-imaging", NOT_INDICATED, ("ImagingStudy/i1",)
                ),
            ),
        ),
        "urgent": Decision(
            order(),
            URGENT,
            (
                CriterionResult(
                    "red-flag",
                    MET,
                    "cauda-equina",
                    URGENT,
                    ("Condition/ces", "Observation/retention"),
                ),
                *routine[:1],
            ),
        ),
        "indicated": Decision(
            order(),
            INDICATED,
            (
                CriterionResult("neuro-deficit", MET, "deficit", INDICATED, ("Observation/mrc4",)),
                *routine[2:],
            ),
        ),
        "indicated-xray": Decision(
            xray,
            INDICATED,
            (
                CriterionResult("neuro-deficit", MET, "deficit", INDICATED, ("Observation/mrc4",)),
                CriterionResult(
                    "modality-advice", MET, "xray-prefer-mri", None, ("Observation/mrc4",)
                ),
            ),
            advice=(ModalityAdvice("xray-prefer-mri", Modality.XRAY, Modality.MRI, "deficit"),),
        ),
        "insufficient-data": Decision(
            order(),
            INSUFFICIENT,
            (
                CriterionResult(
                    "neuro-exam-missing",
                    MET,
                    "neuro-exam-missing",
                    INSUFFICIENT,
                    ("Condition/sciatica",),
                ),
                CriterionResult(
                    "outcome-scores-missing", MET, "outcome-scores-missing", INSUFFICIENT
                ),
                CriterionResult("no-episode-data", MET, "no-episode-data", INSUFFICIENT),
            ),
            missing=("neuro-exam", "outcome-scores", "episode", "episode-onset"),
        ),
    }


def context(age: int | None, variant: str | None = None, weeks: float | None = 3) -> CardContext:
    """A card context for the sample draft order."""
    return CardContext(
        facts=facts(age, weeks), draft=DRAFT, patient_id="p-42", base_url=BASE_URL, variant=variant
    )


def patient_section(card: dict[str, Any], kind: str, language: str, cat: Catalogue) -> str:
    """The patient-facing part of a card's detail (after its patient heading), or ''."""
    heading = cat.patient_heading.get(kind, {}).get(language)
    if not heading:
        return ""
    marker = f"### {heading}"
    detail = card["detail"]
    if marker not in detail:
        return ""
    # the patient's sentences: from their heading up to the next section ("All checks")
    return detail.split(marker, 1)[1].split("\n### ", 1)[0]


def wording_table() -> dict[str, dict[int, int]]:
    """The age table of WORDING.md: finding -> {decade: share}."""
    text = WORDING.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = next(line for line in lines if re.match(r"^\|\s*finding\s*\|", line))
    decades = [int(c) for c in (c.strip() for c in header.strip("|").split("|")[1:])]
    table = {}
    for line in lines[lines.index(header) + 2 :]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(decades) + 1 or not cells[1].isdigit():
            break
        table[cells[0]] = dict(zip(decades, (int(c) for c in cells[1:]), strict=True))
    return table


def expected_decade(age: int) -> int:
    """WORDING.md: the patient's decade (floor); under 20 -> 20, over 80 -> 80."""
    return 20 if age < 20 else 80 if age > 80 else age - age % 10
