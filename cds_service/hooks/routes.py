"""HTTP endpoints of the CDS Hooks protocol: discovery and service calls."""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, g, request

from cds_service.audit.service import current_audit
from cds_service.errors import WrongHook
from cds_service.evaluation import evaluate
from cds_service.hooks.discovery import discovery_document, find_service
from cds_service.hooks.limits import (
    bounded_response,
    check_draft_orders_size,
    check_order_count,
    check_order_texts,
)
from cds_service.hooks.validation import validate_hook_request
from cds_service.http_json import json_response, parse_json_body
from cds_service.observability.logs import set_log_context
from cds_service.observability.metrics import count_decisions
from cds_service.runtime import runtime

bp = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")
log = logging.getLogger(__name__)
# The whole answer of a silent pilot (CDS_MODE=shadow): valid CDS Hooks, nothing to show or do.
SHADOW_PAYLOAD = json.dumps({"cards": []}, separators=(",", ":")).encode("utf-8")


@bp.get("")
def discovery() -> Response:
    """GET /cds-services: the services offered."""
    return json_response(discovery_document())


@bp.post("/<service_id>")
def call_service(service_id: str) -> Response:
    """POST /cds-services/{id}: evaluate the draft orders of an order-select or order-sign call."""
    started = time.perf_counter()
    service = find_service(service_id)
    body = parse_json_body()
    set_log_context(hook_instance=body.get("hookInstance"))
    hook = body.get("hook")
    if isinstance(hook, str) and hook != service.hook:
        raise WrongHook(
            f"hook: service '{service.id}' answers '{service.hook}', not '{hook[:40]}'",
            expression="hook",
        )
    state = runtime()
    # Before the schema check, which walks every entry: a flood is refused at the cost of a count.
    check_order_count(body, state.settings)
    check_order_texts(body, state.settings)  # first: it names the field at fault
    check_draft_orders_size(body, state.settings)
    validate_hook_request(body, service.hook)
    result = evaluate(
        body,
        settings=state.settings,
        knowledge=state.knowledge,
        catalogue=state.catalogue,
        accept_language=request.headers.get("Accept-Language"),
        session=state.fhir_session,
    )
    log.info(
        "hook evaluated",
        extra={
            "service": service.id,
            "hook_instance": str(body.get("hookInstance"))[:128],
            "orders": len(result.orders),
            "decisions": [o.decision.outcome.value for o in result.orders],
        },
    )
    # Refused before counting or auditing: an answer not sent is no decision made.
    payload = bounded_response(result.response, state.settings)
    if state.settings.mode == "shadow":
        # Silent pilot: judged, rated, counted and audited exactly as live (the size check above
        # included, so the same rows are kept), but the EHR gets no card and no rating action.
        payload = SHADOW_PAYLOAD
    count_decisions(
        service.hook, [(o.decision.outcome, o.decision.order.modality) for o in result.orders]
    )
    # Audit rows never block the answer: record_call logs and swallows any store failure.
    current_audit().record_call(
        service.id,
        body,
        result,
        round((time.perf_counter() - started) * 1000),
        tenant=getattr(g, "cds_tenant", None),
        tenant_listed=getattr(g, "cds_tenant_listed", False),
    )
    return Response(payload, status=200, mimetype="application/json")
