"""Loads the record corpus (nl_gp.yaml, us_ehr.yaml) and serves a record as a client would send it.

`serve` registers a record on a loopback FHIR stub (transport `server`: the service reads every
key from fhirServer, Observations in pages as a FHIR server returns them); `request_for` builds
the order-sign request (transport `prefetch`: every key in the request).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.records import shapes
from tests.support.fhir_stub import FhirStub

HERE = Path(__file__).resolve().parent
FILES = {"nl-gp": HERE / "nl_gp.yaml", "us-ehr": HERE / "us_ehr.yaml"}
SERVICE_PATH = "/cds-services/lumbar-imaging-order-sign"
PAGE_SIZE = 250  # Observations per Bundle page on the stub, as a FHIR server pages a search


@dataclass(frozen=True)
class Record:
    """One case of the corpus, built into resources."""

    case: dict[str, Any]
    patient_id: str
    resources: tuple[dict[str, Any], ...]

    @property
    def id(self) -> str:
        """The case id, prefixed by its shape ("nl-gp/hnp-17wk-cesar-nhg-ct")."""
        return f"{self.case['shape']}/{self.case['id']}"

    @property
    def expect(self) -> dict[str, Any]:
        """The expected decision, decisive criteria, reasons, rating and cited evidence."""
        return self.case["expect"]


@cache
def records() -> tuple[Record, ...]:
    """Every record of both files, in file order."""
    found = []
    for shape, path in FILES.items():
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            case = {**case, "shape": shape}
            patient_id, resources = shapes.record(case)
            found.append(Record(case, patient_id, tuple(resources)))
    return tuple(found)


def serve(stub: FhirStub, record: Record) -> None:
    """Register every prefetch route of the record on the stub."""
    prefetch = shapes.by_key(record.patient_id, list(record.resources))
    pid = record.patient_id
    stub.add(f"Patient/{pid}", prefetch["patient"])
    for resource_type, key in shapes.PREFETCH_KEYS.items():
        if key == "patient":
            continue
        items = [e["resource"] for e in prefetch[key].get("entry", [])]
        route = f"{resource_type}?patient={pid}"
        if resource_type == "Observation":
            stub.add_paged(route, items, page_size=PAGE_SIZE)
        else:
            stub.add(route, FhirStub.bundle(items))


def request_for(record: Record, fhir_server: str | None) -> dict[str, Any]:
    """The order-sign request of the record, over its transport."""
    server = fhir_server if record.case.get("transport") == "server" else None
    return shapes.hook_request(record.case, record.patient_id, list(record.resources), server)
