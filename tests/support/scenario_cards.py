"""Every card of every scenario in both languages, and the figures the card targets are about.

`python -m tests.support.scenario_cards` prints, per card kind and language, the longest summary
and the longest detail before "All checks" over all scenarios (issue 13's figures).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cds_service.app import create_app
from cds_service.cards.render import all_checks_heading
from cds_service.config import Settings
from tests.scenarios.loader import build_request, scenarios
from tests.support.cards import catalogue

LANGUAGES = ("nl", "en")
DECISIONS = "org.lumbar-imaging-cds.decisions"


@dataclass(frozen=True, slots=True)
class ScenarioCard:
    """One card a scenario's request got, in one language, with its decision."""

    scenario: str
    language: str
    decision: str
    modality: str
    card: dict[str, Any]
    entry: dict[str, Any]  # the order's entry in the decisions extension

    @property
    def lead(self) -> str:
        """The detail before its "All checks" heading: what a clinician reads at a glance."""
        return self.card["detail"].split(all_checks_heading(catalogue(), self.language))[0]


@cache
def scenario_cards() -> tuple[ScenarioCard, ...]:
    """Post every scenario to a test app in Dutch and English; every card it answers."""
    folder = Path(tempfile.mkdtemp(prefix="scenario-cards-"))
    settings = Settings(
        env="test",
        public_base_url="https://cds.example.org/lumbar",
        database_url=f"sqlite:///{folder / 'audit.db'}",
        auth_enabled=False,
        database_wait_seconds=5.0,
        log_level="ERROR",
    )
    app = create_app(settings)
    client = app.test_client()
    found = []
    try:
        for scenario_id, scenario in scenarios().items():
            for language in LANGUAGES:
                response = client.post(
                    scenario.path,
                    json=build_request(scenario),
                    headers={"Accept-Language": language},
                )
                assert response.status_code == 200, (scenario_id, response.get_data())
                body = response.get_json()
                cards = {card["uuid"]: card for card in body["cards"]}
                for entry in body.get("extension", {}).get(DECISIONS, []):
                    card = cards.get(entry.get("card") or "")
                    if card is not None:
                        found.append(
                            ScenarioCard(
                                scenario_id,
                                language,
                                entry["decision"],
                                entry["modality"],
                                card,
                                entry,
                            )
                        )
    finally:
        app.extensions["cds_audit"].store.engine.dispose()
    return tuple(found)


def longest(kind: str, language: str, part: str) -> tuple[int, str]:
    """(length, scenario) of the longest summary or lead of a card kind in a language."""
    candidates = [
        (len(c.card["summary"]) if part == "summary" else len(c.lead), c.scenario)
        for c in scenario_cards()
        if c.decision == kind and c.language == language
    ]
    return max(candidates, default=(0, "-"))


def _rows() -> Iterator[str]:
    kinds = sorted({c.decision for c in scenario_cards()})
    yield f"{len(scenario_cards())} cards from {len(scenarios())} scenarios x {LANGUAGES}"
    yield f"{'kind':<20} {'lang':<4} {'summary max':>12} {'detail before All checks max':>30}"
    for kind in kinds:
        for language in LANGUAGES:
            summary, _ = longest(kind, language, "summary")
            lead, where = longest(kind, language, "lead")
            yield f"{kind:<20} {language:<4} {summary:>12} {lead:>30}  ({where})"


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    print("\n".join(_rows()))
