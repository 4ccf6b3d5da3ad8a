"""Chooses the card language: request header, then the patient's preference, then the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SUPPORTED = ("nl", "en")
FLEMISH = "nl-BE"


def _primary(tag: str) -> str:
    return tag.strip().lower().replace("_", "-").split("-")[0]


def from_accept_language(header: str | None) -> str | None:
    """The best supported language in an Accept-Language header, honouring q-values."""
    tag = best_accept_tag(header)
    return _primary(tag) if tag else None


def best_accept_tag(header: str | None) -> str | None:
    """The full tag (e.g. 'nl-BE') of the best supported language in an Accept-Language header."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip()
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag))
    for _, _, tag in sorted(ranked):
        if _primary(tag) in SUPPORTED:
            return tag
    return None


def patient_language_tag(patient: Mapping[str, Any] | None) -> str | None:
    """The patient's communication language as a tag (preferred first), e.g. 'nl-BE'."""
    if not isinstance(patient, Mapping):
        return None
    entries = [c for c in patient.get("communication") or [] if isinstance(c, Mapping)]
    entries.sort(key=lambda c: not c.get("preferred", False))
    for entry in entries:
        language = entry.get("language")
        if not isinstance(language, Mapping):
            continue
        for coding in language.get("coding") or []:
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                return coding["code"]
        if isinstance(language.get("text"), str):
            return language["text"]
    return None


def negotiate(header: str | None, patient: Mapping[str, Any] | None, default: str) -> str:
    """Accept-Language first, then Patient.communication, then the configured default."""
    chosen = from_accept_language(header)
    if chosen:
        return chosen
    tag = patient_language_tag(patient)
    if tag and _primary(tag) in SUPPORTED:
        return _primary(tag)
    return default if default in SUPPORTED else SUPPORTED[0]


def variant(header: str | None, patient: Mapping[str, Any] | None, language: str) -> str | None:
    """'nl-BE' when Dutch was chosen for a Flemish reader, else None.

    The header's region wins when it names one (nl-BE or nl-NL); a bare 'nl' header or no header
    leaves it to the Patient's communication language.
    """
    if language != "nl":
        return None
    tag = best_accept_tag(header)
    if tag and _primary(tag) == "nl" and "-" in tag.replace("_", "-"):
        return FLEMISH if tag.replace("_", "-").lower() == "nl-be" else None
    patient_tag = patient_language_tag(patient)
    if patient_tag and patient_tag.replace("_", "-").lower() == "nl-be":
        return FLEMISH
    return None
