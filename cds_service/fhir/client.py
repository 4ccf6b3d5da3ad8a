"""A small FHIR R4 REST client: bounded reads and searches on one server, never leaking tokens."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from cds_service.config import Settings

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
USER_AGENT = "lumbar-imaging-cds/0.1"
# A searchset page larger than this is not something a prefetch template should produce; refusing
# it keeps one odd server from filling the worker's memory.
MAX_BODY_BYTES = 16 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# One retry of a GET that failed on the connection or with one of these statuses (a gateway or an
# overloaded server: the next attempt may well succeed). Every other status is an answer.
RETRY_STATUSES = frozenset({502, 503, 504})
# A retry is only started when at least this much of the time budget is left, and at least as
# much as the failed attempt took: a retry that cannot finish would only delay the answer.
MIN_RETRY_SECONDS = 0.1


class FhirError(Exception):
    """A call to the FHIR server failed; the message is safe to show (no token, no query).

    `retryable` marks failures worth one more attempt of the same GET: connection errors and
    502/503/504, never timeouts (they used up the time they were given).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        outcome: dict[str, Any] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.outcome = outcome
        self.retryable = retryable


class FhirUnavailable(FhirError):
    """The server could not be reached, timed out, ran out of time budget or answered 5xx/429."""


class FhirAuthError(FhirError):
    """The server refused the access token (401) or the token's scopes (403)."""


class FhirBadResponse(FhirError):
    """The server answered with something that is not the FHIR JSON we asked for."""


class FhirForeignLink(FhirBadResponse):
    """A Bundle's next link points outside the server; following it could hand the token away."""


class FhirRequestRejected(FhirError):
    """The server rejected the request itself (a 4xx other than 401/403/404/410)."""


def _make_session() -> requests.Session:
    session = requests.Session()
    # trust_env=False: no proxy variables and, above all, no ~/.netrc credentials that requests
    # would otherwise put in the Authorization header in place of the bearer token.
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# One session per process, so calls to the same FHIR server reuse TCP/TLS connections. requests
# sessions are shared across threads in practice; each gunicorn worker process gets its own.
_SESSION = _make_session()


def default_session() -> requests.Session:
    """The process-wide pooled session used when no session is injected."""
    return _SESSION


