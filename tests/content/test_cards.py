"""Every card kind x language x variant x age: well-formed CDS Hooks cards (issue 4)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.cards import render
from cds_service.cards.render import load_catalogue, render_card
from cds_service.errors import RuleDataError
from cds_service.rules import decide as decide_module
from tests.support.cards import (
    AGES,
    BASE_URL,
    CARDS,
    DRAFT,
    DRAFT_ID,
    catalogue,
    context,
    decisions,
)
from tests.support.contract import forbidden_empties

ROOT = Path(__file__).resolve().parents[2]
HL7_OVERRIDE = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
CASES = [
    (name, language, variant, age)
    for name in decisions()
    for language, variant in (("nl", None), ("nl", "nl-BE"), ("en", None))
    for age in AGES
]


@pytest.mark.parametrize(("name", "language", "variant", "age"), CASES)
def test_every_card_is_well_formed(name, language, variant, age):
    decision = decisions()[name]
    cat = catalogue()
    card = render_card(decision, language, cat, context(age, variant))

    assert 0 < len(card["summary"]) < 140
    assert not card["summary"].endswith("…")  # whole: the reason is never cut
    label = cat.order_labels[decision.order.modality.value][language]
    if decision.outcome is not render.Outcome.URGENT:  # urgent names the alarm pattern
        assert card["summary"].startswith(label)
    # the service's own label in the card's language, never the EHR's long display
    assert decision.order.code_display not in card["summary"] + card["detail"]
    assert forbidden_empties(card) == []
    assert "None" not in card["detail"] and "None" not in card["summary"]
    assert card["source"]["label"] and card["uuid"]
    assert card["indicator"] == render.INDICATORS[decision.outcome]

    for suggestion in card.get("suggestions", []):
        assert suggestion["label"] and suggestion["uuid"]
        for action in suggestion["actions"]:
            assert action["description"]
            if action["type"] == "delete":
                assert action["resourceId"] == f"ServiceRequest/{DRAFT_ID}"
                assert "resource" not in action
            else:
                assert action["type"] == "create"
                created = action["resource"]
                ServiceRequest.model_validate(created)  # valid FHIR R4 (R4B models)
                assert created["subject"] == DRAFT["subject"]
                assert created["status"] == "draft" and created["intent"] == "order"
                if decision.outcome is render.Outcome.NOT_INDICATED:
                    # replace with a referral for exercise therapy / physiotherapy
                    assert created["code"]["coding"][0] == {
                        "system": "http://snomed.info/sct",
                        "code": "91251008",
                        "display": "Physical therapy procedure",
                    }
                else:
                    # an X-ray or CT where MRI is the modality: replace with a lumbar MRI
                    assert {"system": "http://www.ama-assn.org/go/cpt", "code": "72148"} in (
                        created["code"]["coding"]
                    )
                # reasonCode copied from the draft, without its empty Sandbox-style coding
                assert created["reasonCode"] == [DRAFT["reasonCode"][0]]
    if "suggestions" in card:
        assert card["selectionBehavior"] == "at-most-one"
        assert len({s["uuid"] for s in card["suggestions"]}) == len(card["suggestions"])

    for reason in card.get("overrideReasons", []):
        assert set(reason) == {"system", "code", "display"}
        assert urlsplit(reason["system"]).scheme in ("http", "https")
        assert reason["code"] and reason["display"]

    for link in card.get("links", []):
        parts = urlsplit(link["url"])
        assert parts.scheme in ("http", "https") and parts.netloc
        assert link["url"].startswith(BASE_URL + "/patient-info?")
        assert link["type"] == "absolute" and link["label"]
        query = parse_qs(parts.query)
        assert set(query) <= {"lang", "age", "topic"}
        assert query["lang"] == [variant or language]
        assert query.get("age") == ([str(age)] if age is not None else None)


@pytest.mark.parametrize("language", ["nl", "en"])
def test_not_indicated_card_carries_what_policy_requires(language):
    cat = catalogue()
    card = render_card(decisions()["not-indicated"], language, cat, context(46))
    assert card["indicator"] == "warning"
    labels = [s["label"] for s in card["suggestions"]]
    assert len(labels) == 2
    cancel, replace = card["suggestions"]
    assert [a["type"] for a in cancel["actions"]] == ["delete"]
    assert [a["type"] for a in replace["actions"]] == ["delete", "create"]
    # the summary names the order and the main reason (duration, no red flags)
    assert card["summary"].startswith("MRI LWK" if language == "nl" else "Lumbar MRI")
    assert ("3 weken" if language == "nl" else "3 weeks") in card["summary"]
    detail = card["detail"]
    headings = {
        "nl": ("### Nu", "### Wat u de patiënt", "### Alle controles"),
        "en": ("### Now", "### What to say", "### All checks"),
    }[language]
    # in the order a clinician needs them: what to do, what to say, and last every check
    assert [detail.index(h) for h in headings] == sorted(detail.index(h) for h in headings)
    assert detail.startswith("**")  # the lead line: decision and why
    # the data the checks used, in words with a date and a source, never as a reference
    assert "Observation/n1" not in detail and "Condition/lbp-1" not in detail
    exam = "neurologisch onderzoek normaal, 28 feb" if language == "nl" else "neurological"
    assert exam in detail
    assert ("lage rugpijn, 9 feb (diagnose)" if language == "nl" else "low back pain, 9 Feb") in (
        detail
    )
    assert "6 " in detail  # review at 6 weeks
    # the short patient script links to the full patient page, the card's link
    assert f"]: <{card['links'][0]['url']}>" in detail
    assert len(card["overrideReasons"]) == 7
    codes = {r["code"]: r["system"] for r in card["overrideReasons"]}
    assert codes["prefers-alternative"] == HL7_OVERRIDE
    assert codes["expert-contradicts"] == HL7_OVERRIDE
    assert codes["other"] != HL7_OVERRIDE
    assert card["links"][0]["url"] == (
        f"{BASE_URL}/patient-info?lang={language}&topic=no-scan-needed&age=46"
    )


def test_not_indicated_summary_names_repeat_imaging_and_long_episode_care_gap():
    cat = catalogue()
    repeat = render_card(decisions()["not-indicated-repeat"], "en", cat, context(46))
    assert "12 months" in repeat["summary"]
    decision = decisions()["not-indicated"]
    long = decision.__class__(
        decision.order,
        decision.outcome,
        tuple(
            c
            if c.id != "failed-conservative-care"
            else c.__class__(c.id, c.status, "no-active-care", c.outcome)
            for c in decision.criteria
        ),
    )
    card = render_card(long, "en", cat, context(46, weeks=20))
    assert "20 weeks" in card["summary"] and "no active exercise therapy" in card["summary"]
    short = render_card(decision, "nl", cat, context(46, weeks=0.5))
    assert "4 dagen" in short["summary"]


def test_urgent_card_has_action_and_evidence_but_no_patient_text():
    cat = catalogue()
    words = {
        "nl": ("caudasyndroom, 28 feb (diagnose)", "urineretentie, 2 mrt (observatie)"),
        "en": ("cauda equina syndrome, 28 Feb (condition)", "urinary retention, 2 Mar"),
    }
    for language in ("nl", "en"):
        card = render_card(decisions()["urgent"], language, cat, context(50))
        assert card["indicator"] == "critical"
        for phrase in words[language]:
            assert phrase in card["detail"]
        assert "Condition/ces" not in card["detail"] and "Observation/" not in card["detail"]
        assert "MRI" in card["detail"]
        assert ("vandaag" if language == "nl" else "today") in card["summary"]
        assert "links" not in card and "suggestions" not in card
        assert ">" not in card["detail"]  # no quoted patient sentences
        for heading in cat.patient_heading.values():
            assert heading[language] not in card["detail"]


def test_indicated_card_confirms_and_prepares_the_patient():
    cat = catalogue()
    card = render_card(decisions()["indicated"], "en", cat, context(35))
    assert card["summary"] == "Lumbar MRI is indicated: objective neurological deficit"
    assert "strength MRC 4 right, 12 Nov 2025 (examination)" in card["detail"]
    assert "### Prepare your patient" in card["detail"]
    assert "52 have ageing discs" in card["detail"]
    assert "topic=scan-planned" in card["links"][0]["url"]
    dutch = render_card(decisions()["indicated"], "nl", cat, context(35))
    assert "kracht MRC 4 re, 12 nov 2025 (onderzoek)" in dutch["detail"]


def test_modality_advice_is_shown():
    card = render_card(decisions()["indicated-xray"], "en", catalogue(), context(35))
    assert "Replace the X-ray with an MRI" in card["detail"]


def test_insufficient_data_card_is_a_checklist_of_what_to_record():
    cat = catalogue()
    card = render_card(decisions()["insufficient-data"], "nl", cat, context(50))
    lines = [line for line in card["detail"].splitlines() if line.startswith("- [ ] ")]
    assert len(lines) == 4
    assert any("MRC" in line for line in lines)
    assert any("Oswestry" in line for line in lines)


def test_flemish_variant_uses_flemish_words():
    cat = catalogue()
    card = render_card(decisions()["not-indicated"], "nl", cat, context(46, "nl-BE"))
    text = card["detail"] + " ".join(s["label"] for s in card["suggestions"])
    assert "kinesitherapeut" in text and "kinesitherapie" in text
    assert "fysiotherap" not in text.lower()
    dutch = render_card(decisions()["not-indicated"], "nl", cat, context(46))
    assert "fysiotherapeut" in dutch["detail"] and "kinesi" not in dutch["detail"]


def _emitted_codes() -> tuple[set[str], set[str]]:
    """Every reason code and modality-advice code the engine can emit (read from its source)."""
    tree = ast.parse((ROOT / "cds_service" / "rules" / "criteria.py").read_text("utf-8"))
    reasons: set[str] = set()
    advice: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CriterionResult":
            if len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                reasons.add(node.args[2].value)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_present":
            reasons.add(node.args[1].value)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "add":
            advice.add(node.args[0].value)
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "reason" for t in node.targets
        ):
            reasons |= {
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return reasons, advice


def test_every_engine_reason_and_advice_code_has_a_label():
    cat = catalogue()
    reasons, advice = _emitted_codes()
    assert len(reasons) > 40 and advice
    assert reasons - set(cat.reasons) == set()
    assert advice - set(cat.advice) == set()
    assert advice - set(cat.reasons) == set()


def test_every_missing_data_code_has_a_checklist_line():
    codes = {
        *decide_module.MISSING_CODES.values(),
        *decide_module.MISSING_FOR_SUSPICION.values(),
        decide_module.MISSING_EPISODE_ONSET,
    }
    assert codes - set(catalogue().checklist) == set()


def test_override_reasons_follow_policy_list():
    data = yaml.safe_load((CARDS / "override-reasons.yaml").read_text("utf-8"))
    english = [r["display"]["en"] for r in data["reasons"]]
    policy = (
        "Red flag present but not recorded · Specialist requested the imaging (surgical or "
        "interventional planning) · Failed conservative care not recorded · Neurological deficit "
        "not recorded · New symptoms since prior imaging · Patient preference after discussion · "
        "Other"
    ).split(" · ")
    # POLICY.md writes "Other (free text in feedback)"; the service keeps no free text (only
    # the coded reason), so the card promises none (issue 13).
    assert english == policy


# --- start-up validation --------------------------------------------------------------------


def _broken_copy(tmp_path: Path, file: str, edit) -> Path:
    target = tmp_path / "cards"
    shutil.copytree(CARDS, target)
    path = target / file
    data = yaml.safe_load(path.read_text("utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return target


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("urgent.yaml", lambda d: d["summary"].pop("en"), "needs non-empty 'nl' and 'en'"),
        ("indicated.yaml", lambda d: d["patient"].update(nl="{{ nosuchvar }}"), "nosuchvar"),
        (
            "not-indicated.yaml",
            lambda d: d["summary"].update(en="{{ order }} " + "x" * 120 + " {{ reason }}"),
            "over 139",
        ),
        ("common.yaml", lambda d: d["age_figures"]["discs"]["by_decade"].pop(80), "decades"),
        ("override-reasons.yaml", lambda d: d["reasons"][0].update(system="nope"), "system"),
        ("insufficient-data.yaml", lambda d: d["checklist"].pop("neuro-exam"), "neuro-exam"),
        ("not-indicated.yaml", lambda d: d["suggestions"]["replace"].pop("note"), "note"),
    ],
)
def test_start_up_validation_refuses_broken_cards(tmp_path, file, edit, message):
    broken = _broken_copy(tmp_path, file, edit)
    with pytest.raises(RuleDataError, match=message):
        load_catalogue(broken)


def test_shipped_cards_load():
    assert load_catalogue(CARDS).templates
