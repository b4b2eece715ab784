"""The factory's pure parts and its templates, without services: job ids, artifact keys and
names, how an attempt ends, rupees as a report prints them, the billing gate; the committed
report templates (up to date with their script, one per registry template, naming their id
and version); the report context and the rendering (escaping, strictness, determinism, every
template, the co-operative society paragraph) and the PDF step when the converter is absent,
fails or hangs."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import stat
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from docx import Document
from factory_harness import docx_text
from repogen_harness import FULL_CONTRACT

from zenops_kit.errors import InvalidArgument
from zenops_repogen import rules
from zenops_repogen.domain import factory as domain
from zenops_repogen.factory import render
from zenops_repogen.factory.context import REPORT_CONTEXT, from_bundle, report_context

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_report_templates.py"
WO = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"
TENANT = "0f1e2d3c-4b5a-4968-8776-655443322110"
SHA = "ab" * 32


def load_script():
    spec = importlib.util.spec_from_file_location("make_report_templates", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# -- ids, keys, attempts ---------------------------------------------------------------------------


def test_job_ids_and_artifact_keys():
    assert domain.job_id(WO.upper(), 7) == f"{WO}:7"
    assert domain.parse_job_id(f"{WO}:7") == (WO, 7)
    for bad in ("", WO, f"{WO}:", f"{WO}:x", f"{WO}:7\n", "x:1"):
        assert domain.parse_job_id(bad) is None, bad
    at = datetime(2025, 3, 9, tzinfo=UTC)
    assert domain.artifact_key(TENANT, WO, 7, "docx", at) == f"tenant/{TENANT}/2025/03/{WO}/7-docx.docx"
    assert domain.artifact_key(TENANT, WO, 0, "export_bundle", at).endswith("/0-export_bundle.json")
    assert domain.artifact_filename(WO, 7, "pdf") == "valuation-report-1b2c3d4e-v7.pdf"
    assert domain.artifact_filename(WO, 7, "export_bundle") == "export-bundle-1b2c3d4e-v7.json"


def test_an_attempt_fails_until_the_last_then_the_job_is_dead():
    first = domain.failed_attempt(1, 3, "boom")
    assert (first.status, first.dead, first.error) == ("FAILED", False, "attempt 1 of 3: boom")
    assert domain.failed_attempt(3, 3, "boom").dead
    assert len(domain.failed_attempt(1, 3, "x" * 5000).error) == domain.MAX_ERROR


def test_supersession():
    ready = {"ready_status": "READY_FOR_RENDER"}
    assert domain.supersession(job_snapshot=3, current_snapshot=3, status="READY_FOR_RENDER", **ready) is None
    moved = domain.supersession(job_snapshot=3, current_snapshot=4, status="DATA_PENDING", **ready)
    assert moved.startswith("SUPERSEDED") and "snapshot 4" in moved
    cancelled = domain.supersession(job_snapshot=3, current_snapshot=3, status="CANCELLED", **ready)
    assert cancelled.startswith("SUPERSEDED") and "CANCELLED" in cancelled


@pytest.mark.parametrize(
    ("rupees", "printed"),
    [
        (0, "₹0"),
        (5, "₹5"),
        (999, "₹999"),
        (1000, "₹1,000"),
        (99_999, "₹99,999"),
        (1_00_000, "₹1,00,000"),
        (45_20_000, "₹45,20,000"),
        (1_41_35_000, "₹1,41,35,000"),
        (99_99_99_999, "₹99,99,99,999"),
        (1_00_00_00_000, "₹1,00,00,00,000"),
        (-45_20_000, "-₹45,20,000"),
    ],
)
def test_rupees_in_indian_grouping(rupees, printed):
    assert domain.rupees(rupees) == printed


def test_decimal_rupees():
    assert domain.decimal_rupees("150000") == "₹1,50,000"
    assert domain.decimal_rupees("1250.5") == "₹1,250.50"
    assert domain.decimal_rupees("1250.00") == "₹1,250"
    assert domain.decimal_rupees("-200000") == "-₹2,00,000"


@pytest.mark.parametrize(
    ("status", "released", "account", "credits", "born", "gate"),
    [
        ("RENDERED", True, "acc", 1, False, "released"),
        ("DRAFT", False, None, 1, False, "unknown"),
        ("DRAFT", False, "acc", 1, False, "not_reserved"),
        ("DRAFT", False, "acc", 1, True, "reserved"),  # reserved when its channel request was accepted
        ("DATA_PENDING", False, "acc", 2, False, "reserved"),
        ("RENDERED", False, "acc", 0, False, "postpaid"),
        ("CANCELLED", False, "acc", 2, False, "not_reserved"),
    ],
)
def test_billing_gate(status, released, account, credits, born, gate):
    assert (
        domain.billing_gate(
            status=status, released=released, billing_account_id=account, credits=credits, born_from_request=born
        )
        == gate
    )


def test_override_reason():
    assert domain.override_reason("") == ""
    assert domain.override_reason("  Paid in cash  ") == "Paid in cash"
    for bad in ("   ", "x" * 501, "bad\x00reason"):
        with pytest.raises(InvalidArgument) as err:
            domain.override_reason(bad)
        assert [v.field for v in err.value.violations] == ["override_reason"]


# -- the templates -----------------------------------------------------------------------------


def test_committed_templates_are_what_the_script_makes():
    script = load_script()
    assert script.main(["--check"]) == 0
    assert {f"{t.id}.docx" for t in rules.templates()} == set(script.templates())


@pytest.mark.parametrize("template", rules.templates(), ids=lambda t: t.id)
def test_each_registry_template_has_its_file(template):
    path = render.template_path(template.id)
    props = Document(str(path)).core_properties
    assert (props.identifier, props.version) == (template.id, str(template.version))


def test_a_hand_edited_or_foreign_template_is_refused(tmp_path):
    source = render.template_path("GENERIC_BANK_V1").read_bytes()
    (tmp_path / "SBI_UNDER_5CR_V1.docx").write_bytes(source)  # another template under this id
    with pytest.raises(render.TemplateError, match="is GENERIC_BANK_V1 version 1"):
        render.render_docx_sync(tmp_path / "SBI_UNDER_5CR_V1.docx", "SBI_UNDER_5CR_V1", 1, {})
    with pytest.raises(render.TemplateError, match="is missing"):
        render.render_docx_sync(tmp_path / "NOPE.docx", "NOPE", 1, {})
    (tmp_path / "BROKEN.docx").write_bytes(b"not a zip")
    with pytest.raises(render.TemplateError, match="cannot be read"):
        render.render_docx_sync(tmp_path / "BROKEN.docx", "BROKEN", 1, {})


# -- context and rendering -----------------------------------------------------------------------


def bundle_for(
    contract_patch: dict, *, bank_code: str = "SBI", evidence=(), comments=()
) -> tuple[dict, rules.Template]:
    contract = rules.merge_patch(rules.empty_contract(), contract_patch)
    evaluation = rules.evaluate(rules.parse_contract(contract), bank_code=bank_code)
    bundle = {
        "work_order": {"id": WO, "assignment_id": TENANT, "bank_code": bank_code},
        "snapshot": {
            "version": 4,
            "contract": contract,
            "outputs": rules.outputs_json(evaluation),
            "created_at": "2025-03-31T20:15:00.000000Z",
        },
        "evidence": list(evidence),
        "comments": list(comments),
    }
    return bundle, evaluation.template


def rendered_text(bundle: dict, template: rules.Template) -> str:
    data = asyncio.run(render.render_docx(template.id, template.version, from_bundle(bundle, SHA, template)))
    return docx_text(data)


def test_the_context_has_every_key_the_templates_use():
    bundle, template = bundle_for(FULL_CONTRACT)
    context = from_bundle(bundle, SHA, template)
    assert tuple(context) == REPORT_CONTEXT
    # Report date: the snapshot's, in India (20:15 UTC on 31 March is 1 April in Kolkata).
    assert context["report"]["date"] == "1 April 2025"
    assert context["values"]["fmv"] == "₹1,41,35,000"
    assert [a["label"] for a in context["areas"]] == [
        "Land area",
        "Carpet area",
        "Built-up area",
        "Super built-up area",
    ]
    carpet = context["areas"][1]
    assert (carpet["entered"], carpet["sqft"], carpet["sqm"]) == ("1,000.00 sq ft", "1,000.00", "92.90")
    assert context["lines"][0] | {} == {
        "n": 1,
        "description": "Flat (carpet)",
        "area": "1,000.00 sq ft",
        "area_sqm": "92.90",
        "rate": "₹1,50,000",
        "amount": "₹1,39,35,000",
    }


def test_every_template_renders_the_values_in_figures_and_words():
    texts = {}
    for bank_code, patch, template_id in [
        ("SBI", FULL_CONTRACT, "SBI_UNDER_5CR_V1"),
        (
            "SBI",
            rules.merge_patch(
                FULL_CONTRACT,
                {
                    "valuation_lines": [
                        {"description": "Bungalow", "area": {"value": "600", "unit": "sqm"}, "rate_per_sqm": "1000000"}
                    ]
                },
            ),
            "SBI_5CR_AND_ABOVE_V1",
        ),
        ("HDFC", FULL_CONTRACT, "GENERIC_BANK_V1"),
    ]:
        bundle, template = bundle_for(patch, bank_code=bank_code)
        assert template.id == template_id
        outputs = bundle["snapshot"]["outputs"]
        text = rendered_text(bundle, template)
        assert domain.rupees(outputs["fair_market_value"]) in text, template_id
        assert outputs["fair_market_value_in_words"] in text, template_id
        assert outputs["distress_value_in_words"] in text, template_id
        assert "{{" not in text and "{%" not in text
        texts[template_id] = text
    # ₹60 crore: the large-value format, with its marketability section and the two-valuer note.
    assert (
        "Marketability" in texts["SBI_5CR_AND_ABOVE_V1"] and "two empanelled valuers" in texts["SBI_5CR_AND_ABOVE_V1"]
    )
    assert "Marketability" not in texts["SBI_UNDER_5CR_V1"] and "State Bank of India" not in texts["GENERIC_BANK_V1"]


def test_cooperative_society_report_and_escaping():
    patch = rules.merge_patch(
        FULL_CONTRACT,
        {
            "parties": {"borrower_name": "Shah & Sons <Traders>"},
            "property": {"is_coop_society": True},
            "valuation_lines": None,
            "adopted_value": "4750000",
        },
    )
    bundle, template = bundle_for(
        patch,
        evidence=[
            {"kind": "SOCIETY_NOC", "caption": "NOC dated 1 March", "filename": "noc.pdf", "annexure_number": 1},
            {"kind": "SITE_PHOTO", "caption": "Front", "filename": "front.jpg", "annexure_number": 2},
        ],
        comments=[{"kind": "justification", "body": "Society transfer charges verified."}],
    )
    outputs = bundle["snapshot"]["outputs"]
    assert (outputs["fair_market_value"], outputs["realisable_value"], outputs["distress_value"]) == (
        50_00_000,
        47_50_000,
        40_00_000,
    )
    text = rendered_text(bundle, template)
    assert "Shah & Sons <Traders>" in text
    assert "adopted value of ₹47,50,000 (Rupees Forty-Seven Lakh Fifty Thousand Only)" in text
    assert "₹50,00,000" in text and "Rupees Fifty Lakh Only" in text
    assert "Society transfer charges verified." in text and "Rates from recent registered sale deeds" in text
    assert "Society NOC\nNOC dated 1 March\nnoc.pdf" in text


def test_rendering_is_deterministic_and_strict():
    bundle, template = bundle_for(FULL_CONTRACT)
    context = from_bundle(bundle, SHA, template)
    once = asyncio.run(render.render_docx(template.id, template.version, context))
    assert asyncio.run(render.render_docx(template.id, template.version, context)) == once
    Document(io.BytesIO(once))  # a valid DOCX
    incomplete = {k: v for k, v in context.items() if k != "values"}
    with pytest.raises(render.TemplateError, match="does not fit the report data"):
        asyncio.run(render.render_docx(template.id, template.version, incomplete))


def test_report_context_rejects_nothing_a_snapshot_holds():
    """A just-created work order (empty contract) still renders (every value '—' or zero)."""
    bundle, template = bundle_for({})
    context = report_context(
        work_order=bundle["work_order"],
        snapshot_version=0,
        snapshot_created_at=datetime(2025, 1, 1, tzinfo=UTC),
        contract=bundle["snapshot"]["contract"],
        outputs=bundle["snapshot"]["outputs"],
        evidence=[],
        comments=[],
        template=template,
        bundle_sha256=SHA,
    )
    assert context["values"]["fmv"] == "₹0" and context["parties"]["borrower_name"] == "—"
    assert context["values"]["realisable_percent"] == str(Decimal(template.realisable_percent).normalize())
    text = docx_text(asyncio.run(render.render_docx(template.id, template.version, context)))
    assert "No annexures." in text and "No justification was recorded." in text


# -- the PDF step ------------------------------------------------------------------------------------


def fake_converter(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-soffice"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_no_converter_is_a_note_not_a_failure():
    result = asyncio.run(render.to_pdf(b"PK", converter="no-such-converter-here"))
    assert result.pdf is None and "no PDF converter on this machine" in result.note


def test_a_failing_converter_is_a_note(tmp_path):
    result = asyncio.run(
        render.to_pdf(
            b"PK", converter=fake_converter(tmp_path, "echo 'Error: source file could not be loaded'; exit 1")
        )
    )
    assert result.pdf is None and result.note.startswith("PDF conversion failed (exit 1: Error: source file")


def test_a_hanging_converter_is_stopped_at_its_limit(tmp_path):
    result = asyncio.run(render.to_pdf(b"PK", converter=fake_converter(tmp_path, "sleep 30"), limit_seconds=0.5))
    assert result.pdf is None and result.note.startswith("PDF conversion timed out after 0.5 s")


def test_a_converter_that_writes_the_pdf(tmp_path):
    # Stands in for soffice: writes <outdir>/report.pdf from its last argument's stem.
    converter = fake_converter(
        tmp_path, 'for a; do last="$a"; done; printf "%%PDF-1.7 fake" > "$(dirname "$last")/report.pdf"'
    )
    result = asyncio.run(render.to_pdf(b"PK", converter=converter))
    assert (result.pdf, result.note) == (b"%PDF-1.7 fake", "")
