"""The card gallery (issue 13): every card kind in both languages, in development only, escaped,
self-contained, and drawn in headless Chromium with a screenshot per card kind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from PIL import Image

from cds_service.cards.gallery import INDICATOR_COLOURS, SAMPLES, gallery_cards, render_gallery
from cds_service.cli import main
from cds_service.config import Settings
from cds_service.rules.model import Outcome
from cds_service.shipped import MAPPINGS_DIR
from tests.support.card_screenshots import HEIGHT, WIDTH, find_browser, shoot_gallery
from tests.support.cards import catalogue

ROOT = Path(__file__).resolve().parents[2]


def _knowledge():
    from cds_service.rules.knowledge import load_knowledge

    return load_knowledge(MAPPINGS_DIR)


def test_every_sample_gives_its_card_kind_and_every_kind_is_shown():
    entries = gallery_cards(catalogue(), _knowledge(), "https://cds.example.org")
    assert len(entries) == 2 * len(SAMPLES)
    for entry in entries:
        assert entry["decision"] == entry["expected"], entry["name"]
    assert {e["decision"] for e in entries} == {o.value for o in Outcome}
    assert {e["language"] for e in entries} == {"nl", "en"}


def test_dev_page_shows_every_card_in_both_languages(settings):
    from cds_service.app import create_app

    # a plain client: the development page is no part of the service's API (openapi.yaml)
    response = create_app(settings).test_client().get("/dev/cards")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    for sample in SAMPLES:
        for language in ("nl", "en"):
            assert f'data-kind="{sample.name}" data-lang="{language}"' in html
    # as a client shows it: rendered Markdown, indicator colours, buttons, links, override menu
    assert "<h3>Alle controles</h3>" in html and "<h3>All checks</h3>" in html
    assert "<blockquote>" in html and "<strong>" in html
    for colour in INDICATOR_COLOURS.values():
        assert colour in html
    assert "<button" in html and 'class="dismiss"' in html and "Anders</li>" in html
    assert 'href="http://cds.test/patient-info?lang=nl&amp;topic=no-scan-needed&amp;age=46"' in html
    # nothing loaded from elsewhere: no scripts, stylesheets, images or fonts from a URL
    for marker in ("<script", "<link", "<img", "src=", "url(", "@import"):
        assert marker not in html, marker


def test_no_gallery_in_production():
    from cds_service.app import create_app

    production = Settings(
        env="production", public_base_url="https://cds.example.org", auth_enabled=False
    )
    response = create_app(production).test_client().get("/dev/cards")
    assert response.status_code == 404


def test_everything_a_card_says_is_escaped():
    entries = gallery_cards(catalogue(), _knowledge(), "https://cds.example.org")[:2]
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    card = entries[0]["card"]
    card["summary"] = hostile
    card["detail"] = f"**bold** {hostile}\n\n<div onclick=x>raw html block</div>"
    card["suggestions"][0]["label"] = hostile
    card["overrideReasons"][0]["display"] = hostile
    card["links"][0]["url"] = 'javascript:alert(3)" onmouseover="x'
    html = render_gallery(entries)
    assert "<script" not in html and "<img" not in html and "<div onclick" not in html
    assert "&lt;script&gt;" in html and "<strong>bold</strong>" in html
    assert 'onmouseover="x' not in html and 'href="javascript' not in html


def test_cli_writes_the_gallery(tmp_path, capsys):
    out = tmp_path / "cards.html"
    assert main(["cards", "--html", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.count('class="card"') == 2 * len(SAMPLES)
    assert f"{2 * len(SAMPLES)} cards written" in capsys.readouterr().out


def _colours(image: Image.Image) -> set[tuple[int, int, int]]:
    return {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 20) or ()}


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_gallery_renders_in_headless_chromium(tmp_path):
    browser = find_browser()
    if browser is None:
        if os.environ.get("CDS_TEST_BROWSER") == "1":
            pytest.fail("CDS_TEST_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("Chromium not installed; set CDS_TEST_BROWSER=1 to make this a failure")
    # one sample of each card kind
    first = {}
    for sample in SAMPLES:
        first.setdefault(sample.kind, sample)
    shots = shoot_gallery(browser, tmp_path, tuple(s.name for s in first.values()))
    assert set(shots) == {s.name for s in first.values()}
    indicator = {s.name: catalogue().templates[s.kind.value].indicator for s in first.values()}
    for name, shot in shots.items():
        with Image.open(shot) as image:
            assert image.size == (WIDTH, HEIGHT), name
            colours = _colours(image)
            # laid out text and boxes, not a blank or unstyled page
            assert len(colours) > 200, (name, len(colours))
            # the card's indicator colour is drawn (its left border and badge)
            assert _hex(INDICATOR_COLOURS[indicator[name]]) in colours, name
            # the two cards fill the page's upper part: its top half is far from uniform
            top = image.convert("L").crop((0, 0, WIDTH, HEIGHT // 2))
            assert sum(1 for count in top.histogram() if count) > 50, name
    assert re.search(r'class="card"', (tmp_path / "gallery.html").read_text(encoding="utf-8"))
