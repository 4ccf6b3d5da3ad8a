"""What a running app holds once: settings, rule knowledge, card catalogue, the FHIR session."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from flask import current_app

from cds_service.cards.render import Catalogue
from cds_service.config import Settings
from cds_service.rules.knowledge import Knowledge


@dataclass(frozen=True, slots=True)
class Runtime:
    """Loaded-once state shared by every request of one app."""

    settings: Settings
    knowledge: Knowledge
    catalogue: Catalogue
    fhir_session: requests.Session


def runtime() -> Runtime:
    """The Runtime of the current Flask app."""
    return current_app.extensions["cds_runtime"]
