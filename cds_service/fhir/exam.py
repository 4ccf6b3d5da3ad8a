"""Reading examination results, laterality and severity from FHIR codes and short texts."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

SNOMED = "http://snomed.info/sct"

# SNOMED CT qualifier values (CODES.md).
LATERALITY_CODES = {"7771000": "left", "24028007": "right", "51440002": "bilateral"}
SEVERITY_CODES = {"24484000": "severe", "6736007": "moderate", "255604002": "mild"}
# Observation values that state a finding is not there: Absent, No, Negative.
NEGATIVE_VALUE_CODES = frozenset({"2667000", "373067005", "260385009"})

_LEFT = re.compile(r"\b(?:links|linker|left|sinistra)\b")
_RIGHT = re.compile(r"\b(?:rechts|rechter|right|dextra)\b")
_BOTH = re.compile(
    r"\b(?:bilateraal|bilateral|beiderzijds|dubbelzijdig|beide (?:benen|zijden|kanten)|both)\b"
)
_SIDE_WORDS = re.compile(
    r"\s*\b(?:links|linker|left|sinistra|rechts|rechter|right|dextra|bilateraal|bilateral"
    r"|beiderzijds|dubbelzijdig)\b",
    re.IGNORECASE,
)
_SEVERE = re.compile(r"\b(?:severe|ernstig|ernstige|heftig|heftige)\b")
_MODERATE = re.compile(r"\b(?:moderate|matig|matige)\b")
_MILD = re.compile(r"\b(?:mild|licht|lichte|gering|geringe)\b")
_NEGATIVE_VALUE = re.compile(
    r"^(?:nee|no|neg|negatief|negative|afwezig|absent|geen|none|not present|niet aanwezig)$"
)

# Examination wording, checked in this order: a negated abnormality ("geen afwijkingen") is a
# normal result, a raised reflex is abnormal but not a loss, then loss words, then normal words.
_NEGATED_ABNORMAL = re.compile(
    r"\b(?:geen|no|niet|not|zonder|without)\s+(?:\w+\s+)?"
    r"(?:afwijking\w*|abnormal\w*|uitval|deficit\w*|stoornis\w*|verminder\w*|afwijkend\w*"
    r"|loss|verlies\w*)"
)
_RAISED = re.compile(r"\b(?:verhoogd\w*|brisk|increased|hyperreflex\w*|clonus)\b")
_ABNORMAL = re.compile(
    r"\b(?:verminderd\w*|afwezig|absent|diminished|reduced|decreased|abnormaal|abnormal"
    r"|afwijkend\w*|opgeheven|niet opwekbaar|niet aanwezig|not present|areflex\w*|hypo\w*"
    r"|hyp\w*sthes\w*|uitval|gestoord|verlaagd"
    r"|niet normaal|not normal|impaired|loss)\b"
)
_NORMAL = re.compile(
    r"\b(?:normaal|normal|intact|symmetrisch|symmetric\w*|ongestoord|opwekbaar|aanwezig"
    r"|present|geen bijzonderheden|gb|wnl)\b"
)

# v3 ObservationInterpretation codes: N normal; L/LL/< low; H/HH/> high; A/AA abnormal.
_INTERPRETATION = {
    "N": "normal",
    "A": "abnormal",
    "AA": "abnormal",
    "L": "abnormal",
    "LL": "abnormal",
    "LU": "abnormal",
    "<": "abnormal",
    "H": "raised",
    "HH": "raised",
    "HU": "raised",
    ">": "raised",
}


class ExamResult(StrEnum):
    """The result of a reflex, sensation or neurological examination."""

    NORMAL = "normal"
    ABNORMAL = "abnormal"  # diminished, absent or abnormal without a direction
    RAISED = "raised"  # abnormal upwards (brisk reflexes): abnormal, but not a loss


def fold(text: str) -> str:
    """Lower-case text without accents, so that "réflexe" and "Reflexe" read alike."""
    lowered = text.casefold()
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def laterality_from_text(text: str) -> set[str]:
    """Laterality words in a short text; left and right together also mean bilateral."""
    folded = fold(text)
    found: set[str] = set()
    if _LEFT.search(folded):
        found.add("left")
    if _RIGHT.search(folded):
        found.add("right")
    if _BOTH.search(folded) or {"left", "right"} <= found:
        found.add("bilateral")
    return found


def without_laterality(text: str) -> str:
    """The text with its side words removed ("Lasègue links" -> "Lasègue")."""
    return _SIDE_WORDS.sub("", text).strip()


def severity_from_text(text: str) -> str | None:
    """ "severe", "moderate" or "mild" from a short severity text, else None."""
    folded = fold(text)
    for pattern, severity in ((_SEVERE, "severe"), (_MODERATE, "moderate"), (_MILD, "mild")):
        if pattern.search(folded):
            return severity
    return None


def is_negative_value_text(text: str) -> bool:
    """True when an Observation value text says no/absent/negative and nothing else."""
    return _NEGATIVE_VALUE.match(fold(text).strip(" .")) is not None


def exam_result_from_interpretation(code: str) -> ExamResult | None:
    """The examination result of one v3 ObservationInterpretation code."""
    result = _INTERPRETATION.get(code.strip().upper())
    return ExamResult(result) if result else None


def exam_result_from_text(text: str) -> ExamResult | None:
    """The examination result stated in a value or interpretation text, else None."""
    folded = fold(text)
    if _NEGATED_ABNORMAL.search(folded):
        return ExamResult.NORMAL
    if _RAISED.search(folded):
        return ExamResult.RAISED
    if _ABNORMAL.search(folded):
        return ExamResult.ABNORMAL
    if _NORMAL.search(folded):
        return ExamResult.NORMAL
    return None


def exam_result_from_reflex_grade(grade: float) -> ExamResult | None:
    """A tendon reflex grade 0-4: 0-1 diminished or absent, 2 normal, 3-4 brisk."""
    if grade < 0 or grade > 4:
        return None
    if grade < 2:
        return ExamResult.ABNORMAL
    if grade < 3:
        return ExamResult.NORMAL
    return ExamResult.RAISED
