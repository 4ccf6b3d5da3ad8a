"""POST /cds-services/{id}/feedback (CDS Hooks 2.0): accepted and overridden cards, stored coded.

A batch is all or nothing: when any item names a card (or a suggestion) this service did not
issue, nothing is stored and the 422 OperationOutcome names every unknown uuid. Because
feedback is idempotent, the client can correct and resend the whole batch. The clinician's
`userComment` is never stored: only the override reason's system and code, and the system only
when it is one of the code systems of the override reasons the cards offer (cards/).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response
from jsonschema import Draft202012Validator
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit.models import ACCEPTED, CANCELLED, OVERRIDDEN, REPLACED
from cds_service.audit.pseudonyms import Pseudonymiser, safe_token
from cds_service.audit.recording import CANCEL, REPLACE
from cds_service.audit.service import current_audit
from cds_service.database import DatabaseStalled
from cds_service.errors import CdsError, InvalidRequest, Issue, StoreUnavailable
from cds_service.hooks.discovery import find_service
from cds_service.hooks.validation import json_path, strict_validator
from cds_service.http_json import json_response, parse_json_body
from cds_service.runtime import runtime

bp = Blueprint("cds_feedback", __name__, url_prefix="/cds-services")
log = logging.getLogger(__name__)
MAX_ISSUES = 20
# Feedback is no clinician's wait, but a database that never answers must not hold a worker
# until gunicorn kills it (an HTML 500): past this the client gets 503 and resends.
FEEDBACK_WAIT_S = 5.0
UNRECOGNISED_CODE = "unrecognised-code"


class UnknownCards(CdsError):
    """Feedback names cards or suggestions this service never issued."""

    status = 422
    issue_code = "not-found"


@cache
def _validator() -> Draft202012Validator:
    text = (resources.files("cds_service.audit") / "feedback.schema.json").read_text("utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return strict_validator(schema)


def _validate(body: Any) -> None:
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        issues = []
        for error in errors[:MAX_ISSUES]:
            path = json_path(error)
            message = (
                "required field is missing" if error.validator == "required" else error.message
            )
            issues.append(Issue("invalid", f"{path}: {message[:200]}", path))
        raise InvalidRequest(issues[0].diagnostics, issues=issues)


def parse_timestamp(value: str, where: str) -> datetime:
    """An RFC 3339 date-time with an offset, in UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequest(
            f"{where}: must be an RFC 3339 date-time with a time zone (1985-04-12T23:20:50.52Z)",
            expression=where,
        )
    return moment.astimezone(UTC)


def _digest(item: dict[str, Any], outcome_at: datetime, system: Any, code: Any) -> str:
    # Over what is stored, not what was sent: an unkeyed hash of a refused system (a name, a
    # BSN) could be reversed by trying candidates.
    key = [
        item["card"],
        item["outcome"],
        sorted(s["id"] for s in item.get("acceptedSuggestions") or ()),
        system,
        code,
        outcome_at.isoformat(),
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def override_systems() -> frozenset[str]:
    """The code systems of the override reasons this service's cards offer: the allow-list."""
    return frozenset(r["system"] for r in runtime().catalogue.override_reasons)


def stored_override(
    reason: dict[str, Any], allowed: frozenset[str], pseudonym: Pseudonymiser | None
) -> tuple[str | None, str]:
    """(system, code) as the audit keeps them: nothing the client wrote that could name anyone.

    A system off the allow-list is no vocabulary of ours, so both it and its code could be
    anything (a name, a BSN): the system is kept only as its keyed pseudonym, which still
    tells one foreign system from another, and the code as unrecognised.
    """
    system = reason.get("system")
    if system in allowed:
        return system, safe_token(reason.get("code")) or UNRECOGNISED_CODE
    foreign = pseudonym("override-system", str(system)) if pseudonym is not None else None
    return foreign, UNRECOGNISED_CODE


def feedback_rows(service_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """audit_feedback rows for a validated request, or UnknownCards naming what is unknown."""
    store = current_audit().ready_store()
    items = body["feedback"]
    cards = store.cards(service_id, (item["card"] for item in items))
    suggestions = store.suggestions(cards.values())
    issues = []
    for index, item in enumerate(items):
        if item["card"] not in cards:
            where = f"feedback[{index}].card"
            issues.append(Issue("not-found", f"{where}: unknown card {item['card'][:64]}", where))
            continue
        for position, accepted in enumerate(item.get("acceptedSuggestions") or ()):
            owner = suggestions.get(accepted["id"])
            if owner is None or owner[0] != cards[item["card"]]:
                where = f"feedback[{index}].acceptedSuggestions[{position}].id"
                issues.append(
                    Issue(
                        "not-found",
                        f"{where}: card {item['card'][:64]} has no suggestion "
                        f"{accepted['id'][:64]}",
                        where,
                    )
                )
    if issues:
        raise UnknownCards(issues[0].diagnostics, issues=issues[:MAX_ISSUES])

    received = datetime.now(UTC)
    allowed = override_systems()
    rows = []
    for index, item in enumerate(items):
        outcome_at = parse_timestamp(
            item["outcomeTimestamp"], f"feedback[{index}].outcomeTimestamp"
        )
        accepted_ids = [s["id"] for s in item.get("acceptedSuggestions") or ()]
        kinds = {suggestions[s][1] for s in accepted_ids}
        reason = (item.get("overrideReason") or {}).get("reason") or {}
        if item["outcome"] == "overridden":
            response = OVERRIDDEN
        elif CANCEL in kinds:
            response = CANCELLED
        elif REPLACE in kinds:
            response = REPLACED
        else:
            response = ACCEPTED
        system, code = (
            stored_override(reason, allowed, current_audit().pseudonym)
            if response == OVERRIDDEN and reason
            else (None, None)
        )
        rows.append(
            {
                "evaluation_id": cards[item["card"]],
                "card_uuid": item["card"],
                "outcome": item["outcome"],
                "response": response,
                "accepted_suggestions": ",".join(accepted_ids)[:400] or None,
                "override_system": system,
                "override_code": code,
                "outcome_at": outcome_at,
                "received_at": received,
                "digest": _digest(item, outcome_at, system, code),
            }
        )
    return rows


def _store(service_id: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    rows = feedback_rows(service_id, body)
    return rows, current_audit().ready_store().record_feedback(rows)


@bp.post("/<service_id>/feedback")
def receive_feedback(service_id: str) -> Response:
    """POST /cds-services/{id}/feedback: store a batch of feedback items."""
    service = find_service(service_id)
    body = parse_json_body()
    _validate(body)
    audit = current_audit()
    try:
        rows, (stored, duplicates) = audit.gate.run(
            lambda: _store(service.id, body), FEEDBACK_WAIT_S, patient=True
        )
    except (SQLAlchemyError, DatabaseStalled) as exc:
        log.error("feedback not stored: audit store error", extra={"error": type(exc).__name__})
        raise StoreUnavailable("the audit store is unavailable; resend the batch later") from exc
    return json_response(
        {"received": len(rows), "stored": stored, "duplicates": duplicates}, status=200
    )
