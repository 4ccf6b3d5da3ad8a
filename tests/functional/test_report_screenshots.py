"""The HTML report, the mirror report and the patient page rendered in headless Chromium, in
Dutch and English; each screenshot checked against a blank page's.

The same screenshots, to look at: `python -m tests.support.report_screenshots OUT_DIR`.
"""

from __future__ import annotations

import os
import struct

import pytest

from tests.support.card_screenshots import find_browser
from tests.support.report_screenshots import HEIGHT, LANGUAGES, WIDTH, shoot


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    browser = find_browser()
    if browser is None:
        if os.environ.get("CDS_TEST_BROWSER") == "1":
            pytest.fail("CDS_TEST_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("Chromium not installed; set CDS_TEST_BROWSER=1 to make this a failure")
    return shoot(browser, tmp_path_factory.mktemp("report-screenshots"))


@pytest.mark.parametrize("page", ["report", "mirror", "patient"])
def test_page_renders_non_blank_in_both_languages(shots, page):
    blank = shots["blank"].read_bytes()
    assert _png_size(blank) == (WIDTH, HEIGHT)
    rendered = {}
    for language in LANGUAGES:
        data = shots[f"{page}-{language}"].read_bytes()
        assert _png_size(data) == (WIDTH, HEIGHT)
        # A blank page of this size compresses to a few kB; tables, charts and text to far more.
        assert len(data) > max(40_000, 10 * len(blank)), (page, language, len(data), len(blank))
        rendered[language] = data
    assert rendered["nl"] != rendered["en"]  # the words differ, so the pictures do
