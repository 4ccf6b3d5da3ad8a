"""JSON over HTTP for every blueprint: the compact answer and the bounded reading of a body."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from cds_service.errors import InvalidRequest

# A FHIR request nests about 15 deep (prefetch > Bundle > entry > resource > extension > ...);
# far deeper is an attack on the recursion of whatever reads it next.
MAX_JSON_DEPTH = 64
# Python's own limit on int(str): a longer integer costs quadratic time to convert.
MAX_INTEGER_DIGITS = 4300
# A \uD800-\uDFFF escape: only then can the parsed strings hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON response."""
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )


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
