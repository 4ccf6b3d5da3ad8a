"""One exception family for what a client or a data file can get wrong, as OperationOutcome."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: FHIR issue type code, a human message and the JSON path it concerns."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"


class CdsError(Exception):
    """Base of the errors the service turns into an HTTP status and an OperationOutcome."""

    status: int = 400
    issue_code: str = "invalid"

    def __init__(
        self, message: str, *, expression: str | None = None, issues: Sequence[Issue] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.issues: tuple[Issue, ...] = tuple(issues) or (
            Issue(self.issue_code, message, expression),
        )

    def to_operation_outcome(self) -> dict[str, Any]:
        """The error as a FHIR R4 OperationOutcome resource."""
        return operation_outcome(self.issues)


class InvalidRequest(CdsError):
    """The request body is not valid JSON or does not follow the CDS Hooks request schema."""

    status = 400
    issue_code = "invalid"


class WrongHook(CdsError):
    """The request names a hook that this service does not answer."""

    status = 400
    issue_code = "not-supported"


class UnknownService(CdsError):
    """No CDS service with this id."""

    status = 404
    issue_code = "not-found"


class PayloadTooLarge(CdsError):
    """The request body exceeds the configured limit."""

    status = 413
    issue_code = "too-costly"


class PrefetchUnavailable(CdsError):
    """Required FHIR data was neither prefetched nor obtainable from the FHIR server (spec: 412)."""

    status = 412
    issue_code = "incomplete"


class FhirServerNotAllowed(PrefetchUnavailable):
    """The request's fhirServer is not on the allow-list, so the service will not call it."""

    issue_code = "security"


class TooManyAttempts(CdsError):
    """A client failed too often in a short time; it may try again after `retry_after` seconds."""

    status = 429
    issue_code = "throttled"

    def __init__(self, message: str, *, retry_after: int, expression: str | None = None) -> None:
        super().__init__(message, expression=expression)
        self.retry_after = retry_after


class StoreUnavailable(CdsError):
    """The audit store cannot be reached; the client may retry the same request later."""

    status = 503
    issue_code = "transient"


class ConfigError(Exception):
    """The service's configuration is unusable; raised at start-up."""


class RuleDataError(Exception):
    """A file under mappings/ or cards/ is invalid; raised at start-up, naming file and entry."""


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome dict from issues, omitting empty fields."""
    rendered = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            "diagnostics": issue.diagnostics,
        }
        if issue.expression:
            entry["expression"] = [issue.expression]
        rendered.append(entry)
    return {"resourceType": "OperationOutcome", "issue": rendered}
