"""What each service client's token may do (IssueServiceToken).

Service tokens carry no tenant and no session; they let one process call another on
behalf of the platform. Each client gets the least its calls need:

- gateway: reads every service's GetServiceInfo for /v1/meta (control.read) and
  introspects tokens (any authenticated caller may);
- ops: resolves user ids to names for assignees and task owners (users.read); checks that
  a channel's billing account exists (billing.read);
- billing: reads the assignments and channel requests it invoices (assignments.read,
  channel_requests.read, masterdata.read for the billing party's state);
- repogen: reads the assignment, master data and documents a report is rendered from
  (assignments.read, masterdata.read, documents.read, and documents.read_sensitive: title
  deeds and KYC are the evidence a valuation rests on).
"""

from __future__ import annotations

SERVICE_CLIENT_CAPABILITIES: dict[str, frozenset[str]] = {
    "gateway": frozenset({"control.read"}),
    "ops": frozenset({"users.read", "billing.read"}),
    "billing": frozenset({"assignments.read", "channel_requests.read", "masterdata.read"}),
    "repogen": frozenset({"assignments.read", "masterdata.read", "documents.read", "documents.read_sensitive"}),
}
