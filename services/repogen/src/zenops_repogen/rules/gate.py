"""Readiness, the render gate: may this snapshot be rendered? It gates READY_FOR_RENDER.

Blocking (ready only when there is none):
- a required field of the template (as it applies to the contract) is missing;
- a rules error (the evaluation's ERROR messages), and an inspection dated after `today`
  (INSPECTION_IN_FUTURE);
- an evidence profile item below its minimum count.

Warnings (never blocking):
- a present required field that documents back (fields.FieldDef.evidence) with no evidence
  link (UNLINKED_FIELD) — a link to the field or to a part of it ("areas.carpet.value")
  counts;
- the evaluation's warnings (BELOW_GUIDELINE, ...);
- an inspection more than `inspection_max_age_days` days before `today` (INSPECTION_STALE).

Score: the share of requirements met, as an integer 0–100 (floor). One unit per required
field, one per evidence item demanded (SITE_PHOTO ≥ 4 is four units; present items count up
to the minimum), and one for "no rules errors". So 100 exactly when ready, and a contract
half-way there scores about half, whichever kind of requirement is outstanding.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from zenops_repogen.rules.engine import ERROR, WARNING, Evaluation, RuleMessage
from zenops_repogen.rules.fields import FIELDS

DEFAULT_INSPECTION_MAX_AGE_DAYS = 90


class MissingEvidence(NamedTuple):
    kind: str
    required: int
    present: int


@dataclass(frozen=True)
class Readiness:
    ready: bool
    score: int
    missing_fields: tuple[str, ...]
    missing_evidence: tuple[MissingEvidence, ...]
    # One line each ("CODE field: message"), as the proto carries them.
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    # The same errors and warnings, structured.
    messages: tuple[RuleMessage, ...]


def _linked(key: str, linked: set[str]) -> bool:
    prefix = key + "."
    return key in linked or any(k.startswith(prefix) for k in linked)


def readiness(
    evaluation: Evaluation,
    *,
    evidence_counts: Mapping[str, int],
    linked_fields: Collection[str],
    today: date,
    inspection_max_age_days: int = DEFAULT_INSPECTION_MAX_AGE_DAYS,
) -> Readiness:
    """Readiness of an evaluated contract given the evidence as it is now: `evidence_counts`
    (kind → number of items), `linked_fields` (canonical keys with at least one live link)."""
    if inspection_max_age_days < 0:
        raise ValueError("inspection_max_age_days must not be negative")
    e = evaluation
    errors = list(e.errors)
    warnings = list(e.warnings)

    inspected = e.contract.inspection.date
    if inspected is not None:
        if inspected > today:
            errors.append(
                RuleMessage(
                    ERROR,
                    "INSPECTION_IN_FUTURE",
                    "inspection.date",
                    f"the inspection date {inspected.isoformat()} is after today ({today.isoformat()})",
                )
            )
        elif (today - inspected).days > inspection_max_age_days:
            warnings.append(
                RuleMessage(
                    WARNING,
                    "INSPECTION_STALE",
                    "inspection.date",
                    f"the inspection on {inspected.isoformat()} is {(today - inspected).days} "
                    f"days old (more than {inspection_max_age_days})",
                )
            )

    linked = set(linked_fields)
    for key in e.required_fields:
        if key in e.present_fields and FIELDS[key].evidence and not _linked(key, linked):
            warnings.append(
                RuleMessage(WARNING, "UNLINKED_FIELD", key, f"{FIELDS[key].label} has no evidence linked to it")
            )

    missing_evidence = []
    evidence_units = met_evidence = 0
    for req in e.evidence_requirements:
        present = max(0, int(evidence_counts.get(req.kind, 0)))
        evidence_units += req.min_count
        met_evidence += min(present, req.min_count)
        if present < req.min_count:
            missing_evidence.append(MissingEvidence(req.kind, req.min_count, present))

    total = len(e.required_fields) + evidence_units + 1
    met = len(e.required_fields) - len(e.missing_fields) + met_evidence + (0 if errors else 1)
    ready = not e.missing_fields and not missing_evidence and not errors
    return Readiness(
        ready=ready,
        score=met * 100 // total,
        missing_fields=e.missing_fields,
        missing_evidence=tuple(missing_evidence),
        errors=tuple(m.text() for m in errors),
        warnings=tuple(m.text() for m in warnings),
        messages=tuple(errors + warnings),
    )


def readiness_json(result: Readiness) -> dict[str, Any]:
    """JSON-ready, keys exactly zenops.repogen.v1.Readiness' field names (minus evaluated_at)."""
    return {
        "ready": result.ready,
        "score": result.score,
        "missing_fields": list(result.missing_fields),
        "missing_evidence": [
            {"kind": m.kind, "required": m.required, "present": m.present} for m in result.missing_evidence
        ],
        "errors": list(result.errors),
        "warnings": list(result.warnings),
    }
