"""HTTP models of assignments (create, read, merge patch, lifecycle transitions, history)
and their conversions from zenops.ops.v1."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from zenops.ops.v1 import ops_pb2 as pb

from .documents import Document
from .ops_common import (
    AssignmentStatus,
    Notes,
    Paise,
    Priority,
    Reason,
    SourceType,
    Strict,
    UserIds,
    UtcDatetime,
    enum_name,
    enum_or_none,
    id_text,
    ids,
    not_null,
    or_none,
    pb_enum,
    timestamp,
    to_timestamp,
)

BorrowerName = Annotated[str, Field(max_length=200)]


class Assignment(BaseModel):
    id: str
    reference_number: str = Field(description="`ZA-<yyyy>-<6 digits>`: unique per tenant, gapless per year.")
    source_type: SourceType
    status: AssignmentStatus
    bank_id: str | None
    branch_id: str | None
    client_org_id: str | None
    property_id: str | None
    contact_id: str | None
    channel_id: str | None
    channel_request_id: str | None
    due_at: datetime | None
    priority: Priority
    assignee_ids: list[str]
    fee_paise: int = Field(description="Integer paise.")
    notes: str | None
    borrower_name: str | None
    completeness_score: int = Field(description="0–100: share of the required fields present.")
    credits_short: bool = Field(description="Billing could not reserve the credits of the request behind it.")
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None
    version: int = Field(description="Increases with every change; send it as `expected_version` to PATCH safely.")

    @staticmethod
    def fields(a: pb.Assignment) -> dict[str, Any]:
        return {
            "id": a.id,
            "reference_number": a.reference_number,
            "source_type": enum_name(pb.SourceType, a.source_type, "SOURCE_TYPE_"),
            "status": enum_name(pb.AssignmentStatus, a.status, "ASSIGNMENT_STATUS_"),
            "bank_id": or_none(a.bank_id),
            "branch_id": or_none(a.branch_id),
            "client_org_id": or_none(a.client_org_id),
            "property_id": or_none(a.property_id),
            "contact_id": or_none(a.contact_id),
            "channel_id": or_none(a.channel_id),
            "channel_request_id": or_none(a.channel_request_id),
            "due_at": timestamp(a, "due_at"),
            "priority": enum_name(pb.Priority, a.priority, "PRIORITY_"),
            "assignee_ids": list(a.assignee_ids),
            "fee_paise": a.fee_paise,
            "notes": or_none(a.notes),
            "borrower_name": or_none(a.borrower_name),
            "completeness_score": a.completeness_score,
            "credits_short": a.credits_short,
            "created_by": or_none(a.created_by),
            "created_at": timestamp(a, "created_at"),
            "updated_at": timestamp(a, "updated_at"),
            "version": a.version,
        }

    @classmethod
    def from_proto(cls, a: pb.Assignment) -> Assignment:
        return cls(**cls.fields(a))


class AssignmentList(BaseModel):
    items: list[Assignment]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class StatusChange(BaseModel):
    from_status: AssignmentStatus | None = Field(description="null for the creation.")
    to_status: AssignmentStatus
    actor: str | None
    reason: str | None
    at: datetime | None

    @classmethod
    def from_proto(cls, h: pb.StatusHistoryEntry) -> StatusChange:
        return cls(
            from_status=enum_or_none(pb.AssignmentStatus, h.from_status, "ASSIGNMENT_STATUS_"),
            to_status=enum_name(pb.AssignmentStatus, h.to_status, "ASSIGNMENT_STATUS_"),
            actor=or_none(h.actor),
            reason=or_none(h.reason),
            at=timestamp(h, "at"),
        )


class AssignmentDetail(Assignment):
    """An assignment with its status history (oldest first) and the documents linked to it
    that the caller may read."""

    history: list[StatusChange]
    documents: list[Document]

    @classmethod
    def from_response(cls, r: pb.GetAssignmentResponse) -> AssignmentDetail:
        return cls(
            **Assignment.fields(r.assignment),
            history=[StatusChange.from_proto(h) for h in r.history],
            documents=[Document.from_proto(d) for d in r.documents],
        )


class Activity(BaseModel):
    id: str
    kind: str = Field(description="e.g. `assignment.created`, `assignment.status_changed`, `billing.credits_short`.")
    actor: str | None
    summary: str
    detail: dict[str, Any] = Field(description="The details (a JSON object).")
    at: datetime | None

    @classmethod
    def from_proto(cls, e: pb.ActivityEntry) -> Activity:
        try:
            detail = json.loads(e.detail_json) if e.detail_json else {}
        except ValueError:
            detail = {"text": e.detail_json}
        return cls(
            id=e.id,
            kind=e.kind,
            actor=or_none(e.actor),
            summary=e.summary,
            detail=detail if isinstance(detail, dict) else {"value": detail},
            at=timestamp(e, "at"),
        )


class AssignmentHistory(BaseModel):
    """The status history (every change, newest first) and one page of the activity
    (newest first)."""

    history: list[StatusChange]
    items: list[Activity]
    next_cursor: str | None


class CreateAssignmentBody(Strict):
    source_type: SourceType
    bank_id: UUID | None = None
    branch_id: UUID | None = None
    client_org_id: UUID | None = None
    property_id: UUID | None = None
    contact_id: UUID | None = None
    channel_id: UUID | None = Field(None, description="Required for source `channel`.")
    due_at: UtcDatetime | None = None
    priority: Priority | None = Field(None, description="Default `medium`.")
    assignee_ids: UserIds | None = None
    fee_paise: Paise | None = None
    notes: Notes | None = None
    borrower_name: BorrowerName | None = None

    def to_proto(self, idempotency_key: str | None) -> pb.CreateAssignmentRequest:
        return pb.CreateAssignmentRequest(
            source_type=pb_enum(pb.SourceType, self.source_type, "SOURCE_TYPE_"),
            bank_id=id_text(self.bank_id),
            branch_id=id_text(self.branch_id),
            client_org_id=id_text(self.client_org_id),
            property_id=id_text(self.property_id),
            contact_id=id_text(self.contact_id),
            channel_id=id_text(self.channel_id),
            due_at=to_timestamp(self.due_at),
            priority=pb_enum(pb.Priority, self.priority, "PRIORITY_"),
            assignee_ids=ids(self.assignee_ids),
            fee_paise=self.fee_paise or 0,
            notes=self.notes or "",
            borrower_name=self.borrower_name or "",
            idempotency_key=idempotency_key or "",
        )


# Assignment members a merge patch may change (UpdateAssignmentRequest's updatable fields).
ASSIGNMENT_PATCHABLE = (
    "bank_id",
    "branch_id",
    "client_org_id",
    "property_id",
    "contact_id",
    "due_at",
    "priority",
    "assignee_ids",
    "fee_paise",
    "notes",
    "borrower_name",
)


class AssignmentPatch(Strict):
    """JSON merge patch (RFC 7396) of an assignment: members present are changed, absent ones
    kept; `null` clears the refs, `due_at`, `notes`, `borrower_name` and `assignee_ids`
    (`priority` and `fee_paise` cannot be null). `expected_version` is not a member: when
    given, the change is refused (409 `VERSION_CONFLICT`) unless the assignment is at that
    version. The status changes only by transitions."""

    bank_id: UUID | None = None
    branch_id: UUID | None = None
    client_org_id: UUID | None = None
    property_id: UUID | None = None
    contact_id: UUID | None = None
    due_at: UtcDatetime | None = None
    priority: Priority | None = None
    assignee_ids: UserIds | None = None
    fee_paise: Paise | None = None
    notes: Notes | None = None
    borrower_name: BorrowerName | None = None
    expected_version: Annotated[int, Field(strict=True, ge=1, le=2**53)] | None = None

    @field_validator("priority", "fee_paise", "expected_version")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return not_null(value)

    def mask(self) -> list[str]:
        return sorted(set(ASSIGNMENT_PATCHABLE) & self.model_fields_set)

    def to_proto(self) -> pb.Assignment:
        return pb.Assignment(
            bank_id=id_text(self.bank_id),
            branch_id=id_text(self.branch_id),
            client_org_id=id_text(self.client_org_id),
            property_id=id_text(self.property_id),
            contact_id=id_text(self.contact_id),
            due_at=to_timestamp(self.due_at),
            priority=pb_enum(pb.Priority, self.priority, "PRIORITY_"),
            assignee_ids=ids(self.assignee_ids),
            fee_paise=self.fee_paise or 0,
            notes=self.notes or "",
            borrower_name=self.borrower_name or "",
        )


class TransitionBody(Strict):
    to: AssignmentStatus = Field(description="The next status; what the lifecycle does not allow is 409.")
    reason: Reason | None = Field(None, description="Required for `cancelled` and for rework (→ `collecting`).")
