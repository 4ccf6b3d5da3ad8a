"""The lock files agree with pyproject.toml: every direct pin is locked at the same version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME_PINS = PYPROJECT["project"]["dependencies"]
TEST_PINS = PYPROJECT["project"]["optional-dependencies"]["test"]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)")
_LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _name(name: str) -> str:
    """A distribution name as PEP 503 compares it (fhir.resources == fhir-resources)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = _PIN.match(requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[_name(match[1])] = match[2]
    return pins


def _locked(path: Path) -> dict[str, list[str]]:
    """Each locked name with its versions (a universal lock may hold one per platform)."""
    found: dict[str, list[str]] = {}
    for name, version in _LOCKED.findall(path.read_text(encoding="utf-8")):
        found.setdefault(_name(name), []).append(version)
    return found


@pytest.mark.parametrize(
    ("lock", "pins"),
    [
        ("requirements.lock", RUNTIME_PINS),
        ("requirements-test.lock", RUNTIME_PINS + TEST_PINS),
    ],
)
def test_every_direct_pin_is_locked_at_its_version(lock, pins):
    locked = _locked(ROOT / lock)
    for name, version in _pins(pins).items():
        assert locked.get(name) == [version], f"{lock}: {name} is {locked.get(name)}, not {version}"


def _direct(path: Path) -> set[str]:
    """The names the lock says it holds for pyproject.toml itself (its `# via` notes)."""
    text = path.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    return {
        _name(_LOCKED.match(entry)[1])
        for entry in entries
        if _LOCKED.match(entry) and "lumbar-imaging-cds (pyproject.toml)" in entry
    }


@pytest.mark.parametrize(
    ("lock", "pins"),
    [
        ("requirements.lock", RUNTIME_PINS),
        ("requirements-test.lock", RUNTIME_PINS + TEST_PINS),
    ],
)
def test_the_lock_was_compiled_from_these_pins(lock, pins):
    """A pin added to or removed from pyproject.toml without `make lock` fails here, also when
    the package stays in the lock for another's sake."""
    assert _direct(ROOT / lock) == set(_pins(pins))


def test_the_runtime_lock_holds_no_test_tool():
    locked = _locked(ROOT / "requirements.lock")
    assert not set(_pins(TEST_PINS)) & set(locked)


def test_both_locks_agree_on_what_they_share():
    """The test lock is compiled with the runtime lock as constraints: CI tests what runs."""
    runtime = _locked(ROOT / "requirements.lock")
    test = _locked(ROOT / "requirements-test.lock")
    assert set(runtime) <= set(test)
    assert {n: v for n, v in test.items() if n in runtime} == runtime


def test_every_locked_requirement_carries_hashes():
    """pip's --require-hashes (Makefile, Dockerfile) refuses a lock without them."""
    for lock in ("requirements.lock", "requirements-test.lock"):
        text = (ROOT / lock).read_text(encoding="utf-8")
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        assert len(entries) > 40
        for entry in entries:
            assert "--hash=sha256:" in entry, f"{lock}: {entry.splitlines()[0]} has no hash"
