"""The hazard log (data/safety/hazards.yaml) loaded and checked: hazards, risks, controls, tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cds_service.shipped import HAZARD_LOG

_HAZARD_KEYS = {"id", "title", "cause", "effect", "severity", "likelihood", "controls"}
_CONTROL_KINDS = ("rule", "design", "config")


class HazardLogError(ValueError):
    """The hazard log is malformed; the message names the hazard and the field."""


@dataclass(frozen=True, slots=True)
class Control:
    """One control of a hazard: a POLICY rule, a design choice or a configuration."""

    kind: str  # "rule", "design" or "config"
    ref: str  # the rule id, or the design / configuration statement
    text: str
    tests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hazard:
    """One hazard with its risk before and after its controls."""

    id: str
    title: str
    cause: str
    effect: str
    severity: int
    likelihood_before: int
    likelihood_after: int
    controls: tuple[Control, ...]

    @property
    def risk_before(self) -> int:
        """Severity x likelihood before the controls."""
        return self.severity * self.likelihood_before

    @property
    def risk_after(self) -> int:
        """Severity x likelihood after the controls (the residual risk)."""
        return self.severity * self.likelihood_after


@dataclass(frozen=True, slots=True)
class HazardLog:
    """All hazards and the residual risk the organisation accepts."""

    hazards: tuple[Hazard, ...]
    acceptable_risk: int

    def open_hazards(self) -> tuple[Hazard, ...]:
        """Hazards whose residual risk is above the acceptable level."""
        return tuple(h for h in self.hazards if h.risk_after > self.acceptable_risk)

    def test_ids(self) -> tuple[str, ...]:
        """Every test id named by a control, once, in order."""
        return tuple(dict.fromkeys(t for h in self.hazards for c in h.controls for t in c.tests))


def _scale(hazard: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise HazardLogError(f"{hazard}: {field} must be an integer 1-5, not {value!r}")
    return value


def _control(hazard: str, entry: Any, rule_ids: frozenset[str]) -> Control:
    if not isinstance(entry, Mapping):
        raise HazardLogError(f"{hazard}: a control must be a mapping")
    kinds = [k for k in _CONTROL_KINDS if k in entry]
    if len(kinds) != 1:
        raise HazardLogError(f"{hazard}: a control names exactly one of rule, design, config")
    kind = kinds[0]
    ref = entry[kind]
    if not isinstance(ref, str) or not ref.strip():
        raise HazardLogError(f"{hazard}: control {kind} must be text")
    if kind == "rule" and ref not in rule_ids:
        raise HazardLogError(f"{hazard}: unknown POLICY rule id {ref!r} (mappings/policy.yaml)")
    tests = entry.get("tests")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise HazardLogError(f"{hazard}: control {ref!r} names no tests")
    for test in tests:
        path, _, name = test.partition("::")
        if not path.startswith("tests/") or not path.endswith(".py") or not name:
            raise HazardLogError(f"{hazard}: {test!r} is not a test id (tests/...py::test_name)")
    text = entry.get("text", ref if kind != "rule" else "")
    return Control(kind, ref, str(text), tuple(tests))


def load_hazard_log(path: Path = HAZARD_LOG, *, rule_ids: frozenset[str]) -> HazardLog:
    """Read and check the hazard log; HazardLogError names what is wrong."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping) or not isinstance(data.get("hazards"), list):
        raise HazardLogError(f"{path}: needs a list 'hazards'")
    acceptable = data.get("acceptable_risk")
    if isinstance(acceptable, bool) or not isinstance(acceptable, int) or not 1 <= acceptable <= 25:
        raise HazardLogError(f"{path}: acceptable_risk must be an integer 1-25")
    hazards = []
    seen: set[str] = set()
    for entry in data["hazards"]:
        if not isinstance(entry, Mapping) or set(entry) != _HAZARD_KEYS:
            raise HazardLogError(f"{path}: each hazard has exactly {sorted(_HAZARD_KEYS)}")
        hid = str(entry["id"])
        if hid in seen:
            raise HazardLogError(f"{hid}: duplicate hazard id")
        seen.add(hid)
        likelihood = entry["likelihood"]
        if not isinstance(likelihood, Mapping) or set(likelihood) != {"before", "after"}:
            raise HazardLogError(f"{hid}: likelihood needs 'before' and 'after'")
        controls = entry["controls"]
        if not isinstance(controls, list) or not controls:
            raise HazardLogError(f"{hid}: no controls")
        hazards.append(
            Hazard(
                id=hid,
                title=str(entry["title"]),
                cause=str(entry["cause"]),
                effect=str(entry["effect"]),
                severity=_scale(hid, "severity", entry["severity"]),
                likelihood_before=_scale(hid, "likelihood.before", likelihood["before"]),
                likelihood_after=_scale(hid, "likelihood.after", likelihood["after"]),
                controls=tuple(_control(hid, c, rule_ids) for c in controls),
            )
        )
    return HazardLog(tuple(hazards), acceptable)
