"""Settings come from CDS_* variables and unsafe or unusable values stop the start-up."""

from __future__ import annotations

import pytest

from cds_service.config import Settings, load_settings
from cds_service.errors import ConfigError


def test_defaults_serve_on_loopback_8080_with_sqlite():
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_url.startswith("sqlite:///")
    assert settings.default_language == "nl"
    assert settings.env == "development" and settings.is_development


def test_variables_override_defaults():
    settings = load_settings(
        {
            "CDS_PORT": "9090",
            "CDS_DEFAULT_LANGUAGE": "en",
            "CDS_FHIR_SERVER_ALLOWLIST": "https://fhir.a.org/r4/, https://fhir.b.org",
            "CDS_SHOW_INDICATED_CARDS": "false",
            "CDS_PUBLIC_BASE_URL": "https://cds.example.org/",
        }
    )
    assert settings.port == 9090
    assert settings.default_language == "en"
    assert settings.fhir_allowlist == ("https://fhir.a.org/r4", "https://fhir.b.org")
    assert settings.show_indicated_cards is False
    assert settings.public_base_url == "https://cds.example.org"


@pytest.mark.parametrize(
    "environ, variable",
    [
        ({"CDS_PORT": "eighty"}, "CDS_PORT"),
        ({"CDS_PORT": "70000"}, "CDS_PORT"),
        ({"CDS_DEFAULT_LANGUAGE": "fr"}, "CDS_DEFAULT_LANGUAGE"),
        ({"CDS_ENV": "staging"}, "CDS_ENV"),
        ({"CDS_SHOW_INDICATED_CARDS": "maybe"}, "CDS_SHOW_INDICATED_CARDS"),
        ({"CDS_FHIR_SERVER_ALLOWLIST": "fhir.example.org"}, "CDS_FHIR_SERVER_ALLOWLIST"),
        ({"CDS_ENV": "production"}, "CDS_PUBLIC_BASE_URL"),
        (
            {
                "CDS_ENV": "production",
                "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
                "CDS_FHIR_SERVER_ALLOWLIST": "http://fhir.example.org",
            },
            "CDS_FHIR_SERVER_ALLOWLIST",
        ),
        ({"CDS_MAPPINGS_DIR": "/nonexistent/mappings"}, "CDS_MAPPINGS_DIR"),
        ({"CDS_LOG_LEVEL": "chatty"}, "CDS_LOG_LEVEL"),
        ({"CDS_MODE": "silent"}, "CDS_MODE"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(environ, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings(environ)


def test_settings_are_immutable():
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_public_base_url_follows_the_bound_port_unless_given():
    assert load_settings({"CDS_PORT": "8107"}).public_base_url == "http://127.0.0.1:8107"
    bound = load_settings({"CDS_HOST": "0.0.0.0", "CDS_PORT": "9000"})  # noqa: S104
    assert bound.public_base_url == "http://127.0.0.1:9000"
    given = {"CDS_PORT": "8107", "CDS_PUBLIC_BASE_URL": "https://cds.example.org/"}
    assert load_settings(given).public_base_url == "https://cds.example.org"


def test_readme_settings_table_lists_exactly_the_variables_the_service_reads():
    """README and ENV_VARS are kept equal: a variable added to one only fails here."""
    import re
    from pathlib import Path

    from cds_service.config import ENV_VARS
    from cds_service.shipped import SERVE_SCRIPT

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(CDS_[A-Z0-9_]+)` \|", readme, re.MULTILINE))
    entrypoint = set(re.findall(r"CDS_[A-Z0-9_]+", SERVE_SCRIPT.read_text()))
    assert rows - entrypoint == set(ENV_VARS) - entrypoint
    assert entrypoint <= rows  # the entrypoint's own variables are documented too
