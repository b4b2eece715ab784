"""Rules-engine benchmark: what one evaluation of a typical contract costs, in-process.

A typical contract: an SBI flat with every section filled — parties, property and
boundaries, three areas, three valuation lines (one in sqft), two extras, a guideline rate,
inspection, legal numbers, a justification — about 2 KB of JSON. Measured one after the
other in the same run, each as a tight loop (median of several timed rounds after a warm-up):

  baseline    json.loads of the contract text: the least any service spends on a contract
  parse       parse_contract (dict → typed contract, every field checked)
  evaluate    evaluate (areas, FMV, 95/80, guideline, words, template selection, completeness)
  readiness   readiness + readiness_json on an evaluation
  coop        parse + evaluate of the same contract as a co-operative society (the inversion)
  patch path  what PatchContract does in the service, minus the database: json.loads of the
              patch, merge_patch onto the current contract, parse, evaluate, outputs_json,
              readiness, readiness_json, and the canonical json.dumps of contract, outputs and
              readiness (sorted keys, no whitespace)

For each: evaluations/s and µs per evaluation, and the ratio to the baseline. Target
(issue 9): ≤ 1 ms per evaluation on a typical contract.

    .venv/bin/python bench/rules.py            # 5 rounds of ~1 s per target
    .venv/bin/python bench/rules.py --quick    # smoke run

Figures also go to `.bench/rules.json`. A benchmark measures and reports; it never fails on
a figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from zenops_repogen import rules

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_PATH = REPO_ROOT / ".bench" / "rules.json"
TARGET_US = 1000.0

CONTRACT = {
    "schema_version": 1,
    "parties": {
        "bank_code": "SBI",
        "branch_ifsc": "SBIN0001234",
        "borrower_name": "Asha Ravindra Patil",
        "owner_name": "Asha Ravindra Patil and Ravindra Keshav Patil",
    },
    "property": {
        "address": "Flat 12, 3rd floor, Shanti Apartments, Survey No. 45/2, Kothrud, Pune 411038",
        "property_type": "residential_flat",
        "is_coop_society": False,
        "ownership": "Joint",
        "tenure": "Freehold",
        "occupancy": "Owner occupied",
        "boundaries": {
            "north": "18 m road",
            "south": "Building B of the same complex",
            "east": "Open space / garden",
            "west": "Internal lane",
        },
    },
    "areas": {
        "carpet": {"value": "1012.5", "unit": "sqft"},
        "built_up": {"value": "112.35", "unit": "sqm"},
        "super_built_up": {"value": "1450", "unit": "sqft"},
    },
    "valuation_lines": [
        {"description": "Flat, carpet area", "area": {"value": "1012.5", "unit": "sqft"}, "rate_per_sqm": "118500"},
        {"description": "Attached terrace (50%)", "area": {"value": "8.40", "unit": "sqm"}, "rate_per_sqm": "59250"},
        {"description": "Flower bed", "area": {"value": "2.10", "unit": "sqm"}, "rate_per_sqm": "29625.50"},
    ],
    "extras": [
        {"description": "Covered car parking", "amount": "350000"},
        {"description": "Amenities (club house, lift)", "amount": "125000"},
    ],
    "guideline": {"rate_per_sqm": "97600"},
    "inspection": {"date": "2025-03-14", "inspector": "R. Kulkarni", "remarks": "Well maintained; lift working."},
    "legal": {
        "sale_deed_number": "HVL-2-4567/2019",
        "sale_deed_date": "2019-06-01",
        "registration_office": "Haveli No. 2, Pune",
        "index_ii_number": "4567",
        "property_tax_number": "PMC/KTH/12/0098",
    },
    "sections": {
        "justification": "Rate adopted from three registered sales in the complex during 2024, adjusted "
        "for floor and view; guideline rate is for the locality as a whole.",
        "notes": "Society maintenance paid up to March 2025.",
    },
}
PATCH = {
    "valuation_lines": CONTRACT["valuation_lines"][:2]
    + [{"description": "Flower bed", "area": {"value": "2.10", "unit": "sqm"}, "rate_per_sqm": "30000"}],
    "inspection": {"remarks": "Re-checked the terrace."},
}
EVIDENCE = {"SITE_PHOTO": 6, "SALE_DEED": 1, "TAX_RECEIPT": 1, "LOCATION_MAP": 1}
LINKED = frozenset({"parties.owner_name", "property.address", "areas.carpet", "legal.sale_deed_number"})
TODAY = date(2025, 4, 30)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def calibrate(fn: Callable[[], object], seconds: float) -> int:
    """Iterations that take about `seconds`."""
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        spent = time.perf_counter() - t
        if spent >= seconds / 10 or n >= 1 << 24:
            return max(1, int(n * seconds / max(spent, 1e-9)))
        n *= 4


def measure(fn: Callable[[], object], *, seconds: float, rounds: int) -> dict:
    fn()  # warm
    n = calibrate(fn, seconds)
    per_call = []
    gc.collect()
    for _ in range(rounds):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        per_call.append((time.perf_counter_ns() - t) / n / 1000)
    us = statistics.median(per_call)
    return {
        "us_per_eval": round(us, 2),
        "evals_per_s": round(1e6 / us),
        "iterations": n,
        "rounds": rounds,
        "min_us": round(min(per_call), 2),
        "max_us": round(max(per_call), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Rules-engine benchmark (in-process).")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per timed round (default 1)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per target (default 5)")
    p.add_argument("--quick", action="store_true", help="smoke run: 0.2 s × 3 rounds")
    p.add_argument("--out", type=Path, default=OUT_PATH)
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 0.2, 3

    text = json.dumps(CONTRACT)
    patch_text = json.dumps(PATCH)
    contract = rules.parse_contract(CONTRACT)
    evaluation = rules.evaluate(contract, bank_code="SBI")
    coop_data = rules.merge_patch(
        CONTRACT,
        {"property": {"is_coop_society": True}, "adopted_value": "12000000", "valuation_lines": None, "extras": None},
    )

    def patch_path():
        merged = rules.merge_patch(CONTRACT, json.loads(patch_text))
        e = rules.evaluate(rules.parse_contract(merged), bank_code="SBI")
        r = rules.readiness(e, evidence_counts=EVIDENCE, linked_fields=LINKED, today=TODAY)
        return canonical(merged), canonical(rules.outputs_json(e)), canonical(rules.readiness_json(r))

    targets: list[tuple[str, Callable[[], object]]] = [
        ("baseline (json.loads)", lambda: json.loads(text)),
        ("parse_contract", lambda: rules.parse_contract(CONTRACT)),
        ("evaluate", lambda: rules.evaluate(contract, bank_code="SBI")),
        (
            "readiness",
            lambda: rules.readiness_json(
                rules.readiness(evaluation, evidence_counts=EVIDENCE, linked_fields=LINKED, today=TODAY)
            ),
        ),
        ("parse + evaluate (co-op)", lambda: rules.evaluate(rules.parse_contract(coop_data), bank_code="SBI")),
        ("patch path (no database)", patch_path),
    ]

    out = rules.outputs_json(evaluation)
    say(
        f"rules {rules.RULES_VERSION}, registry {rules.REGISTRY_VERSION}; Python {platform.python_version()} "
        f"on {platform.machine()}"
    )
    say(
        f"typical contract: {len(text)} bytes of JSON, {len(CONTRACT['valuation_lines'])} lines, "
        f"{len(CONTRACT['extras'])} extras → FMV ₹{rules.format_rupees(out['fair_market_value'])}, "
        f"{out['template_id']}, completeness {out['completeness_score']}"
    )
    say(f"{args.rounds} rounds of ~{args.seconds:g} s per target, median reported\n")
    results = {}
    say(f"{'target':<28}{'evals/s':>12}{'µs/eval':>12}{'× baseline':>12}")
    baseline_us = None
    for name, fn in targets:
        r = measure(fn, seconds=args.seconds, rounds=args.rounds)
        baseline_us = baseline_us or r["us_per_eval"]
        r["x_baseline"] = round(r["us_per_eval"] / baseline_us, 1)
        results[name] = r
        say(f"{name:<28}{r['evals_per_s']:>12,}{r['us_per_eval']:>12.1f}{r['x_baseline']:>12.1f}")

    full = results["patch path (no database)"]["us_per_eval"]
    evaluate_us = results["evaluate"]["us_per_eval"] + results["parse_contract"]["us_per_eval"]
    say(
        f"\ntarget ≤ {TARGET_US:.0f} µs per evaluation: parse + evaluate {evaluate_us:.0f} µs, the whole patch path "
        f"{full:.0f} µs → {'met' if full <= TARGET_US else 'NOT met'}"
    )

    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "rules_version": rules.rules_version(),
        "contract_bytes": len(text),
        "target_us": TARGET_US,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    say(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
