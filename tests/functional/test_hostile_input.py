"""Hostile input (issue 12): injection into reports and cards, identifiers kept out of the audit,
edge-case JSON and parameters that once gave 500s, and refusals an operator can read."""

from __future__ import annotations

import csv
import io

import pytest
from markdown_it import MarkdownIt

from cds_service.audit.reports.render import to_csv
from tests.support.hook_requests import SELECT, sample_request

# -- injection -----------------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_csv_report_cells_that_spreadsheets_would_run_are_neutralised():
    report = {
        "notIndicated": {
            "overrideReasons": [
                {"system": formula, "code": f"c{index}", "count": 1}
                for index, formula in enumerate(FORMULAS)
            ]
        },
        "groups": [{"key": "=1+2", "netAvoided": -3}],
    }
    rows = list(csv.reader(io.StringIO(to_csv(report), newline="")))
    cells = [cell for row in rows for cell in row]
    for formula in FORMULAS:
        assert formula not in cells
        assert "'" + formula in cells
    assert "'=1+2" in cells
    # Numbers the report computed are numbers, not text: a negative count stays -3.
    assert ["groups[=1+2].netAvoided", "-3"] in rows


HOSTILE_TEXT = (
    "MRI [x](javascript:alert(1)) ![a](http://evil/x.png) "
    "<img src=x onerror=alert(1)> <script>alert(2)</script> &lt;b&gt;\n# heading"
)


def _inline_tokens(markdown: str) -> list:
    parser = MarkdownIt("commonmark")  # html on: raw HTML would come out as html tokens
    tokens = []
    for block in parser.parse(markdown):
        tokens.append(block)
        tokens.extend(block.children or ())
    return tokens


