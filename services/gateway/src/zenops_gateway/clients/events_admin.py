"""Typed client of zenops.common.v1.EventsAdminService, which every domain service serves
(the kit registers it): one per upstream, created once, on that upstream's channel.
"""

from __future__ import annotations

from zenops.common.v1 import events_admin_pb2 as pb
from zenops.common.v1 import events_admin_pb2_grpc

from .base import SharedChannelClient


class EventsAdminClient(SharedChannelClient):
    stub_class = events_admin_pb2_grpc.EventsAdminServiceStub
    stub: events_admin_pb2_grpc.EventsAdminServiceStub

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
