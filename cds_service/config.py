"""Settings from CDS_* environment variables, read and checked in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cds_service.errors import ConfigError
from cds_service.shipped import CARDS_DIR, MAPPINGS_DIR

ENVIRONMENTS = ("development", "test", "production")
LANGUAGES = ("nl", "en")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# live: cards and rating actions are returned; shadow: a silent pilot, everything is judged,
# rated and audited as live but the answer is {"cards": []} (README, Piloting silently).
MODES = ("live", "shadow")
# What one judged order adds to the answer besides its draft's echoes: card, trail (evidence
# and text readings capped in cards/render.py and evaluation.py), rating extensions. Measured at
# most 30 KiB (card 9 KiB, trail 21 KiB) for a record citing 3,000 resources in each criterion
# (tests/functional/test_limits.py); 128 KiB leaves room for longer templates.
RESPONSE_BYTES_PER_ORDER = 128 * 1024
RESPONSE_BYTES_BASE = 64 * 1024


def response_bound(settings: Settings) -> int:
    """The largest answer the draft-order limits admit: each order's draft echoed three times
    (rating update, its extension mirror, reasons copied into a suggestion) plus its card."""
    return (
        3 * settings.max_draft_orders_bytes
        + settings.max_draft_orders * RESPONSE_BYTES_PER_ORDER
        + RESPONSE_BYTES_BASE
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """The service's configuration; see the README's configuration table."""

    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"
    # var/ of the directory the service starts in (make run: the checkout), never the package's
    database_url: str = "sqlite:///var/cds.db"
    fhir_allowlist: tuple[str, ...] = ()
    default_language: str = "nl"
    log_level: str = "INFO"
    # 24 MiB admits a record of ~36,000 Synthea-style resources (measured: README settings)
    max_request_bytes: int = 24 * 1024 * 1024
    fhir_timeout_seconds: float = 1.5
    fhir_max_pages: int = 10
    show_indicated_cards: bool = True
    qcdsm_id: str = "lumbar-imaging-cds"
    mappings_dir: Path = MAPPINGS_DIR  # the shipped package data unless CDS_MAPPINGS_DIR is set
    cards_dir: Path = CARDS_DIR
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Audit and reports (cds_service/audit/).
    pseudonym_key: str = ""
    report_token: str = ""
    tenant: str = "default"
    database_auto_upgrade: bool = True
    audit_spool: Path | None = None  # default: beside a SQLite database file, else var/
    # Bounded database waits (README, Operations): the most a hook call waits for the database
    # in all (jti check and audit write together; past it the row is spooled), and the bounds of
    # each connection, statement and lock wait, which free the worker that does the waiting.
    database_wait_seconds: float = 0.3
    database_connect_timeout_seconds: int = 2
    database_statement_timeout_ms: int = 1000
    database_lock_timeout_ms: int = 500
    sqlite_busy_timeout_ms: int = 200
    tariffs: Mapping[str, float] = field(
        default_factory=lambda: {"xray": 60.0, "ct": 180.0, "mri": 250.0}
    )
    dose_msv: Mapping[str, float] = field(
        default_factory=lambda: {"xray": 1.5, "ct": 6.0, "mri": 0.0}
    )
    currency: str = "EUR"
    # JWT authentication of CDS clients (cds_service/security/). On unless turned off; the
    # environment path (load_settings) allows off only in development. Tests that build
    # Settings directly pass auth_enabled=False or a trusted-issuers file.
    auth_enabled: bool = True
    trusted_issuers_path: Path | None = None
    jwt_leeway_seconds: int = 60
    # Limits of one hook call (cds_service/hooks/limits.py): what the service will judge and echo.
    # 50 orders is more than any order set a clinician signs at once; each costs a card.
    max_draft_orders: int = 50
    # Characters per order text the service reads (code.text, displays, reasons, notes): a long
    # referral note fits; a longer field is an error or an attack, and is refused (README).
    max_order_text_chars: int = 10_000
    # Serialized size of context.draftOrders: the rating's update carries each order back
    # whole (twice, with the extension mirror), so this bounds what the orders add to the answer.
    max_draft_orders_bytes: int = 1024 * 1024
    # The answer's size: above what the limits above admit (RESPONSE_BYTES_PER_ORDER), so no
    # admitted request reaches it; a safety net, checked at start-up against the others.
    max_response_bytes: int = 10 * 1024 * 1024
    # Silent pilot (issue 16): "shadow" answers every hook call with no cards and no actions.
    mode: str = "live"
    # What `cds-service db purge` keeps: ten years unless the organisation's records policy
    # says otherwise; at least 400 days, so a year's report can still be compared with the
    # one before and a missed alarm looked back on.
    audit_retention_days: int = 3653

    @property
    def is_development(self) -> bool:
        """True when loopback FHIR servers and other conveniences are allowed."""
        return self.env in ("development", "test")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed (used by tests and the CLI)."""
        return replace(self, **changes)


# name -> (attribute, parser); one table so the README and the code cannot drift apart
def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())


