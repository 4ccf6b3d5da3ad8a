"""How free text was read, in the decision trail: the response, the CLI, never the audit."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import select

from cds_service.audit.models import evaluation
from cds_service.audit.store import make_engine
from cds_service.cli import main
from cds_service.rules.textreader import CUE_FAMILIES
from tests.support.hook_requests import SELECT, sample_request

DECISIONS = "org.lumbar-imaging-cds.decisions"
# Words only the patient's journal holds: they must reach the EHR's trail, never the audit store.
JOURNAL = "Bij koorts of krachtsverlies direct contact opnemen; moeder Zwanenburg had borstkanker."


def journal_request() -> dict:
    """The sample request with one GP plan line added to its Observations."""
    request = sample_request()
    request["prefetch"]["observations"]["entry"].append(
        {
            "resource": {
                "resourceType": "Observation",
                "id": "journal-p",
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": "http://fhir.nl/fhir/NamingSystem/journaalregeltypen",
                            "code": "P",
                        }
                    ]
                },
                "subject": {"reference": "Patient/sample-patient-1"},
                "effectiveDateTime": "2026-11-30",
                "valueString": JOURNAL,
            }
        }
    )
    return request


def test_response_trail_says_how_text_was_read(client) -> None:
    response = client.post(SELECT, json=journal_request(), headers={"Accept-Language": "en"})
    assert response.status_code == 200
    entry = response.get_json()["extension"][DECISIONS][0]
    assert entry["decision"] == "not-indicated"  # the plan line raised no alarm
    readings = {(t["resource"], t["concept"], t["context"]) for t in entry["textFindings"]}
    assert ("Observation/journal-p", "fever", "conditional") in readings
    assert ("Observation/journal-p", "muscle-weakness", "conditional") in readings
    assert ("Observation/journal-p", "malignancy", "family") in readings
    fever = next(
        t
        for t in entry["textFindings"]
        if t["concept"] == "fever" and t["resource"] == "Observation/journal-p"
    )
    assert fever["words"] == "koorts" and fever["cue"] == "Bij"


def test_audit_store_keeps_no_text(audit_client, audit_url) -> None:
    response = audit_client.post(SELECT, json=journal_request())
    assert response.status_code == 200
    engine = make_engine(audit_url)
    try:
        with engine.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(select(evaluation))]
    finally:
        engine.dispose()
    assert rows
    stored = json.dumps(rows, default=str)
    for word in ("koorts", "Zwanenburg", "borstkanker", "contact opnemen"):
        assert word not in stored


def test_evaluate_prints_how_text_was_read(capsys, tmp_path) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(journal_request()), encoding="utf-8")
    assert main(["evaluate", str(path), "--lang", "en", "--now", "2026-12-01T09:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "how free text was read:" in out
    assert "Observation/journal-p  fever: conditional by 'Bij' ('koorts')" in out
    assert "Observation/journal-p  malignancy: family by 'moeder' ('borstkanker')" in out


def test_explain_text_prints_each_reading(capsys) -> None:
    assert main(["explain-text", "S: rugpijn, gn uitstraling. Koorts? nee"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "low-back-pain: affirmed ('rugpijn') [section S]" in out
    assert "radicular-symptoms: negated by 'gn' ('uitstraling') [section S]" in out
    assert "fever: negated by 'nee' ('Koorts') [section S]" in out


def test_explain_text_says_when_nothing_is_read(capsys) -> None:
    assert main(["explain-text", "afspraak verzet naar dinsdag"]) == 0
    assert capsys.readouterr().out.strip() == "no finding read"


def test_textcheck_scores_the_corpus(capsys) -> None:
    assert main(["textcheck", "--json"]) == 0  # exits 1 below F1 0.95 or red-flag recall 0.98
    score = json.loads(capsys.readouterr().out)
    assert score["entries"] >= 600
    assert score["micro"]["f1"] >= 0.95 and score["redFlags"]["recall"] >= 0.98
    assert set(score["families"]) == set(CUE_FAMILIES)


def test_textcheck_fails_below_its_thresholds(capsys) -> None:
    assert main(["textcheck", "--no-errors", "--min-f1", "0.999"]) == 1
    assert "micro: precision" in capsys.readouterr().out


def test_textcheck_refuses_a_broken_corpus(capsys, tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("- {id: x, lang: nl, text: koorts, affirmed: [fevr]}\n")
    assert main(["textcheck", "--corpus", str(tmp_path)]) == 2
    assert "unknown concept 'fevr'" in capsys.readouterr().err


def test_textcheck_into_a_closed_pipe_is_quiet() -> None:
    command = [sys.executable, "-m", "cds_service.cli", "textcheck"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(command, **pipes) as process:  # noqa: S603 - our own CLI
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # like `| head -1`
        error = process.stderr.read()
        assert process.wait(timeout=60) == 0
    assert b"Traceback" not in error
