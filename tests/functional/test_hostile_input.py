"""Hostile input (issue 12): injection into reports and cards, identifiers kept out of the audit,
edge-case JSON and parameters that once gave 500s, and refusals an operator can read."""

from __future__ import annotations

import csv
import io

import pytest
from markdown_it import MarkdownIt

from cds_service.audit.reports.render import to_csv
from cds_service.cards.render import markdown_reference
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
    assert not kinds & {"link_open", "image", "html_inline", "html_block"}, kinds
    assert not any(t.type == "heading_open" and t.markup == "#" for t in tokens)
    rendered = MarkdownIt("commonmark").render(card["detail"])
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    # The clinician still reads what the EHR sent, as text.
    assert "[x](javascript:alert(1))" in rendered
    assert "&amp;lt;b&amp;gt;" in rendered


@pytest.mark.parametrize(
    "reference, kept",
    [
        ("Condition/c-lbp", True),
        ("urn:uuid:0b1c2d3e-aaaa-bbbb-cccc-000000000001", True),
        ("ServiceRequest/draft-mri-1#reason", True),
        ("Condition/x](javascript:alert(1))", False),
        ("http://evil.example/Condition/1", False),
        ("<b>Condition/1</b>", False),
    ],
)
def test_evidence_references_are_escaped_unless_plainly_references(reference, kept):
    shown = markdown_reference(reference)
    assert (shown == reference) is kept
    tokens = _inline_tokens(f"- checked ({shown})")
    assert not {t.type for t in tokens} & {"link_open", "image", "html_inline", "html_block"}
