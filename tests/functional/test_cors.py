"""Browser clients (the CDS Hooks Sandbox) can call the service across origins."""

from __future__ import annotations

from tests.support.hook_requests import SELECT


def test_preflight_allows_post_with_authorization_and_content_type(client):
    response = client.options(
        SELECT,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_actual_responses_carry_the_cors_header(client):
    response = client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    # '*' must never be combined with credentials (browsers reject the pair).
    assert response.headers.get("Access-Control-Allow-Credentials") != "true"
