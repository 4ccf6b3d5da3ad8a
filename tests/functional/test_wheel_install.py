"""The built wheel works installed (issue 14): built from its sdist, installed with the locked
dependencies into a fresh virtualenv, and run from a directory outside the checkout, so nothing
can be found through a repository path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order-select-request.json"
URGENT = ROOT / "tests" / "fixtures" / "cli" / "urgent-cauda-equina.json"
AS_OF = "2026-11-21T12:00:00+00:00"
SELECT = "/cds-services/lumbar-imaging-order-select"
# Building and installing take ~10 s with uv's cache warm; the first run downloads the locked
# wheels (~100 MB). Generous, so a loaded machine does not fail the test, bounded, so a hung
# download does.
STEP_TIMEOUT_S = 600


def _run(command: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    """Run a step; on failure, fail the test with its output."""
    done = subprocess.run(  # noqa: S603 - fixed commands of this test
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of someone who just installed the package: no CDS_* settings, no
    PYTHONPATH, no virtualenv on PATH, a home of their own (nothing of the user's home leaks in)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CDS_", "PYTHON", "VIRTUAL_ENV", "PROMETHEUS_"))
    }
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict]]:
    """(the virtualenv's bin/, a working directory outside the checkout, its environment)."""
    work = tmp_path_factory.mktemp("wheel-install")
    assert not work.resolve().is_relative_to(ROOT.resolve())
    env = _clean_env(work)
    uv = [sys.executable, "-m", "uv"]
    uv_env = {**env, "UV_NO_CONFIG": "1"}  # uv's own cache; no project or user uv.toml
    if "UV_CACHE_DIR" in os.environ:
        uv_env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    else:
        uv_env["UV_CACHE_DIR"] = str(Path.home() / ".cache" / "uv")
    # sdist first, then the wheel from the unpacked sdist: a stale build/ of the checkout
    # cannot slip into the wheel, and a file the sdist forgets fails here.
    _run([*uv, "build", "--out-dir", work / "dist", ROOT], cwd=work, env=uv_env)
    (wheel,) = (work / "dist").glob("lumbar_imaging_cds-*.whl")
    venv = work / "venv"
    _run([*uv, "venv", "--python", sys.executable, venv], cwd=work, env=uv_env)
    python = venv / "bin" / "python"
    # As the image installs it: the lock with its hashes, then the project without resolving.
    lock = ["--require-hashes", "-r", ROOT / "requirements.lock"]
    _run([*uv, "pip", "install", "--python", python, *lock], cwd=work, env=uv_env)
    _run([*uv, "pip", "install", "--python", python, "--no-deps", wheel], cwd=work, env=uv_env)
    # The wheel's own declared dependencies are all met by the lock.
    _run([*uv, "pip", "check", "--python", python], cwd=work, env=uv_env)
    yield venv / "bin", work, env


def test_the_package_is_imported_from_the_virtualenv(installed):
    bin_dir, work, env = installed
    where = _run(
        [bin_dir / "python", "-c", "import cds_service.shipped as s; print(s.MAPPINGS_DIR)"],
        cwd=work,
        env=env,
    ).strip()
    assert Path(where).is_relative_to(bin_dir.parent), where
    # Every data file of the checkout is in the installed package, none forgotten by a glob
    # of pyproject's package-data.
    installed_data = Path(where).parent
    shipped = {p.relative_to(installed_data) for p in installed_data.rglob("*") if p.is_file()}
    source = ROOT / "cds_service" / "data"
    assert {p.relative_to(source) for p in source.rglob("*") if p.is_file()} <= shipped
    assert (installed_data.parent / "serve.sh").is_file()


def test_evaluate_prints_the_trail_and_the_response(installed):
    bin_dir, work, env = installed
    request = shutil.copy(EXAMPLE, work / "request.json")
    out = _run(
        [bin_dir / "cds-service", "evaluate", request, "--lang", "en", "--now", AS_OF],
        cwd=work,
        env=env,
    )
    assert "ServiceRequest/draft-mri-1  mri" in out
    assert "decision: not-indicated" in out
    assert "[not-met] neuro-deficit" in out  # a criterion label from the shipped cards
    urgent = shutil.copy(URGENT, work / "urgent.json")
    body = json.loads(
        _run(
            [bin_dir / "cds-service", "evaluate", urgent, "--json", "--now", AS_OF],
            cwd=work,
            env=env,
        )
    )
    assert body["cards"][0]["indicator"] == "critical"


@pytest.fixture
def served(installed) -> Iterator[tuple[str, Path]]:
    """`cds-service serve` of the virtualenv, on a free loopback port; (base URL, work dir)."""
    bin_dir, work, env = installed
    port = free_port()
    serve_env = {**env, "CDS_HOST": "127.0.0.1", "CDS_PORT": str(port), "CDS_WORKERS": "1"}
    log = work / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - the installed console script
            [str(bin_dir / "cds-service"), "serve"],
            cwd=work,
            env=serve_env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded machine imports slowly; a dead one fails
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("cds-service serve did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield base, work
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_the_served_app_answers_a_hook_call_with_cards(served):
    base, work = served
    discovery = requests.get(f"{base}/cds-services", timeout=10)
    assert discovery.status_code == 200
    assert SELECT.rsplit("/", 1)[1] in {s["id"] for s in discovery.json()["services"]}
    response = requests.post(
        base + SELECT,
        json=json.loads(EXAMPLE.read_text(encoding="utf-8")),
        headers={"Accept-Language": "en"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    assert card["indicator"] == "warning" and card["summary"]
    document = requests.get(f"{base}/openapi.yaml", timeout=10)
    assert document.status_code == 200 and "openapi: 3.1" in document.text
    # The default SQLite audit store is in var/ of the directory the service started in.
    assert (work / "var" / "cds.db").is_file()
