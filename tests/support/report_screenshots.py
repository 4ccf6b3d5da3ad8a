"""Screenshots of the HTML report, the mirror report and the patient page in headless Chromium.

`python -m tests.support.report_screenshots [OUT_DIR]` fills a scratch SQLite audit store with
the known data sets (tests/functional/report_dataset.py and mirror_dataset.py), renders each
page in Dutch and English and writes `<page>-<lang>.html` and `.png` into OUT_DIR (default
var/report-screenshots). tests/functional/test_report_screenshots.py takes the same ones.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from cds_service.audit.pseudonyms import DEVELOPMENT_KEY, Pseudonymiser
from cds_service.audit.reports.figures import Period
from cds_service.audit.reports.run import build_mirror, build_report, clinician_pseudonym
from cds_service.audit.store import AuditStore
from cds_service.cards.catalogue import load_catalogue
from cds_service.cards.patient_page import render_patient_page
from cds_service.config import Settings
from cds_service.shipped import CARDS_DIR
from tests.functional.mirror_dataset import load_mirror_rows, practitioner
from tests.functional.report_dataset import load_known_rows
from tests.support.card_screenshots import find_browser, screenshot

WIDTH, HEIGHT = 1280, 2400
LANGUAGES = ("nl", "en")
Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
APRIL = Period(date(2026, 4, 1), date(2026, 4, 30))


def pages(scratch: Path) -> dict[str, str]:
    """{"report-nl": html, ...}: the report, the mirror report of m0 and the patient page."""
    store = AuditStore.from_url(f"sqlite:///{scratch / 'audit.db'}")
    store.upgrade()
    settings = Settings(env="test")
    try:
        load_known_rows(store.engine, pilot=True)
        load_mirror_rows(store.engine, Pseudonymiser(DEVELOPMENT_KEY))
        m0 = clinician_pseudonym(settings, practitioner("m0"))
        catalogue = load_catalogue(CARDS_DIR)
        found = {}
        for language in LANGUAGES:
            found[f"report-{language}"] = build_report(
                store.engine, settings, Q1, by=None, fmt="html", language=language
            )[1]
            found[f"mirror-{language}"] = build_mirror(
                store.engine, settings, APRIL, m0, fmt="html", language=language
            )[1]
            found[f"patient-{language}"] = render_patient_page(
                catalogue, language, "no-scan-needed", 46
            )
        return found
    finally:
        store.engine.dispose()


def shoot(browser: str, out_dir: Path) -> dict[str, Path]:
    """Write each page and its screenshot into out_dir: {page name: PNG path}; also a blank
    page's screenshot ("blank") of the same size, to compare against."""
    out_dir.mkdir(parents=True, exist_ok=True)
    found = pages(out_dir)
    found["blank"] = "<!doctype html><html lang=en><title>blank</title></html>"
    shots = {}
    for name, text in found.items():
        page = out_dir / f"{name}.html"
        page.write_text(text, encoding="utf-8")
        shots[name] = screenshot(browser, page, out_dir / f"{name}.png", WIDTH, HEIGHT)
    return shots


def main(argv: list[str]) -> int:
    """Write the screenshots into the folder named on the command line."""
    out_dir = Path(argv[0]) if argv else Path("var") / "report-screenshots"
    browser = find_browser()
    if browser is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    if (out_dir / "audit.db").exists():
        (out_dir / "audit.db").unlink()  # a fresh store each time: the rows are inserted anew
    for name, shot in shoot(browser, out_dir).items():
        print(f"{name}: {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
