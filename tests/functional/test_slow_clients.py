"""Slow clients cannot hold the shipped server (issue 12): the entrypoint's threaded workers with
a deadline on every request keep answering `/healthz` and hook calls while dozens of clients
drip their headers or bodies, and gunicorn opens no control socket."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cds_service.observability.worker import DEFAULT_DEADLINE_SECONDS, request_deadline_seconds
from tests.support.hook_requests import SELECT, sample_request
from tests.support.live import entrypoint_server

SLOW_HEADERS = 30
SLOW_BODIES = 30
ATTACK_SECONDS = 20.0
DRIP_SECONDS = 2.0
ANSWER_WITHIN = 1.0


class Slowloris:
    """Clients that each send a request a line (or a few body bytes) every two seconds.

    A client whose connection the server closes connects again at once, as a real attacker's
    would, so the server faces the full number of slow connections for the whole attack.
    """

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.stop = threading.Event()
        self.connects = 0
        self.cut_off = 0
        self.open_now = 0

    def _open(self, body: bool) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        self.connects += 1
        if body:
            head = (
                f"POST {SELECT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n{"
            )
        else:
            head = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
        sock.sendall(head.encode())
        return sock

    def run(self) -> None:
        """Keep SLOW_HEADERS header drippers and SLOW_BODIES body drippers going until stopped."""
        kinds = [False] * SLOW_HEADERS + [True] * SLOW_BODIES
        socks: list[socket.socket | None] = [self._open(kind) for kind in kinds]
        self.open_now = len(socks)
        while not self.stop.wait(DRIP_SECONDS):
            for index, sock in enumerate(socks):
                try:
                    assert sock is not None
                    sock.sendall(b'"a":1,' if kinds[index] else b"X-Drip: 1\r\n")
                except (OSError, AssertionError):
                    self.cut_off += 1
                    if sock is not None:
                        sock.close()
                    try:
                        socks[index] = self._open(kinds[index])
                    except OSError:
                        socks[index] = None
            self.open_now = sum(1 for sock in socks if sock is not None)
        for sock in socks:
            if sock is not None:
                sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The entrypoint as shipped (2 workers, default threads), with its own HOME."""
    work = tmp_path_factory.mktemp("slow-clients")
    home = work / "home"
    home.mkdir()
    env = {
        "CDS_WORKERS": "2",
        "CDS_DATABASE_URL": f"sqlite:///{work / 'audit.db'}",
        "HOME": str(home),
        "XDG_RUNTIME_DIR": "",
    }
    with entrypoint_server(env, stderr_path=work / "stderr.log") as base:
        yield {"base": base, "home": home, "stderr": work / "stderr.log"}


def _hook_call(base: str) -> requests.Response:
    body = sample_request()
    body["hookInstance"] = str(uuid.uuid4())
    return requests.post(base + SELECT, json=body, timeout=5)


def test_sixty_slow_clients_for_twenty_seconds_do_not_hold_the_service(server):
    base = server["base"]
    port = int(base.rsplit(":", 1)[1])
    # The first call a worker answers loads what it keeps for later calls (schemas, rules):
    # warm both workers first, as any service that has been up a minute is.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        assert {r.status_code for r in pool.map(lambda _: _hook_call(base), range(16))} == {200}
    attack = Slowloris("127.0.0.1", port)
    runner = threading.Thread(target=attack.run, daemon=True)
    runner.start()
    slowest: list[tuple[str, float, int]] = []
    try:
        time.sleep(1.0)  # every slow client connected and sending
        started = time.monotonic()
        while time.monotonic() - started < ATTACK_SECONDS:
            for name, call in (
                ("healthz", lambda: requests.get(base + "/healthz", timeout=5)),
                ("hook", lambda: _hook_call(base)),
            ):
                began = time.monotonic()
                response = call()
                slowest.append((name, time.monotonic() - began, response.status_code))
            time.sleep(0.5)
        assert attack.open_now >= SLOW_HEADERS + SLOW_BODIES - 2  # the attack really ran
    finally:
        attack.stop.set()
        runner.join(timeout=10)
    assert len(slowest) >= 20
    assert all(status == 200 for _, _, status in slowest), slowest
    worst = max(seconds for _, seconds, _ in slowest)
    assert worst < ANSWER_WITHIN, sorted(slowest, key=lambda row: -row[1])[:5]


def test_a_stalled_request_is_cut_off_at_its_deadline(tmp_path: Path):
    """A client that sends half its headers and then nothing is closed after the deadline."""
    env = {"CDS_REQUEST_DEADLINE_SECONDS": "2", "CDS_THREADS": "2", "CDS_WORKERS": "1"}
    with entrypoint_server(env, stderr_path=tmp_path / "stderr.log") as base:
        port = int(base.rsplit(":", 1)[1])
        stalled = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        for sock in stalled:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        for sock in stalled:
            assert sock.recv(1024) == b""  # closed by the server, without an answer
        waited = time.monotonic() - began
        # Both threads were held, and both were freed at the deadline (checked once a second).
        assert 1.5 <= waited <= 4.5, waited
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
        for sock in stalled:
            sock.close()
    lines = [json.loads(line) for line in (tmp_path / "stderr.log").read_text().splitlines()]
    assert any("request deadline passed" in line.get("message", "") for line in lines)
    assert not any(line.get("level") == "ERROR" for line in lines), lines


def test_no_control_socket_is_opened(server):
    assert requests.get(server["base"] + "/healthz", timeout=5).status_code == 200
    assert not (server["home"] / ".gunicorn").exists()
    assert not list(server["home"].rglob("*.ctl"))


def test_the_deadline_setting_is_checked():
    assert request_deadline_seconds({}) == DEFAULT_DEADLINE_SECONDS
    assert request_deadline_seconds({"CDS_REQUEST_DEADLINE_SECONDS": "2.5"}) == 2.5
    for bad in ("0", "0.5", "601", "soon"):
        with pytest.raises(ValueError):
            request_deadline_seconds({"CDS_REQUEST_DEADLINE_SECONDS": bad})


def test_a_bad_deadline_stops_gunicorn_with_the_variables_name(tmp_path: Path):
    with pytest.raises(AssertionError) as refused:
        with entrypoint_server(
            {"CDS_REQUEST_DEADLINE_SECONDS": "forever"},
            stderr_path=tmp_path / "stderr.log",
            startup_timeout=20,
        ):
            pass
    assert "CDS_REQUEST_DEADLINE_SECONDS" in str(refused.value)
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()
    assert os.path.exists(tmp_path / "stderr.log")
