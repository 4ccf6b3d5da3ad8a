"""`cds-service evaluate` prints the decision trail per order, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "cli"
AS_OF = "2026-11-21T12:00:00+00:00"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args, "--now", AS_OF])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_trail_for_the_sample_request(capsys):
    code, out, _ = _run(
        capsys, str(ROOT / "examples" / "order-select-request.json"), "--lang", "en"
    )
    assert code == 0
    assert "ServiceRequest/draft-mri-1  mri" in out
    assert "decision: not-indicated" in out
    assert "[not-met] neuro-deficit" in out


def test_trail_names_the_urgent_pattern_and_its_evidence(capsys):
    code, out, _ = _run(capsys, str(FIXTURES / "urgent-cauda-equina.json"), "--lang", "nl")
    assert code == 0
    assert "decision: urgent" in out
    assert "[    met] red-flag" in out
    assert "evidence Condition/c-retention" in out


def test_order_sign_trail_lists_only_lumbar_orders(capsys):
    code, out, _ = _run(capsys, str(FIXTURES / "order-sign-mixed.json"))
    assert code == 0
    assert "ServiceRequest/draft-xray  xray" in out
    assert "draft-chest" not in out


def test_missing_data_is_listed(capsys):
    code, out, _ = _run(capsys, str(FIXTURES / "no-episode.json"))
    assert code == 0
    assert "decision: insufficient-data" in out
    assert "missing data: episode" in out


def test_json_output_is_the_cds_hooks_response(capsys):
    code, out, _ = _run(capsys, str(FIXTURES / "urgent-cauda-equina.json"), "--json")
    assert code == 0
    body = json.loads(out)
    assert body["cards"][0]["indicator"] == "critical"
    assert body["systemActions"][0]["type"] == "update"


@pytest.mark.parametrize("content", ["{not json", '{"hook": "patient-view"}'])
def test_unusable_files_exit_2_with_a_message(capsys, tmp_path, content):
    path = tmp_path / "request.json"
    path.write_text(content)
    code, _, err = _run(capsys, str(path))
    assert code == 2
    assert err


def test_invalid_request_exits_1_with_an_operation_outcome(capsys, tmp_path):
    request = json.loads((ROOT / "examples" / "order-select-request.json").read_text())
    del request["context"]["patientId"]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    code, _, err = _run(capsys, str(path))
    assert code == 1
    assert json.loads(err)["resourceType"] == "OperationOutcome"


def test_a_bad_setting_exits_2_naming_it_without_a_traceback(capsys, monkeypatch):
    monkeypatch.setenv("CDS_ENV", "staging")
    assert main(["evaluate", str(ROOT / "examples" / "order-select-request.json")]) == 2
    err = capsys.readouterr().err
    assert "CDS_ENV" in err and "Traceback" not in err
