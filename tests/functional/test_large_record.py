"""A large real record is judged, not refused: the default body limit admits 10,000 resources."""

from __future__ import annotations

import json

from cds_service.app import create_app
from cds_service.config import Settings
from tests.records.shapes import EhrRecord, hook_request

DECISIONS = "org.lumbar-imaging-cds.decisions"


def test_a_ten_thousand_resource_record_is_admitted_and_judged():
    case = {
        "id": "large-record",
        "shape": "us-ehr",
        "age": 58,
        "visits": 500,  # ~20 resources a visit: years of labs, vitals, claims
        "conditions": [{"code": "279039007", "display": "Low back pain (finding)", "days": 30}],
        "order": {"cpt": "72148", "display": "MRI lumbar spine without contrast"},
    }
    record = EhrRecord(case)
    resources = record.build()
    body = json.dumps(hook_request(case, record.patient_id, resources, None)).encode()
    assert len(resources) >= 10_000
    assert len(body) > 5 * 1024 * 1024  # over the old 5 MiB default that refused it
    settings = Settings(env="test", auth_enabled=False)
    assert len(body) < settings.max_request_bytes
    client = create_app(settings).test_client()
    response = client.post(
        "/cds-services/lumbar-imaging-order-sign", data=body, content_type="application/json"
    )
    assert response.status_code == 200
    (entry,) = response.get_json()["extension"][DECISIONS]
    assert entry["decision"] == "not-indicated"
