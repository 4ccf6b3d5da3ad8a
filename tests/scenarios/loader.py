"""Builds complete CDS Hooks requests from the scenario fixtures in tests/fixtures/scenarios/.

A fixture file holds a list of scenarios; each names the FHIR resources it adds to a shared base
patient (`_base.json`) and the draft orders it sends. Resources are written in full or as
`{"$template": "<name>", "$<arg>": <value>, ...overrides}`: the template from `_base.json` with
every `${<arg>}` replaced, then the overrides merged on top (shallow).

Dates are relative to the test run, so a scenario means the same thing on any day:

- `${date:-30}`      the ISO date 30 days before today (`+` for the future)
- `${datetime:-2}`   the ISO date-time 2 days before now (UTC)
- `${birthDate:55}`  a birth date making the patient exactly 55 today (born 55 years and
                     180 days ago, so no birthday falls near the test run)

A placeholder that is a whole JSON string becomes that string; `${<arg>}` standing alone is
replaced by the argument's JSON value (so `"valueInteger": "${grade}"` stays an integer).
The loader fills what FHIR requires but the scenarios need not spell out: ids, `subject`,
statuses (`draft`/`order` for draft orders), and Condition clinical/verification status.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios"
BASE_FILE = "_base.json"
HOOKS = ("order-select", "order-sign")
PATIENT_ID = "pat-1"
USER_ID = "Practitioner/gp-1"
SERVICE_PATH = "/cds-services/lumbar-imaging-{hook}"

# Prefetch key per resource type (the service's discovery document names the same keys).
PREFETCH_KEYS = {
    "Condition": "conditions",
    "Observation": "observations",
    "Procedure": "procedures",
    "MedicationStatement": "medicationStatements",
    "MedicationRequest": "medicationRequests",
    "ServiceRequest": "serviceRequests",
    "ImagingStudy": "imagingStudies",
    "DiagnosticReport": "diagnosticReports",
    "EpisodeOfCare": "episodesOfCare",
    "Encounter": "encounters",
}
DEFAULT_STATUS = {
    "Observation": "final",
    "Procedure": "completed",
    "MedicationStatement": "active",
    "MedicationRequest": "active",
    "ServiceRequest": "active",
    "ImagingStudy": "available",
    "DiagnosticReport": "final",
}
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

_RELATIVE = re.compile(r"\$\{(date|datetime|birthDate):([+-]?\d+)\}")
_ARGUMENT = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")


class FixtureError(ValueError):
    """A scenario fixture that cannot be turned into a request."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario as written in its fixture file, before dates are resolved."""

    id: str
    group: str
    description: str
    hook: str
    patient: Mapping[str, Any]
    resources: tuple[Mapping[str, Any], ...]
    orders: tuple[Mapping[str, Any], ...]
    selections: tuple[str, ...] | None

    @property
    def order_refs(self) -> tuple[str, ...]:
        """References of every draft order, in the order they are sent."""
        return tuple(f"ServiceRequest/{order['id']}" for order in self.orders)

    @property
    def path(self) -> str:
        """The service endpoint this scenario's hook is posted to."""
        return SERVICE_PATH.format(hook=self.hook)


# --- relative dates


def birth_date(age: int, today: date) -> date:
    """A birth date that makes someone exactly `age` on `today`, ~180 days past the birthday."""
    try:
        birthday = today.replace(year=today.year - age)
    except ValueError:  # 29 February in a non-leap year
        birthday = today.replace(year=today.year - age, day=28)
    return birthday - timedelta(days=180)


def resolve_dates(value: Any, now: datetime) -> Any:
    """A deep copy of `value` with every ${date:..}, ${datetime:..}, ${birthDate:..} resolved."""
    if isinstance(value, Mapping):
        return {key: resolve_dates(item, now) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_dates(item, now) for item in value]
    if isinstance(value, str):
        return _RELATIVE.sub(lambda match: _relative(match, now), value)
    return value


def _relative(match: re.Match[str], now: datetime) -> str:
    kind, number = match.group(1), int(match.group(2))
    if kind == "date":
        return (now.date() + timedelta(days=number)).isoformat()
    if kind == "datetime":
        return (now + timedelta(days=number)).replace(microsecond=0).isoformat()
    return birth_date(number, now.date()).isoformat()


# --- templates


def _substitute(value: Any, arguments: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return {key: _substitute(item, arguments) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, arguments) for item in value]
    if not isinstance(value, str):
        return value
    whole = _ARGUMENT.fullmatch(value)
    if whole and whole.group(1) in arguments:
        return copy.deepcopy(arguments[whole.group(1)])

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in arguments:
            raise FixtureError(f"template argument ${{{name}}} has no value")
        return str(arguments[name])

    return _ARGUMENT.sub(replace, value)


