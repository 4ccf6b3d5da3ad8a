"""Builders of whole patient records in the shapes real systems send (issue 10's record corpus).

The cases in `nl_gp.yaml` and `us_ehr.yaml` are clinical stories written by the team; this module
turns each into the FHIR R4 resources a real system would send, noise included:

- **Dutch GP** (MedMij GP data / nl-core, shared/reference/real-records.md a): an EpisodeOfCare
  with a title extension and no code of its own, the ICPC-1 NL code on the Condition it names,
  Encounters (NHG Tabel 14 contactwijze) pointing at the episode, SOEP journal lines as
  Observations (journaalregeltypen S/O/E/P, text in valueString, the E line's ICPC in a DISDX
  component), NHG Tabel 45 results (imaging as a result with a text value and a wrong second
  LOINC coding), referrals as completed hg-ReferralServiceRequests, G-Standaard (GPK)
  MedicationRequests without ATC and with NHG dosage text, a masked BSN, a Composition repeating
  the journal lines (de-duplication), unrelated consults (colds, blood pressure checks).
- **US EHR** (Synthea R4, real-records.md b): `urn:uuid` references, hundreds of vital signs and
  laboratory results over years of wellness visits, "TESTS ORDERED" Observations with invalid
  codes under LOINC, a misspelt `vital-sign` category, history-of Conditions that are active,
  resolved Conditions with abatementDateTime, RxNorm MedicationRequests, Claims and
  ExplanationOfBenefits, Immunizations, ImagingStudies of other body sites.

Ids are fixed so a case can name the evidence it must cite (see the id scheme in each YAML file).
Dates are days before the test run, so a case means the same thing on any day.
"""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.scenarios.loader import PREFETCH_KEYS as SCENARIO_PREFETCH_KEYS

ICPC_NL = "http://hl7.org/fhir/sid/icpc-1-nl"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
GPK = "urn:oid:2.16.840.1.113883.2.4.4.1"
HPK = "urn:oid:2.16.840.1.113883.2.4.4.10"
ATC = "http://www.whocc.no/atc"
JOURNAL = "http://fhir.nl/fhir/NamingSystem/journaalregeltypen"
NHG45 = "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen"
NHG14 = "https://referentiemodel.nhg.org/tabellen/nhg-tabel-14-contactwijze"
NHG25 = "https://referentiemodel.nhg.org/tabellen/nhg-tabel-25-gebruiksvoorschrift"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
TITLE_EXTENSION = "http://nictiz.nl/fhir/StructureDefinition/ext-EpisodeOfCare.EpisodeOfCareName"
EPISODE_LINK = "http://nictiz.nl/fhir/StructureDefinition/ext-Context-EpisodeOfCare"


def day(days: int) -> str:
    """The ISO date `days` before today."""
    return (date.today() - timedelta(days=days)).isoformat()


def moment(days: int, hour: int = 10) -> str:
    """An ISO date-time `days` before today at `hour` (UTC)."""
    when = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (when - timedelta(days=days)).isoformat()


def birth_date(age: int) -> str:
    """A birth date making the patient `age` today, with no birthday near the test run."""
    today = date.today()
    born = today.replace(year=today.year - age) - timedelta(days=180)
    if born.replace(year=today.year) > today and (today - born).days < age * 365:
        born -= timedelta(days=1)
    return born.isoformat()


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A Coding."""
    found = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def concept(*codings: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept."""
    found: dict[str, Any] = {}
    if codings:
        found["coding"] = list(codings)
    if text:
        found["text"] = text
    return found


def _clinical(status: str) -> dict[str, Any]:
    return concept(coding(CLINICAL, status))


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A searchset Bundle of `resources`."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in resources],
    }


# -- Dutch GP records --------------------------------------------------------------------------


