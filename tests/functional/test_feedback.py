"""POST /cds-services/{id}/feedback: linking, batches, idempotency, unknown cards, validation."""

from __future__ import annotations

from sqlalchemy import select

from cds_service.audit.models import evaluation, feedback
from cds_service.audit.store import make_engine
from tests.functional.test_audit import table_rows
from tests.support.hook_requests import SELECT, SIGN, sample_request

FEEDBACK = f"{SELECT}/feedback"
T1 = "2026-01-05T10:00:00Z"


def _card(client) -> dict:
    response = client.post(SELECT, json=sample_request(), headers={"Accept-Language": "en"})
    return response.get_json()["cards"][0]


def _suggestion(card: dict, kind: str) -> str:
    for item in card["suggestions"]:
        types = sorted(a["type"] for a in item["actions"])
        if (kind == "cancel" and types == ["delete"]) or (
            kind == "replace" and types == ["create", "delete"]
        ):
            return item["uuid"]
    raise AssertionError(f"no {kind} suggestion on the card")


def accepted(card: dict, kind: str, when: str = T1) -> dict:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": _suggestion(card, kind)}],
        "outcomeTimestamp": when,
    }


def overridden(card: dict, when: str = T1, comment: str = "because") -> dict:
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": card["overrideReasons"][1], "userComment": comment},
        "outcomeTimestamp": when,
    }


def _by_card(url: str) -> dict[str, dict]:
    return {r["card_uuid"]: r for r in table_rows(url, evaluation)}


def test_batch_links_each_item_to_its_evaluation(audit_client, audit_url):
    cards = [_card(audit_client) for _ in range(3)]
    batch = [accepted(cards[0], "cancel"), accepted(cards[1], "replace"), overridden(cards[2])]
    response = audit_client.post(FEEDBACK, json={"feedback": batch})
    assert response.status_code == 200
    assert response.get_json() == {"received": 3, "stored": 3, "duplicates": 0}

    rows = _by_card(audit_url)
    assert [rows[c["uuid"]]["response"] for c in cards] == ["cancelled", "replaced", "overridden"]
    reason = cards[2]["overrideReasons"][1]
    assert (rows[cards[2]["uuid"]]["override_system"], rows[cards[2]["uuid"]]["override_code"]) == (
        reason["system"],
        reason["code"],
    )
    stored = {f["card_uuid"]: f for f in table_rows(audit_url, feedback)}
    for card in cards:
        assert stored[card["uuid"]]["evaluation_id"] == rows[card["uuid"]]["id"]


def test_repeats_are_recognised_and_not_stored_twice(audit_client, audit_url):
    card = _card(audit_client)
    item = accepted(card, "cancel")
    first = audit_client.post(FEEDBACK, json={"feedback": [item, item]})
    again = audit_client.post(FEEDBACK, json={"feedback": [item]})
    assert first.get_json() == {"received": 2, "stored": 1, "duplicates": 1}
    assert again.get_json() == {"received": 1, "stored": 0, "duplicates": 1}
    assert len(table_rows(audit_url, feedback)) == 1


def test_the_latest_outcome_wins_whatever_the_arrival_order(audit_client, audit_url):
    card = _card(audit_client)
    later = accepted(card, "replace", when="2026-01-05T11:00:00Z")
    earlier = overridden(card, when="2026-01-05T10:00:00+00:00")
    audit_client.post(FEEDBACK, json={"feedback": [later]})
    audit_client.post(FEEDBACK, json={"feedback": [earlier]})
    row = _by_card(audit_url)[card["uuid"]]
    assert row["response"] == "replaced" and row["override_code"] is None
    assert len(table_rows(audit_url, feedback)) == 2


def test_unknown_cards_reject_the_whole_batch_naming_them(audit_client, audit_url):
    card = _card(audit_client)
    batch = [
        accepted(card, "cancel"),
        {"card": "no-such-card", "outcome": "overridden", "outcomeTimestamp": T1},
        {"card": "another-stranger", "outcome": "overridden", "outcomeTimestamp": T1},
    ]
    response = audit_client.post(FEEDBACK, json={"feedback": batch})
    assert response.status_code == 422
    issues = response.get_json()["issue"]
    assert [i["expression"] for i in issues] == [["feedback[1].card"], ["feedback[2].card"]]
    assert "no-such-card" in issues[0]["diagnostics"]
    assert table_rows(audit_url, feedback) == []
    assert _by_card(audit_url)[card["uuid"]]["response"] is None


def test_unknown_suggestion_and_card_of_another_service_are_unknown(audit_client):
    card = _card(audit_client)
    bad = accepted(card, "cancel")
    bad["acceptedSuggestions"] = [{"id": "not-offered"}]
    response = audit_client.post(FEEDBACK, json={"feedback": [bad]})
    assert response.status_code == 422
    assert response.get_json()["issue"][0]["expression"] == [
        "feedback[0].acceptedSuggestions[0].id"
    ]
    elsewhere = audit_client.post(f"{SIGN}/feedback", json={"feedback": [overridden(card)]})
    assert elsewhere.status_code == 422


def test_invalid_feedback_is_400_naming_the_path(audit_client):
    card = _card(audit_client)
    no_suggestions = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": T1}
    cases = {
        "feedback[0].acceptedSuggestions": [no_suggestions],
        "feedback[0].outcomeTimestamp": [{"card": card["uuid"], "outcome": "overridden"}],
        "feedback[0].outcome": [
            {"card": card["uuid"], "outcome": "ignored", "outcomeTimestamp": T1}
        ],
        "feedback": [],
    }
    for path, items in cases.items():
        response = audit_client.post(FEEDBACK, json={"feedback": items})
        assert response.status_code == 400, path
        assert path in response.get_json()["issue"][0]["expression"], path
    naive = overridden(card, when="2026-01-05T10:00:00")
    response = audit_client.post(FEEDBACK, json={"feedback": [naive]})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["feedback[0].outcomeTimestamp"]
    assert audit_client.post(FEEDBACK, data="{", content_type="application/json").status_code == 400


def test_unknown_service_is_404(audit_client):
    response = audit_client.post("/cds-services/nope/feedback", json={"feedback": []})
    assert response.status_code == 404


def test_override_without_reason_is_kept_as_overridden(audit_client, audit_url):
    card = _card(audit_client)
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": T1}
    assert audit_client.post(FEEDBACK, json={"feedback": [item]}).status_code == 200
    row = _by_card(audit_url)[card["uuid"]]
    assert (row["response"], row["override_code"]) == ("overridden", None)
    engine = make_engine(audit_url)
    with engine.connect() as connection:
        stored = connection.execute(select(feedback.c.outcome, feedback.c.response)).one()
    engine.dispose()
    assert tuple(stored) == ("overridden", "overridden")
