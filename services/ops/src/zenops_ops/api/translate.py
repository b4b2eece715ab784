"""Proto enum ↔ stored text for every ops area, and timestamp helpers. Stored values are the
enum names without their prefix (PRIORITY_HIGH ↔ 'HIGH')."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from zenops.ops.v1 import ops_pb2 as pb


def _names(enum_type, prefix: str) -> dict[int, str]:
    return {v.number: v.name.removeprefix(prefix) for v in enum_type.DESCRIPTOR.values if v.number != 0}


def _numbers(names: dict[int, str]) -> dict[str, int]:
    return {name: number for number, name in names.items()}


VERIFICATION_OF = _names(pb.Verification, "VERIFICATION_")
VERIFICATION_PB = _numbers(VERIFICATION_OF)
CHANNEL_TYPE_OF = _names(pb.ChannelType, "CHANNEL_TYPE_")
CHANNEL_TYPE_PB = _numbers(CHANNEL_TYPE_OF)
COMMISSION_MODE_OF = _names(pb.CommissionMode, "COMMISSION_MODE_")
COMMISSION_MODE_PB = _numbers(COMMISSION_MODE_OF)
SOURCE_TYPE_OF = _names(pb.SourceType, "SOURCE_TYPE_")
SOURCE_TYPE_PB = _numbers(SOURCE_TYPE_OF)
ASSIGNMENT_STATUS_OF = _names(pb.AssignmentStatus, "ASSIGNMENT_STATUS_")
ASSIGNMENT_STATUS_PB = _numbers(ASSIGNMENT_STATUS_OF)
PRIORITY_OF = _names(pb.Priority, "PRIORITY_")
PRIORITY_PB = _numbers(PRIORITY_OF)
TASK_STATUS_OF = _names(pb.TaskStatus, "TASK_STATUS_")
TASK_STATUS_PB = _numbers(TASK_STATUS_OF)
CHANNEL_REQUEST_STATUS_OF = _names(pb.ChannelRequestStatus, "CHANNEL_REQUEST_STATUS_")
CHANNEL_REQUEST_STATUS_PB = _numbers(CHANNEL_REQUEST_STATUS_OF)
DOCUMENT_STATUS_OF = _names(pb.DocumentStatus, "DOCUMENT_STATUS_")
DOCUMENT_STATUS_PB = _numbers(DOCUMENT_STATUS_OF)
DOCUMENT_SOURCE_OF = _names(pb.DocumentSource, "DOCUMENT_SOURCE_")
DOCUMENT_SOURCE_PB = _numbers(DOCUMENT_SOURCE_OF)
CLASSIFICATION_OF = _names(pb.DocumentClassification, "DOCUMENT_CLASSIFICATION_")
CLASSIFICATION_PB = _numbers(CLASSIFICATION_OF)
SENSITIVITY_OF = _names(pb.Sensitivity, "SENSITIVITY_")
SENSITIVITY_PB = _numbers(SENSITIVITY_OF)


def ts(target: Timestamp, value: datetime | None) -> None:
    """Set a Timestamp field from an aware datetime (left unset for None)."""
    if value is not None:
        target.FromDatetime(value.astimezone(UTC))


def when(message, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset."""
    return getattr(message, field).ToDatetime(tzinfo=UTC) if message.HasField(field) else None
