"""The service under real gunicorn, started by the shipped serve script (cds_service/serve.sh, what
`cds-service serve` runs), for tests over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from cds_service.shipped import SERVE_SCRIPT

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def entrypoint_server(
    env: Mapping[str, str], *, stderr_path: Path, startup_timeout: float = 30.0
) -> Iterator[str]:
    """Start the entrypoint on a free loopback port with `env` on top; yield the base URL.

    Authentication is off (CDS_ENV=development, no issuers) unless `env` says otherwise;
    gunicorn's output goes to `stderr_path` so a long run cannot fill a pipe.
    """
    port = free_port()
    full = {
        **os.environ,
        "CDS_HOST": "127.0.0.1",
        "CDS_PORT": str(port),
        "CDS_WORKERS": "1",
        "CDS_ENV": "development",
        "CDS_AUTH": "off",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **env,
    }
    full.pop("CDS_TRUSTED_ISSUERS", None)
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed script, test-controlled PATH
            ["sh", str(SERVE_SCRIPT)],  # noqa: S607
            cwd=ROOT,
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a worker is still loading the app
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("entrypoint did not start: " + stderr_path.read_text()[-2000:])
            time.sleep(0.2)
        yield base
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


class ServiceProcess:
    """One service instance started by the entrypoint on a fixed port, to kill and restart."""

    def __init__(self, port: int, env: Mapping[str, str], log_path: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "CDS_HOST": "127.0.0.1",
            "CDS_PORT": str(port),
            "CDS_WORKERS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **env,
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the entrypoint and wait until /readyz answers 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed script, test-controlled PATH
                ["sh", str(SERVE_SCRIPT)],  # noqa: S607
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # still starting
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("instance did not start: " + self.log_path.read_text()[-2000:])
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers), as a crash would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop) and wait for the process to end."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)
