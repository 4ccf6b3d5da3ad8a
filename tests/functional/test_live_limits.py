"""Under real gunicorn (cds_service/serve.sh, 2 workers): the body limit also holds for chunked
bodies without Content-Length, /metrics adds up all workers in multiprocess mode, and every
log line is JSON."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.contract import check_response
from tests.support.hook_requests import SELECT, sample_request
from tests.support.live import entrypoint_server

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """gunicorn with 2 workers, PROMETHEUS_MULTIPROC_DIR and a 4 KiB body limit."""
    work = tmp_path_factory.mktemp("live-limits")
    multiproc = work / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_99999.db").write_bytes(b"stale garbage from an earlier run")
    env = {
        "CDS_WORKERS": "2",
        "CDS_DATABASE_URL": f"sqlite:///{work / 'audit.db'}",
        "CDS_MAX_REQUEST_BYTES": str(LIMIT),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    stderr_path = work / "stderr.log"
    with entrypoint_server(env, stderr_path=stderr_path) as base:
        yield {"base": base, "stderr": stderr_path}


def _chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    body = json.dumps({"padding": "x" * total}).encode()
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_chunked_body_over_the_limit_is_413(server):
    # A generator body makes requests send Transfer-Encoding: chunked and no Content-Length.
    response = requests.post(
        server["base"] + SELECT,
        data=_chunks(LIMIT * 4),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413
    check_response(SELECT, "POST", 413, response.headers["Content-Type"], response.content)
    assert response.json()["issue"][0]["code"] == "too-costly"


def test_chunked_body_within_the_limit_is_read(server):
    request = sample_request()
    for key in list(request["prefetch"]):
        if key != "patient":
            request["prefetch"][key] = None
    body = json.dumps(request).encode()
    assert len(body) < LIMIT
    response = requests.post(
        server["base"] + SELECT,
        data=iter([body[:500], body[500:]]),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200, response.text


def test_content_length_over_the_limit_is_413_before_reading(server):
    response = requests.post(
        server["base"] + SELECT,
        data=b"{" + b" " * (LIMIT * 2) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413


def test_metrics_add_up_all_workers(server):
    _assert_metrics_add_up(server["base"])


def test_metrics_add_up_all_workers_without_a_multiprocess_directory_given(tmp_path):
    """The entrypoint makes one of its own: two workers are counted right by default."""
    import os

    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        "CDS_WORKERS": "2",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "TMPDIR": str(scratch),
    }
    with entrypoint_server(env, stderr_path=tmp_path / "stderr.log") as base:
        _assert_metrics_add_up(base)
        # prometheus_client's multiprocess files: the workers count into one directory.
        (made,) = scratch.glob("cds-metrics.*")
        assert list(made.glob("*.db"))


def _assert_metrics_add_up(base: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    close = {"Connection": "close"}  # a new connection each time, and many at once:
    with ThreadPoolExecutor(8) as pool:  # an idle gunicorn lets one worker take them all

        def get(path: str) -> requests.Response:
            return requests.get(f"{base}{path}", timeout=5, headers=close)

        assert {r.status_code for r in pool.map(get, ["/healthz"] * 60)} == {200}
        scrapes = [r.text for r in pool.map(get, ["/metrics"] * 16)]
    # Each scrape may land on either worker; each must report the sum of both.
    counts = set()
    for text in scrapes:
        for line in text.splitlines():
            if line.startswith("cds_http_request_duration_seconds_count{") and (
                'endpoint="/healthz"' in line and 'status="200"' in line
            ):
                counts.add(float(line.rsplit(" ", 1)[1]))
    assert len(counts) == 1
    assert counts.pop() >= 61  # 60 here plus the start-up probe(s)


def test_every_log_line_is_json(server):
    requests.get(server["base"] + "/readyz", timeout=5)
    time.sleep(0.2)
    lines = [line for line in server["stderr"].read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
    assert any(json.loads(line)["logger"] == "gunicorn.error" for line in lines)
    assert any(json.loads(line)["message"] == "request served" for line in lines)


@pytest.mark.parametrize(("size", "status"), [(LIMIT - 1, 400), (LIMIT, 413), (LIMIT * 3, 413)])
def test_chunked_limit_in_process(settings, size, status):
    # Werkzeug cuts a chunked body off at the limit without an error; the service must not
    # parse the cut-off prefix (that was a 400 "malformed JSON" before).
    from cds_service.app import create_app
    from tests.conftest import ContractClient

    app = create_app(settings.with_overrides(max_request_bytes=LIMIT))
    app.test_client_class = ContractClient
    response = app.test_client().post(
        SELECT,
        input_stream=io.BytesIO(b"{" + b" " * (size - 2) + b"}"),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == status
