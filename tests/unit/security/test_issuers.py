"""The trusted-issuers file and the auth settings: every bad file or setting stops the start-up."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from cds_service.app import create_app
from cds_service.config import Settings, load_settings
from cds_service.errors import ConfigError
from cds_service.security.issuers import load_trusted_issuers
from tests.support.jwt_tokens import jwks, new_key

URL = "https://ehr.example.org/jwks.json"


def _file(tmp_path, content, name="issuers.yaml"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content), "utf-8")
    return path


def test_shorthand_url_mapping_and_inline_jwks(tmp_path):
    key = new_key("RS384", "r1")
    path = _file(
        tmp_path,
        {
            "https://a.example": URL,
            "https://b.example": {"jwks": jwks(key), "tenants": ["t1"]},
            "https://c.example": {"jku": [URL, "https://c.example/k2"]},
        },
    )
    issuers = load_trusted_issuers(path, env="production")
    assert issuers["https://a.example"].jwks_url == URL
    assert [k.kid for k in issuers["https://b.example"].jwks.keys] == ["r1"]
    assert issuers["https://b.example"].tenants == ("t1",)
    assert issuers["https://c.example"].jku == (URL, "https://c.example/k2")


def test_json_files_are_read_too(tmp_path):
    path = _file(tmp_path, json.dumps({"https://a.example": {"jwks_url": URL}}), "issuers.json")
    assert load_trusted_issuers(path, env="test")["https://a.example"].jwks_url == URL


def test_private_key_material_in_an_inline_jwks_is_dropped(tmp_path):
    key = new_key("ES384", "e1")
    path = _file(tmp_path, {"https://a.example": {"jwks": {"keys": [key.as_dict()]}}})
    (public,) = load_trusted_issuers(path, env="test")["https://a.example"].jwks.keys
    assert not public.is_private


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "expected a mapping"),
        ("[1, 2]", "expected a mapping"),
        ("a: [unclosed", "not valid YAML"),
        ({"https://a.example": {}}, "needs jwks_url, jwks or a jku"),
        ({"https://a.example": 42}, "expected a JWKS URL"),
        ({"https://a.example": {"jwks_url": URL, "kid": "x"}}, "unknown keys"),
        ({"https://a.example": "not a url"}, "not an absolute http"),
        ({"https://a.example": {"jwks_url": URL, "jku": "ftp://x/y"}}, "not an absolute http"),
        ({"https://a.example": {"jwks_url": URL, "tenants": [1]}}, "tenants"),
        ({"https://a.example": {"jwks": {"keys": []}}}, "no usable public signing key"),
        (
            {
                "https://a.example": {
                    "jwks": {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}
                }
            },
            "no usable public signing key",
        ),
        ({"https://a.example": {"jwks": {"not": "a set"}}}, "expected a JWK Set"),
        (
            {"https://a.example": {"jwks_url": URL, "jwks": jwks(new_key("ES256", "e"))}},
            "not both",
        ),
    ],
)
def test_bad_files_are_refused_naming_file_and_issuer(tmp_path, content, message):
    path = _file(tmp_path, content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_trusted_issuers(path, env="test")
    assert "CDS_TRUSTED_ISSUERS" in str(caught.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_trusted_issuers(tmp_path / "absent.yaml", env="test")


def test_plain_http_key_urls_are_refused_in_production(tmp_path):
    path = _file(tmp_path, {"https://a.example": "http://a.example/jwks"})
    assert load_trusted_issuers(path, env="test")
    with pytest.raises(ConfigError, match="https in production"):
        load_trusted_issuers(path, env="production")


def test_the_sandbox_issuer_is_never_trusted_in_production(tmp_path):
    path = _file(tmp_path, {"https://sandbox.cds-hooks.org": URL})
    assert load_trusted_issuers(path, env="test")  # a test setup may trust it on purpose
    with pytest.raises(ConfigError, match="Sandbox"):
        load_trusted_issuers(path, env="production")


SANDBOX_JWKS = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


@pytest.mark.parametrize(
    "issuers",
    [
        {"HTTPS://SANDBOX.CDS-HOOKS.ORG": URL},
        {"https://Sandbox.CDS-Hooks.org/": URL},
        {"https://sandbox.cds-hooks.org.": URL},
        {"https://sandbox.cds-hooks.org:443": URL},
        {"https://my-sandbox.example": SANDBOX_JWKS},
        {"https://my-sandbox.example": {"jku": ["https://SANDBOX.cds-hooks.org/jwks"]}},
    ],
    ids=["upper-case", "mixed-case-slash", "trailing-dot", "port", "jwks-url", "jku"],
)
def test_the_sandbox_is_recognised_by_host_in_any_case_and_by_its_key_urls(tmp_path, issuers):
    path = _file(tmp_path, issuers)
    assert load_trusted_issuers(path, env="test")
    with pytest.raises(ConfigError, match="Sandbox"):
        load_trusted_issuers(path, env="production")


def test_a_bad_issuers_file_stops_the_app_at_start_up(tmp_path):
    path = _file(tmp_path, {"https://a.example": {}})
    with pytest.raises(ConfigError, match="CDS_TRUSTED_ISSUERS"):
        create_app(Settings(env="test", trusted_issuers_path=path))


def test_auth_on_without_an_issuers_file_stops_the_app(tmp_path):
    with pytest.raises(ConfigError, match="CDS_TRUSTED_ISSUERS is required"):
        create_app(Settings(env="test"))


# -- settings ------------------------------------------------------------------------------


def test_development_without_issuers_file_runs_with_auth_off_and_warns(caplog):
    settings = load_settings({})
    assert settings.auth_enabled is False
    with caplog.at_level(logging.WARNING, logger="cds_service.security"):
        app = create_app(settings.with_overrides(database_url="sqlite://"))
    assert app.extensions["cds_auth"] is None
    assert any("AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)


def test_development_with_issuers_file_has_auth_on(tmp_path):
    path = _file(tmp_path, {"https://a.example": URL})
    settings = load_settings({"CDS_TRUSTED_ISSUERS": str(path)})
    assert settings.auth_enabled is True and settings.trusted_issuers_path == path
    assert (
        load_settings({"CDS_TRUSTED_ISSUERS": str(path), "CDS_AUTH": "off"}).auth_enabled is False
    )


def test_auth_is_on_by_default_outside_development(tmp_path):
    path = _file(tmp_path, {"https://a.example": URL})
    assert load_settings({"CDS_ENV": "test", "CDS_TRUSTED_ISSUERS": str(path)}).auth_enabled
    with pytest.raises(ConfigError, match="CDS_TRUSTED_ISSUERS"):
        load_settings({"CDS_ENV": "test"})


@pytest.mark.parametrize("env", ["test", "production"])
def test_auth_off_is_refused_outside_development(env):
    environ = {
        "CDS_ENV": env,
        "CDS_AUTH": "off",
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
        "CDS_PSEUDONYM_KEY": "k" * 32,
    }
    with pytest.raises(ConfigError, match="CDS_AUTH=off is allowed only when CDS_ENV=development"):
        load_settings(environ)


@pytest.mark.parametrize("value", ["-1", "301", "soon"])
def test_leeway_must_be_sane(value):
    with pytest.raises(ConfigError, match="CDS_JWT_LEEWAY_SECONDS"):
        load_settings({"CDS_JWT_LEEWAY_SECONDS": value})
