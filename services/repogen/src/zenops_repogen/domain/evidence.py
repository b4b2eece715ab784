"""Evidence, field-evidence links, annexures and comments: the pure rules.

- Evidence kinds, in annexure order: a bank's valuation report encloses the title first
  (sale deed, index II), then tax and utility proof, the approved plan, the site
  photographs, the location map, the society's NOC and anything else. The order of KINDS is
  the annexure order (migration 0003 lists the same kinds).
- Annexure auto-order is deterministic: by kind (KINDS order), then capture time (items
  without one after those with one), then the time the evidence was added, then its id.
- Comments are typed like the report's free-text sections.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from zenops_kit.fields import choice, invalid, text

from ..rules.registry import EVIDENCE_KINDS

# The rules' list (templates' evidence profiles name these kinds); migration 0003 checks the same.
KINDS = EVIDENCE_KINDS
COMMENT_KINDS = ("justification", "enclosures", "checklist", "notes")

MAX_CAPTION = 500
MAX_NOTE = 1000
MAX_REASON = 1000
MAX_COMMENT = 10_000

# A canonical field key: dotted lower-case segments ("areas.carpet", "parties.borrower_name").
_FIELD_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
MAX_FIELD_KEY = 200


def kind(value: str) -> str:
    return choice((value or "").strip().upper(), "kind", KINDS)


def caption(value: str) -> str:
    return text(value, "caption", max_length=MAX_CAPTION, required=False)


def note(value: str) -> str:
    return text(value, "note", max_length=MAX_NOTE, required=False)


def removal_reason(value: str) -> str:
    """Why evidence or a link is removed: required (the audit trail says why)."""
    return text(value, "reason", max_length=MAX_REASON)


def comment_kind(value: str) -> str:
    return choice((value or "").strip().lower(), "kind", COMMENT_KINDS)


def comment_body(value: str) -> str:
    return text(value, "body", max_length=MAX_COMMENT)


def field_key(value: str, known: Iterable[str]) -> str:
    """A canonical field key the rules know (`known`)."""
    value = (value or "").strip()
    if not value:
        raise invalid("field_key", "is required")
    if len(value) > MAX_FIELD_KEY or not _FIELD_KEY.fullmatch(value):
        raise invalid("field_key", "must be a canonical field key such as areas.carpet")
    if value not in set(known):
        raise invalid("field_key", "is not a field of the contract")
    return value


@dataclass(frozen=True)
class Annexure:
    id: str
    kind: str
    captured_at: datetime | None
    created_at: datetime


def _position(item: Annexure) -> tuple:
    kind_rank = KINDS.index(item.kind) if item.kind in KINDS else len(KINDS)
    captured = (0, item.captured_at) if item.captured_at is not None else (1, item.created_at)
    return (kind_rank, captured[0], captured[1], item.created_at, item.id)


def annexure_order(items: Iterable[Annexure]) -> list[str]:
    """The ids in annexure order (1-based positions are their index + 1)."""
    return [item.id for item in sorted(items, key=_position)]
