"""Revoked sessions, as identity announces them: access tokens of these sessions are
rejected (TOKEN_REVOKED) until they would have expired anyway.

Every process follows identity's `session.revoked` and `user.disabled` events with an
ordered (ephemeral, in-memory, flow-controlled) JetStream consumer that starts
`lookback` seconds in the past — at least the access-token lifetime — so a process that
starts (or restarts) knows every revocation still relevant. Nothing is stored: the list
lives in memory and prunes itself as entries pass their expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from zenops.events.v1 import envelope_pb2, identity_pb2

from ..events import EventBus, stream_name, unpack_payload

log = logging.getLogger("zenops.auth.revocation")

STREAM = stream_name("identity")  # ZENOPS_IDENTITY
SESSION_REVOKED = "identity.session.revoked"
USER_DISABLED = "identity.user.disabled"
SUBJECTS = ("zenops." + SESSION_REVOKED, "zenops." + USER_DISABLED)
# Seconds between idle heartbeats of the consumer: two missed ones make nats-py recreate it.
HEARTBEAT = 2.0
# Backoff while the stream does not exist yet (identity not started) or NATS is away.
_RETRY_MIN, _RETRY_MAX = 0.25, 5.0
_PRUNE_EVERY = 30.0


class RevocationList:
    """session id → epoch second until which its tokens are rejected."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._next_prune = 0.0
        self.events_applied = 0  # observability and tests
        self.following = False  # True while subscribed to identity's stream

    def revoke(self, session_ids: Iterable[str], until: float) -> None:
        now = time.time()
        for sid in session_ids:
            if sid and until > now:
                self._until[sid] = max(until, self._until.get(sid, 0.0))
        if now >= self._next_prune:
            self.prune(now)

    def prune(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._until = {sid: until for sid, until in self._until.items() if until > now}
        self._next_prune = now + _PRUNE_EVERY

    def is_revoked(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        until = self._until.get(session_id)
        if until is None:
            return False
        if until > time.time():
            return True
        self._until.pop(session_id, None)
        return False

    def __len__(self) -> int:
        return len(self._until)

    # -- following identity's events -----------------------------------------------------------

    def apply(self, env: envelope_pb2.EventEnvelope, *, lookback: float = 900.0) -> None:
        """Apply one identity event (others are ignored)."""
        occurred = env.occurred_at.ToDatetime(UTC).timestamp() if env.HasField("occurred_at") else time.time()
        # Without an explicit bound, a token of the session lives at most `lookback` more.
        fallback = occurred + lookback
        if env.event_type == SESSION_REVOKED:
            msg = unpack_payload(env, identity_pb2.SessionsRevoked)
            until = (
                msg.access_valid_until.ToDatetime(UTC).timestamp() if msg.HasField("access_valid_until") else fallback
            )
            self.revoke(msg.session_ids, until)
        elif env.event_type == USER_DISABLED:
            msg = unpack_payload(env, identity_pb2.UserDisabled)
            self.revoke(msg.session_ids, fallback)
        else:
            return
        self.events_applied += 1

    async def follow(self, bus: EventBus, *, lookback: float = 900.0) -> None:
        """Run forever (cancel to stop): apply identity's revocation events to this list."""
        delay = _RETRY_MIN
        last_seq: int | None = None  # stream sequence of the last event applied
        waiting_logged = False
        while True:
            js = await bus.ready()
            config = ConsumerConfig(filter_subjects=list(SUBJECTS))
            if last_seq is None:
                config.deliver_policy = DeliverPolicy.BY_START_TIME
                config.opt_start_time = datetime.now(UTC) - timedelta(seconds=lookback)
            else:  # resubscribing: carry on after the last event seen
                config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
                config.opt_start_seq = last_seq + 1
            try:
                sub = await js.subscribe(
                    SUBJECTS[0], stream=STREAM, config=config, ordered_consumer=True, idle_heartbeat=HEARTBEAT
                )
            except Exception as exc:  # noqa: BLE001 - stream missing (identity not started) or NATS away
                level = logging.DEBUG if waiting_logged else logging.INFO
                if not isinstance(exc, NotFoundError):
                    level = logging.WARNING
                log.log(
                    level,
                    "cannot follow session revocations yet; retrying",
                    extra={"stream": STREAM, "error": repr(exc)[:200]},
                )
                waiting_logged = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            # nats-py recreates a lost ordered consumer by reusing this config with a start
            # sequence; the server refuses a start time next to it (nats.go #1281), so drop it.
            config.opt_start_time = None
            delay, waiting_logged = _RETRY_MIN, False
            self.following = True
            log.info("following session revocations", extra={"stream": STREAM})
            try:
                async for msg in sub.messages:
                    self._handle(msg.data, lookback)
                    last_seq = msg.metadata.sequence.stream
            finally:
                self.following = False
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001 - the connection may be gone already
                    pass
            # The iteration ends only when the subscription was closed under us: resubscribe.
            await asyncio.sleep(_RETRY_MIN)

    def _handle(self, data: bytes, lookback: float) -> None:
        try:
            self.apply(envelope_pb2.EventEnvelope.FromString(data), lookback=lookback)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop revocations
            log.warning("ignoring an unreadable identity event", extra={"error": repr(exc)[:200]})
