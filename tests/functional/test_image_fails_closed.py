"""The image fails closed, checked without a container: the shipped serve script (what the
image's `cds-service serve` runs) refuses to start in production, in one line naming what is
missing, and the Dockerfile says what the image is.

docker/check.sh is the real proof (it builds and runs the image); these run in `make test`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cds_service.preflight import check
from cds_service.shipped import SERVE_SCRIPT
from tests.support.jwt_tokens import jwks, new_key

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
KEY = "p" * 40


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """This environment without its CDS_* variables, plus `env`; this Python's bin/ on PATH."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("CDS_")}
    clean["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    return {**clean, **env}


def run_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The shipped serve script with only `env` of the CDS_* variables, as the image runs it."""
    return subprocess.run(  # noqa: S603 - the shipped script, test-controlled environment
        ["sh", str(SERVE_SCRIPT)],  # noqa: S607
        cwd=ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def issuers_file(tmp_path: Path) -> Path:
    """A trusted-issuers file with one issuer whose key is inline."""
    path = tmp_path / "issuers.yaml"
    issuers = {"https://ehr.test": {"jwks": jwks(new_key("ES384", "k1"))}}
    path.write_text(yaml.safe_dump(issuers), encoding="utf-8")
    return path


def assert_one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, one line on stderr, no traceback, and gunicorn never started."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "gunicorn" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_production_without_settings_is_refused_naming_each_missing_one():
    started = time.monotonic()
    line = assert_one_line_refusal(run_serve({"CDS_ENV": "production", "CDS_PORT": "8080"}))
    assert line.startswith("refusing to start in production: ")
    for name in ("CDS_TRUSTED_ISSUERS", "CDS_PSEUDONYM_KEY", "CDS_PUBLIC_BASE_URL"):
        assert name in line
    assert time.monotonic() - started < 30  # refused before any worker loads the app


def test_the_refusal_names_only_what_is_missing(tmp_path):
    env = {"CDS_ENV": "production", "CDS_PSEUDONYM_KEY": KEY}
    line = assert_one_line_refusal(
        run_serve({**env, "CDS_PUBLIC_BASE_URL": "http://cds.example.org"})
    )
    assert "CDS_PSEUDONYM_KEY" not in line
    assert "CDS_TRUSTED_ISSUERS" in line
    assert "must be an https URL (is 'http://cds.example.org')" in line
    only = {**env, "CDS_PUBLIC_BASE_URL": "https://cds.example.org"}
    line = assert_one_line_refusal(run_serve(only))
    assert "CDS_TRUSTED_ISSUERS" in line
    assert "CDS_PUBLIC_BASE_URL" not in line and "CDS_PSEUDONYM_KEY" not in line


def test_an_unreadable_issuers_file_is_refused_in_one_line(tmp_path):
    env = {
        "CDS_ENV": "production",
        "CDS_PSEUDONYM_KEY": KEY,
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
        "CDS_TRUSTED_ISSUERS": str(tmp_path / "absent.yaml"),
    }
    line = assert_one_line_refusal(run_serve(env))
    assert line.startswith("refusing to start: CDS_TRUSTED_ISSUERS (")
    assert "cannot read the file" in line


def test_any_other_bad_setting_is_refused_in_one_line():
    line = assert_one_line_refusal(run_serve({"CDS_ENV": "staging"}))
    assert line == "refusing to start: CDS_ENV must be one of development, test, production"


def test_an_unmigrated_schema_is_refused_until_db_upgrade_runs(tmp_path):
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    env = {
        "CDS_ENV": "production",
        "CDS_PSEUDONYM_KEY": KEY,
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
        "CDS_TRUSTED_ISSUERS": str(issuers_file(tmp_path)),
        "CDS_DATABASE_URL": database,
        "CDS_DATABASE_AUTO_UPGRADE": "false",
    }
    line = assert_one_line_refusal(run_serve(env))
    assert "run `cds-service db upgrade` first" in line
    # The image's migration step (`docker run IMAGE db upgrade`: its entrypoint is the CLI).
    upgraded = subprocess.run(
        [sys.executable, "-m", "cds_service.cli", "db", "upgrade"],
        cwd=ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "audit schema is at the newest migration" in upgraded.stdout
    assert check(env) is None


def test_with_auto_upgrade_on_the_schema_is_not_checked(tmp_path):
    env = {
        "CDS_ENV": "production",
        "CDS_PSEUDONYM_KEY": KEY,
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
        "CDS_TRUSTED_ISSUERS": str(issuers_file(tmp_path)),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    assert check(env) is None
    assert check({**env, "CDS_DATABASE_AUTO_UPGRADE": "false"}) is not None


def dockerfile_env() -> dict[str, str]:
    """The variables of the final stage's ENV instruction (one ENV, continued over lines)."""
    final = DOCKERFILE.split("\nFROM ${BASE_IMAGE}\n")[-1]
    body = re.search(r"^ENV ((?:.*\\\n)*.*)$", final, re.MULTILINE)
    assert body is not None
    pairs = body.group(1).replace("\\\n", " ").split()
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_image_is_production_unless_told_otherwise():
    env = dockerfile_env()
    assert env["CDS_ENV"] == "production"
    assert env["CDS_DATABASE_AUTO_UPGRADE"] == "false"  # migrations are a step of their own
    assert env["PATH"].split(":")[0] == env["VIRTUAL_ENV"] + "/bin"


def test_the_audit_database_is_on_a_volume():
    database = dockerfile_env()["CDS_DATABASE_URL"]
    assert database.startswith("sqlite:////")
    volume = re.search(r'^VOLUME \["([^"]+)"\]$', DOCKERFILE, re.MULTILINE)
    assert volume is not None
    assert Path(database.removeprefix("sqlite:///")).parent == Path(volume.group(1))


def test_the_base_image_is_a_build_argument():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", DOCKERFILE, re.MULTILINE)


def test_the_image_runs_the_installed_cli_as_non_root():
    assert re.search(r"^HEALTHCHECK ", DOCKERFILE, re.MULTILINE)
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)
    assert user is not None and int(user.group(1)) != 0 and int(user.group(2)) != 0
    # `docker run IMAGE` serves (the serve script tested above); `IMAGE db upgrade` migrates.
    assert re.search(r'^ENTRYPOINT \["cds-service"\]$', DOCKERFILE, re.MULTILINE)
    assert re.search(r'^CMD \["serve"\]$', DOCKERFILE, re.MULTILINE)


def test_the_image_installs_the_lock_then_the_wheel_not_a_source_tree():
    assert "pip install --require-hashes -r /tmp/requirements.lock" in DOCKERFILE
    assert "pip wheel --no-deps --wheel-dir /wheels ." in DOCKERFILE
    assert "pip install --no-deps /tmp/wheels/*.whl" in DOCKERFILE
    final = DOCKERFILE.split("\nFROM ${BASE_IMAGE}\n")[-1]
    assert "COPY cds_service" not in final and "PYTHONPATH" not in final and " -e " not in final


def test_ci_runs_the_image_check():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "docker/check.sh" in ci
