"""The safety case (issue 16): the hazard log is complete, its tests exist, the report renders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.rules.knowledge import default_knowledge
from cds_service.safety.hazards import HAZARD_LOG, HazardLogError, load_hazard_log
from cds_service.safety.report import render_html

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def log():
    """The shipped hazard log, checked against the shipped POLICY rule ids."""
    return load_hazard_log(rule_ids=frozenset(default_knowledge().rules))


def test_hazard_log_covers_twelve_hazards_each_controlled_and_tested(log):
    assert len(log.hazards) >= 12
    for hazard in log.hazards:
        assert hazard.controls, hazard.id
        for control in hazard.controls:
            assert control.tests, (hazard.id, control.ref)
        assert hazard.risk_after <= hazard.risk_before, hazard.id


def test_every_test_the_log_names_exists_and_is_collected(log):
    """pytest must collect each named test; a renamed or deleted test fails here."""
    ids = list(log.test_ids())
    result = subprocess.run(  # noqa: S603 - this interpreter's pytest on fixed ids
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *ids],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    for test in ids:
        assert any(line == test or line.startswith(test + "[") for line in collected), test


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("{rule: cauda-equina, tests: [tests/x.py::test_y]}", None),
        ("{rule: no-such-rule, tests: [tests/x.py::test_y]}", "unknown POLICY rule id"),
        ("{design: something, tests: []}", "names no tests"),
        ("{design: something, tests: [not-a-test]}", "is not a test id"),
        ("{design: a, rule: cauda-equina, tests: [tests/x.py::test_y]}", "exactly one of"),
    ],
)
def test_a_malformed_hazard_log_is_refused(tmp_path, broken, message):
    path = tmp_path / "hazards.yaml"
    path.write_text(
        "acceptable_risk: 6\nhazards:\n  - {id: H1, title: t, cause: c, effect: e, severity: 5,"
        f" likelihood: {{before: 3, after: 1}}, controls: [{broken}]}}\n",
        encoding="utf-8",
    )
    rules = frozenset(default_knowledge().rules)
    if message is None:
        assert load_hazard_log(path, rule_ids=rules).hazards[0].risk_after == 5
    else:
        with pytest.raises(HazardLogError, match=message):
            load_hazard_log(path, rule_ids=rules)


def test_safety_report_names_rule_set_hazards_open_items_and_traceability(log, capsys):
    html = render_html(default_knowledge(), log)
    knowledge = default_knowledge()
    assert knowledge.version.split("+")[1] in html
    for hazard in log.hazards:
        assert f'id="{hazard.id}"' in html
    for rule_id in knowledge.rules:
        assert f"<code>{rule_id}</code>" in html
    open_ids = [h.id for h in log.open_hazards()]
    assert ("No hazard has a residual risk" in html) == (not open_ids)
    assert main(["safety-report"]) == 0
    assert f"{len(log.hazards)} hazards" in capsys.readouterr().out


def test_safety_report_renders_in_headless_chromium(log, tmp_path):
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        if os.environ.get("CDS_TEST_BROWSER") == "1":
            pytest.fail("CDS_TEST_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("Chromium not installed; set CDS_TEST_BROWSER=1 to make this a failure")
    page = tmp_path / "safety.html"
    assert main(["safety-report", "--html", "--out", str(page)]) == 0
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(  # noqa: S603 - fixed arguments, a local file
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=90,
            check=False,
        )
    dom = result.stdout.decode(errors="replace")
    assert 'id="traceability"' in dom, result.stderr.decode(errors="replace")[-2000:]
    assert dom.count('<tr id="H') == len(log.hazards)
    assert 'id="missed-alarm-watch-how"' in dom  # no audit store read: says how to get counts
    assert HAZARD_LOG.is_file()


def test_safety_report_says_how_to_get_the_missed_alarm_counts(log, capsys):
    html = render_html(default_knowledge(), log)
    assert '<p id="missed-alarm-watch-how">' in html
    assert "cds_missed_alarms_total" in html and "--audit" in html
    assert main(["safety-report"]) == 0
    assert "missed-alarm watch (90 days): Counts not read" in capsys.readouterr().out


def test_safety_report_reads_the_missed_alarm_counts_from_the_audit_store(
    audit_url, tmp_path, capsys
):
    from cds_service.audit.store import AuditStore
    from tests.functional.report_dataset import load_known_rows

    store = AuditStore.from_url(audit_url)
    store.upgrade()
    load_known_rows(store.engine, pilot=True)
    store.engine.dispose()
    page = tmp_path / "safety.html"
    period = ["--from", "2026-10-01", "--to", "2026-11-30", "--database-url", audit_url]
    assert main(["safety-report", "--html", "--audit", *period, "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert 'id="missed-alarm-watch-how"' not in html
    # The counts of test_report_pilot.py's WATCH_FIGURES: 6 listed, 5 patients, 5 + 1, 5 + 1.
    row = (
        "<tr><td>2026-10-01 to 2026-11-30</td><td>6</td><td>5</td>\n"
        "<td>5</td><td>1</td>\n<td>5</td><td>1</td>\n"
        "<td><code>2026.10</code> → <code>2026.11</code></td></tr>"
    )
    assert row in html
    assert main(["safety-report", "--audit", *period]) == 0
    out = capsys.readouterr().out
    assert "2026-10-01 to 2026-11-30: 6 reassuring evaluations followed by an urgent one" in out
    assert main(["safety-report", "--audit", "--from", "2026-12-01", "--to", "2026-11-01"]) == 2
    assert "ends before it starts" in capsys.readouterr().err
