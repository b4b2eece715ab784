"""RPCs of the analytics overview (analytics.read): proto ↔ zenops_ops.analytics."""

from __future__ import annotations

from zenops.ops.v1 import ops_pb2 as pb

from .. import analytics
from .caller import caller
from .translate import ASSIGNMENT_STATUS_OF, CHANNEL_REQUEST_STATUS_OF


def _by_status(counts: dict[str, int], statuses: dict[int, str]) -> dict[str, int]:
    """Every status of the contract, lower-case, 0 when it has no rows."""
    return {name.lower(): counts.get(name, 0) for name in statuses.values()}


class AnalyticsRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

    async def GetAnalyticsOverview(self, request, context):
        who = await caller(self.engine, context, "analytics.read")
        view = await analytics.overview(self.engine, who)
        return pb.GetAnalyticsOverviewResponse(
            assignments_by_status=_by_status(view.assignments_by_status, ASSIGNMENT_STATUS_OF),
            open_tasks=view.open_tasks,
            overdue_tasks=view.overdue_tasks,
            channel_requests_by_status=_by_status(view.channel_requests_by_status, CHANNEL_REQUEST_STATUS_OF),
            outbox_failed=view.outbox_failed,
            outbox_dead=view.outbox_dead,
        )
