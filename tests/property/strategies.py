"""Hypothesis strategies for FHIR-shaped patient records, built from the shipped rule data.

Codes come from the real value sets (mappings/valuesets/*.csv, with the system URIs of
mappings/code_systems.yaml), texts from the real keywords (mappings/concepts.yaml) mixed with
Dutch and English negations, qualifiers and filler. Most resources are well-formed FHIR R4 so
that the readers behind validation get exercised; a share is damaged: fields missing, replaced
by values of the wrong JSON type (including NaN and infinities, which json.loads accepts), or
whole items that are not resources at all.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import yaml
from hypothesis import strategies as st

from cds_service.shipped import MAPPINGS_DIR

MAPPINGS = MAPPINGS_DIR
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
PATIENT = "Patient/p1"
RESOURCE_TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "Procedure",
    "MedicationStatement",
    "MedicationRequest",
    "ServiceRequest",
    "ImagingStudy",
    "DiagnosticReport",
)


@cache
def value_set_codings(*kinds: str) -> tuple[tuple[str, str, str], ...]:
    """(system URI, code, display) of the value-set rows of concepts of these kinds (or all)."""
    systems = yaml.safe_load((MAPPINGS / "code_systems.yaml").read_text(encoding="utf-8"))
    uris = {key: spec["uri"] for key, spec in systems["systems"].items()}
    concepts = yaml.safe_load((MAPPINGS / "concepts.yaml").read_text(encoding="utf-8"))
    kind_of = {name: spec.get("kind") for name, spec in concepts["concepts"].items()}
    rows = []
    for path in sorted((MAPPINGS / "valuesets").glob("*.csv")):
        if kinds and kind_of.get(path.stem) not in kinds and path.stem not in kinds:
            continue
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                system = uris.get(row["system"], row["system"])
                rows.append((system, row["code"].rstrip("*"), row.get("display") or ""))
    return tuple(rows)


@cache
def keywords() -> tuple[str, ...]:
    """Every Dutch and English keyword of every concept."""
    concepts = yaml.safe_load((MAPPINGS / "concepts.yaml").read_text(encoding="utf-8"))
    words = []
    for concept in concepts["concepts"].values():
        for language_words in (concept.get("keywords") or {}).values():
            words += [w.rstrip("*") for w in language_words]
    return tuple(sorted(set(words)))


FILLER = (
    "sinds drie weken",
    "since last Tuesday",
    "links",
    "rechts",
    "beiderzijds",
    "bilateral",
    "ernstig",
    "severe",
    "toenemend",
    "progressive",
    "na tillen",
    "after lifting",
    "patiënt meldt",
    "patient reports",
    "bij lichamelijk onderzoek",
    "on examination",
    "38,9",
    "39.2 °C",
    "MRC 4/5",
    "Lasègue positief",
    "NRS 7",
    "ODI 42%",
    "5 kg afgevallen",
)
NEGATIONS = ("geen", "niet", "no", "without", "denies", "ontkent", "zonder", "negatief voor")

# -- primitives --------------------------------------------------------------------------------

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)

phrase = st.one_of(
    st.sampled_from(keywords()),
    st.builds(
        lambda neg, word: f"{neg} {word}",
        st.sampled_from(NEGATIONS),
        st.sampled_from(keywords()),
    ),
    st.sampled_from(FILLER),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20),
)
free_text = st.lists(phrase, min_size=1, max_size=5).map(", ".join).filter(str.strip)


def _date_text(day: date, style: int, hour: int) -> str:
    if style == 0:
        return f"{day.year:04d}"
    if style == 1:
        return f"{day.year:04d}-{day.month:02d}"
    if style == 2:
        return day.isoformat()
    if style == 3:
        return f"{day.isoformat()}T{hour:02d}:15:00+01:00"
    return f"{day.isoformat()}T{hour:02d}:15:00Z"


dates = st.builds(
    _date_text,
    st.dates(min_value=date(1930, 1, 1), max_value=NOW.date() + timedelta(days=400)),
    st.integers(0, 4),
    st.integers(0, 23),
)
recent_dates = st.builds(
    _date_text,
    st.dates(min_value=NOW.date() - timedelta(days=800), max_value=NOW.date()),
    st.integers(2, 4),
    st.integers(0, 23),
)
any_date = st.one_of(recent_dates, dates)


@st.composite
def coding(draw: st.DrawFn, kinds: tuple[str, ...] = ()) -> dict[str, Any]:
    """A coding: mostly from the value sets (of concepts of `kinds` when given), else random."""
    choice = draw(st.integers(0, 9))
    if choice < 6 and kinds:
        system, code, display = draw(st.sampled_from(value_set_codings(*kinds)))
    elif choice < 8:
        system, code, display = draw(st.sampled_from(value_set_codings()))
    else:
        system = draw(st.sampled_from(["http://snomed.info/sct", "http://loinc.org", "urn:x"]))
        code = draw(st.text(alphabet="0123456789ABCM.", min_size=1, max_size=9))
        display = draw(st.text(max_size=10))
    result: dict[str, Any] = {"system": system, "code": code}
    if display and draw(st.booleans()):
        result["display"] = display
    return result


@st.composite
def concept(draw: st.DrawFn, *kinds: str) -> dict[str, Any]:
    """A CodeableConcept with codings and/or text."""
    result: dict[str, Any] = {}
    codings = draw(st.lists(coding(kinds), max_size=3))
    if codings:
        result["coding"] = codings
    if draw(st.booleans()) or not codings:
        result["text"] = draw(free_text)
    return result


def code_of(system: str, *codes: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(codes).map(lambda c: {"coding": [{"system": system, "code": c}]})


notes = st.lists(free_text.map(lambda t: {"text": t}), min_size=1, max_size=2)
period = st.builds(
    lambda start, end: {k: v for k, v in (("start", start), ("end", end)) if v},
    st.none() | any_date,
    st.none() | any_date,
).filter(bool)
quantity = st.builds(
    lambda value, unit: {
        "value": value,
        "unit": unit,
        "system": "http://unitsofmeasure.org",
        "code": unit,
    },
    st.one_of(
        st.floats(min_value=-10, max_value=200, allow_nan=False).map(lambda v: round(v, 1)),
        st.integers(0, 100),
    ),
    st.sampled_from(["Cel", "[degF]", "kg", "g", "[lb_av]", "{score}", "1", "%", "d", "wk"]),
)
subject = st.just({"reference": PATIENT})

# -- resources ---------------------------------------------------------------------------------


@st.composite
def _fields(draw: st.DrawFn, required: dict[str, Any], optional: dict[str, Any]) -> dict[str, Any]:
    result = {name: draw(strategy) for name, strategy in required.items()}
    for name, strategy in optional.items():
        if draw(st.booleans()):
            result[name] = draw(strategy)
    return result


def condition() -> st.SearchStrategy[dict[str, Any]]:
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    verification = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    return _fields(
        {"subject": subject},
        {
            "code": st.one_of(
                concept("low-back-pain", "sciatica", "lumbar-stenosis"),
                concept("condition", "text"),
            ),
            "clinicalStatus": code_of(
                clinical, "active", "recurrence", "relapse", "inactive", "remission", "resolved"
            ),
            "verificationStatus": code_of(
                verification, "confirmed", "unconfirmed", "provisional", "differential", "refuted"
            ),
            "severity": code_of("http://snomed.info/sct", "24484000", "6736007", "255604002"),
            "bodySite": st.lists(concept(), min_size=1, max_size=2),
            "onsetDateTime": any_date,
            "abatementDateTime": any_date,
            "recordedDate": any_date,
            "note": notes,
            "category": st.lists(concept(), min_size=1, max_size=1),
        },
    )


def observation() -> st.SearchStrategy[dict[str, Any]]:
    interpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    return _fields(
        {
            "status": st.sampled_from(
                ["final", "amended", "preliminary", "registered", "cancelled"]
            ),
            "code": st.one_of(concept("pain-score"), concept("measurement", "condition")),
        },
        {
            "subject": subject,
            "effectiveDateTime": any_date,
            "issued": recent_dates.filter(lambda d: "T" in d),
            "valueQuantity": quantity,
            "valueString": free_text,
            "valueCodeableConcept": concept("condition"),
            "valueBoolean": st.booleans(),
            "valueInteger": st.integers(-1, 120),
            "interpretation": st.lists(
                code_of(interpretation, "N", "NEG", "POS", "H", "L", "A"), min_size=1, max_size=1
            ),
            "bodySite": concept(),
            "note": notes,
            "component": st.lists(
                st.builds(
                    lambda c, q: {"code": c, "valueQuantity": q}, concept("measurement"), quantity
                ),
                min_size=1,
                max_size=2,
            ),
        },
    ).map(_one_value)


def _one_value(resource: dict[str, Any]) -> dict[str, Any]:
    """FHIR allows one value[x]; keep the first drawn."""
    values = [k for k in resource if k.startswith("value")]
    for extra in values[1:]:
        del resource[extra]
    return resource


def procedure() -> st.SearchStrategy[dict[str, Any]]:
    return _fields(
        {
            "status": st.sampled_from(
                ["preparation", "in-progress", "not-done", "on-hold", "stopped", "completed"]
            ),
            "subject": subject,
        },
        {
            "code": concept("procedure", "order"),
            "performedDateTime": any_date,
            "performedPeriod": period,
            "bodySite": st.lists(concept(), min_size=1, max_size=2),
            "note": notes,
            "reasonCode": st.lists(concept("condition"), min_size=1, max_size=1),
        },
    ).map(lambda r: _only_one(r, "performedDateTime", "performedPeriod"))


def _only_one(resource: dict[str, Any], *names: str) -> dict[str, Any]:
    for extra in [n for n in names if n in resource][1:]:
        del resource[extra]
    return resource


def _medication(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "MedicationStatement":
        required = {
            "status": st.sampled_from(
                ["active", "completed", "intended", "stopped", "on-hold", "unknown", "not-taken"]
            ),
            "subject": subject,
            "medicationCodeableConcept": concept("medication"),
        }
        optional = {
            "effectiveDateTime": any_date,
            "effectivePeriod": period,
            "dosage": st.lists(free_text.map(lambda t: {"text": t}), min_size=1, max_size=2),
            "note": notes,
        }
        return _fields(required, optional).map(
            lambda r: _only_one(r, "effectiveDateTime", "effectivePeriod")
        )
    required = {
        "status": st.sampled_from(
            ["active", "on-hold", "cancelled", "completed", "stopped", "draft"]
        ),
        "intent": st.sampled_from(["proposal", "plan", "order", "original-order"]),
        "subject": subject,
        "medicationCodeableConcept": concept("medication"),
    }
    optional = {
        "authoredOn": any_date,
        "dosageInstruction": st.lists(free_text.map(lambda t: {"text": t}), min_size=1, max_size=2),
        "dispenseRequest": st.builds(
            lambda p, days: {
                "validityPeriod": p,
                "expectedSupplyDuration": {
                    "value": days,
                    "unit": "d",
                    "system": "http://unitsofmeasure.org",
                    "code": "d",
                },
            },
            period,
            st.integers(1, 120),
        ),
        "note": notes,
    }
    return _fields(required, optional)


def service_request() -> st.SearchStrategy[dict[str, Any]]:
    return _fields(
        {
            "status": st.sampled_from(["draft", "active", "on-hold", "completed", "revoked"]),
            "intent": st.sampled_from(["proposal", "plan", "order", "original-order"]),
            "subject": subject,
        },
        {
            "code": concept("procedure", "order"),
            "authoredOn": any_date,
            "occurrenceDateTime": any_date,
            "reasonCode": st.lists(concept("condition"), min_size=1, max_size=2),
            "note": notes,
            "basedOn": st.just([{"reference": "ServiceRequest/draft-1"}]),
        },
    )


def imaging_study() -> st.SearchStrategy[dict[str, Any]]:
    dicom = "http://dicom.nema.org/resources/ontology/DCM"
    modality = st.sampled_from(["MR", "CT", "CR", "DX", "US"]).map(
        lambda c: {"system": dicom, "code": c}
    )
    return _fields(
        {
            "status": st.sampled_from(["registered", "available", "cancelled", "unknown"]),
            "subject": subject,
        },
        {
            "started": any_date,
            "modality": st.lists(modality, min_size=1, max_size=2),
            "procedureCode": st.lists(concept("order"), min_size=1, max_size=1),
            "description": free_text,
            "series": st.lists(
                st.builds(
                    lambda uid, m, site: {"uid": uid, "modality": m, "bodySite": site},
                    st.sampled_from(["1.2.3", "1.2.4"]),
                    modality,
                    coding(),
                ),
                min_size=1,
                max_size=2,
            ),
        },
    )


def diagnostic_report() -> st.SearchStrategy[dict[str, Any]]:
    return _fields(
        {
            "status": st.sampled_from(["registered", "partial", "preliminary", "final", "amended"]),
            "code": concept("order", "measurement"),
        },
        {
            "subject": subject,
            "effectiveDateTime": any_date,
            "issued": recent_dates.filter(lambda d: "T" in d),
            "conclusion": free_text,
            "conclusionCode": st.lists(concept("condition"), min_size=1, max_size=2),
            "category": st.lists(concept(), min_size=1, max_size=1),
        },
    )


def patient() -> st.SearchStrategy[dict[str, Any]]:
    language = st.sampled_from(["nl", "nl-NL", "nl-BE", "en", "en-GB", "de"]).map(
        lambda c: {"coding": [{"system": "urn:ietf:bcp:47", "code": c}]}
    )
    return _fields(
        {},
        {
            "birthDate": st.dates(min_value=date(1900, 1, 1), max_value=NOW.date()).map(
                date.isoformat
            ),
            "gender": st.sampled_from(["male", "female", "other", "unknown"]),
            "communication": st.lists(
                st.builds(
                    lambda lang, pref: {"language": lang, "preferred": pref},
                    language,
                    st.booleans(),
                ),
                min_size=1,
                max_size=2,
            ),
            "name": st.just([{"text": "Testpatiënt Achternaam"}]),
        },
    )


BUILDERS = {
    "Patient": patient,
    "Condition": condition,
    "Observation": observation,
    "Procedure": procedure,
    "MedicationStatement": lambda: _medication("MedicationStatement"),
    "MedicationRequest": lambda: _medication("MedicationRequest"),
    "ServiceRequest": service_request,
    "ImagingStudy": imaging_study,
    "DiagnosticReport": diagnostic_report,
}


@st.composite
def resource(draw: st.DrawFn, kinds: tuple[str, ...] = RESOURCE_TYPES) -> dict[str, Any]:
    """One resource: mostly well-formed, sometimes with fields missing or of the wrong type."""
    kind = draw(st.sampled_from(kinds))
    body = draw(BUILDERS[kind]())
    body = {
        "resourceType": kind,
        "id": draw(st.from_regex(r"[a-z][a-z0-9\-]{0,8}", fullmatch=True)),
        **body,
    }
    damage = draw(st.integers(0, 9))
    if damage >= 8 and len(body) > 2:
        names = sorted(k for k in body if k != "resourceType")
        for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
            if draw(st.booleans()):
                del body[name]
            else:
                body[name] = draw(junk)
    return body


def item() -> st.SearchStrategy[Any]:
    """An input item: a resource, or now and then something that is not one."""
    return st.one_of(
        resource(),
        resource(),
        resource(),
        resource(),
        resource(),
        resource(),
        junk,
        st.fixed_dictionaries({"resourceType": junk}),
        st.fixed_dictionaries(
            {"resourceType": st.sampled_from(RESOURCE_TYPES)}, optional={"id": junk}
        ),
    )


records = st.lists(item(), max_size=12)
