"""Prefetch resolution: take what the CDS client sent, fetch what it left out, or fail with 412."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from cds_service.config import Settings
from cds_service.errors import FhirServerNotAllowed, Issue, PrefetchUnavailable
from cds_service.fhir.client import FhirClient, FhirError, display_url, is_allowed_server

log = logging.getLogger(__name__)

# Total time all fallback FHIR calls of one hook request may take, as a multiple of the per-call
# timeout (CDS_FHIR_TIMEOUT_SECONDS). Calls run one after another; each gets the smaller of the
# per-call timeout and what is left of the budget, for connecting, for every socket read and for
# the whole body, and no call starts once the budget is spent. So the fetching ends within the
# budget (plus scheduling slack; DNS look-ups are the one wait requests cannot bound). A failing
# call ends the fetching, since the answer is a 412 whatever the other keys bring: a dead server
# costs one timeout, not one per key.
BUDGET_FACTOR = 2.0

_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# A context value put into a query must be a FHIR id or a "Type/id" reference: anything else
# (spaces, "&", "?", "..") could change the query or the path the service asks for.
_SAFE_VALUE = re.compile(r"(?:[A-Z][A-Za-z]{1,63}/)?[A-Za-z0-9\-.]{1,64}")
_READ = re.compile(r"[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}")
_SEARCH = re.compile(r"[A-Z][A-Za-z]{1,63}(?:\?.*)?", re.DOTALL)
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class _Unresolvable(Exception):
    """A template token has no value in this request: the key means "no data"."""


class _UnsafeValue(Exception):
    """A context value cannot be put into a query safely."""


class _TemplateError(FhirError):
    """A filled template is neither a read nor a type-level search (a service bug)."""


def resolve_prefetch(
    request: Mapping[str, Any],
    templates: Mapping[str, str],
    settings: Settings,
    *,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Return key → resource, Bundle or None for each template, fetching what the client omitted."""
    sent = request.get("prefetch")
    sent = sent if isinstance(sent, Mapping) else {}
    context = request.get("context")
    context = context if isinstance(context, Mapping) else {}

    result: dict[str, Any] = {}
    to_fetch: dict[str, str] = {}
    for key, template in templates.items():
        if key in sent and sent[key] is None:
            result[key] = None  # the client says: no data (spec: the key MUST be null then)
        elif key in sent and _is_usable(sent[key]):
            result[key] = sent[key]
        else:
            # Missing, or the client reported a failure (OperationOutcome): get it ourselves.
            if key in sent:
                log.info("prefetch %s: client sent an OperationOutcome or no resource", key)
            to_fetch[key] = template

    if to_fetch:
        result.update(_fetch(request, context, to_fetch, settings, session))
    return {key: result[key] for key in templates}


