"""The rules engine: pure, deterministic, no I/O, Decimal only (never float).

Given a contract (the typed report data of a work order) it computes the outputs — areas
in square metres, fair market / realisable / distress values, amounts in words, guideline
comparison, the template, the completeness score — and says what is wrong (errors) or
worth a look (warnings). Same input → same output, byte for byte.

The interface the service uses (everything else in this package is its implementation):

    contract = parse_contract(data)            # dict (decoded JSON) → Contract; ContractError names fields
    merged = merge_patch(current, patch)       # RFC 7396 JSON merge patch of plain dicts
    evaluation = evaluate(contract, bank_code="SBI", template_override=None)
    outputs_json(evaluation)                   # the outputs as JSON-ready data (decimals as strings)
    readiness(evaluation, evidence_counts={...}, linked_fields={...}, today=date(...))

The template registry (`registry.py`) is versioned data, not code branches.

Where things are:
- `contract.py`  — the contract model, parse_contract, empty_contract, merge_patch (RFC 7396)
- `fields.py`    — canonical field keys (type, unit, label, evidence-backed), presence
- `values.py`    — sqft → sqm, FMV, realisable/distress, `coop_values` (the co-op inversion)
- `words.py`     — amounts in words (Indian system), Indian digit grouping
- `registry.py`  — templates, evidence profiles, selection table (data) and its interpreter
- `engine.py`    — evaluate: every rule, in order; outputs_json
- `gate.py`      — readiness (the render gate): blocking vs warnings, the score; readiness_json

Only the standard library and this package are imported here.
"""

from zenops_kit.money import amount_in_words, format_rupees
from zenops_repogen.rules.contract import (
    AREA_NAMES,
    AREA_UNITS,
    PROPERTY_TYPES,
    SCHEMA_VERSION,
    SECTION_NAMES,
    Contract,
    ContractError,
    empty_contract,
    merge_patch,
    parse_contract,
)
from zenops_repogen.rules.engine import (
    ERROR,
    RULES_VERSION,
    WARNING,
    AreaValue,
    Evaluation,
    LineValue,
    RuleMessage,
    evaluate,
    outputs_json,
    rules_version,
)
from zenops_repogen.rules.fields import FIELDS, FieldDef
from zenops_repogen.rules.gate import MissingEvidence, Readiness, readiness, readiness_json
from zenops_repogen.rules.registry import (
    EVIDENCE_KINDS,
    REGISTRY_VERSION,
    EvidenceRequirement,
    FieldDefinition,
    Template,
    field_definitions,
    select_template,
    template,
    template_json,
    templates,
)
from zenops_repogen.rules.values import coop_values, to_sqm

__all__ = [
    "AREA_NAMES",
    "AREA_UNITS",
    "ERROR",
    "EVIDENCE_KINDS",
    "FIELDS",
    "PROPERTY_TYPES",
    "REGISTRY_VERSION",
    "RULES_VERSION",
    "SCHEMA_VERSION",
    "SECTION_NAMES",
    "WARNING",
    "AreaValue",
    "Contract",
    "ContractError",
    "Evaluation",
    "EvidenceRequirement",
    "FieldDef",
    "FieldDefinition",
    "LineValue",
    "MissingEvidence",
    "Readiness",
    "RuleMessage",
    "Template",
    "amount_in_words",
    "coop_values",
    "empty_contract",
    "evaluate",
    "field_definitions",
    "format_rupees",
    "merge_patch",
    "outputs_json",
    "parse_contract",
    "readiness",
    "readiness_json",
    "rules_version",
    "select_template",
    "template",
    "template_json",
    "templates",
    "to_sqm",
]