class GpRecord:
    """One Dutch GP record built from a case (see nl_gp.yaml for the fields and the id scheme)."""

    def __init__(self, case: dict[str, Any]) -> None:
        self.case = case
        self.patient_id = f"nl-{case['id']}"
        self.subject = {"reference": f"Patient/{self.patient_id}"}
        self.random = random.Random(case["id"])  # noqa: S311 - reproducible fixtures
        self.resources: list[dict[str, Any]] = []

    def build(self) -> list[dict[str, Any]]:
        """Every resource of the record."""
        case = self.case
        self._patient()
        episode = case.get("episode")
        if episode:
            self._episode(episode)
        for index, condition in enumerate(case.get("conditions") or (), start=1):
            self._condition(f"c{index}", condition)
        for index, consult in enumerate(case.get("consults") or (), start=1):
            self._consult(index, consult, linked=bool(episode) and consult.get("episode", True))
        for index, result in enumerate(case.get("results") or (), start=1):
            self._result(f"r{index}", result)
        for index, medication in enumerate(case.get("medications") or (), start=1):
            self._medication(f"m{index}", medication)
        for index, referral in enumerate(case.get("referrals") or (), start=1):
            self._referral(f"ref{index}", referral)
        self._noise(int(case.get("noise", 6)))
        return self.resources

    def _add(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.resources.append(resource)
        return resource

    def _patient(self) -> None:
        self._add(
            {
                "resourceType": "Patient",
                "id": self.patient_id,
                "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/nl-core-Patient"]},
                "identifier": [
                    {
                        "system": BSN,
                        "_value": {
                            "extension": [
                                {
                                    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                    "valueCode": "masked",
                                }
                            ]
                        },
                    }
                ],
                "name": [{"family": "XXX_Testpatiënt", "given": ["XXX_Anna"]}],
                "gender": self.case.get("sex", "female"),
                "birthDate": birth_date(int(self.case["age"])),
            }
        )

    def _icpc_condition(
        self, rid: str, code: str, display: str, days: int, status: str = "active", **extra: Any
    ) -> dict[str, Any]:
        resource = {
            "resourceType": "Condition",
            "id": rid,
            "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/nl-core-Problem"]},
            "clinicalStatus": _clinical(status),
            "verificationStatus": concept(
                coding(VERIFICATION, "confirmed"),
                coding(SNOMED, "410605003", "Aanwezigheid bevestigd"),
            ),
            "category": [concept(coding(SNOMED, "282291009", "Diagnose"))],
            "code": concept(coding(ICPC_NL, code, display)),
            "subject": self.subject,
            "onsetDateTime": day(days),
            "recordedDate": day(days),
        }
        resource.update(extra)
        return self._add(resource)

    def _episode(self, episode: dict[str, Any]) -> None:
        days = int(episode["days"])
        condition_days = int(episode.get("condition_days", days))
        if episode.get("icpc"):
            self._icpc_condition(
                "episode-condition",
                episode["icpc"],
                episode.get("icpc_display", episode.get("title", "")),
                condition_days,
                "resolved" if episode.get("status") == "finished" else "active",
            )
        resource: dict[str, Any] = {
            "resourceType": "EpisodeOfCare",
            "id": "episode",
            "extension": [{"url": TITLE_EXTENSION, "valueString": episode.get("title", "")}],
            "status": episode.get("status", "active"),
            "patient": self.subject,
            "period": {"start": day(days)},
        }
        if episode.get("icpc"):
            resource["diagnosis"] = [{"condition": {"reference": "Condition/episode-condition"}}]
        if episode.get("status") == "finished":
            resource["period"]["end"] = day(int(episode.get("end_days", 0)))
        self._add(resource)

    def _condition(self, rid: str, condition: dict[str, Any]) -> None:
        extra: dict[str, Any] = {}
        if condition.get("note"):
            extra["note"] = [{"text": condition["note"]}]
        if condition.get("abatement_days") is not None:
            extra["abatementDateTime"] = day(int(condition["abatement_days"]))
        if condition.get("snomed"):
            resource = self._icpc_condition(rid, "X", "", int(condition["days"]), **extra)
            resource["code"] = concept(
                coding(SNOMED, str(condition["snomed"]), condition["display"])
            )
        else:
            self._icpc_condition(
                rid,
                condition["icpc"],
                condition.get("display", ""),
                int(condition["days"]),
                condition.get("status", "active"),
                **extra,
            )

    def _consult(self, index: int, consult: dict[str, Any], *, linked: bool) -> None:
        days = int(consult["days"])
        encounter = {
            "resourceType": "Encounter",
            "id": f"e{index}",
            "status": "finished",
            "class": coding(ACT_CODE, "AMB", "ambulatory"),
            "type": [concept(coding(NHG14, consult.get("contact", "03"), "Consult"))],
            "subject": self.subject,
            "period": {"start": moment(days, 9), "end": moment(days, 9)},
        }
        if linked:
            encounter["episodeOfCare"] = [{"reference": "EpisodeOfCare/episode"}]
        self._add(encounter)
        sections = []
        for line in ("S", "O", "E", "P"):
            value = consult.get(line)
            if value is None:
                continue
            text, icpc = (
                (value.get("text"), value.get("icpc"))
                if isinstance(value, dict)
                else (
                    value,
                    None,
                )
            )
            resource: dict[str, Any] = {
                "resourceType": "Observation",
                "id": f"j{index}{line}",
                "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/gp-JournalEntry"]},
                "status": "final",
                "code": concept(coding(JOURNAL, line)),
                "subject": self.subject,
                "encounter": {"reference": f"Encounter/e{index}"},
                "effectiveDateTime": moment(days, 9),
                "valueString": text,
            }
            if linked:
                resource["extension"] = [
                    {"url": EPISODE_LINK, "valueReference": {"reference": "EpisodeOfCare/episode"}}
                ]
            if icpc:
                resource["component"] = [
                    {
                        "code": concept(
                            coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "DISDX")
                        ),
                        "valueCodeableConcept": concept(coding(ICPC_NL, icpc)),
                    }
                ]
            self._add(resource)
            sections.append(
                {
                    "title": line,
                    "text": {
                        "status": "generated",
                        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{text}</div>',
                    },
                }
            )
        # GP systems also send the consult as an encounter report repeating the lines
        self._add(
            {
                "resourceType": "Composition",
                "id": f"report{index}",
                "status": "final",
                "type": concept(coding(LOINC, "67781-5", "Summarization of encounter note")),
                "subject": self.subject,
                "encounter": {"reference": f"Encounter/e{index}"},
                "date": moment(days, 9),
                "author": [{"display": "Huisarts"}],
                "title": "Verslag consult",
                "section": sections,
            }
        )

    def _result(self, rid: str, result: dict[str, Any]) -> None:
        days = int(result["days"])
        codings = [coding(result.get("system", NHG45), str(result["nhg"]), result.get("display"))]
        if result.get("loinc"):
            codings.append(coding(LOINC, str(result["loinc"]), result.get("loinc_display")))
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/gp-DiagnosticResult"]},
            "status": "final",
            "code": concept(*codings),
            "subject": self.subject,
            "effectiveDateTime": moment(days, 11),
        }
        value = result.get("value")
        if isinstance(value, int | float):
            resource["valueQuantity"] = {"value": value}
            if result.get("unit"):  # scores come without a unit
                resource["valueQuantity"].update(
                    unit=result["unit"], system=UCUM, code=result["unit"]
                )
        elif value is not None:
            resource["valueString"] = str(value)
        if result.get("category"):
            resource["category"] = [concept(coding(OBS_CATEGORY, result["category"]))]
        self._add(resource)

    def _medication(self, rid: str, medication: dict[str, Any]) -> None:
        days = int(medication["days"])
        codings = [coding(GPK, str(medication["gpk"]), medication["name"])]
        if medication.get("hpk"):
            codings.append(coding(HPK, str(medication["hpk"]), medication["name"]))
        if medication.get("atc"):
            codings.append(coding(ATC, medication["atc"]))
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": rid,
            "meta": {
                "profile": ["http://nictiz.nl/fhir/StructureDefinition/zib-MedicationAgreement"]
            },
            "status": medication.get("status", "active"),
            "intent": "order",
            "medicationCodeableConcept": concept(*codings, text=medication["name"]),
            "subject": self.subject,
            "authoredOn": day(days),
            "dosageInstruction": [
                {
                    "text": medication.get("dosage", "1D1T"),
                    "asNeededCodeableConcept": concept(coding(NHG25, "1137", "zo nodig"))
                    if "zn" in medication.get("dosage", "")
                    else None,
                }
            ],
        }
        if resource["dosageInstruction"][0]["asNeededCodeableConcept"] is None:
            del resource["dosageInstruction"][0]["asNeededCodeableConcept"]
        if medication.get("supply_days"):
            resource["dispenseRequest"] = {
                "validityPeriod": {"start": day(days)},
                "expectedSupplyDuration": {
                    "value": int(medication["supply_days"]),
                    "unit": "dag",
                    "system": UCUM,
                    "code": "d",
                },
                "numberOfRepeatsAllowed": int(medication.get("repeats", 0)),
            }
        self._add(resource)

    def _referral(self, rid: str, referral: dict[str, Any]) -> None:
        days = int(referral["days"])
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "id": rid,
            "meta": {
                "profile": ["http://nictiz.nl/fhir/StructureDefinition/hg-ReferralServiceRequest"]
            },
            "status": referral.get("status", "completed"),
            "intent": "order",
            "category": [concept(text="Verwijsbrief")],
            "code": concept(text=referral["to"]),
            "subject": self.subject,
            "authoredOn": day(days),
        }
        if referral.get("snomed"):
            resource["code"] = concept(
                coding(SNOMED, str(referral["snomed"]), referral["to"]), text=referral["to"]
            )
        if referral.get("until_days") is not None:
            resource["occurrencePeriod"] = {
                "start": day(days),
                "end": day(int(referral["until_days"])),
            }
        if referral.get("performer"):
            resource["performer"] = [{"display": referral["performer"]}]
        self._add(resource)

    def _noise(self, count: int) -> None:
        """Unrelated consults, blood pressures and weights of years of GP care."""
        stories = [
            (
                "R74",
                "Verkoudheid",
                "Neusverkoudheid sinds 4 dagen, niet ziek.",
                "Keel rustig, temp 37,1.",
            ),
            ("K86", "Hypertensie", "Controle RR, geen klachten.", "RR 142/88, pols 72 regulair."),
            ("S88", "Contacteczeem", "Jeukende plekjes handen.", "Erytheem dorsum handen bdz."),
            ("A97", "Geen ziekte", "Vraagt naar griepvaccinatie.", "Geen bijzonderheden."),
            ("D12", "Obstipatie", "Sinds 2 wk moeizame ontlasting.", "Buik soepel, geen drukpijn."),
        ]
        weight = float(self.case.get("weight", 78.0))
        for n in range(count):
            icpc, name, s_text, o_text = stories[n % len(stories)]
            days = 200 + 97 * n + self.random.randint(0, 30)
            eid = f"noise{n}"
            self._add(
                {
                    "resourceType": "Encounter",
                    "id": eid,
                    "status": "finished",
                    "class": coding(ACT_CODE, "AMB", "ambulatory"),
                    "type": [concept(coding(NHG14, "03", "Consult"))],
                    "reasonCode": [concept(coding(ICPC_NL, icpc, name))],
                    "subject": self.subject,
                    "period": {"start": moment(days, 14), "end": moment(days, 14)},
                }
            )
            for line, text in (("S", s_text), ("O", o_text)):
                self._add(
                    {
                        "resourceType": "Observation",
                        "id": f"{eid}{line}",
                        "status": "final",
                        "code": concept(coding(JOURNAL, line)),
                        "subject": self.subject,
                        "encounter": {"reference": f"Encounter/{eid}"},
                        "effectiveDateTime": moment(days, 14),
                        "valueString": text,
                    }
                )
            self._add(
                {
                    "resourceType": "Observation",
                    "id": f"{eid}bp",
                    "status": "final",
                    "code": concept(
                        coding(NHG45, "1744", "Systolische bloeddruk"),
                        coding(LOINC, "8480-6", "Systolic blood pressure"),
                    ),
                    "subject": self.subject,
                    "effectiveDateTime": moment(days, 14),
                    "valueQuantity": {
                        "value": 130 + self.random.randint(0, 15),
                        "unit": "mm[Hg]",
                        "system": UCUM,
                        "code": "mm[Hg]",
                    },
                }
            )
            self._add(
                {
                    "resourceType": "Observation",
                    "id": f"{eid}wt",
                    "status": "final",
                    "code": concept(
                        coding(NHG45, "357", "Lichaamsgewicht"),
                        coding(LOINC, "29463-7", "Body weight"),
                    ),
                    "subject": self.subject,
                    "effectiveDateTime": moment(days, 14),
                    "valueQuantity": {
                        "value": round(weight + self.random.uniform(-0.4, 0.4), 1),
                        "unit": "kg",
                        "system": UCUM,
                        "code": "kg",
                    },
                }
            )


