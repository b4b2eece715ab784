"""The role → capability table: the one place that says what each role may do.

Tokens carry the expanded capabilities (`caps`) and this table's version (`cv`); bump
CAPABILITY_TABLE_VERSION whenever a role gains or loses a capability, so services and audits can tell
which table a token was minted under.

The roles come from the seeds (M4.3 capability RBAC: super_admin, ops_manager, valuer, accounts, hr,
portal_user) plus studio_operator for the control plane (aud=studio: billing accounts, credit operations,
reconciliation, ops monitor, repogen queue monitor). Each non-super role gets the least it needs for its job;
services still scope rows (portal users to their channel, tasks to assignee/creator for non-managers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zenops_kit.errors import FieldViolation, InvalidArgument

CAPABILITY_TABLE_VERSION: int = 1

ALL_CAPABILITIES: frozenset[str] = frozenset(
    {
        "tenants.write",
        "users.read",
        "users.write",
        "employees.read",
        "employees.write",
        "attendance.read",
        "attendance.write",
        "payroll.read",
        "payroll.write",
        "payroll.run",
        "masterdata.read",
        "masterdata.write",
        "masterdata.approve",
        "assignments.read",
        "assignments.write",
        "assignments.transition",
        "tasks.read",
        "tasks.write",
        "channel_requests.read",
        "channel_requests.write",
        "channel_requests.review",
        "documents.read",
        "documents.write",
        "documents.read_sensitive",
        "notifications.routes.read",
        "notifications.routes.write",
        "notifications.send",
        "support.read",
        "support.write",
        "support.manage",
        "invoices.read",
        "invoices.write",
        "billing.read",
        "billing.write",
        "billing.credits.write",
        "billing.override",
        "billing.reconcile",
        "repogen.read",
        "repogen.write",
        "repogen.transition",
        "repogen.release",
        "analytics.read",
        "control.read",
        "control.write",
    }
)


@dataclass(frozen=True)
class RoleTemplate:
    name: str
    description: str
    capabilities: frozenset[str]


# Every internal staff member has tasks assigned to them; ops limits non-managers to tasks they are
# assigned to or created.
_STAFF_TASKS = frozenset({"tasks.read", "tasks.write"})

_OPS_MANAGER = _STAFF_TASKS | {
    "masterdata.read",
    "masterdata.write",
    "masterdata.approve",  # verifies the records valuers create in the field (they start unverified)
    "assignments.read",
    "assignments.write",
    "assignments.transition",
    "channel_requests.read",
    "channel_requests.write",
    "channel_requests.review",  # accepts/rejects partner intake, which creates the assignment
    "documents.read",
    "documents.write",
    "documents.read_sensitive",  # reviews bank KYC and legal documents of the assignments they run
    "notifications.routes.read",
    "notifications.routes.write",  # routing of events to roles/teams is an operations decision
    "notifications.send",  # month-one manual WhatsApp: marks outbox cards sent
    "support.read",
    "support.write",
    "support.manage",  # creates/revokes external support links and edits the support config
    "repogen.read",
    "repogen.write",
    "repogen.transition",
    "repogen.release",  # releases the report; billing still gates it (override needs billing.override)
    "analytics.read",
    "users.read",  # picks assignees and task owners among the tenant's users
    "employees.read",  # contact points and people directory for routing and field scheduling
    "invoices.read",  # sees whether an assignment's invoice is paid before promising a release
    "billing.read",  # sees the release gate (credits reserved / invoice paid) of a work order
}

_VALUER = _STAFF_TASKS | {
    "masterdata.read",
    "masterdata.write",  # adds properties/contacts met on site visits; they stay unverified until approved
    "assignments.read",
    "assignments.write",
    "assignments.transition",  # moves their assignments through COLLECTING → SITE_VISIT → UNDER_REVIEW
    "channel_requests.read",  # reads the partner's original request behind a channel-sourced assignment
    "documents.read",
    "documents.write",
    "documents.read_sensitive",  # title deeds and KYC (pii/confidential) are the evidence a valuation rests on
    "support.read",
    "support.write",  # answers queries on the assignments they value
    "repogen.read",
    "repogen.write",  # enters the contract (adopted value, evidence links, comments)
    "repogen.transition",  # moves a work order towards READY_FOR_RENDER; release stays with managers
}

_ACCOUNTS = _STAFF_TASKS | {
    "invoices.read",
    "invoices.write",
    "billing.read",
    "billing.write",  # payments, payment-proof confirmation, subscriptions, account policy
    "billing.credits.write",  # records top-ups/grants when a client pays by bank transfer (with a reason)
    "masterdata.read",  # billing party and property state decide GST (CGST+SGST or IGST)
    "assignments.read",  # an invoice line bills an assignment
    "channel_requests.read",  # a channel's requests are what its invoices bill
    "documents.read",  # payment proofs are uploaded documents
    "support.read",
    "support.write",  # billing queries from clients arrive as support threads
}

_HR = _STAFF_TASKS | {
    "employees.read",
    "employees.write",
    "attendance.read",
    "attendance.write",
    "payroll.read",
    "payroll.write",
    "payroll.run",
    "users.read",  # links employees to their user accounts
    "documents.read",
    "documents.write",
    "documents.read_sensitive",  # employee KYC (PAN, Aadhaar, bank details) is pii
}

_PORTAL_USER = frozenset(
    {
        # Services scope every one of these to the token's channel_id: the partner sees only its own.
        "channel_requests.read",
        "channel_requests.write",
        "documents.read",
        "documents.write",
        "invoices.read",
        "support.read",
        "support.write",
    }
)

_STUDIO_OPERATOR = frozenset(
    {
        "control.read",
        "control.write",
        "billing.read",
        "billing.write",  # account policy (POSTPAID/CREDIT) and subscriptions from the control plane
        "billing.credits.write",  # grants, manual reserve/consume/release on the credits screen
        "billing.override",  # reserve shortfall overrides (always with a reason, audited)
        "billing.reconcile",
        "invoices.read",  # the billing timeline merges invoices and payments
        "repogen.read",  # repogen queue monitor
        "analytics.read",  # ops monitor counters
        "notifications.send",  # the studio's manual WhatsApp outbox controls
    }
)

PORTAL_ROLE = "portal_user"

ROLES: dict[str, RoleTemplate] = {
    template.name: template
    for template in (
        RoleTemplate("super_admin", "Administers the firm: every capability.", ALL_CAPABILITIES),
        RoleTemplate(
            "ops_manager",
            "Runs operations: master data approval, assignments, intake review, documents, support, "
            "notifications and report release.",
            frozenset(_OPS_MANAGER),
        ),
        RoleTemplate(
            "valuer",
            "Works assigned valuations: site evidence, documents and report preparation.",
            frozenset(_VALUER),
        ),
        RoleTemplate(
            "accounts",
            "Finance: invoices, payments, credits and billing accounts.",
            frozenset(_ACCOUNTS),
        ),
        RoleTemplate("hr", "People: employees, attendance and payroll.", frozenset(_HR)),
        RoleTemplate(
            PORTAL_ROLE,
            "Channel partner: its own channel's requests, documents, invoices and support threads.",
            _PORTAL_USER,
        ),
        RoleTemplate(
            "studio_operator",
            "Control plane: billing accounts, credit operations, reconciliation and monitors.",
            _STUDIO_OPERATOR,
        ),
    )
}


def capabilities_for(roles: Iterable[str]) -> frozenset[str]:
    """The union of the roles' capabilities; ValueError naming the first unknown role."""
    capabilities: set[str] = set()
    for role in roles:
        template = ROLES.get(role)
        if template is None:
            raise ValueError(f"unknown role {role[:64]!r}")
        capabilities |= template.capabilities
    return frozenset(capabilities)


def validate_roles(roles: Iterable[str], *, field: str = "roles") -> list[str]:
    """The sorted, de-duplicated roles; InvalidArgument when empty, unknown or not combinable."""
    given = list(roles)
    unknown = [
        FieldViolation(f"{field}[{index}]", f"unknown role {role[:64]!r}; known roles: {', '.join(sorted(ROLES))}")
        for index, role in enumerate(given)
        if role not in ROLES
    ]
    if unknown:
        raise InvalidArgument("unknown role", reason="UNKNOWN_ROLE", violations=unknown)
    if not given:
        raise InvalidArgument(
            "at least one role is required",
            reason="VALIDATION_FAILED",
            violations=[FieldViolation(field, "must contain at least one role")],
        )
    unique = sorted(set(given))
    if PORTAL_ROLE in unique and len(unique) > 1:
        # A portal token is scoped to one channel in the external tenant; staff rights do not belong there.
        raise InvalidArgument(
            f"{PORTAL_ROLE} cannot be combined with other roles",
            reason="INVALID_ROLE_COMBINATION",
            violations=[FieldViolation(field, f"{PORTAL_ROLE} cannot be combined with other roles")],
        )
    return unique
