"""JSON Schema validators for hook requests and responses, compiled once, errors as JSON paths."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from cds_service.errors import InvalidRequest, Issue

SCHEMA_FILES = (
    "hook-request.schema.json",
    "cds-response.schema.json",
    "discovery.schema.json",
    "operation-outcome.schema.json",
)
HOOK_DEFS = {"order-select": "orderSelectRequest", "order-sign": "orderSignRequest"}
MAX_ISSUES = 20
# An unescaped `$` that ends a pattern (not `\$`, a literal dollar).
_END_ANCHOR = re.compile(r"(?<!\\)\$\Z")


@cache
def _python_pattern(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA 262, where `$` ends the string; in Python `$` also matches
    # before a trailing newline, so "id\n" would pass "^[A-Za-z0-9.-]+$". `\Z` is ECMA's `$`.
    return re.compile(_END_ANCHOR.sub(r"\\Z", pattern))


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _python_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 2020-12 with ECMA 262 end anchors: the validator every request schema is checked with.
StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def strict_validator(schema: dict[str, Any], **kwargs: Any) -> Draft202012Validator:
    """A Draft 2020-12 validator whose patterns end where ECMA 262's do (no trailing newline)."""
    return StrictValidator(schema, **kwargs)


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """The packaged JSON Schemas by file name, each checked against the metaschema."""
    package = resources.files("cds_service.hooks") / "schemas"
    loaded = {}
    for name in SCHEMA_FILES:
        schema = json.loads((package / name).read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        loaded[name] = schema
    return loaded


@cache
def registry() -> Registry:
    """A referencing registry holding every packaged schema under its $id and file name."""
    pairs = []
    for name, schema in schemas().items():
        resource = Resource.from_contents(schema)
        pairs.append((schema["$id"], resource))
        pairs.append((name, resource))
    return Registry().with_resources(pairs)


@cache
def validator(name: str, pointer: str = "") -> Draft202012Validator:
    """A compiled validator for a schema file, or for a $defs entry inside it."""
    schema: dict[str, Any] = schemas()[name]
    if pointer:
        schema = {"$ref": f"{schema['$id']}#{pointer}"}
    return strict_validator(schema, registry=registry())


def json_path(error: ValidationError) -> str:
    """The location of a validation error as a JSONPath-like string (e.g. context.selections[0])."""
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    rule, instance = error.validator_value, error.instance
    missing = None
    if not isinstance(instance, dict):  # only an object lacks keys
        return path or "$"
    if error.validator == "dependentRequired" and isinstance(rule, dict):
        missing = next(
            (
                needed
                for field, needs in rule.items()
                if field in instance
                for needed in needs
                if needed not in instance
            ),
            None,
        )
    elif error.validator == "required" and isinstance(rule, list):
        missing = next((k for k in rule if k not in instance), None)
    if missing:
        path = f"{path}.{missing}" if path else missing
    return path or "$"


def _message(error: ValidationError) -> str:
    if error.validator == "required":
        return "required field is missing"
    if error.validator == "const":
        return f"must be {json.dumps(error.validator_value)}"
    if error.validator == "pattern":
        return "has an invalid format"
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    if error.validator == "minItems":
        return "must not be empty"
    if error.validator == "dependentRequired":
        return "fhirServer is required when fhirAuthorization is given"
    return error.message if len(error.message) < 200 else error.message[:197] + "..."


def validate_hook_request(body: Any, hook: str) -> None:
    """Raise InvalidRequest listing every schema violation of a hook request, by JSON path."""
    check = validator("hook-request.schema.json", f"/$defs/{HOOK_DEFS[hook]}")
    errors = sorted(check.iter_errors(body), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    issues = []
    seen = set()
    for error in errors:
        path = json_path(error)
        message = _message(error)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        issues.append(Issue("invalid", f"{path}: {message}", path))
        if len(issues) >= MAX_ISSUES:
            break
    raise InvalidRequest(issues[0].diagnostics, issues=issues)


def response_errors(body: Any) -> list[str]:
    """Schema violations of a CDS Hooks response (used by tests and the self-check)."""
    return [
        f"{json_path(e)}: {e.message}"
        for e in validator("cds-response.schema.json").iter_errors(body)
    ]