# -- US EHR records (Synthea-style) ------------------------------------------------------------


_VITALS = [
    ("8302-2", "Body Height", "cm", 172.0, 0.0),
    ("29463-7", "Body Weight", "kg", 84.0, 0.3),
    ("39156-5", "Body Mass Index", "kg/m2", 28.4, 0.1),
    ("8867-4", "Heart rate", "/min", 74.0, 8.0),
    ("9279-1", "Respiratory rate", "/min", 14.0, 2.0),
    ("8310-5", "Body temperature", "Cel", 36.8, 0.3),
    (
        "72514-3",
        "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
        "{score}",
        2.0,
        1.0,
    ),
]
_LABS = [
    ("2339-0", "Glucose", "mg/dL", 92.0, 8.0),
    ("38483-4", "Creatinine", "mg/dL", 0.9, 0.1),
    ("2947-0", "Sodium", "mmol/L", 140.0, 2.0),
    ("6298-4", "Potassium", "mmol/L", 4.2, 0.2),
    ("2069-3", "Chloride", "mmol/L", 104.0, 2.0),
    ("20565-8", "Carbon dioxide, total", "mmol/L", 25.0, 1.5),
    ("49765-1", "Calcium", "mg/dL", 9.4, 0.3),
    ("6690-2", "Leukocytes [#/volume] in Blood", "10*3/uL", 7.1, 1.2),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 14.1, 0.6),
    ("777-3", "Platelets [#/volume] in Blood", "10*3/uL", 260.0, 30.0),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 190.0, 15.0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.6, 0.2),
]


