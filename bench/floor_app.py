"""The floor for the HTTP benchmark: the least a CDS Hooks endpoint can do under the same server."""

from __future__ import annotations

import uuid

from flask import Flask, Response, json, request

CARD = {
    "summary": "Floor: fixed card",
    "indicator": "info",
    "source": {"label": "floor"},
}


def create_app() -> Flask:
    """A Flask app with one route that parses the JSON body and returns a fixed card."""
    app = Flask(__name__)

    @app.post("/cds-services/<service_id>")
    def call(service_id: str) -> Response:
        body = request.get_json(force=True)
        card = {**CARD, "uuid": str(uuid.uuid4()), "detail": str(len(body.get("prefetch", {})))}
        return Response(json.dumps({"cards": [card]}), mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}', mimetype="application/json")

    return app
