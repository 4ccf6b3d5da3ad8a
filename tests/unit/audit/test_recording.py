"""Audit rows from an evaluation, and suggestion kinds from card suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.audit.pseudonyms import Pseudonymiser
from cds_service.audit.recording import evaluation_rows, suggestion_kind
from cds_service.cards.render import load_catalogue
from cds_service.config import Settings
from cds_service.evaluation import evaluate
from cds_service.rules.knowledge import load_knowledge
from tests.support.hook_requests import sample_request, service_request, with_orders

SETTINGS = Settings(env="test")
PSEUDONYM = Pseudonymiser("t" * 40)


@pytest.mark.parametrize(
    "actions, kind",
    [
        ([{"type": "delete"}], "cancel"),
        ([{"type": "delete"}, {"type": "create"}], "replace"),
        ([{"type": "create"}], "other"),
        ([], "other"),
    ],
)
def test_suggestion_kind_follows_the_actions(actions, kind):
    assert suggestion_kind({"uuid": "u", "actions": actions}) == kind


def test_an_explicit_suggestion_kind_wins():
    suggestion = {
        "actions": [{"type": "create"}],
        "extension": {"org.lumbar-imaging-cds.suggestion-kind": "replace"},
    }
    assert suggestion_kind(suggestion) == "replace"


def _rows(request):
    knowledge = load_knowledge(Path(SETTINGS.mappings_dir))
    result = evaluate(
        request,
        settings=SETTINGS,
        knowledge=knowledge,
        catalogue=load_catalogue(Path(SETTINGS.cards_dir)),
        accept_language="en",
    )
    rows = evaluation_rows(
        request,
        result,
        service_id="lumbar-imaging-order-select",
        tenant="t1",
        pseudonym=PSEUDONYM,
        knowledge=knowledge,
        latency_ms=12,
    )
    return result, rows


def test_one_row_per_order_with_codes_and_pseudonyms_only():
    request = sample_request()
    result, rows = _rows(request)
    assert len(rows) == 1
    values = rows[0].values
    card = result.orders[0].card
    assert values["patient"] == PSEUDONYM("patient", "sample-patient-1")
    assert values["clinician"] == PSEUDONYM("clinician", "Practitioner/gp-1")
    assert values["order_ref"] == PSEUDONYM("order", "ServiceRequest/draft-mri-1")
    assert (values["order_system"], values["order_code"]) == (
        "http://www.ama-assn.org/go/cpt",
        "72148",
    )
    assert (values["modality"], values["decision"]) == ("mri", "not-indicated")
    assert values["card_uuid"] == card["uuid"]
    assert values["hook_instance"] == request["hookInstance"]
    assert values["tenant"] == "t1" and values["latency_ms"] == 12
    assert values["policy_version"] == result.orders[0].decision.policy_version
    kinds = dict(rows[0].suggestions)
    assert kinds == {s["uuid"]: suggestion_kind(s) for s in card.get("suggestions", [])}


def test_text_only_orders_and_odd_hook_instances_store_no_client_text():
    order = service_request("t1", text="MRI lumbale wervelkolom")
    request = with_orders(sample_request(), [order])
    request["hookInstance"] = "Mrs Jansen's call"
    _, rows = _rows(request)
    values = rows[0].values
    assert values["order_system"] is None and values["order_code"] is None
    assert values["hook_instance"] == PSEUDONYM("hook-instance", "Mrs Jansen's call")


def test_two_orders_make_two_rows():
    orders = [service_request("a", cpt="72148"), service_request("b", cpt="72100")]
    request = with_orders(sample_request(), orders, hook="order-sign")
    _, rows = _rows(request)
    assert [r.values["modality"] for r in rows] == ["mri", "xray"]
    assert len({r.values["order_ref"] for r in rows}) == 2