def flatten(prefetch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """All resources in the prefetch values, without OperationOutcomes, de-duplicated."""
    seen: set[tuple[str, str]] = set()
    resources: list[dict[str, Any]] = []
    for value in prefetch.values():
        for resource in _resources_in(value):
            resource_id = resource.get("id")
            if isinstance(resource_id, str) and resource_id:
                identity = (str(resource["resourceType"]), resource_id)
                if identity in seen:
                    continue
                seen.add(identity)
            resources.append(resource)
    return resources


# -- what the client sent ------------------------------------------------------------------------


def _resources_in(value: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return
    kind = value["resourceType"]
    if kind == "OperationOutcome":
        return
    if kind != "Bundle":
        yield value
        return
    for entry in value.get("entry") or ():
        if isinstance(entry, dict):
            yield from _resources_in(entry.get("resource"))


def _is_usable(value: Any) -> bool:
    """False for values that mean "the client failed": OperationOutcomes and non-resources."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return False
    if value["resourceType"] == "OperationOutcome":
        return False
    if value["resourceType"] == "Bundle":
        entries = [e for e in value.get("entry") or () if isinstance(e, dict)]
        kinds = [
            (e.get("resource") or {}).get("resourceType")
            for e in entries
            if isinstance(e.get("resource"), dict)
        ]
        # An empty Bundle is real "no results"; one holding only OperationOutcomes is a failure.
        if kinds and all(kind == "OperationOutcome" for kind in kinds):
            return False
    return True


# -- fetching what is missing --------------------------------------------------------------------


def _fetch(
    request: Mapping[str, Any],
    context: Mapping[str, Any],
    templates: Mapping[str, str],
    settings: Settings,
    session: requests.Session | None,
) -> dict[str, Any]:
    queries: dict[str, str | None] = {}
    failures: list[Issue] = []
    for key, template in templates.items():
        try:
            queries[key] = _fill(template, context)
        except _Unresolvable:
            queries[key] = None
        except _UnsafeValue as exc:
            failures.append(_issue(key, f"context value is not a FHIR id ({exc})"))
    needed = {key: query for key, query in queries.items() if query is not None}
    fetched: dict[str, Any] = {key: None for key, query in queries.items() if query is None}
    if not needed and not failures:
        return fetched

    server = request.get("fhirServer")
    if not isinstance(server, str) or not server:
        failures += [
            _issue(key, "not prefetched and the request has no fhirServer") for key in needed
        ]
        raise PrefetchUnavailable("required FHIR data was not prefetched", issues=failures)
    if not is_allowed_server(server, settings):
        shown = display_url(server)
        raise FhirServerNotAllowed(
            f"fhirServer {shown} is not allowed for this service",
            issues=[
                Issue(
                    "security",
                    f"not prefetched and fhirServer {shown} is not allowed",
                    f"prefetch.{k}",
                )
                for k in needed
            ],
        )
    if failures:
        raise PrefetchUnavailable("required FHIR data could not be fetched", issues=failures)

    client = FhirClient(
        server,
        access_token=_access_token(request),
        timeout=settings.fhir_timeout_seconds,
        max_pages=settings.fhir_max_pages,
        session=session,
        deadline=time.monotonic() + settings.fhir_timeout_seconds * BUDGET_FACTOR,
    )
    pending = list(needed)
    while pending:
        key = pending.pop(0)
        try:
            fetched[key] = _fetch_one(client, needed[key])
        except FhirError as exc:
            log.warning("prefetch %s: %s", key, exc.message)
            failures.append(_issue(key, exc.message))
            # The answer is a 412 now whatever the other keys bring, so do not spend more time.
            failures += [
                _issue(k, "not fetched after an earlier FHIR call failed") for k in pending
            ]
            raise PrefetchUnavailable(
                "required FHIR data could not be fetched from fhirServer", issues=failures
            ) from None
    return fetched


def _fetch_one(client: FhirClient, query: str) -> Any:
    if _READ.fullmatch(query):
        return client.read(query)
    if _SEARCH.fullmatch(query):
        resources = client.search(query)
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": resource} for resource in resources],
        }
    raise _TemplateError("the prefetch template is not a read or a type-level search")


def _fill(template: str, context: Mapping[str, Any]) -> str:
    """Replace every {{token}}; raise _Unresolvable or _UnsafeValue."""

    def value_of(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise _Unresolvable(token)  # absent, or not a primitive (spec: not a token)
            value = str(value)
        elif token in _USER_TOKENS:
            user = context.get("userId")
            prefix = f"{_USER_TOKENS[token]}/"
            if not isinstance(user, str) or not user.startswith(prefix):
                raise _Unresolvable(token)
            value = user.removeprefix(prefix)
        else:
            raise _Unresolvable(token)  # e.g. 3.0's FHIRPath tokens, which 2.0 does not define
        if not _SAFE_VALUE.fullmatch(value):
            raise _UnsafeValue(token)
        return value

    return _TOKEN.sub(value_of, template)


def _access_token(request: Mapping[str, Any]) -> str | None:
    authorization = request.get("fhirAuthorization")
    if not isinstance(authorization, Mapping):
        return None
    token = authorization.get("access_token")
    return token if isinstance(token, str) and token else None


def _issue(key: str, why: str) -> Issue:
    return Issue("incomplete", f"prefetch key {key!r}: {why}", f"prefetch.{key}")
