"""Builders of CDS Hooks requests for the protocol tests (clinical scenarios live elsewhere)."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "order-select-request.json"
SELECT = "/cds-services/lumbar-imaging-order-select"
SIGN = "/cds-services/lumbar-imaging-order-sign"
PREFETCH_KEYS = (
    "patient",
    "conditions",
    "observations",
    "procedures",
    "medicationStatements",
    "medicationRequests",
    "serviceRequests",
    "imagingStudies",
    "diagnosticReports",
    "episodesOfCare",
    "encounters",
)


def sample_request() -> dict[str, Any]:
    """The shipped sample order-select request (a fresh copy with a new hookInstance)."""
    request = json.loads(SAMPLE.read_text(encoding="utf-8"))
    request["hookInstance"] = str(uuid.uuid4())
    return request


def service_request(order_id: str, *, cpt: str | None = None, text: str | None = None) -> dict:
    """A draft ServiceRequest coded with CPT and/or carrying only text."""
    code: dict[str, Any] = {}
    if cpt:
        code["coding"] = [{"system": "http://www.ama-assn.org/go/cpt", "code": cpt}]
    if text:
        code["text"] = text
    return {
        "resourceType": "ServiceRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "code": code,
        "subject": {"reference": "Patient/sample-patient-1"},
    }


def with_orders(
    request: dict[str, Any],
    orders: list[dict],
    *,
    hook: str = "order-select",
    selections: list[str] | None = None,
) -> dict[str, Any]:
    """A copy of a request with other draft orders (and selections for order-select)."""
    request = copy.deepcopy(request)
    request["hook"] = hook
    request["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": order} for order in orders],
    }
    if hook == "order-select":
        request["context"]["selections"] = selections or [f"ServiceRequest/{orders[0]['id']}"]
    else:
        request["context"].pop("selections", None)
    return request


def decisions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-order decision entries of a response, by order reference."""
    entries = body.get("extension", {}).get("org.lumbar-imaging-cds.decisions", [])
    return {entry["order"]: entry for entry in entries}


def ratings(body: dict[str, Any]) -> dict[str, str]:
    """The PAMA rating per order id from the top-level systemActions."""
    found = {}
    for action in body.get("systemActions", []):
        resource = action["resource"]
        for extension in resource.get("extension", []):
            if extension["url"] == "http://fhir.org/argonaut/Extension/pama-rating":
                found[f"ServiceRequest/{resource['id']}"] = extension["valueCodeableConcept"][
                    "coding"
                ][0]["code"]
    return found
