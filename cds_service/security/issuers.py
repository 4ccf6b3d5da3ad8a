"""The trusted-issuers file (CDS_TRUSTED_ISSUERS): which CDS clients may call, with which keys.

YAML or JSON, one entry per `iss` value::

    https://ehr.example.org:                       # shorthand: the issuer's JWKS URL
      https://ehr.example.org/.well-known/jwks.json
    https://other-ehr.example.net:
      jwks_url: https://other-ehr.example.net/jwks  # or jwks: {keys: [...]} (inline JWK Set)
      jku:                                          # optional: JWKS URLs a token's `jku` may name
        - https://other-ehr.example.net/jwks/2026
      tenants: [hospital-a, hospital-b]             # optional: allowed `tenant` claims

Every problem is a ConfigError naming the file and the issuer, raised at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from joserfc.jwk import KeySet

from cds_service.errors import ConfigError
from cds_service.security.jwks import import_key_set

# Its private key is published with the sandbox: tokens "from" it prove nothing.
SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_HOST = "sandbox.cds-hooks.org"
ENTRY_KEYS = {"jwks_url", "jwks", "jku", "tenants"}


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """One CDS client: its `iss`, where its keys are, and what its tokens may name."""

    iss: str
    jwks_url: str | None = None
    jwks: KeySet | None = None
    jku: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()


def load_trusted_issuers(path: Path, *, env: str) -> dict[str, TrustedIssuer]:
    """Read and check the trusted-issuers file; ConfigError on any problem."""
    where = f"CDS_TRUSTED_ISSUERS ({path})"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read the file: {exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML or JSON: {exc}") from exc
    if not isinstance(document, Mapping) or not document:
        raise ConfigError(f"{where}: expected a mapping of issuer (iss) to its keys")
    issuers: dict[str, TrustedIssuer] = {}
    for iss, entry in document.items():
        if not isinstance(iss, str) or not iss.strip() or len(iss) > 255:
            raise ConfigError(f"{where}: every issuer must be a string of 1-255 characters")
        issuers[iss] = _issuer(iss, entry, where=f"{where}, issuer {iss!r}", env=env)
    return issuers


def is_sandbox_url(url: object) -> bool:
    """True when a URL is on the CDS Hooks Sandbox's host, however it is spelled."""
    if not isinstance(url, str):
        return False
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return False
    # Host names are case-insensitive and may end in the root's dot; the port does not matter.
    return host.rstrip(".").lower() == SANDBOX_HOST


def _issuer(iss: str, entry: Any, *, where: str, env: str) -> TrustedIssuer:
    if env == "production" and is_sandbox_url(iss):
        raise ConfigError(f"{where}: the CDS Hooks Sandbox's key is public; never in production")
    if isinstance(entry, str):
        entry = {"jwks_url": entry}
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a JWKS URL or a mapping with jwks_url/jwks/jku")
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(ENTRY_KEYS)}")
    jwks_url = entry.get("jwks_url")
    if jwks_url is not None:
        jwks_url = _url(jwks_url, where=f"{where}, jwks_url", env=env)
    jwks = None
    if entry.get("jwks") is not None:
        jwks = _inline_jwks(entry["jwks"], where=f"{where}, jwks")
    if jwks_url and jwks:
        raise ConfigError(f"{where}: give jwks_url or jwks, not both")
    jku = tuple(_url(u, where=f"{where}, jku", env=env) for u in _strings(entry, "jku", where))
    tenants = _strings(entry, "tenants", where)
    if env == "production" and any(is_sandbox_url(url) for url in (jwks_url, *jku)):
        # Under another name, the Sandbox's keys are still the published ones.
        raise ConfigError(
            f"{where}: keys from the CDS Hooks Sandbox are public; never in production"
        )
    if not (jwks_url or jwks or jku):
        raise ConfigError(f"{where}: needs jwks_url, jwks or a jku allow-list")
    return TrustedIssuer(iss=iss, jwks_url=jwks_url, jwks=jwks, jku=jku, tenants=tenants)


def _strings(entry: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = entry.get(name) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {name} must be a list of non-empty strings")
    return tuple(value)


def _url(value: Any, *, where: str, env: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: {value!r} is not an absolute http(s) URL")
    if env == "production" and parts.scheme != "https":
        raise ConfigError(f"{where}: {value!r} must use https in production")
    return value


def _inline_jwks(value: Any, *, where: str) -> KeySet:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not a JSON JWK Set: {exc}") from exc
    try:
        keys = import_key_set(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if not keys.keys:
        raise ConfigError(f"{where}: holds no usable public signing key")
    return keys
