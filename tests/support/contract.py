"""Holds every HTTP response in the tests to openapi.yaml and the CDS Hooks response rules."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from cds_service.hooks.validation import registry
from cds_service.shipped import OPENAPI_DOCUMENT

OPENAPI = OPENAPI_DOCUMENT


@cache
def openapi() -> dict[str, Any]:
    """The parsed openapi.yaml."""
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


@cache
def _registry() -> Registry:
    extra = []
    for ref in re.findall(r'\$ref: "([^#"][^"]*)"', OPENAPI.read_text(encoding="utf-8")):
        contents = json.loads((OPENAPI.parent / ref).read_text(encoding="utf-8"))
        extra.append((ref, Resource.from_contents(contents)))
    return registry().with_resources(extra)


def _operation(path: str, method: str) -> dict[str, Any] | None:
    for template, item in openapi()["paths"].items():
        pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return item[method.lower()]
    return None


def response_schema(path: str, method: str, status: int) -> tuple[str, dict[str, Any]] | None:
    """(media type, schema) openapi.yaml promises for this response, or None if undocumented."""
    operation = _operation(path, method)
    if operation is None:
        return None
    response = operation["responses"].get(str(status))
    if response is None:
        return None
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[-1]
        response = openapi()["components"]["responses"][name]
    media, body = next(iter(response["content"].items()))
    return media, body["schema"]


def forbidden_empties(value: Any, path: str = "$") -> list[str]:
    """Paths of null, "", [] or {} anywhere in a response (only top-level cards: [] is allowed)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}"
            if child == "$.cards" and item == []:
                continue
            if item is None or item == "" or item == [] or item == {}:
                found.append(child)
            found.extend(forbidden_empties(item, child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            child = f"{path}[{index}]"
            if item is None or item == "" or item == [] or item == {}:
                found.append(child)
            found.extend(forbidden_empties(item, child))
    return found


def check_response(path: str, method: str, status: int, content_type: str, body: bytes) -> None:
    """Fail when a response is not what openapi.yaml documents for it."""
    if method.upper() == "OPTIONS":
        return
    promised = response_schema(path, method, status)
    assert promised is not None, f"{method} {path} -> {status} is not documented in openapi.yaml"
    media, schema = promised
    assert content_type.split(";")[0].strip() == media, (
        f"{method} {path} -> {status}: content type {content_type}, openapi says {media}"
    )
    if media != "application/json":
        return
    document = json.loads(body)
    errors = sorted(
        Draft202012Validator(schema, registry=_registry()).iter_errors(document), key=str
    )
    assert not errors, f"{method} {path} -> {status} violates openapi.yaml: {errors[0].message}"
    if path.startswith("/cds-services/") and status == 200:
        empties = forbidden_empties(document)
        assert not empties, f"forbidden empty values at {empties}"
