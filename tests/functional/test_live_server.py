"""The real thing: cds_service/serve.sh starts gunicorn on loopback and serves real HTTP calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.support.contract import check_response
from tests.support.hook_requests import SELECT, decisions, sample_request
from tests.support.live import entrypoint_server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service under gunicorn, started by the same entrypoint script as the Docker image."""
    # auth off: no CDS_TRUSTED_ISSUERS (test_auth.py tests authentication)
    stderr = tmp_path_factory.mktemp("live-server") / "stderr.log"
    with entrypoint_server({}, stderr_path=stderr) as base:
        yield base


def _checked(response: requests.Response, path: str, method: str) -> requests.Response:
    check_response(
        path, method, response.status_code, response.headers["Content-Type"], response.content
    )
    return response


def test_discovery_over_real_http(live_server):
    response = _checked(
        requests.get(f"{live_server}/cds-services", timeout=5), "/cds-services", "GET"
    )
    assert {s["id"] for s in response.json()["services"]} == {
        "lumbar-imaging-order-select",
        "lumbar-imaging-order-sign",
    }


def test_order_select_over_real_http(live_server):
    response = _checked(
        requests.post(f"{live_server}{SELECT}", json=sample_request(), timeout=5), SELECT, "POST"
    )
    assert response.status_code == 200
    assert decisions(response.json())["ServiceRequest/draft-mri-1"]["decision"] == "not-indicated"


def test_bad_request_over_real_http_is_an_operation_outcome(live_server):
    response = _checked(
        requests.post(
            f"{live_server}{SELECT}",
            data=b"{",
            timeout=5,
            headers={"Content-Type": "application/json"},
        ),
        SELECT,
        "POST",
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text


def test_cors_preflight_over_real_http(live_server):
    response = requests.options(
        f"{live_server}{SELECT}",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=5,
    )
    assert response.status_code == 200
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def test_the_openapi_document_validates_from_its_url(live_server):
    """Fetched over HTTP from the running service, as an integrator would."""
    from tests.functional.test_openapi_document import check_served_document

    response = requests.get(live_server + "/openapi.yaml", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/yaml")
    check_served_document(response.text, live_server)
