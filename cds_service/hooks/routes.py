"""HTTP endpoints of the CDS Hooks protocol: discovery and service calls."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from cds_service.audit.service import current_audit
from cds_service.errors import InvalidRequest, UnknownService, WrongHook
from cds_service.evaluation import evaluate
from cds_service.hooks.discovery import SERVICES, ServiceDefinition, discovery_document
from cds_service.hooks.limits import (
    bounded_response,
    check_draft_orders_size,
    check_order_count,
    check_order_texts,
)
from cds_service.hooks.validation import validate_hook_request
from cds_service.observability.logs import set_log_context
from cds_service.observability.metrics import count_decisions
from cds_service.runtime import runtime

bp = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")
log = logging.getLogger(__name__)
# A FHIR request nests about 15 deep (prefetch > Bundle > entry > resource > extension > ...);
# far deeper is an attack on the recursion of whatever reads it next.
MAX_JSON_DEPTH = 64
# Python's own limit on int(str): a longer integer costs quadratic time to convert.
MAX_INTEGER_DIGITS = 4300
# A \uD800-\uDFFF escape: only then can the parsed strings hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# The whole answer of a silent pilot (CDS_MODE=shadow): valid CDS Hooks, nothing to show or do.
SHADOW_PAYLOAD = json.dumps({"cards": []}, separators=(",", ":")).encode("utf-8")


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON response."""
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )


def find_service(service_id: str) -> ServiceDefinition:
    service = SERVICES.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id '{service_id[:80]}'", expression="id")
    return service


def parse_json_body() -> dict[str, Any]:
    """The request body as a JSON object, or InvalidRequest saying where parsing failed."""
    raw = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body (no Content-Length) is cut off at the limit without an error
        # (Werkzeug's LimitedStream): one that fills the limit was, or may have been, larger.
        raise RequestEntityTooLarge()
    if not raw:
        raise InvalidRequest("request body is empty; a JSON object is required", expression="$")
    try:
        body = json.loads(raw, parse_int=_bounded_int)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("request body is not UTF-8 text", expression="$") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", expression="$"
        ) from exc
    except RecursionError as exc:
        raise _too_deep() from exc
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object", expression="$")
    _check_structure(body, raw)
    return body


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise InvalidRequest(
            f"a number in the request has more than {MAX_INTEGER_DIGITS} digits", expression="$"
        )
    return int(digits)


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"request JSON is nested more than {MAX_JSON_DEPTH} levels deep", expression="$"
    )


def _check_structure(body: dict[str, Any], raw: bytes) -> None:
    """InvalidRequest when the JSON nests too deeply or a string holds a lone surrogate."""
    strings = _SURROGATE_ESCAPE.search(raw) is not None
    if not strings and raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return  # too few brackets to nest too deeply, and no surrogate escapes: nothing to walk
    # A lone surrogate is no Unicode text: it cannot be encoded as UTF-8 for the answer or
    # the database, so it is refused here rather than failing later as a 500.
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if strings and isinstance(key, str) and _LONE_SURROGATE.search(key):
                raise _lone_surrogate()
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))
            elif strings and isinstance(item, str) and _LONE_SURROGATE.search(item):
                raise _lone_surrogate()


def _lone_surrogate() -> InvalidRequest:
    return InvalidRequest(
        "a string in the request holds a lone UTF-16 surrogate (\\uD800-\\uDFFF without its "
        "pair), which is not Unicode text",
        expression="$",
    )


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
