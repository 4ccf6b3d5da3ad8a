"""Prefetch resolution: take what the CDS client sent, fetch what it left out, note what failed."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import requests

from cds_service.config import Settings
from cds_service.errors import FhirServerNotAllowed, Issue, PrefetchUnavailable
from cds_service.fhir.client import FhirClient, FhirError, display_url, is_allowed_server

log = logging.getLogger(__name__)

# The time budget: CDS_FHIR_TIMEOUT_SECONDS is the time ALL FHIR requests of one hook call may
# take together, retries and Bundle pages included. The missing keys are fetched concurrently by
# at most MAX_CONCURRENT_FETCHES threads sharing one deadline; every request gets what is left of
# the budget for connecting, for each socket read and for the whole body, and none starts once it
# is spent. The caller stops waiting at the deadline plus DEADLINE_GRACE_SECONDS (a thread stuck
# in a DNS look-up, the one wait requests cannot bound, is left behind and its key is
# unavailable). A key that fails does not stop the others: the caller decides what partial data
# is worth.
MAX_CONCURRENT_FETCHES = 6
DEADLINE_GRACE_SECONDS = 0.1

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


@dataclass(frozen=True, slots=True)
class Prefetch:
    """The prefetch of one hook call: key → resource, Bundle or None, and the keys that failed.

    `values` has every template key; an unavailable key holds None there and its safe message
    (no token, no query) in `unavailable`. A None in `values` for a key not in `unavailable`
    means "no data" (the client sent null, the read found nothing, or a token had no value).
    """

    values: dict[str, Any]
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def available(self) -> frozenset[str]:
        """The keys whose data was obtained (possibly as "no data")."""
        return frozenset(self.values) - frozenset(self.unavailable)

    def issues(self) -> list[Issue]:
        """One 412 issue per unavailable key."""
        return [_issue(key, why) for key, why in self.unavailable.items()]


def resolve_prefetch(
    request: Mapping[str, Any],
    templates: Mapping[str, str],
    settings: Settings,
    *,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Key → resource, Bundle or None for each template; PrefetchUnavailable if any key failed.

    The all-or-nothing form of `gather_prefetch`.
    """
    prefetch = gather_prefetch(request, templates, settings, session=session)
    if prefetch.unavailable:
        raise PrefetchUnavailable(
            "required FHIR data could not be fetched from fhirServer", issues=prefetch.issues()
        )
    return prefetch.values


def gather_prefetch(
    request: Mapping[str, Any],
    templates: Mapping[str, str],
    settings: Settings,
    *,
    session: requests.Session | None = None,
    supplementary: frozenset[str] = frozenset(),
) -> Prefetch:
    """What the client sent, plus what it omitted fetched from fhirServer within the budget.

    Raises PrefetchUnavailable (412) only for problems of the request itself: keys missing and no
    fhirServer, a fhirServer that is not allowed, a context value unsafe to put in a query. A key
    the FHIR server fails to deliver (error, timeout, garbage) is reported in `unavailable`.
    A `supplementary` key the client leaves out while giving no fhirServer is "no data": many
    EHRs hold no such family (EpisodeOfCare), and a client written against the core keys must not
    be refused for it.
    """
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

    unavailable: dict[str, str] = {}
    server = request.get("fhirServer")
    if not (isinstance(server, str) and server):
        for key in supplementary & to_fetch.keys():
            log.info("prefetch %s: not sent and no fhirServer; read as no data", key)
            result[key] = None
            del to_fetch[key]
    if to_fetch:
        fetched, unavailable = _fetch(request, context, to_fetch, settings, session)
        result.update(fetched)
    return Prefetch({key: result.get(key) for key in templates}, unavailable)


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
) -> tuple[dict[str, Any], dict[str, str]]:
    """(key → fetched value, key → why it is unavailable) for the keys the client left out."""
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
        return fetched, {}

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

    budget = settings.fhir_timeout_seconds
    deadline = time.monotonic() + budget
    client = FhirClient(
        server,
        access_token=_access_token(request),
        timeout=budget,
        max_pages=settings.fhir_max_pages,
        session=session,
        deadline=deadline,
    )
    unavailable: dict[str, str] = {}
    workers = min(MAX_CONCURRENT_FETCHES, len(needed))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-prefetch")
    try:
        futures: dict[Future[Any], str] = {
            pool.submit(_fetch_one, client, query): key for key, query in needed.items()
        }
        wait(futures, timeout=max(0.0, deadline - time.monotonic()) + DEADLINE_GRACE_SECONDS)
        for future, key in futures.items():
            if not future.done():
                unavailable[key] = f"no answer within the time budget of {budget:.1f} s"
                continue
            error = future.exception()
            if error is None:
                fetched[key] = future.result()
            elif isinstance(error, FhirError):
                unavailable[key] = error.message
            else:
                # A bug or an odd exception from the HTTP stack: the key is unavailable, the
                # call goes on (its text is not reused: it could hold URLs with identifiers).
                log.error("prefetch %s: unexpected %s", key, type(error).__name__)
                unavailable[key] = f"fetching failed ({type(error).__name__})"
    finally:
        # Do not wait for stragglers: each is bounded by the deadline on its own.
        pool.shutdown(wait=False, cancel_futures=True)
    for key, why in unavailable.items():
        log.warning("prefetch %s: %s", key, why)
        fetched[key] = None
    return fetched, unavailable


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