def test_ehr_text_in_card_markdown_comes_out_as_literal_text(client):
    request = sample_request()
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["code"]["text"] = HOSTILE_TEXT
    response = client.post(SELECT, json=request, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    card = response.get_json()["cards"][0]
    tokens = _inline_tokens(card["detail"])
    kinds = {token.type for token in tokens}
    assert not kinds & {"image", "html_inline", "html_block"}, kinds
    # the one link is the service's own patient page, the same as the card's link
    hrefs = [t.attrGet("href") for t in tokens if t.type == "link_open"]
    assert hrefs == [card["links"][0]["url"]]
    assert not any(t.type == "heading_open" and t.markup == "#" for t in tokens)
    rendered = MarkdownIt("commonmark").render(card["detail"])
    assert "<script" not in rendered and "<img" not in rendered
    # The card names the order by the service's own label: the EHR's text is not repeated.
    assert "javascript" not in card["detail"] + card["summary"]
    assert card["summary"].startswith("Lumbar MRI")


# -- privacy -------------------------------------------------------------------------------

NAME, BSN = "Jantje Jansen", "123456782"


def _all_stored_text(url: str) -> str:
    from cds_service.audit.models import metadata
    from tests.functional.test_audit import table_rows

    return "\n".join(
        str(value)
        for table in metadata.sorted_tables
        for row in table_rows(url, table)
        for value in row.values()
    )


def _report_texts(url: str, tmp_path) -> list[str]:
    from datetime import date

    from cds_service.cli import main

    today = date.today().isoformat()
    texts = []
    for fmt in ("json", "csv", "html"):
        out = tmp_path / f"report.{fmt}"
        arguments = ["report", "--from", today, "--to", today, "--format", fmt]
        assert main([*arguments, "--out", str(out), "--database-url", url]) == 0
        texts.append(out.read_text(encoding="utf-8"))
    return texts


def _override(client, system: str, code: str) -> dict:
    card = client.post(SELECT, json=sample_request()).get_json()["cards"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": system, "code": code}},
        "outcomeTimestamp": "2026-01-05T10:00:00Z",
    }
    response = client.post(f"{SELECT}/feedback", json={"feedback": [item]})
    assert response.status_code == 200, response.get_json()
    return card


@pytest.mark.parametrize("system", [f"{NAME} {BSN}", f"urn:oid:2.16.840.1.113883.2.4.6.3|{BSN}"])
def test_an_override_system_off_the_allow_list_never_reaches_store_or_report(
    audit_client, audit_url, tmp_path, system
):
    from cds_service.audit.models import evaluation
    from tests.functional.test_audit import table_rows

    _override(audit_client, system, "expert-contradicts")
    (row,) = table_rows(audit_url, evaluation)
    assert row["response"] == "overridden"
    assert row["override_system"] and row["override_system"] != system
    for text in [_all_stored_text(audit_url), *_report_texts(audit_url, tmp_path)]:
        for needle in (BSN, "Jansen", "Jantje"):
            assert needle not in text


def test_an_override_system_on_the_allow_list_is_kept_but_a_code_with_a_newline_is_not(
    audit_client, audit_url
):
    from cds_service.audit.models import evaluation
    from tests.functional.test_audit import table_rows

    system = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
    _override(audit_client, system, "expert-contradicts\n")
    (row,) = table_rows(audit_url, evaluation)
    assert (row["override_system"], row["override_code"]) == (system, "unrecognised-code")


@pytest.mark.parametrize("instance", [BSN, "jansen-j", "hospital-a.case-7"])
def test_an_identifier_like_hook_instance_is_stored_as_its_pseudonym(
    audit_client, audit_url, instance
):
    from cds_service.audit.models import evaluation
    from cds_service.audit.pseudonyms import DEVELOPMENT_KEY, Pseudonymiser
    from tests.functional.test_audit import table_rows

    request = sample_request()
    request["hookInstance"] = instance
    assert audit_client.post(SELECT, json=request).status_code == 200
    (row,) = table_rows(audit_url, evaluation)
    assert row["hook_instance"] == Pseudonymiser(DEVELOPMENT_KEY)("hook-instance", instance)


def test_a_uuid_hook_instance_is_kept_as_it_is(audit_client, audit_url):
    from cds_service.audit.models import evaluation
    from tests.functional.test_audit import table_rows

    request = sample_request()
    assert audit_client.post(SELECT, json=request).status_code == 200
    (row,) = table_rows(audit_url, evaluation)
    assert row["hook_instance"] == request["hookInstance"]


@pytest.mark.parametrize(
    "mutate, path",
    [
        (
            lambda r: r["context"]["draftOrders"]["entry"][0]["resource"].__setitem__(
                "id", "draft-mri-1\n"
            ),
            "context.draftOrders.entry[0].resource.id",
        ),
        (
            lambda r: r["context"].__setitem__("selections", ["ServiceRequest/draft-mri-1\n"]),
            "context.selections[0]",
        ),
        (lambda r: r.__setitem__("fhirServer", "https://ehr.test/fhir\n"), "fhirServer"),
    ],
)
def test_a_trailing_newline_fails_the_code_checks(client, mutate, path):
    request = sample_request()
    mutate(request)
    response = client.post(SELECT, json=request)
    assert response.status_code == 400
    assert path in [p for i in response.get_json()["issue"] for p in i.get("expression", [])]


# -- no 500s -------------------------------------------------------------------------------

FEEDBACK = f"{SELECT}/feedback"
DEEP = "[" * 1000 + "]" * 1000
HUGE = "9" * 4301


def _with(raw_value: str, *, feedback: bool = False) -> bytes:
    """A request body with `raw_value` (JSON text) placed in a field the schema leaves open."""
    if feedback:
        return (
            '{"feedback": [{"card": "c", "outcome": "overridden", '
            '"outcomeTimestamp": "2026-01-05T10:00:00Z", "extension": ' + raw_value + "}]}"
        ).encode()
    import json

    request = sample_request()
    request["extension"] = {"x": "PLACEHOLDER"}
    return json.dumps(request).replace('"PLACEHOLDER"', raw_value).encode()


@pytest.mark.parametrize("feedback", [False, True], ids=["hook", "feedback"])
@pytest.mark.parametrize(
    "raw_value, words",
    [
        (DEEP, "nested"),
        ('{"a": ' * 1000 + "1" + "}" * 1000, "nested"),
        (HUGE, "digits"),
        ("-" + HUGE, "digits"),
        ('"\\ud800"', "surrogate"),
        ('"x\\udfffy"', "surrogate"),
        ('["ok \\ud83d\\ude00", "\\ud83d"]', "surrogate"),
    ],
    ids=[
        "deep-arrays",
        "deep-objects",
        "huge-int",
        "huge-negative",
        "lone-high",
        "lone-low",
        "half",
    ],
)
def test_hostile_json_is_a_400_operation_outcome(client, feedback, raw_value, words):
    path = FEEDBACK if feedback else SELECT
    response = client.post(
        path, data=_with(raw_value, feedback=feedback), content_type="application/json"
    )
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"]


def test_a_lone_surrogate_in_echoed_text_is_a_400_not_a_500(client):
    import json

    request = sample_request()
    request["context"]["draftOrders"]["entry"][0]["resource"]["code"]["text"] = "MRI PLACEHOLDER"
    body = json.dumps(request).replace("PLACEHOLDER", "\\ud800").encode()
    response = client.post(SELECT, data=body, content_type="application/json")
    assert response.status_code == 400
    assert "surrogate" in response.get_json()["issue"][0]["diagnostics"]


def test_a_surrogate_pair_is_ordinary_text(client):
    body = _with('"pain \\ud83d\\ude00 score"')
    assert client.post(SELECT, data=body, content_type="application/json").status_code == 200


REPORT_TOKEN = "report-token-0123456789"


@pytest.fixture
def report_client(audit_settings):
    from cds_service.app import create_app
    from tests.conftest import ContractClient

    app = create_app(audit_settings.with_overrides(report_token=REPORT_TOKEN))
    app.test_client_class = ContractClient
    yield app.test_client()
    app.extensions["cds_audit"].store.engine.dispose()


@pytest.mark.parametrize(
    "query, where",
    [
        ("from=2026-01-01&to=9999-12-31", "to"),
        ("from=9999-12-31&to=9999-12-31", "to"),
    ],
)
def test_report_dates_at_the_calendars_edge_are_400(report_client, query, where):
    auth = {"Authorization": f"Bearer {REPORT_TOKEN}"}
    response = report_client.get(f"/reports/avoided-scans?{query}", headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["issue"][0]["expression"] == [where]


@pytest.mark.parametrize("token", ["rapport-tökén-0123456789", "報告トークン", "\udcff"])
def test_a_non_ascii_report_token_is_401(report_client, token):
    headers = {"Authorization": "Bearer " + token}
    try:
        headers["Authorization"].encode("latin-1")
    except UnicodeEncodeError:
        # What a client sends is bytes; Werkzeug reads a header's bytes as latin-1.
        headers["Authorization"] = (
            headers["Authorization"].encode("utf-8", "surrogateescape").decode("latin-1")
        )
    response = report_client.get(
        "/reports/avoided-scans?from=2026-01-01&to=2026-01-31", headers=headers
    )
    assert response.status_code == 401
    assert response.get_json()["resourceType"] == "OperationOutcome"