def expand(item: Any, templates: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One resource of a scenario: written in full, or a template use with arguments."""
    if isinstance(item, str):
        item = {"$template": item}
    if not isinstance(item, Mapping):
        raise FixtureError(f"{where}: a resource must be an object or a template name")
    name = item.get("$template")
    if name is None:
        return copy.deepcopy(dict(item))
    if name not in templates:
        raise FixtureError(f"{where}: unknown template {name!r}")
    arguments = {k[1:]: v for k, v in item.items() if k.startswith("$") and k != "$template"}
    resource = _substitute(templates[name], arguments)
    resource.update({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
    return resource


# --- loading


@cache
def _base() -> dict[str, Any]:
    return json.loads((FIXTURES / BASE_FILE).read_text(encoding="utf-8"))


def fixture_files() -> list[Path]:
    """Every scenario fixture file (the base file excluded), sorted by name."""
    return sorted(p for p in FIXTURES.glob("*.json") if p.name != BASE_FILE)


def _scenario(raw: Mapping[str, Any], group: str, base: Mapping[str, Any]) -> Scenario:
    scenario_id = raw.get("id")
    if not isinstance(scenario_id, str) or not scenario_id:
        raise FixtureError(f"{group}: a scenario without an id")
    where = f"{group}/{scenario_id}"
    templates = base["templates"]
    hook = raw.get("hook", "order-sign")
    if hook not in HOOKS:
        raise FixtureError(f"{where}: hook must be one of {HOOKS}")
    patient = copy.deepcopy(base["patient"])
    if "age" in raw:
        patient["birthDate"] = f"${{birthDate:{int(raw['age'])}}}"
    patient.update(copy.deepcopy(raw.get("patient", {})))
    resources = tuple(
        expand(item, templates, f"{where} resources[{i}]")
        for i, item in enumerate(raw.get("resources", []))
    )
    orders = tuple(
        expand(item, templates, f"{where} orders[{i}]") for i, item in enumerate(raw["orders"])
    )
    for order in orders:
        if order.get("resourceType") != "ServiceRequest" or not order.get("id"):
            raise FixtureError(f"{where}: every order must be a ServiceRequest with an id")
    selections = raw.get("selections")
    return Scenario(
        id=scenario_id,
        group=group,
        description=raw.get("description", ""),
        hook=hook,
        patient=patient,
        resources=resources,
        orders=orders,
        selections=tuple(selections) if selections is not None else None,
    )


def iter_scenarios() -> Iterator[Scenario]:
    """Every scenario of every fixture file, in file order."""
    base = _base()
    for path in fixture_files():
        data = json.loads(path.read_text(encoding="utf-8"))
        for raw in data["scenarios"]:
            yield _scenario(raw, path.stem, base)


@cache
def scenarios() -> dict[str, Scenario]:
    """All scenarios by id; duplicate ids are an error."""
    found: dict[str, Scenario] = {}
    for scenario in iter_scenarios():
        if scenario.id in found:
            raise FixtureError(f"duplicate scenario id {scenario.id!r}")
        found[scenario.id] = scenario
    return found


# --- request assembly


def _complete(resource: dict[str, Any], index: int) -> dict[str, Any]:
    kind = resource["resourceType"]
    resource.setdefault("id", f"{kind.lower()}-{index}")
    resource.setdefault("subject", {"reference": f"Patient/{PATIENT_ID}"})
    if kind in DEFAULT_STATUS:
        resource.setdefault("status", DEFAULT_STATUS[kind])
    if kind == "ServiceRequest":
        resource.setdefault("intent", "order")
    if kind == "Condition":
        verification = resource.setdefault(
            "verificationStatus", _concept(CONDITION_VERIFICATION, "confirmed")
        )
        if verification["coding"][0]["code"] != "entered-in-error":
            resource.setdefault("clinicalStatus", _concept(CONDITION_CLINICAL, "active"))
    return resource


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not resources:
        return None
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def build_request(scenario: Scenario, now: datetime | None = None) -> dict[str, Any]:
    """The complete hook request of a scenario, with dates resolved against `now`."""
    now = now or datetime.now(UTC)
    patient = {**copy.deepcopy(dict(scenario.patient)), "resourceType": "Patient"}
    patient["id"] = PATIENT_ID
    by_key: dict[str, list[dict[str, Any]]] = {key: [] for key in PREFETCH_KEYS.values()}
    for index, resource in enumerate(copy.deepcopy(list(scenario.resources)), start=1):
        kind = resource.get("resourceType")
        if kind not in PREFETCH_KEYS:
            raise FixtureError(f"{scenario.id}: no prefetch key for resource type {kind!r}")
        by_key[PREFETCH_KEYS[kind]].append(_complete(resource, index))
    drafts = []
    for order in copy.deepcopy(list(scenario.orders)):
        order.setdefault("status", "draft")
        order.setdefault("intent", "order")
        order.setdefault("subject", {"reference": f"Patient/{PATIENT_ID}"})
        order.setdefault("authoredOn", "${date:0}")
        drafts.append(order)
    context: dict[str, Any] = {"userId": USER_ID, "patientId": PATIENT_ID}
    if scenario.hook == "order-select":
        selected = scenario.selections if scenario.selections is not None else scenario.order_refs
        context["selections"] = list(selected)
    context["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": order} for order in drafts],
    }
    request = {
        "hook": scenario.hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": {"patient": patient, **{k: _searchset(v) for k, v in by_key.items()}},
    }
    return resolve_dates(request, now)