def _per_modality(value: str) -> dict[str, float]:
    """Parse "xray=60,ct=180,mri=250": one non-negative number per modality."""
    found: dict[str, float] = {}
    for part in value.split(","):
        name, _, number = part.partition("=")
        name = name.strip().lower()
        if name not in ("xray", "ct", "mri") or not number.strip():
            raise ValueError(f"expected xray=N,ct=N,mri=N, got {value!r}")
        found[name] = float(number)
        if found[name] < 0:
            raise ValueError(f"{name} must not be negative")
    if set(found) != {"xray", "ct", "mri"}:
        raise ValueError("give a value for each of xray, ct and mri")
    return found


MIN_RETENTION_DAYS = 400

ENV_VARS: dict[str, tuple[str, Any]] = {
    "CDS_ENV": ("env", str),
    "CDS_HOST": ("host", str),
    "CDS_PORT": ("port", int),
    "CDS_PUBLIC_BASE_URL": ("public_base_url", lambda v: v.rstrip("/")),
    "CDS_DATABASE_URL": ("database_url", str),
    "CDS_FHIR_SERVER_ALLOWLIST": ("fhir_allowlist", _csv),
    "CDS_DEFAULT_LANGUAGE": ("default_language", str),
    "CDS_LOG_LEVEL": ("log_level", lambda v: v.upper()),
    "CDS_MAX_REQUEST_BYTES": ("max_request_bytes", int),
    "CDS_FHIR_TIMEOUT_SECONDS": ("fhir_timeout_seconds", float),
    "CDS_FHIR_MAX_PAGES": ("fhir_max_pages", int),
    "CDS_SHOW_INDICATED_CARDS": ("show_indicated_cards", _bool),
    "CDS_QCDSM_ID": ("qcdsm_id", str),
    "CDS_MAPPINGS_DIR": ("mappings_dir", Path),
    "CDS_CARDS_DIR": ("cards_dir", Path),
    "CDS_PSEUDONYM_KEY": ("pseudonym_key", str),
    "CDS_REPORT_TOKEN": ("report_token", str),
    "CDS_TENANT": ("tenant", str),
    "CDS_DATABASE_AUTO_UPGRADE": ("database_auto_upgrade", _bool),
    "CDS_AUDIT_SPOOL": ("audit_spool", Path),
    "CDS_DATABASE_WAIT_SECONDS": ("database_wait_seconds", float),
    "CDS_DATABASE_CONNECT_TIMEOUT_SECONDS": ("database_connect_timeout_seconds", int),
    "CDS_DATABASE_STATEMENT_TIMEOUT_MS": ("database_statement_timeout_ms", int),
    "CDS_DATABASE_LOCK_TIMEOUT_MS": ("database_lock_timeout_ms", int),
    "CDS_SQLITE_BUSY_TIMEOUT_MS": ("sqlite_busy_timeout_ms", int),
    "CDS_TARIFFS": ("tariffs", _per_modality),
    "CDS_DOSE_MSV": ("dose_msv", _per_modality),
    "CDS_CURRENCY": ("currency", str),
    "CDS_AUTH": ("auth_enabled", _bool),
    "CDS_TRUSTED_ISSUERS": ("trusted_issuers_path", Path),
    "CDS_JWT_LEEWAY_SECONDS": ("jwt_leeway_seconds", int),
    "CDS_MAX_DRAFT_ORDERS": ("max_draft_orders", int),
    "CDS_MAX_ORDER_TEXT_CHARS": ("max_order_text_chars", int),
    "CDS_MAX_DRAFT_ORDERS_BYTES": ("max_draft_orders_bytes", int),
    "CDS_MAX_RESPONSE_BYTES": ("max_response_bytes", int),
    "CDS_MODE": ("mode", lambda v: v.strip().lower()),
    "CDS_AUDIT_RETENTION_DAYS": ("audit_retention_days", int),
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read CDS_* variables into Settings, refusing unusable or unsafe values."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (attribute, parse) in ENV_VARS.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[attribute] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
    if "public_base_url" not in values and environ.get("CDS_PORT"):
        # Card links and the expected `aud` follow the address the service binds
        # (`CDS_PORT=8107 make run` must not write 8080 links); behind a proxy, set
        # CDS_PUBLIC_BASE_URL to the address clients use.
        host = environ.get("CDS_HOST") or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - compared, not bound
        values["public_base_url"] = f"http://{host}:{environ['CDS_PORT']}"
    if "auth_enabled" not in values:
        # Authentication is on by default; only a development run without a trusted-issuers
        # file (make run) starts with it off, and the app says so loudly at start-up.
        values["auth_enabled"] = not (
            values.get("env", "development") == "development"
            and "trusted_issuers_path" not in values
        )
    return validate(Settings(**values))


def validate(settings: Settings) -> Settings:
    """Check a Settings object; raise ConfigError naming the variable at fault."""
    if settings.env not in ENVIRONMENTS:
        raise ConfigError(f"CDS_ENV must be one of {', '.join(ENVIRONMENTS)}")
    if settings.default_language not in LANGUAGES:
        raise ConfigError(f"CDS_DEFAULT_LANGUAGE must be one of {', '.join(LANGUAGES)}")
    if settings.log_level not in LOG_LEVELS:
        raise ConfigError(f"CDS_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    if settings.mode not in MODES:
        raise ConfigError(f"CDS_MODE must be one of {', '.join(MODES)}, not {settings.mode!r}")
    if settings.audit_retention_days < MIN_RETENTION_DAYS:
        raise ConfigError(f"CDS_AUDIT_RETENTION_DAYS must be at least {MIN_RETENTION_DAYS}")
    if not 0 < settings.port < 65536:
        raise ConfigError("CDS_PORT must be between 1 and 65535")
    if settings.max_request_bytes < 1024:
        raise ConfigError("CDS_MAX_REQUEST_BYTES must be at least 1024")
    if settings.fhir_timeout_seconds <= 0:
        raise ConfigError("CDS_FHIR_TIMEOUT_SECONDS must be positive")
    if settings.fhir_max_pages < 1:
        raise ConfigError("CDS_FHIR_MAX_PAGES must be at least 1")
    base = urlsplit(settings.public_base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError("CDS_PUBLIC_BASE_URL must be an absolute http(s) URL")
    for entry in settings.fhir_allowlist:
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"CDS_FHIR_SERVER_ALLOWLIST: {entry!r} is not an absolute URL")
    if settings.env == "production":
        if base.scheme != "https":
            raise ConfigError("CDS_PUBLIC_BASE_URL must use https in production")
        if any(urlsplit(e).scheme != "https" for e in settings.fhir_allowlist):
            raise ConfigError("CDS_FHIR_SERVER_ALLOWLIST entries must use https in production")
    if settings.pseudonym_key and len(settings.pseudonym_key) < 32:
        raise ConfigError("CDS_PSEUDONYM_KEY must be at least 32 characters")
    if not settings.pseudonym_key and not settings.is_development:
        raise ConfigError("CDS_PSEUDONYM_KEY is required outside development and test")
    if settings.report_token and len(settings.report_token) < 16:
        raise ConfigError("CDS_REPORT_TOKEN must be at least 16 characters")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", settings.tenant):
        raise ConfigError("CDS_TENANT must be 1-64 letters, digits, '.', '_' or '-'")
    if not re.fullmatch(r"[A-Z]{3}", settings.currency):
        raise ConfigError("CDS_CURRENCY must be a three-letter ISO 4217 code")
    if not settings.auth_enabled and settings.env != "development":
        raise ConfigError("CDS_AUTH=off is allowed only when CDS_ENV=development")
    if settings.auth_enabled and settings.trusted_issuers_path is None:
        raise ConfigError("CDS_TRUSTED_ISSUERS is required while authentication is on")
    if not 0 <= settings.jwt_leeway_seconds <= 300:
        raise ConfigError("CDS_JWT_LEEWAY_SECONDS must be between 0 and 300")
    if not 0 < settings.database_wait_seconds <= 5:
        raise ConfigError("CDS_DATABASE_WAIT_SECONDS must be above 0 and at most 5")
    # psycopg treats a connect timeout under 2 s as 2 s, so a smaller value would only mislead.
    if not 2 <= settings.database_connect_timeout_seconds <= 60:
        raise ConfigError("CDS_DATABASE_CONNECT_TIMEOUT_SECONDS must be between 2 and 60")
    for value, name in (
        (settings.database_statement_timeout_ms, "CDS_DATABASE_STATEMENT_TIMEOUT_MS"),
        (settings.database_lock_timeout_ms, "CDS_DATABASE_LOCK_TIMEOUT_MS"),
        (settings.sqlite_busy_timeout_ms, "CDS_SQLITE_BUSY_TIMEOUT_MS"),
    ):
        if not 1 <= value <= 600_000:
            raise ConfigError(f"{name} must be between 1 and 600000")
    if settings.max_draft_orders < 1:
        raise ConfigError("CDS_MAX_DRAFT_ORDERS must be at least 1")
    if settings.max_order_text_chars < 200:
        raise ConfigError("CDS_MAX_ORDER_TEXT_CHARS must be at least 200")
    if settings.max_draft_orders_bytes < 1024:
        raise ConfigError("CDS_MAX_DRAFT_ORDERS_BYTES must be at least 1024")
    if settings.max_response_bytes < response_bound(settings):
        raise ConfigError(
            f"CDS_MAX_RESPONSE_BYTES must be at least {response_bound(settings)}: 3 x "
            "CDS_MAX_DRAFT_ORDERS_BYTES + CDS_MAX_DRAFT_ORDERS x 128 KiB + 64 KiB, what an "
            "admitted request can give"
        )
    for directory, name in (
        (settings.mappings_dir, "CDS_MAPPINGS_DIR"),
        (settings.cards_dir, "CDS_CARDS_DIR"),
    ):
        if not Path(directory).is_dir():
            raise ConfigError(f"{name}: {directory} is not a directory")
    return settings
