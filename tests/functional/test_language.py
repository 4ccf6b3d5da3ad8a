"""The card language over HTTP, from each source, and Flemish wording for nl-BE patients."""

from __future__ import annotations

import copy

from cds_service.app import create_app
from tests.conftest import ContractClient
from tests.support.hook_requests import SELECT, sample_request

ENGLISH = "not indicated now"
DUTCH = "nu niet geïndiceerd"


def _request(*tags: str) -> dict:
    request = sample_request()
    patient = request["prefetch"]["patient"]
    if tags:
        patient["communication"] = [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": t}]}, "preferred": True}
            for t in tags
        ]
    else:
        patient.pop("communication", None)
    return request


def _card(client, request, header=None):
    headers = {"Accept-Language": header} if header else {}
    body = client.post(SELECT, json=copy.deepcopy(request), headers=headers).get_json()
    return body["cards"][0]


def test_accept_language_header_wins(client):
    card = _card(client, _request("nl-NL"), "en-GB,en;q=0.8")
    assert ENGLISH in card["summary"]
    assert card["overrideReasons"][0]["display"] == "Red flag present but not recorded"


def test_patient_communication_when_no_header(client):
    assert ENGLISH in _card(client, _request("en"))["summary"]
    assert DUTCH in _card(client, _request("nl-NL"))["summary"]


def test_default_language_when_nothing_names_one(client):
    assert DUTCH in _card(client, _request())["summary"]


def test_configured_default_is_used(settings):
    english = create_app(settings.with_overrides(default_language="en"))
    english.test_client_class = ContractClient
    card = _card(english.test_client(), _request())
    assert ENGLISH in card["summary"]


def test_unknown_language_falls_back_to_default(client):
    card = _card(client, _request("tr"), "fr-FR, de;q=0.5")
    assert DUTCH in card["summary"]


def test_flemish_patient_gets_flemish_words_and_page(client):
    card = _card(client, _request("nl-BE"))
    assert DUTCH in card["summary"]
    assert "kinesitherapeut" in card["detail"]
    assert "fysiotherapeut" not in card["detail"]
    link = card["links"][0]["url"]
    assert link.startswith("http://cds.test/patient-info?lang=nl-BE&")
    assert "kinesitherapeut" in client.get(link.removeprefix("http://cds.test")).get_data(
        as_text=True
    )


def test_card_links_and_suggestions_point_at_this_order(client):
    request = _request("en")
    card = _card(client, request)
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    cancel, replace = card["suggestions"]
    assert cancel["actions"][0]["resourceId"] == f"ServiceRequest/{draft['id']}"
    created = replace["actions"][1]["resource"]
    assert created["subject"] == draft["subject"]
    assert created["reasonCode"] == draft["reasonCode"]
    assert card["links"][0]["url"].startswith("http://cds.test/patient-info?lang=en&")
    assert "&age=" in card["links"][0]["url"]
