"""Typed client of zenops.common.v1.EventsAdminService, which every domain service serves
(the kit registers it): one per upstream, on that upstream's channel (like InvoicingClient on
billing's), so `close()` leaves the channel to its owner.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2_grpc

from zenops.common.v1 import events_admin_pb2 as pb
from zenops.common.v1 import events_admin_pb2_grpc

from .base import UpstreamClient


class EventsAdminClient(UpstreamClient):
    stub_class = events_admin_pb2_grpc.EventsAdminServiceStub
    stub: events_admin_pb2_grpc.EventsAdminServiceStub

    def __init__(self, upstream: UpstreamClient) -> None:
        # No channel of its own: the upstream's (same process, same address).
        self.service = upstream.service  # errors name the service that failed
        self.address = upstream.address
        self.timeout = upstream.timeout
        self.health_timeout = upstream.health_timeout
        self.channel = upstream.channel
        self.stub = self.stub_class(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def close(self) -> None:
        """Nothing to do: the channel is the upstream client's, closed by it."""

    async def get_event_stats(
        self, dead_letter_limit: int, *, token: str, deadline: float | None = None
    ) -> pb.GetEventStatsResponse:
        return await self.call(
            self.stub.GetEventStats,
            pb.GetEventStatsRequest(dead_letter_limit=dead_letter_limit),
            token=token,
            deadline=deadline,
        )

    async def replay_dead_letter(self, dead_letter_id: int, *, token: str) -> pb.ReplayDeadLetterResponse:
        return await self.call(self.stub.ReplayDeadLetter, pb.ReplayDeadLetterRequest(id=dead_letter_id), token=token)
