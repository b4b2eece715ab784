"""The engine is pure: it imports only the standard library, carries no float anywhere, and
gives the same bytes in another process (another hash seed, another decimal context)."""

from __future__ import annotations

import dataclasses
import decimal
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal

from zenops_repogen import rules

CONTRACT = {
    "parties": {"bank_code": "SBI", "borrower_name": "Asha Patil", "owner_name": "Asha Patil"},
    "property": {
        "property_type": "independent_house",
        "is_coop_society": False,
        "boundaries": {"north": "Road", "south": "Plot 4", "east": "Plot 9", "west": "Nala"},
    },
    "areas": {"land": {"value": "2400", "unit": "sqft"}, "built_up": {"value": "180.75", "unit": "sqm"}},
    "valuation_lines": [
        {"description": "Land", "area": {"value": "2400", "unit": "sqft"}, "rate_per_sqm": "45210.55"},
        {"description": "Building", "area": {"value": "180.75", "unit": "sqm"}, "rate_per_sqm": "18000"},
    ],
    "extras": [{"description": "Compound wall and gate", "amount": "150000"}],
    "guideline": {"rate_per_sqm": "52000"},
    "inspection": {"date": "2025-01-02", "inspector": "R"},
}

SCRIPT = textwrap.dedent("""
    import decimal, json, sys
    from datetime import date
    decimal.getcontext().prec = 5                    # a hostile caller's context
    decimal.getcontext().rounding = decimal.ROUND_DOWN
    from zenops_repogen import rules
    data = json.loads(sys.stdin.read())
    e = rules.evaluate(rules.parse_contract(data), bank_code="SBI")
    r = rules.readiness(e, evidence_counts={"SITE_PHOTO": 2}, linked_fields={"areas.land", "guideline"},
                        today=date(2025, 6, 1))
    sys.stdout.write(json.dumps([rules.outputs_json(e), rules.readiness_json(r)], sort_keys=True,
                                separators=(",", ":"), ensure_ascii=False))
""")


def run_elsewhere(seed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], input=json.dumps(CONTRACT).encode(), env=env, capture_output=True, check=True
    ).stdout


def test_same_bytes_in_other_processes_and_decimal_contexts():
    here = rules.evaluate(rules.parse_contract(CONTRACT), bank_code="SBI")
    outputs = [run_elsewhere(seed) for seed in ("0", "1", "12345")]
    assert outputs[0] == outputs[1] == outputs[2]
    assert json.loads(outputs[0])[0] == rules.outputs_json(here)
    # 2400 sqft = 222.967296 → 222.97 sqm × 45,210.55 = 1,00,80,596.33…; 180.75 × 18,000 = 32,53,500;
    # + 1,50,000 → 1,34,84,096.33… → ₹1,34,84,096
    assert here.fair_market_value == 13484096


def test_the_engine_imports_only_the_standard_library():
    # ... and the kit's money module (amounts in words, Indian grouping: standard library only too)
    probe = (
        "import sys; before = set(sys.modules); import zenops_repogen.rules; "
        "print('\\n'.join(sorted({m for m in set(sys.modules) - before "
        "if m.split('.')[0] not in sys.stdlib_module_names})))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True, text=True).stdout.split()
    assert {m.split(".")[0] for m in loaded} == {"zenops_repogen", "zenops_kit"}
    assert {m for m in loaded if m.startswith("zenops_kit")} == {"zenops_kit", "zenops_kit.money"}


def walk(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk(k)
            yield from walk(v)
    elif isinstance(value, tuple | list | frozenset | set):
        for v in value:
            yield from walk(v)
    else:
        yield value


def test_no_float_anywhere():
    e = rules.evaluate(rules.parse_contract(CONTRACT), bank_code="SBI")
    leaves = list(walk(e)) + list(walk(rules.outputs_json(e)))
    assert not [v for v in leaves if isinstance(v, float)]
    assert any(isinstance(v, Decimal) for v in leaves)


def test_the_callers_decimal_context_is_left_alone():
    before = decimal.getcontext().copy()
    rules.evaluate(rules.parse_contract(CONTRACT), bank_code="SBI")
    after = decimal.getcontext()
    assert (after.prec, after.rounding) == (before.prec, before.rounding)