class FhirClient:
    """Reads and searches one FHIR server with a bearer token, per-call timeouts and a deadline.

    Every GET is idempotent, so one that fails on the connection or with 502/503/504 is tried
    once more when enough of the time budget is left (see `MIN_RETRY_SECONDS`). A client may be
    shared by threads: it keeps no state between calls.
    """

    def __init__(
        self,
        base_url: str,
        *,
        access_token: str | None,
        timeout: float,
        max_pages: int,
        session: requests.Session | None = None,
        deadline: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = access_token or None
        self.timeout = timeout
        self.max_pages = max(1, max_pages)
        self.session = session if session is not None else _SESSION
        # deadline is a time.monotonic() value: no call starts after it and none may outlast it.
        self.deadline = deadline
        self._origin = _origin(self.base_url)
        self._base_path = _resolved_segments(urlsplit(self.base_url).path) or ()

    def __repr__(self) -> str:
        # Spelled out so that a token never turns up in a traceback's locals or a debug log.
        return f"FhirClient({display_url(self.base_url)!r}, token={'yes' if self._token else 'no'})"

    def search(self, query: str) -> list[dict[str, Any]]:
        """Run a type-level search ("Condition?patient=1") and return the matching resources."""
        what = f"search {_resource_type(query)}"
        url = self._url(query)
        resources: list[dict[str, Any]] = []
        for page in range(1, self.max_pages + 1):
            status, body = self._get(url, what)
            if status in (404, 410):
                raise FhirBadResponse(f"FHIR server answered {status} to {what}", status=status)
            bundle = _expect(body, "Bundle", what)
            resources.extend(_bundle_resources(bundle))
            next_url = _next_link(bundle)
            if next_url is None:
                return resources
            url = urljoin(url, next_url)
            if not self._is_same_server(url):
                raise FhirForeignLink(
                    f"FHIR server's next link for {what} points outside the server; not followed"
                )
            if page == self.max_pages:
                # A configured cap, not an error: the decision works with what came back.
                log.warning("%s: stopped after %d pages (CDS_FHIR_MAX_PAGES)", what, page)
        return resources

    def read(self, path: str) -> dict[str, Any] | None:
        """Read one resource ("Patient/123"); None when the server says it does not exist."""
        resource_type = _resource_type(path)
        what = f"read {resource_type}"
        status, body = self._get(self._url(path), what)
        if status in (404, 410):
            return None
        return _expect(body, resource_type, what)

    # -- internals -------------------------------------------------------------------------

    def _url(self, relative: str) -> str:
        if "://" in relative or relative.startswith("//"):
            raise ValueError("FHIR queries must be relative to the server's base URL")
        return f"{self.base_url}/{relative.lstrip('/')}"

    def _is_same_server(self, url: str) -> bool:
        if _origin(url) != self._origin:
            return False
        # Compared as the server may read the path: percent-decoded ("%2e%2e" is "..", "%2f"
        # a slash), backslashes as slashes, dot segments resolved. Otherwise "r4/%2e%2e/admin"
        # passes as under "r4" and reaches "/admin" with the token.
        segments = _resolved_segments(urlsplit(url).path)
        return segments is not None and segments[: len(self._base_path)] == self._base_path

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON, "User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _call_timeout(self, what: str) -> float:
        if self.deadline is None:
            return self.timeout
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise FhirUnavailable(f"time budget for FHIR calls used up before {what}")
        return min(self.timeout, remaining)

    def _get(self, url: str, what: str) -> tuple[int, Any]:
        """GET url, retried once on a retryable failure; (status, JSON) or raise a FhirError."""
        started = time.monotonic()
        try:
            return self._attempt(url, what)
        except FhirError as exc:
            if not exc.retryable or not self._may_retry(time.monotonic() - started):
                raise
            log.info("%s: %s; retrying once", what, exc.message)
        try:
            return self._attempt(url, what)
        except FhirError as exc:
            exc.message = f"{exc.message} (after one retry)"
            exc.args = (exc.message,)
            raise

    def _may_retry(self, took: float) -> bool:
        if self.deadline is None:
            return True
        return self.deadline - time.monotonic() >= max(MIN_RETRY_SECONDS, took)

    def _attempt(self, url: str, what: str) -> tuple[int, Any]:
        """One GET of url: (status, parsed JSON or None for 404/410) or raise a FhirError."""
        timeout = self._call_timeout(what)
        started = time.monotonic()
        try:
            # Redirects are not followed: a redirect could carry the bearer token to another
            # host, and a FHIR server has no business redirecting a search.
            response = self.session.get(
                url,
                headers=self._headers(),
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout:
            raise FhirUnavailable(
                f"FHIR server did not answer {what} within {timeout:.1f} s"
            ) from None
        except requests.RequestException as exc:
            # The exception text is not reused: it could contain URLs with identifiers.
            raise FhirUnavailable(
                f"FHIR server could not be reached for {what} ({type(exc).__name__})",
                retryable=isinstance(exc, requests.ConnectionError),
            ) from None
        with response:
            raw = self._read_body(response, what, started, timeout)
        return self._interpret(response.status_code, raw, what)

    def _read_body(
        self, response: requests.Response, what: str, started: float, timeout: float
    ) -> bytes:
        # The read timeout covers each socket read, not the whole body, so a server trickling
        # bytes could hold the call for ever: each read may only wait for what is left of it.
        limit = started + timeout
        late = FhirUnavailable(f"FHIR server did not finish {what} within {timeout:.1f} s")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in _chunks(response, limit):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise FhirBadResponse(f"FHIR server's answer to {what} is too large")
        except _TimeLimit:
            raise late from None
        except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError):
            raise late from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise FhirUnavailable(
                f"FHIR server broke off its answer to {what} ({type(exc).__name__})",
                retryable=True,
            ) from None
        return b"".join(chunks)

    def _interpret(self, status: int, raw: bytes, what: str) -> tuple[int, Any]:
        body = _parse_json(raw)
        is_outcome = isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"
        outcome = body if is_outcome else None
        if 200 <= status < 300:
            if body is _NOT_JSON:
                raise FhirBadResponse(f"FHIR server's answer to {what} is not JSON", status=status)
            return status, body
        if status in (404, 410):
            return status, None
        detail = self._redact(_outcome_text(outcome))
        suffix = f": {detail}" if detail else ""
        if status in (401, 403):
            raise FhirAuthError(
                f"FHIR server refused access ({status}) to {what}{suffix}",
                status=status,
                outcome=outcome,
            )
        if status == 429 or status >= 500:
            raise FhirUnavailable(
                f"FHIR server failed ({status}) on {what}{suffix}",
                status=status,
                outcome=outcome,
                retryable=status in RETRY_STATUSES,
            )
        if 300 <= status < 400:
            raise FhirBadResponse(
                f"FHIR server redirected {what} ({status}); redirects are not followed",
                status=status,
            )
        raise FhirRequestRejected(
            f"FHIR server rejected {what} ({status}){suffix}", status=status, outcome=outcome
        )

    def _redact(self, text: str) -> str:
        # Belt and braces: a server echoing the Authorization header must not make us repeat it.
        if self._token and self._token in text:
            return text.replace(self._token, "[redacted]")
        return text


_NOT_JSON = object()


class _TimeLimit(Exception):
    """The body did not arrive within the call's time limit."""


def _chunks(response: requests.Response, limit: float) -> Iterator[bytes]:
    """The body as it arrives, each socket wait capped by the time left until limit."""
    raw = response.raw
    # read1 returns after one socket read, where read() and iter_content() wait for a full chunk.
    if not hasattr(raw, "read1"):  # urllib3 < 2.2: buffered chunks, checked less often
        for chunk in response.iter_content(_CHUNK_BYTES):
            yield chunk
            if time.monotonic() > limit:
                raise _TimeLimit
        return
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    while True:
        left = limit - time.monotonic()
        if left <= 0:
            raise _TimeLimit
        if sock is not None:
            # urllib3 sets the socket timeout again before the connection's next request.
            sock.settimeout(left)
        chunk = raw.read1(_CHUNK_BYTES, decode_content=True)
        if not chunk:
            return
        yield chunk


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _expect(body: Any, resource_type: str, what: str) -> dict[str, Any]:
    if not isinstance(body, dict) or "resourceType" not in body:
        raise FhirBadResponse(f"FHIR server's answer to {what} is not a FHIR resource")
    if body["resourceType"] != resource_type:
        raise FhirBadResponse(
            f"FHIR server answered {what} with {str(body['resourceType'])[:40]}, "
            f"expected {resource_type}",
            outcome=body if body["resourceType"] == "OperationOutcome" else None,
        )
    return body


def _bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    resources = []
    for entry in bundle.get("entry") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        search = entry.get("search")
        # Entries in "outcome" mode are the server's warnings about the search, not results.
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        resources.append(entry["resource"])
    return resources


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


def _outcome_text(outcome: dict[str, Any] | None) -> str:
    if not outcome:
        return ""
    texts = []
    for issue in outcome.get("issue") or ():
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if isinstance(text, str) and text:
                texts.append(text)
    return "; ".join(texts)[:200]


def _resource_type(query: str) -> str:
    return query.lstrip("/").split("?", 1)[0].split("/", 1)[0] or "(base)"


# -- server URLs: origin comparison and the allow-list ------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = -1  # an unparsable port matches nothing
    return scheme, (parts.hostname or "").lower(), port


def _path_segments(path: str) -> tuple[str, ...]:
    return tuple(segment for segment in path.split("/") if segment)


def _resolved_segments(path: str) -> tuple[str, ...] | None:
    """The path's segments after percent-decoding and dot-segment removal; None above the root."""
    resolved: list[str] = []
    for segment in unquote(path).replace("\\", "/").split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not resolved:
                return None
            resolved.pop()
        else:
            resolved.append(segment)
    return tuple(resolved)


def display_url(url: str) -> str:
    """The URL without user-info, query or fragment: safe to put in messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}{parts.path}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_allowed_server(url: str, settings: Settings) -> bool:
    """True when the service may call this fhirServer with the client's access token."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return False
    # User-info would make requests send Basic credentials; a query or fragment is no base URL;
    # dot segments could climb out of an allowed path prefix.
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return False
    segments = _path_segments(parts.path)
    if any(unquote(segment) in (".", "..") or "\\" in unquote(segment) for segment in segments):
        return False
    if not settings.is_development and scheme != "https":
        return False
    origin = _origin(url.strip())
    for entry in settings.fhir_allowlist:
        if _origin(entry) == origin:
            prefix = _path_segments(urlsplit(entry).path)
            if segments[: len(prefix)] == prefix:
                return True
    return settings.is_development and _is_loopback(host)
