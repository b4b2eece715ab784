"""The role → capability table and role validation."""

from __future__ import annotations

import pytest

from zenops_identity.domain.roles import (
    ALL_CAPABILITIES,
    CAPABILITY_TABLE_VERSION,
    PORTAL_ROLE,
    ROLES,
    RoleTemplate,
    capabilities_for,
    validate_roles,
)
from zenops_kit.errors import InvalidArgument

# The capability list of spec/identity.md, as written there ("a.b|c" = a.b and a.c).
SPEC_CAPABILITIES = """
tenants.write users.read|write employees.read|write attendance.read|write payroll.read|write|run
masterdata.read|write|approve assignments.read|write|transition tasks.read|write
channel_requests.read|write|review documents.read|write|read_sensitive notifications.routes.read|write
notifications.send support.read|write|manage invoices.read|write billing.read|write billing.credits.write
billing.override billing.reconcile repogen.read|write|transition|release analytics.read control.read|write
"""

SPEC_ROLES = {"super_admin", "ops_manager", "valuer", "accounts", "hr", "portal_user", "studio_operator"}
STAFF_ROLES = {"ops_manager", "valuer", "accounts", "hr"}


def expand(spec: str) -> set[str]:
    capabilities = set()
    for item in spec.split():
        prefix, _, last = item.rpartition(".")
        first, *others = last.split("|")
        capabilities.add(f"{prefix}.{first}")
        capabilities.update(f"{prefix}.{other}" for other in others)
    return capabilities


def test_all_capabilities_is_exactly_the_spec_list():
    assert ALL_CAPABILITIES == expand(SPEC_CAPABILITIES)
    assert len(ALL_CAPABILITIES) == 44
    assert isinstance(ALL_CAPABILITIES, frozenset)


def test_roles_are_the_spec_roles():
    assert set(ROLES) == SPEC_ROLES
    assert PORTAL_ROLE == "portal_user"
    for name, template in ROLES.items():
        assert isinstance(template, RoleTemplate)
        assert template.name == name
        assert template.description
        assert isinstance(template.capabilities, frozenset)
        assert template.capabilities


def test_super_admin_has_every_capability():
    assert ROLES["super_admin"].capabilities == ALL_CAPABILITIES
    assert capabilities_for(["super_admin"]) == ALL_CAPABILITIES


def test_every_role_only_uses_known_capabilities():
    for name, template in ROLES.items():
        assert template.capabilities <= ALL_CAPABILITIES, (name, template.capabilities - ALL_CAPABILITIES)


def test_portal_user_has_exactly_its_channel_scoped_set():
    assert ROLES[PORTAL_ROLE].capabilities == {
        "channel_requests.read",
        "channel_requests.write",
        "documents.read",
        "documents.write",
        "invoices.read",
        "support.read",
        "support.write",
    }


def test_least_privilege_for_the_powerful_capabilities():
    def holders(capability: str) -> set[str]:
        return {name for name, template in ROLES.items() if capability in template.capabilities}

    assert holders("tenants.write") == {"super_admin"}
    assert holders("users.write") == {"super_admin"}
    assert holders("control.write") == {"super_admin", "studio_operator"}
    assert holders("billing.override") == {"super_admin", "studio_operator"}
    assert holders("billing.reconcile") == {"super_admin", "studio_operator"}
    assert holders("payroll.run") == {"super_admin", "hr"}
    assert holders("channel_requests.review") == {"super_admin", "ops_manager"}
    assert holders("masterdata.approve") == {"super_admin", "ops_manager"}
    assert holders("repogen.release") == {"super_admin", "ops_manager"}
    assert "documents.read_sensitive" not in ROLES[PORTAL_ROLE].capabilities


def test_each_role_can_do_its_job():
    def caps(role: str) -> frozenset[str]:
        return ROLES[role].capabilities

    assert {"assignments.transition", "repogen.write", "documents.write"} <= caps("valuer")
    assert {"invoices.write", "billing.write", "billing.credits.write"} <= caps("accounts")
    assert {"employees.write", "attendance.write", "payroll.write"} <= caps("hr")
    assert {"billing.credits.write", "billing.reconcile", "control.read", "repogen.read"} <= caps("studio_operator")
    for role in STAFF_ROLES:
        assert {"tasks.read", "tasks.write"} <= caps(role), role
    # Payroll stays with HR; money movement stays away from the field.
    assert not {"payroll.read", "billing.credits.write", "billing.override"} & caps("valuer")
    assert not caps("ops_manager") & {"payroll.read", "payroll.run", "billing.override", "control.write"}


def test_capabilities_for_is_the_union():
    assert capabilities_for([]) == frozenset()
    combined = capabilities_for(["valuer", "accounts"])
    assert combined == ROLES["valuer"].capabilities | ROLES["accounts"].capabilities
    assert capabilities_for(iter(["hr", "hr"])) == ROLES["hr"].capabilities
    assert isinstance(combined, frozenset)


def test_capabilities_for_unknown_role_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'janitor'"):
        capabilities_for(["valuer", "janitor"])


def test_validate_roles_returns_sorted_unique_roles():
    assert validate_roles(["valuer", "accounts", "valuer"]) == ["accounts", "valuer"]
    assert validate_roles(iter(["super_admin"])) == ["super_admin"]
    assert validate_roles([PORTAL_ROLE, PORTAL_ROLE]) == [PORTAL_ROLE]


def test_validate_roles_names_each_unknown_role_by_index():
    with pytest.raises(InvalidArgument) as caught:
        validate_roles(["valuer", "janitor", "hr", "Super_Admin"])
    err = caught.value
    assert err.reason == "UNKNOWN_ROLE"
    assert [v.field for v in err.violations] == ["roles[1]", "roles[3]"]
    assert "'janitor'" in err.violations[0].description
    assert "'Super_Admin'" in err.violations[1].description


def test_validate_roles_uses_the_given_field_name():
    with pytest.raises(InvalidArgument) as caught:
        validate_roles(["nobody"], field="user.roles")
    assert [v.field for v in caught.value.violations] == ["user.roles[0]"]


def test_validate_roles_requires_at_least_one():
    with pytest.raises(InvalidArgument) as caught:
        validate_roles([], field="user.roles")
    assert caught.value.reason == "VALIDATION_FAILED"
    assert [v.field for v in caught.value.violations] == ["user.roles"]


@pytest.mark.parametrize("other", sorted(SPEC_ROLES - {PORTAL_ROLE}))
def test_portal_user_cannot_be_combined_with_other_roles(other):
    with pytest.raises(InvalidArgument) as caught:
        validate_roles([PORTAL_ROLE, other])
    assert caught.value.reason == "INVALID_ROLE_COMBINATION"
    assert [v.field for v in caught.value.violations] == ["roles"]
    assert validate_roles([PORTAL_ROLE]) == [PORTAL_ROLE]


def test_capability_table_version_is_an_int():
    assert type(CAPABILITY_TABLE_VERSION) is int
    assert CAPABILITY_TABLE_VERSION >= 1
