"""A real loopback HTTP FHIR server for tests, standard library only.

Usage::

    with FhirStub(token="secret") as stub:
        stub.add("Patient/p1", {"resourceType": "Patient", "id": "p1"})
        stub.add("Condition?patient=p1", stub.bundle([...]))
        stub.add("Observation?patient=p1", delay=5)        # answers after 5 s
        stub.add("MedicationRequest?patient=p1", drop=True)  # closes the connection, no answer
        stub.add("Procedure?patient=p1", raw=b"<html>", content_type="text/html")
        stub.add("Encounter/e1", {...}, trickle=0.2)       # body in 16-byte pieces, 0.2 s apart
        stub.add_paged("Encounter?patient=p1", resources, page_size=2)
        ... call stub.base_url ...
        assert stub.requests[0].headers["Authorization"] == "Bearer secret"

As a pytest fixture::

    @pytest.fixture
    def fhir_stub():
        with FhirStub() as stub:
            yield stub

Routes are matched on the path relative to ``base_path`` plus the query string, with query
parameters compared order-independently; ``any_query=True`` matches a path with any query.
Unregistered routes answer 404 with an OperationOutcome. When ``token`` is set, a request without
``Authorization: Bearer <token>`` gets 401. The server speaks HTTP/1.1 with keep-alive, so a
pooled client reuses connections as it would against a real server. ``stop()`` (or leaving the
``with`` block) ends pending delays at once, so a test never waits for a long canned delay.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FHIR_JSON = "application/fhir+json"
_TRICKLE_BYTES = 16


@dataclass
class Canned:
    """One canned answer: a JSON body or raw bytes, a status, a delay, or a dropped connection."""

    body: Any = None
    status: int = 200
    delay: float = 0.0
    drop: bool = False
    trickle: float = 0.0
    raw: bytes | None = None
    content_type: str = FHIR_JSON
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """A request the stub received, for assertions (headers keep their sent spelling)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    client_port: int = 0  # the same port on two requests means a reused (pooled) connection

    @property
    def params(self) -> list[tuple[str, str]]:
        """The query as (name, value) pairs, in the order sent."""
        return parse_qsl(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """A header's value, looked up case-insensitively."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def _route_key(path: str, query: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return path.strip("/"), tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def _outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


class FhirStub:
    """A FHIR server on 127.0.0.1 (free port) that answers registered routes from a thread."""

    def __init__(self, *, token: str | None = None, base_path: str = "/fhir") -> None:
        self.token = token
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.requests: list[RecordedRequest] = []
        self._routes: dict[tuple[str, tuple[tuple[str, str], ...]], Canned] = {}
        self._any_query: dict[str, Canned] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True  # a handler still sleeping never blocks shutdown
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server is bound to."""
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The FHIR base URL to give the code under test, e.g. http://127.0.0.1:5xxxx/fhir."""
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def start(self) -> FhirStub:
        """Start serving in a background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut pending delays short and close the listening socket."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FhirStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- routes --------------------------------------------------------------------------

    def add(
        self,
        route: str,
        body: Any = None,
        *,
        status: int = 200,
        delay: float = 0.0,
        drop: bool = False,
        trickle: float = 0.0,
        raw: bytes | str | None = None,
        content_type: str = FHIR_JSON,
        headers: Mapping[str, str] | None = None,
        any_query: bool = False,
    ) -> None:
        """Register the answer for "Type/id" or "Type?query" (relative to the base URL)."""
        canned = Canned(
            body=body,
            status=status,
            delay=delay,
            drop=drop,
            trickle=trickle,
            raw=raw.encode() if isinstance(raw, str) else raw,
            content_type=content_type,
            headers=dict(headers or {}),
        )
        path, _, query = route.partition("?")
        with self._lock:
            if any_query:
                self._any_query[path.strip("/")] = canned
            else:
                self._routes[_route_key(path, query)] = canned

    def add_paged(
        self, route: str, resources: Iterable[dict[str, Any]], *, page_size: int
    ) -> list[str]:
        """Serve resources as searchset pages linked by next links; return each page's route."""
        items = list(resources)
        pages = [items[i : i + page_size] for i in range(0, len(items), page_size)] or [[]]
        # Later pages live at the base URL with a paging query, as HAPI serves them.
        token = uuid.uuid4().hex
        routes = [route] + [f"?_getpages={token}&_page={n}" for n in range(2, len(pages) + 1)]
        for number, (page_route, page) in enumerate(zip(routes, pages, strict=True)):
            next_route = routes[number + 1] if number + 1 < len(routes) else None
            self.add(page_route, self.bundle(page, next_url=self.url(next_route)))
        return routes

    def url(self, route: str | None) -> str | None:
        """The absolute URL of a route on this stub (None stays None)."""
        if route is None:
            return None
        return f"{self.base_url}/{route}" if not route.startswith("?") else self.base_url + route

    @staticmethod
    def bundle(
        resources: Iterable[dict[str, Any]], *, next_url: str | None = None
    ) -> dict[str, Any]:
        """A searchset Bundle of resources, with a next link when next_url is given."""
        entries = [{"resource": resource, "search": {"mode": "match"}} for resource in resources]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        bundle["total"] = len(entries)
        if entries:
            bundle["entry"] = entries
        if next_url:
            bundle["link"] = [{"relation": "next", "url": next_url}]
        return bundle

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests whose path (relative to the base) equals path."""
        return [r for r in self.requests if r.path.strip("/") == path.strip("/")]

    # -- serving -------------------------------------------------------------------------

    def _lookup(self, path: str, query: str) -> Canned | None:
        with self._lock:
            return self._routes.get(_route_key(path, query)) or self._any_query.get(path.strip("/"))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stub._serve(self)

            def do_POST(self) -> None:
                stub._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean; requests are recorded instead

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path) :]
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    handler.command,
                    path.strip("/"),
                    parts.query,
                    dict(handler.headers),
                    handler.client_address[1],
                )
            )
        try:
            self._answer(handler, path, parts.query)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout) before the answer came; that is the point of delays.
            handler.close_connection = True

    def _answer(self, handler: BaseHTTPRequestHandler, path: str, query: str) -> None:
        if (
            self.token is not None
            and handler.headers.get("Authorization") != f"Bearer {self.token}"
        ):
            self._send(handler, Canned(_outcome("login", "missing or wrong bearer token"), 401))
            return
        canned = self._lookup(path, query)
        if canned is None:
            self._send(handler, Canned(_outcome("not-found", f"no route for {path}"), 404))
            return
        if canned.delay and self._stopping.wait(canned.delay):
            handler.close_connection = True
            return
        if canned.drop:
            handler.close_connection = True  # return without a byte: the client sees a reset
            return
        self._send(handler, canned)

    def _send(self, handler: BaseHTTPRequestHandler, canned: Canned) -> None:
        if canned.raw is not None:
            payload = canned.raw
        elif canned.body is None:
            payload = b""
        else:
            payload = json.dumps(canned.body).encode()
        handler.send_response(canned.status)
        handler.send_header("Content-Type", canned.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in canned.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if not canned.trickle:
            handler.wfile.write(payload)
            handler.wfile.flush()
            return
        # Headers at once, then the body in small pieces: a server that is alive but slow.
        handler.wfile.flush()
        for start in range(0, len(payload), _TRICKLE_BYTES):
            if self._stopping.wait(canned.trickle):
                handler.close_connection = True
                return
            handler.wfile.write(payload[start : start + _TRICKLE_BYTES])
            handler.wfile.flush()
