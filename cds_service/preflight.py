"""The start-up check docker/entrypoint.sh runs before gunicorn: one line and exit 2 on a refusal.

Without it a bad setting surfaces as a traceback in every worker and gunicorn's exit 3; here the
operator reads which settings are missing, all of them at once, and nothing is served.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

from cds_service.config import load_settings
from cds_service.errors import ConfigError, RuleDataError

REFUSED = 2


def production_gaps(environ: Mapping[str, str]) -> list[str]:
    """What a production start lacks: trusted issuers, a pseudonym key, an https base URL."""
    if environ.get("CDS_ENV", "development") != "production":
        return []
    gaps = []
    if not environ.get("CDS_TRUSTED_ISSUERS"):
        gaps.append("CDS_TRUSTED_ISSUERS (the trusted-issuers file) is not set")
    if not environ.get("CDS_PSEUDONYM_KEY"):
        gaps.append("CDS_PSEUDONYM_KEY is not set")
    base = environ.get("CDS_PUBLIC_BASE_URL", "")
    if urlsplit(base).scheme != "https":
        gaps.append(f"CDS_PUBLIC_BASE_URL must be an https URL (is {base or 'not set'!r})")
    return gaps


def check(environ: Mapping[str, str]) -> str | None:
    """The reason the service must not start with these variables, or None when it may."""
    gaps = production_gaps(environ)
    if gaps:
        return "refusing to start in production: " + "; ".join(gaps)
    try:
        settings = load_settings(environ)
        if settings.auth_enabled and settings.trusted_issuers_path is not None:
            # Imported here: the issuers' JOSE stack is not needed to report a missing variable.
            from cds_service.security.issuers import load_trusted_issuers

            load_trusted_issuers(settings.trusted_issuers_path, env=settings.env)
    except (ConfigError, RuleDataError) as exc:
        return f"refusing to start: {exc}"
    if not settings.database_auto_upgrade:
        return _schema_problem(settings.database_url)
    return None


def _schema_problem(database_url: str) -> str | None:
    """Refuse a reachable audit database whose schema is behind (migrations are a step of
    their own when auto-upgrade is off); an unreachable one is the spool's job, not start-up's."""
    from sqlalchemy.exc import SQLAlchemyError

    from cds_service.audit.store import AuditStore

    store = AuditStore.from_url(database_url)
    try:
        current = store.is_current()
    except SQLAlchemyError:
        return None
    finally:
        store.engine.dispose()
    if current:
        return None
    return (
        "refusing to start: the audit schema is not at the newest migration; "
        "run `cds-service db upgrade` first"
    )


def main() -> int:
    """Print the refusal on standard error and return 2, or return 0 when the service may start."""
    problem = check(os.environ)
    if problem is None:
        return 0
    print(problem, file=sys.stderr)
    return REFUSED


if __name__ == "__main__":
    sys.exit(main())
