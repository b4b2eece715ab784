"""Structured JSON logs carrying trace and request ids, with secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

request_id_var: ContextVar[str | None] = ContextVar("zenops_request_id", default=None)

# Keys whose values never reach a log line or an audit row (matched case-insensitively,
# as substrings, recursively through dicts and lists).
SECRET_KEY_PARTS = (
    "password",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "signature",
    "private_key",
    "cookie",
)
REDACTED = "[REDACTED]"


def redact(value: Any) -> Any:
    """Return a copy of `value` with every secret-looking key's value replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if any(p in str(k).lower() for p in SECRET_KEY_PARTS) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


# uvicorn adds `color_message` (ANSI-coloured duplicate of msg): not for JSON logs.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        extra = {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}
        if extra:
            entry.update(redact(extra))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # nats-py and grpc are chatty at INFO about reconnects; keep them at WARNING.
    for noisy in ("nats", "grpc._cython", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
