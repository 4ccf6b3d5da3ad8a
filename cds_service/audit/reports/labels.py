"""Short readable labels (H-7Q3K) for the report's 64-hex-digit pseudonyms, unique per report.

A label is a hash of the keyed pseudonym written in Crockford's base32 (no I, L, O or U, so
nothing reads as another character). It is as stable as the pseudonym: the same clinician has
the same label in every report under the same key. Only an organisation holding the pseudonym
key can map a label back (`cds-service label --clinician-id ID` computes the label of a
practitioner), because the pseudonym itself needs the key.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 4  # 32**4 ≈ one million labels: a report of 100 clinicians shares one ~0.5% of the time
FULL_LENGTH = 12
PREFIXES = {"clinician": "H", "patient": "P"}  # H: huisarts, the reader's own word


def _code(kind: str, pseudonym: str) -> str:
    """FULL_LENGTH base32 characters of a hash of the pseudonym (name space per kind)."""
    digest = hashlib.sha256(f"report-label\x1f{kind}\x1f{pseudonym}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    characters = []
    for _ in range(FULL_LENGTH):
        number, digit = divmod(number, 32)
        characters.append(ALPHABET[digit])
    return "".join(characters)


def label_of(kind: str, pseudonym: str, length: int = LENGTH) -> str:
    """The label of one pseudonym: a prefix for its kind, a dash, `length` characters."""
    return f"{PREFIXES[kind]}-{_code(kind, pseudonym)[:length]}"


def labels_for(kind: str, pseudonyms: Iterable[str]) -> dict[str, str]:
    """{pseudonym: label}, unique among these pseudonyms.

    Pseudonyms that would share a label are lengthened together, one character at a time,
    until they differ: the others keep their short label, and a lengthened label still starts
    with the short one.
    """
    unique = sorted(set(pseudonyms))
    codes = {p: _code(kind, p) for p in unique}
    lengths = dict.fromkeys(unique, LENGTH)
    while True:
        groups: dict[str, list[str]] = defaultdict(list)
        for pseudonym in unique:
            groups[codes[pseudonym][: lengths[pseudonym]]].append(pseudonym)
        shared = [group for group in groups.values() if len(group) > 1]
        if not shared:
            break
        for group in shared:
            for pseudonym in group:
                if lengths[pseudonym] >= FULL_LENGTH:
                    raise ValueError("two pseudonyms share a 60-bit label hash")
                lengths[pseudonym] += 1
    return {p: f"{PREFIXES[kind]}-{codes[p][: lengths[p]]}" for p in unique}


def label_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report with a `label` beside each clinician key and a `patientLabel` beside each
    pseudonymous patient of the missed-alarm watch (the keys themselves stay as they were)."""
    rows = list(report.get("clinicians", []))
    if report.get("by") == "clinician":
        rows += report.get("groups", [])
    clinicians = labels_for("clinician", (row["key"] for row in rows if row["key"]))
    for row in rows:
        row["label"] = clinicians.get(row["key"], "–")
    items = report.get("missedAlarms", {}).get("items", [])
    patients = labels_for("patient", (item["patient"] for item in items))
    for item in items:
        item["patientLabel"] = patients[item["patient"]]
    return report
