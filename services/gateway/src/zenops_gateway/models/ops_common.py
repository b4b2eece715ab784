"""What the ops areas' HTTP models share (master data, assignments, tasks, intake, documents):
bounded field types, the lower-case enum spellings, property details, record info.

JSON conventions (as everywhere in the gateway): enums are lower-case strings (`unverified`,
`site_visit`, `high`, `bank_kyc`, …), timestamps ISO-8601 UTC (`…Z`; request timestamps must
carry an offset), money integer paise, credits integers, empty proto strings `null`.

The gateway types and bounds every field (a bad value is a 400 naming it, before any RPC);
ops applies the rules (IFSC, PIN, phone, state codes, uniqueness, states, capabilities) and
names the field in its own errors, which the routes rename to the HTTP body's names.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from zenops.ops.v1 import ops_pb2 as pb

from .common import MAX_CREDITS, MAX_PAISE, Strict, UtcDatetime, enum_name, enum_value, or_none, timestamp, to_timestamp

__all__ = [
    "MAX_CREDITS",
    "MAX_PAISE",
    "Strict",
    "UtcDatetime",
    "enum_name",
    "enum_value",
    "or_none",
    "timestamp",
    "to_timestamp",
]

# -- enums (lower-case spellings of the proto values) -----------------------------------------------

Verification = Literal["unverified", "verified"]
Priority = Literal["low", "medium", "high"]
ChannelType = Literal["agent", "advocate", "builder", "other"]
CommissionMode = Literal["percent", "flat"]
SourceType = Literal["bank", "channel", "direct"]
AssignmentStatus = Literal["draft", "collecting", "site_visit", "under_review", "delivered", "cancelled"]
TaskStatus = Literal["open", "done", "blocked"]
ChannelRequestStatus = Literal["submitted", "accepted", "rejected"]
DocumentStatus = Literal["pending", "uploaded"]
DocumentSource = Literal["mobile_camera", "mobile_gallery", "desktop_upload", "email_ingest", "portal_upload"]
Classification = Literal["bank_kyc", "site_photo", "approval_plan", "tax_receipt", "legal", "invoice", "other"]
Sensitivity = Literal["public", "internal", "pii", "confidential"]
# Documented in the proto (ops checks them).
OrgType = Literal["bank", "corporate", "individual", "builder", "government", "other"]
PropertyType = Literal[
    "residential_flat",
    "independent_house",
    "villa",
    "plot",
    "commercial_office",
    "shop",
    "industrial",
    "agricultural_land",
    "other",
]
RequestedService = Literal["valuation_report", "revaluation", "site_inspection", "desktop_valuation"]


def pb_enum(enum_type: Any, value: str | None, prefix: str) -> int:
    """`high` → PRIORITY_HIGH; None → 0 (unspecified: the service's default or "any")."""
    return enum_value(enum_type, value, prefix) if value else 0


def enum_or_none(enum_type: Any, value: int, prefix: str) -> str | None:
    """Like `enum_name`, but the unspecified value is None (e.g. the `from_status` of a creation)."""
    return None if value == 0 else enum_name(enum_type, value, prefix)


# -- bounded field types ---------------------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=200)]
City = Annotated[str, Field(min_length=1, max_length=100)]
StateCode = Annotated[
    str, Field(min_length=2, max_length=2, description="Indian state / union territory code, e.g. `MH`.")
]
Notes = Annotated[str, Field(max_length=5000)]
Reason = Annotated[str, Field(min_length=1, max_length=1000)]
Phone = Annotated[
    str, Field(max_length=32, description="10-digit Indian mobile or +<country code><number>; stored E.164.")
]
Email = Annotated[str, Field(max_length=320)]
Paise = Annotated[int, Field(strict=True, ge=0, le=MAX_PAISE, description="Integer paise (₹1 = 100).")]
Credits = Annotated[int, Field(strict=True, gt=0, le=MAX_CREDITS)]
Search = Annotated[str, Field(max_length=200)]
# Users (assignees, portal users) of identity.
UserIds = Annotated[list[UUID], Field(max_length=20)]


def _bounded_text(max_length: int):
    def check(value: Any) -> Any:
        # Before Decimal parses it: a 10 000-digit "number" is refused by length, cheaply.
        if isinstance(value, str) and len(value) > max_length:
            raise PydanticCustomError(
                "string_too_long", "String should have at most {max_length} characters", {"max_length": max_length}
            )
        return value

    return check


Latitude = Annotated[
    Decimal,
    BeforeValidator(_bounded_text(32)),
    Field(ge=-90, le=90, description="Decimal degrees, a JSON number or string (e.g. `19.07609`)."),
]
Longitude = Annotated[
    Decimal,
    BeforeValidator(_bounded_text(32)),
    Field(ge=-180, le=180, description="Decimal degrees, a JSON number or string (e.g. `72.877426`)."),
]


def decimal_text(value: Decimal | None) -> str:
    """A coordinate as the proto's decimal text (never exponent notation); '' for None."""
    return "" if value is None else format(value, "f")


def ids(values: list[UUID] | None) -> list[str]:
    return [str(v) for v in values or ()]


def id_text(value: UUID | None) -> str:
    return str(value) if value else ""


# -- shared answer parts ---------------------------------------------------------------------------


class RecordFields(BaseModel):
    """Who made and who verified a master-data record (the proto's RecordInfo, flattened)."""

    verification: Verification
    created_by: str | None
    verified_by: str | None
    verified_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @staticmethod
    def record(r: pb.RecordInfo) -> dict[str, Any]:
        return {
            "verification": enum_name(pb.Verification, r.verification, "VERIFICATION_"),
            "created_by": or_none(r.created_by),
            "verified_by": or_none(r.verified_by),
            "verified_at": timestamp(r, "verified_at"),
            "created_at": timestamp(r, "created_at"),
            "updated_at": timestamp(r, "updated_at"),
        }


class PropertyDetails(BaseModel):
    address_line1: str
    address_line2: str | None
    locality: str | None
    city: str
    state: str
    pin_code: str
    property_type: str
    latitude: str | None = Field(description="Decimal degrees as text (exact), e.g. `19.076090`; null when unknown.")
    longitude: str | None

    @staticmethod
    def fields(d: pb.PropertyDetails) -> dict[str, Any]:
        return {
            "address_line1": d.address_line1,
            "address_line2": or_none(d.address_line2),
            "locality": or_none(d.locality),
            "city": d.city,
            "state": d.state,
            "pin_code": d.pin_code,
            "property_type": d.property_type,
            "latitude": or_none(d.latitude),
            "longitude": or_none(d.longitude),
        }

    @classmethod
    def from_proto(cls, d: pb.PropertyDetails) -> PropertyDetails:
        return cls(**cls.fields(d))


class PropertyBody(Strict):
    """A property's address and kind. `latitude`/`longitude`: both or neither."""

    address_line1: Annotated[str, Field(min_length=1, max_length=200)]
    address_line2: Annotated[str, Field(max_length=200)] | None = None
    locality: Annotated[str, Field(max_length=100)] | None = None
    city: City
    state: StateCode
    pin_code: Annotated[str, Field(min_length=6, max_length=6, description="6 digits, not starting with 0.")]
    property_type: PropertyType
    latitude: Latitude | None = None
    longitude: Longitude | None = None

    def to_proto(self) -> pb.PropertyDetails:
        return pb.PropertyDetails(
            address_line1=self.address_line1,
            address_line2=self.address_line2 or "",
            locality=self.locality or "",
            city=self.city,
            state=self.state,
            pin_code=self.pin_code,
            property_type=self.property_type,
            latitude=decimal_text(self.latitude),
            longitude=decimal_text(self.longitude),
        )


def not_null(value: Any) -> Any:
    """Merge patches: a member that may not be `null` (field validators run only for the
    members present, so absent ones stay "unchanged")."""
    if value is None:
        raise PydanticCustomError("null_not_allowed", "May not be null")
    return value
