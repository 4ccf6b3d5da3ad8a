"""Traceability (issue 16): every POLICY rule id has a check that implements it and a scenario."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.rules import criteria, decide
from cds_service.rules.criteria import IMPLEMENTS
from cds_service.rules.knowledge import default_knowledge
from tests.scenarios.loader import build_request, scenarios

DECISIONS = "org.lumbar-imaging-cds.decisions"


@pytest.fixture(scope="module")
def fired(client_module: Any) -> set[str]:
    """criterion:reason of every criterion met (or unknown) in any scenario."""
    found: set[str] = set()
    for scenario in scenarios().values():
        body = client_module.post(scenario.path, json=build_request(scenario)).get_json()
        for entry in body.get("extension", {}).get(DECISIONS, []):  # out-of-scope: none
            for checked in entry["checked"]:
                if checked["status"] in ("met", "unknown"):
                    found.add(f"{checked['id']}:{checked['reason']}")
    return found


@pytest.fixture(scope="module")
def client_module():
    """A test client of the service, authentication off."""
    from cds_service.app import create_app
    from cds_service.config import Settings

    return create_app(Settings(env="test", auth_enabled=False)).test_client()


def test_every_rule_has_a_check_and_every_check_names_real_rules():
    rules = set(default_knowledge().rules)
    implemented = {rule for ids in IMPLEMENTS.values() for rule in ids}
    assert rules - implemented == set(), "POLICY rules without a check"
    assert implemented - rules == set(), "checks naming rule ids policy.yaml does not have"
    for check in IMPLEMENTS:
        assert callable(getattr(criteria, check, None) or getattr(decide, check, None)), check


def test_every_rule_fires_in_a_scenario(fired):
    silent = {
        rule.id: rule.yields
        for rule in default_knowledge().rules.values()
        if not set(rule.yields) & fired
    }
    assert silent == {}, "POLICY rules no scenario exercises"


def test_every_yield_the_engine_gives_belongs_to_a_rule(fired):
    """A decisive criterion:reason no rule claims is an untraced behaviour."""
    claimed = {y for rule in default_knowledge().rules.values() for y in rule.yields}
    # the trail's housekeeping entries are no rule of their own
    housekeeping = {"failed-conservative-care:outcome-scores-missing"}
    assert fired - claimed - housekeeping == set()