class EhrRecord:
    """One Synthea-style US record built from a case (see us_ehr.yaml for fields and ids)."""

    def __init__(self, case: dict[str, Any]) -> None:
        self.case = case
        self.random = random.Random(case["id"])  # noqa: S311 - reproducible fixtures
        self.patient_id = str(uuid.UUID(int=self.random.getrandbits(128)))
        self.subject = {"reference": f"urn:uuid:{self.patient_id}"}
        self.resources: list[dict[str, Any]] = []

    def build(self) -> list[dict[str, Any]]:
        """Every resource of the record."""
        case = self.case
        self._add(
            {
                "resourceType": "Patient",
                "id": self.patient_id,
                "identifier": [
                    {
                        "system": "https://github.com/synthetichealth/synthea",
                        "value": self.patient_id,
                    },
                    {
                        "type": concept(
                            coding("http://terminology.hl7.org/CodeSystem/v2-0203", "SS")
                        ),
                        "system": "http://hl7.org/fhir/sid/us-ssn",
                        "value": "999-55-0123",
                    },
                ],
                "name": [{"use": "official", "family": "Kuhn96", "given": ["Jerome431"]}],
                "gender": case.get("sex", "male"),
                "birthDate": birth_date(int(case["age"])),
            }
        )
        for index, item in enumerate(case.get("conditions") or (), start=1):
            self._condition(f"c{index}", item)
        for index, item in enumerate(case.get("observations") or (), start=1):
            self._observation(f"o{index}", item)
        for index, item in enumerate(case.get("medications") or (), start=1):
            self._medication(f"m{index}", item)
        for index, item in enumerate(case.get("procedures") or (), start=1):
            self._procedure(f"p{index}", item)
        for index, item in enumerate(case.get("encounters") or (), start=1):
            self._encounter(f"e{index}", item)
        for index, item in enumerate(case.get("imaging") or (), start=1):
            self._imaging(f"i{index}", item)
        for index, item in enumerate(case.get("reports") or (), start=1):
            self._report(f"d{index}", item)
        for index, item in enumerate(case.get("requests") or (), start=1):
            self._request(f"s{index}", item)
        self._visits(int(case.get("visits", 25)), int(case.get("visits_from", 60)))
        return self.resources

    def _add(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.resources.append(resource)
        return resource

    def _code(self, item: dict[str, Any], system: str = SNOMED) -> dict[str, Any]:
        if item.get("code") is None:
            return concept(text=item["display"])
        return concept(
            coding(item.get("system", system), str(item["code"]), item["display"]),
            text=item.get("text", item["display"]),
        )

    def _condition(self, rid: str, item: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "id": rid,
            "clinicalStatus": _clinical(item.get("status", "active")),
            "verificationStatus": concept(coding(VERIFICATION, "confirmed")),
            "category": [
                concept(
                    coding(
                        "http://terminology.hl7.org/CodeSystem/condition-category",
                        "encounter-diagnosis",
                        "Encounter Diagnosis",
                    )
                )
            ],
            "code": self._code(item),
            "subject": self.subject,
            "onsetDateTime": moment(int(item["days"])),
            "recordedDate": moment(int(item["days"])),
        }
        if item.get("abatement_days") is not None:
            resource["abatementDateTime"] = moment(int(item["abatement_days"]))
        if item.get("note"):
            resource["note"] = [{"text": item["note"]}]
        self._add(resource)

    def _observation(self, rid: str, item: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "status": item.get("status", "final"),
            "category": [concept(coding(OBS_CATEGORY, item.get("category", "laboratory")))],
            "code": self._code(item, LOINC),
            "subject": self.subject,
            "effectiveDateTime": moment(int(item["days"])),
            "issued": moment(int(item["days"])),
        }
        if "quantity" in item:
            value, unit = item["quantity"]
            resource["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
        if "string" in item:
            resource["valueString"] = item["string"]
        if "coded" in item:
            resource["valueCodeableConcept"] = concept(
                coding(SNOMED, str(item["coded"][0]), item["coded"][1])
            )
        if "interpretation" in item:
            resource["interpretation"] = [
                concept(
                    coding(
                        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        item["interpretation"],
                    )
                )
            ]
        if "components" in item:
            resource["component"] = [
                {
                    "code": concept(coding(LOINC, str(c["code"]), c["display"])),
                    "valueQuantity": {"value": c["value"]},
                }
                if "value" in c
                else {
                    "code": concept(coding(LOINC, str(c["code"]), c["display"])),
                    "valueString": c["string"],
                }
                for c in item["components"]
            ]
        self._add(resource)

    def _medication(self, rid: str, item: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": rid,
            "status": item.get("status", "active"),
            "intent": "order",
            "medicationCodeableConcept": concept(
                coding(RXNORM, str(item["rxnorm"]), item["display"]), text=item["display"]
            ),
            "subject": self.subject,
            "authoredOn": moment(int(item["days"])),
            "dosageInstruction": [
                {"sequence": 1, "asNeededBoolean": bool(item.get("as_needed", False))}
            ],
        }
        if item.get("supply_days"):
            resource["dispenseRequest"] = {
                "numberOfRepeatsAllowed": int(item.get("repeats", 0)),
                "expectedSupplyDuration": {
                    "value": int(item["supply_days"]),
                    "unit": "days",
                    "system": UCUM,
                    "code": "d",
                },
            }
        self._add(resource)

    def _procedure(self, rid: str, item: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": rid,
            "status": item.get("status", "completed"),
            "code": self._code(item),
            "subject": self.subject,
        }
        if item.get("end_days") is not None:
            resource["performedPeriod"] = {
                "start": moment(int(item["days"])),
                "end": moment(int(item["end_days"])),
            }
        else:
            resource["performedDateTime"] = moment(int(item["days"]))
        self._add(resource)

    def _encounter(self, rid: str, item: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": rid,
            "status": "finished",
            "class": coding(ACT_CODE, item.get("class", "AMB")),
            "type": [
                concept(
                    coding(SNOMED, "185345009", "Encounter for symptom"),
                    text="Encounter for symptom",
                )
            ],
            "subject": self.subject,
            "period": {"start": moment(int(item["days"])), "end": moment(int(item["days"]), 11)},
        }
        if item.get("reason"):
            resource["reasonCode"] = [self._code(item["reason"])]
        self._add(resource)

    def _imaging(self, rid: str, item: dict[str, Any]) -> None:
        self._add(
            {
                "resourceType": "ImagingStudy",
                "id": rid,
                "identifier": [
                    {
                        "use": "official",
                        "system": "urn:ietf:rfc:3986",
                        "value": f"urn:oid:1.2.840.99999999.{self.random.getrandbits(40)}",
                    }
                ],
                "status": "available",
                "subject": self.subject,
                "started": moment(int(item["days"])),
                "numberOfSeries": 1,
                "numberOfInstances": 1,
                "procedureCode": [self._code(item["procedure"])] if item.get("procedure") else None,
                "series": [
                    {
                        "uid": f"1.2.840.99999999.1.{self.random.getrandbits(30)}",
                        "number": 1,
                        "modality": coding(
                            "http://dicom.nema.org/resources/ontology/DCM", item["modality"]
                        ),
                        "numberOfInstances": 1,
                        "bodySite": coding(SNOMED, str(item["site"]), item.get("site_display")),
                    }
                ],
            }
        )
        if self.resources[-1]["procedureCode"] is None:
            del self.resources[-1]["procedureCode"]

    def _report(self, rid: str, item: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "DiagnosticReport",
            "id": rid,
            "status": "final",
            "category": [
                concept(
                    coding(
                        "http://terminology.hl7.org/CodeSystem/v2-0074", item.get("category", "RAD")
                    )
                )
            ],
            "code": self._code(item, LOINC),
            "subject": self.subject,
            "effectiveDateTime": moment(int(item["days"])),
            "issued": moment(int(item["days"])),
        }
        if item.get("conclusion"):
            resource["conclusion"] = item["conclusion"]
        if item.get("note"):
            resource["presentedForm"] = [
                {
                    "contentType": "text/plain",
                    "data": base64.b64encode(item["note"].encode()).decode(),
                }
            ]
        self._add(resource)

    def _request(self, rid: str, item: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "id": rid,
            "status": item.get("status", "active"),
            "intent": "order",
            "code": self._code(item),
            "subject": self.subject,
            "authoredOn": moment(int(item["days"])),
        }
        if item.get("until_days") is not None:
            resource["occurrencePeriod"] = {
                "start": moment(int(item["days"])),
                "end": moment(int(item["until_days"])),
            }
        if item.get("performer"):
            resource["performerType"] = concept(text=item["performer"])
        self._add(resource)

    def _visits(self, count: int, first: int) -> None:
        """Years of wellness visits: vitals, panels, surveys, orders, claims and vaccines."""
        for n in range(count):
            days = first + 120 * n + self.random.randint(0, 20)
            enc = f"urn:uuid:{uuid.UUID(int=self.random.getrandbits(128))}"
            eid = enc.removeprefix("urn:uuid:")
            self._add(
                {
                    "resourceType": "Encounter",
                    "id": eid,
                    "status": "finished",
                    "class": coding(ACT_CODE, "AMB"),
                    "type": [
                        concept(
                            coding(
                                SNOMED, "162673000", "General examination of patient (procedure)"
                            )
                        )
                    ],
                    "subject": self.subject,
                    "period": {"start": moment(days, 8), "end": moment(days, 9)},
                }
            )
            category = "vital-sign" if n % 9 == 4 else "vital-signs"  # Synthea's misspelling
            for code, name, unit, mean, spread in _VITALS:
                self._vital(enc, days, code, name, unit, mean, spread, category)
            self._add(
                {
                    "resourceType": "Observation",
                    "id": str(uuid.UUID(int=self.random.getrandbits(128))),
                    "status": "final",
                    "category": [concept(coding(OBS_CATEGORY, "vital-signs"))],
                    "code": concept(
                        coding(LOINC, "85354-9", "Blood pressure panel with all children optional")
                    ),
                    "subject": self.subject,
                    "encounter": {"reference": enc},
                    "effectiveDateTime": moment(days, 8),
                    "component": [
                        {
                            "code": concept(coding(LOINC, "8462-4", "Diastolic Blood Pressure")),
                            "valueQuantity": {
                                "value": 78 + self.random.randint(0, 10),
                                "unit": "mm[Hg]",
                                "system": UCUM,
                                "code": "mm[Hg]",
                            },
                        },
                        {
                            "code": concept(coding(LOINC, "8480-6", "Systolic Blood Pressure")),
                            "valueQuantity": {
                                "value": 118 + self.random.randint(0, 20),
                                "unit": "mm[Hg]",
                                "system": UCUM,
                                "code": "mm[Hg]",
                            },
                        },
                    ],
                }
            )
            if n % 2 == 0:
                for code, name, unit, mean, spread in _LABS:
                    self._vital(enc, days, code, name, unit, mean, spread, "laboratory")
            self._add(
                {
                    "resourceType": "Observation",
                    "id": str(uuid.UUID(int=self.random.getrandbits(128))),
                    "status": "final",
                    "category": [concept(coding(OBS_CATEGORY, "survey"))],
                    "code": concept(
                        coding(
                            LOINC,
                            "55757-9",
                            "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]",
                        )
                    ),
                    "subject": self.subject,
                    "effectiveDateTime": moment(days, 8),
                    "valueQuantity": {
                        "value": self.random.randint(0, 2),
                        "unit": "{score}",
                        "system": UCUM,
                        "code": "{score}",
                    },
                }
            )
            self._add(
                {
                    "resourceType": "Observation",
                    "id": str(uuid.UUID(int=self.random.getrandbits(128))),
                    "status": "final",
                    "category": [concept(coding(OBS_CATEGORY, "social-history"))],
                    "code": concept(coding(LOINC, "72166-2", "Tobacco smoking status")),
                    "subject": self.subject,
                    "effectiveDateTime": moment(days, 8),
                    "valueCodeableConcept": concept(
                        coding(SNOMED, "266919005", "Never smoked tobacco (finding)")
                    ),
                }
            )
            # OpenMRS-style order entries: a test name, invalid codes under real systems
            self._add(
                {
                    "resourceType": "Observation",
                    "id": str(uuid.UUID(int=self.random.getrandbits(128))),
                    "status": "final",
                    "code": concept(
                        coding(LOINC, "1271AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "TESTS ORDERED")
                    ),
                    "subject": self.subject,
                    "effectiveDateTime": moment(days, 8),
                    "valueCodeableConcept": concept(
                        coding(SNOMED, "21AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "HEMOGLOBIN")
                    ),
                }
            )
            self._add(
                {
                    "resourceType": "Immunization",
                    "id": str(uuid.UUID(int=self.random.getrandbits(128))),
                    "status": "completed",
                    "vaccineCode": concept(
                        coding(
                            "http://hl7.org/fhir/sid/cvx",
                            "140",
                            "Influenza, seasonal, injectable, preservative free",
                        )
                    ),
                    "patient": self.subject,
                    "occurrenceDateTime": moment(days, 8),
                }
            )
            self._add(
                {
                    "resourceType": "Claim",
                    "id": str(uuid.UUID(int=self.random.getrandbits(128))),
                    "status": "active",
                    "use": "claim",
                    "type": concept(
                        coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional")
                    ),
                    "patient": self.subject,
                    "created": moment(days, 9),
                    "provider": {"display": "PCP45120"},
                    "priority": concept(
                        coding("http://terminology.hl7.org/CodeSystem/processpriority", "normal")
                    ),
                    "insurance": [
                        {"sequence": 1, "focal": True, "coverage": {"display": "Medicaid"}}
                    ],
                }
            )

    def _vital(
        self,
        enc: str,
        days: int,
        code: str,
        name: str,
        unit: str,
        mean: float,
        spread: float,
        category: str,
    ) -> None:
        value = round(mean + self.random.uniform(-spread, spread), 1)
        self._add(
            {
                "resourceType": "Observation",
                "id": str(uuid.UUID(int=self.random.getrandbits(128))),
                "status": "final",
                "category": [concept(coding(OBS_CATEGORY, category))],
                "code": concept(coding(LOINC, code, name), text=name),
                "subject": self.subject,
                "encounter": {"reference": enc},
                "effectiveDateTime": moment(days, 8),
                "issued": moment(days, 8),
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )


# -- the order and the request ---------------------------------------------------------------


def draft_order(case: dict[str, Any], patient_reference: str) -> dict[str, Any]:
    """The draft imaging ServiceRequest of a case (`order` field)."""
    order = case["order"]
    code: dict[str, Any] = {}
    if order.get("cpt"):
        code["coding"] = [coding(CPT, str(order["cpt"]), order.get("display"))]
    elif order.get("snomed"):
        code["coding"] = [coding(SNOMED, str(order["snomed"]), order.get("display"))]
    if order.get("text"):
        code["text"] = order["text"]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": "draft-imaging",
        "status": "draft",
        "intent": order.get("intent", "order"),
        "code": code,
        "subject": {"reference": patient_reference},
        "authoredOn": day(0),
    }
    if order.get("reason"):
        reason = order["reason"]
        resource["reasonCode"] = [
            concept(
                coding(reason.get("system", SNOMED), str(reason["code"]), reason.get("display"))
            )
            if reason.get("code")
            else concept(text=reason["text"])
        ]
    if order.get("note"):
        resource["note"] = [{"text": order["note"]}]
    return resource


# Prefetch key per resource type, as discovery names them (the scenario loader's, plus Patient)
PREFETCH_KEYS = {"Patient": "patient", **SCENARIO_PREFETCH_KEYS}


def record(case: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(patient id, every resource) of a case, in the shape its `shape` field names."""
    builder = GpRecord(case) if case["shape"] == "nl-gp" else EhrRecord(case)
    resources = builder.build()
    return builder.patient_id, resources


def by_key(patient_id: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The prefetch a client would send: one searchset per key (the Patient itself)."""
    prefetch: dict[str, Any] = {key: [] for key in PREFETCH_KEYS.values()}
    for resource in resources:
        key = PREFETCH_KEYS.get(resource["resourceType"])
        if key is None:
            continue  # Composition, Claim, Immunization: no key asks for them
        prefetch[key].append(resource)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    return {
        key: patient if key == "patient" else searchset(items) for key, items in prefetch.items()
    }


def hook_request(
    case: dict[str, Any], patient_id: str, resources: list[dict[str, Any]], fhir_server: str | None
) -> dict[str, Any]:
    """An order-sign request for the case: prefetched, or with only a fhirServer to read from."""
    patient_reference = (
        f"urn:uuid:{patient_id}" if case["shape"] == "us-ehr" else f"Patient/{patient_id}"
    )
    order = draft_order(case, patient_reference)
    request: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/gp-7",
            "patientId": patient_id,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": order}],
            },
        },
    }
    if fhir_server is None:
        request["prefetch"] = by_key(patient_id, resources)
    else:
        request["fhirServer"] = fhir_server
    return request
