"""HTTP models of partner intake: channel requests (submit, read, accept, reject) and their
conversions from zenops.ops.v1."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from zenops.ops.v1 import ops_pb2 as pb

from .assignments import Assignment
from .ops_common import (
    ChannelRequestStatus,
    Credits,
    Name,
    Notes,
    Paise,
    Phone,
    Priority,
    PropertyBody,
    PropertyDetails,
    Reason,
    RequestedService,
    Strict,
    UserIds,
    UtcDatetime,
    enum_name,
    id_text,
    ids,
    or_none,
    pb_enum,
    timestamp,
    to_timestamp,
)


class ChannelRequest(BaseModel):
    id: str
    channel_id: str
    status: ChannelRequestStatus
    borrower_name: str
    borrower_phone: str | None
    property: PropertyDetails | None
    bank_id: str | None
    branch_id: str | None
    requested_service: str
    credits: int = Field(description="Credits the request costs (CREDIT billing accounts).")
    notes: str | None
    assignment_id: str | None = Field(description="The assignment it became; null until accepted.")
    submitted_by: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    rejection_reason: str | None
    credits_short: bool = Field(description="Billing could not reserve the credits.")
    credits_short_reason: str | None = Field(
        description="`INSUFFICIENT_CREDITS`, `ACCOUNT_SUSPENDED` or `ACCOUNT_NOT_FOUND` when credits are short."
    )
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, r: pb.ChannelRequest) -> ChannelRequest:
        return cls(
            id=r.id,
            channel_id=r.channel_id,
            status=enum_name(pb.ChannelRequestStatus, r.status, "CHANNEL_REQUEST_STATUS_"),
            borrower_name=r.borrower_name,
            borrower_phone=or_none(r.borrower_phone),
            property=PropertyDetails.from_proto(r.property) if r.HasField("property") else None,
            bank_id=or_none(r.bank_id),
            branch_id=or_none(r.branch_id),
            requested_service=r.requested_service,
            credits=r.credits,
            notes=or_none(r.notes),
            assignment_id=or_none(r.assignment_id),
            submitted_by=or_none(r.submitted_by),
            reviewed_by=or_none(r.reviewed_by),
            reviewed_at=timestamp(r, "reviewed_at"),
            rejection_reason=or_none(r.rejection_reason),
            credits_short=r.credits_short,
            credits_short_reason=or_none(r.credits_short_reason),
            created_at=timestamp(r, "created_at"),
            updated_at=timestamp(r, "updated_at"),
        )


class ChannelRequestList(BaseModel):
    items: list[ChannelRequest]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class SubmitChannelRequestBody(Strict):
    borrower_name: Name
    borrower_phone: Phone | None = None
    property: PropertyBody
    bank_id: UUID | None = None
    branch_id: UUID | None = None
    requested_service: RequestedService
    credits: Credits | None = Field(None, description="Default: the channel's `default_credits`.")
    notes: Notes | None = None
    channel_id: UUID | None = Field(
        None, description="Portal users: absent or their own channel. Staff (channel_requests.write) name it."
    )

    def to_proto(self, idempotency_key: str | None) -> pb.SubmitChannelRequestRequest:
        return pb.SubmitChannelRequestRequest(
            channel_id=id_text(self.channel_id),
            borrower_name=self.borrower_name,
            borrower_phone=self.borrower_phone or "",
            property=self.property.to_proto(),
            bank_id=id_text(self.bank_id),
            branch_id=id_text(self.branch_id),
            requested_service=self.requested_service,
            credits=self.credits or 0,
            notes=self.notes or "",
            idempotency_key=idempotency_key or "",
        )


class AcceptBody(Strict):
    """Optional settings of the assignment the acceptance creates."""

    assignee_ids: UserIds | None = None
    due_at: UtcDatetime | None = None
    priority: Priority | None = None
    fee_paise: Paise | None = None

    def to_proto(self, request_id: str, idempotency_key: str | None) -> pb.AcceptChannelRequestRequest:
        return pb.AcceptChannelRequestRequest(
            id=request_id,
            assignee_ids=ids(self.assignee_ids),
            due_at=to_timestamp(self.due_at),
            priority=pb_enum(pb.Priority, self.priority, "PRIORITY_"),
            fee_paise=self.fee_paise or 0,
            idempotency_key=idempotency_key or "",
        )


class Accepted(BaseModel):
    channel_request: ChannelRequest
    assignment: Assignment

    @classmethod
    def from_proto(cls, r: pb.AcceptChannelRequestResponse) -> Accepted:
        return cls(
            channel_request=ChannelRequest.from_proto(r.channel_request), assignment=Assignment.from_proto(r.assignment)
        )


class RejectBody(Strict):
    reason: Annotated[Reason, Field(description="Recorded, and sent on with `ops.channel_request.rejected`.")]
