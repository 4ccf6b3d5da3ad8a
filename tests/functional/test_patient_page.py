"""GET /patient-info over HTTP, and one real render in headless Chromium."""

from __future__ import annotations

import os
import re
import struct

import pytest

from tests.content.test_cards_wording import avoid_hits, html_text
from tests.support.card_screenshots import find_browser, screenshot
from tests.support.cards import WORDING, expected_decade, wording_table

WIDTH, HEIGHT = 1200, 1600


@pytest.mark.parametrize(
    ("lang", "figures"), [("nl", ("bij 80 van hen", "bij 60 van hen")), ("en", ("in 80 of them",))]
)
def test_patient_page_for_both_languages(client, lang, figures):
    response = client.get(f"/patient-info?lang={lang}&age=57&topic=no-scan-needed")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    html = response.get_data(as_text=True)
    assert f'<html lang="{lang}">' in html
    for figure in figures:
        assert figure in html
    assert avoid_hits(html_text(html), lang) == []
    # self-contained and printable: no external resources, a print stylesheet; the one
    # address on the page is a plain link to the national patient information
    assert "@media print" in html
    site = "https://www.thuisarts.nl/" if lang == "nl" else "https://www.nhs.uk/"
    links = re.findall(r'<a href="([^"]+)">', html)
    assert len(links) == 1 and links[0].startswith(site)
    loaded = html.replace(f'<a href="{links[0]}">', "")
    for marker in ("<link", "<script", "src=", "http://", "https://", "url("):
        assert marker not in loaded, marker
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_age_figure_matches_wording_table_over_http(client):
    # shared/ sits beside the checkout in development and CI: a missing table is a failure.
    assert WORDING.is_file(), f"{WORDING} not found (set CDS_WORDING_MD)"
    table = wording_table()
    for age in (19, 64, 95):
        share = table["disc degeneration"][expected_decade(age)]
        html = client.get(f"/patient-info?lang=en&age={age}").get_data(as_text=True)
        assert f"ageing discs in {share} of them" in html


@pytest.mark.parametrize(("lang", "age"), [("nl", 46), ("en", 72), ("nl", 19), ("en", 95)])
def test_icon_array_draws_the_age_figure_with_the_same_words(client, lang, age):
    share = wording_table()["disc degeneration"][expected_decade(age)]
    html = client.get(f"/patient-info?lang={lang}&age={age}").get_data(as_text=True)
    assert html.count('class="person on"') == share
    assert html.count('class="person"') == 100 - share
    title = re.search(r'<title id="icons-label">(.*?)</title>', html).group(1)
    caption = re.search(r"<figcaption>(.*?)</figcaption>", html).group(1)
    assert title == caption and title.startswith(f"{share} ")
    assert 'role="img" aria-labelledby="icons-label"' in html


def test_no_icon_array_without_an_age(client):
    html = client.get("/patient-info?lang=en").get_data(as_text=True)
    assert "<svg" not in html and "<figure>" not in html


def test_defaults_and_flemish_and_scan_topic(client):
    html = client.get("/patient-info").get_data(as_text=True)
    assert '<html lang="nl">' in html and "Neem 100 mensen" not in html  # no age: no figure
    flemish = client.get("/patient-info?lang=nl-BE&age=40").get_data(as_text=True)
    assert '<html lang="nl-BE">' in flemish and "kinesitherapeut" in flemish
    assert "fysiotherapeut" not in flemish
    scan = client.get("/patient-info?lang=en&age=30&topic=scan-planned").get_data(as_text=True)
    assert "what to expect from your scan" in scan


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("lang=fr", "lang"),
        ("age=abc", "age"),
        ("age=-4", "age"),
        ("age=131", "age"),
        ("topic=surgery", "topic"),
        ("lang=en&name=Jansen", "name"),
        ("lang=en&patient=123", "patient"),
    ],
)
def test_bad_parameters_are_400_operation_outcomes(client, query, expression):
    response = client.get(f"/patient-info?{query}")
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [expression]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_patient_page_renders_in_headless_chromium(client, tmp_path):
    browser = find_browser()
    if browser is None:
        if os.environ.get("CDS_TEST_BROWSER") == "1":
            pytest.fail("CDS_TEST_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("Chromium not installed; set CDS_TEST_BROWSER=1 to make this a failure")
    html = client.get("/patient-info?lang=nl&age=46").get_data()
    page = tmp_path / "patient-info.html"
    page.write_bytes(html)
    shot = tmp_path / "patient-info.png"
    screenshot(browser, page, shot, WIDTH, HEIGHT)
    data = shot.read_bytes()
    assert _png_size(data) == (WIDTH, HEIGHT)
    # A blank or unstyled page compresses to a few kB; the laid-out page is far larger.
    assert 40_000 < len(data) < 3_000_000, len(data)
