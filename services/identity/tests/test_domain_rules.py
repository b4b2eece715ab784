"""Identity's pure rules: tenancy, login delay and client throttle, session lifetime and the refresh decision,
claims, refresh-token format, cursors, audit detail, settings. No I/O."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from zenops_identity.domain.audit import clean_detail
from zenops_identity.domain.claims import service_claims, user_claims
from zenops_identity.domain.login_throttle import NONE, AccountDelay, ClientThrottle, Failures
from zenops_identity.domain.roles import ALL_CAPABILITIES, CAPABILITY_TABLE_VERSION, ROLES
from zenops_identity.domain.service_clients import SERVICE_CLIENT_CAPABILITIES
from zenops_identity.domain.sessions import RefreshDecision, SessionPolicy, decide_refresh
from zenops_identity.domain.tenancy import Tenancy, audience_allowed, check_audience
from zenops_identity.domain.users import (
    check_disable,
    check_grantable,
    check_keeps_a_super_admin,
    check_role_change,
    check_update_mask,
    clean_channel_id,
    clean_display_name,
)
from zenops_identity.settings import KNOWN_SERVICE_CLIENTS, IdentitySettings
from zenops_identity.tokens import refresh
from zenops_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from zenops_kit.paging import MAX_LIMIT, decode_cursor, encode_cursor, page_limit
from zenops_kit.settings import DefaultSecretError

INTERNAL = "00000000-0000-4000-8000-000000000001"
EXTERNAL = "00000000-0000-4000-8000-000000000002"
OTHER = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# -- tenancy ------------------------------------------------------------------------------------


def test_single_tenant_mode_routes_logins_and_refuses_tenant_creation():
    single = Tenancy(False, INTERNAL, EXTERNAL)
    assert single.login_tenant("web", "") == INTERNAL
    assert single.login_tenant("studio", INTERNAL) == INTERNAL
    assert single.login_tenant("portal", "") == EXTERNAL
    assert single.login_tenant("portal", INTERNAL) == EXTERNAL  # whatever the caller asks
    with pytest.raises(PermissionDenied) as err:
        single.login_tenant("web", OTHER)
    assert err.value.reason == "TENANT_NOT_ENABLED"
    with pytest.raises(PermissionDenied) as err:
        single.check_tenant_creation()
    assert err.value.reason == "MULTI_TENANT_DISABLED"


def test_multi_tenant_mode_allows_other_tenants():
    multi = Tenancy(True, INTERNAL, EXTERNAL)
    assert multi.login_tenant("web", OTHER) == OTHER
    assert multi.login_tenant("portal", OTHER) == EXTERNAL
    multi.check_tenant_creation()


def test_audiences():
    assert check_audience("web") == "web"
    with pytest.raises(InvalidArgument) as err:
        check_audience("service")
    assert err.value.violations[0].field == "audience"
    assert audience_allowed(["portal_user"], "portal") and not audience_allowed(["portal_user"], "web")
    assert audience_allowed(["valuer"], "studio") and not audience_allowed(["valuer"], "portal")


def test_new_users_land_in_the_right_tenant():
    t = Tenancy(True, INTERNAL, EXTERNAL)
    assert t.user_tenant(["portal_user"], "", INTERNAL) == EXTERNAL
    assert t.user_tenant(["valuer"], "", INTERNAL) == INTERNAL
    assert t.user_tenant(["valuer"], OTHER, INTERNAL) == OTHER
    with pytest.raises(InvalidArgument):
        t.user_tenant(["portal_user"], INTERNAL, INTERNAL)
    with pytest.raises(InvalidArgument):
        t.user_tenant(["valuer"], EXTERNAL, INTERNAL)
    assert t.may_act_on(INTERNAL, frozenset(), EXTERNAL)
    assert not t.may_act_on(INTERNAL, frozenset({"ops_manager"}), OTHER)
    assert t.may_act_on(INTERNAL, frozenset({"super_admin"}), OTHER)
    assert not t.may_act_on(OTHER, frozenset({"super_admin"}), INTERNAL)


# -- login delay and client throttle -------------------------------------------------------------


def test_account_delay_doubles_up_to_the_maximum_and_never_refuses():
    rule = AccountDelay(free_failures=5, base=0.25, maximum=3.0, window=timedelta(minutes=15))
    assert [rule.delay(n) for n in range(4, 11)] == [0, 0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert rule.wait(NONE, NOW) == 0 and rule.delayed_until(NONE, NOW) is None
    # However many failures, an attempt waits at most `maximum` after the last one.
    hammered = Failures(1000, NOW)
    assert rule.wait(hammered, NOW) == 3.0
    assert rule.delayed_until(hammered, NOW) == NOW + timedelta(seconds=3)
    assert rule.wait(hammered, NOW + timedelta(seconds=2)) == pytest.approx(1.0)
    assert rule.wait(hammered, NOW + timedelta(seconds=3)) == 0
    # Below the threshold: no delay; failures older than the window are forgotten.
    assert rule.wait(Failures(4, NOW), NOW) == 0
    assert rule.current(hammered, NOW + timedelta(minutes=15)) == NONE


def test_client_throttle_counts_failures_per_address_and_ipv6_prefix():
    now = [1000.0]
    throttle = ClientThrottle(3, 60, clock=lambda: now[0])
    assert [throttle.failed("203.0.113.9") for _ in range(3)] == [False, False, True]
    assert throttle.retry_after("203.0.113.9") == 60
    assert throttle.retry_after("203.0.113.10") is None  # another client
    now[0] += 61
    assert throttle.retry_after("203.0.113.9") is None  # the window moved on
    # One IPv6 subscriber (/64) is one client; IPv4-mapped addresses are the IPv4 client.
    for host in ("2001:db8::1", "2001:db8::2", "2001:db8::ffff"):
        throttle.failed(host)
    assert throttle.retry_after("2001:db8::abcd") is not None
    assert throttle.retry_after("2001:db8:0:1::1") is None
    assert throttle.key("::ffff:203.0.113.9") == "203.0.113.9"
    # Unknown address (a direct internal caller): never throttled.
    assert not any(throttle.failed(None) for _ in range(5)) and throttle.retry_after(None) is None


def test_client_throttle_memory_is_bounded():
    throttle = ClientThrottle(1, 60, max_clients=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) == 100
    assert throttle.retry_after("10.0.3.231") is not None  # the most recent are kept


# -- sessions and refresh -----------------------------------------------------------------------

POLICY = SessionPolicy(absolute_ttl=timedelta(days=30), idle_ttl=timedelta(days=7), grace=timedelta(seconds=10))


def test_session_deadlines_slide_but_never_beyond_the_absolute_one():
    expires, idle = POLICY.new_deadlines(NOW)
    assert (expires - NOW, idle - NOW) == (timedelta(days=30), timedelta(days=7))
    assert POLICY.slide(expires, NOW + timedelta(days=5)) == NOW + timedelta(days=12)
    assert POLICY.slide(expires, NOW + timedelta(days=28)) == expires


def decide(used_at=None, revoked_at=None, expires=NOW + timedelta(days=1), idle=NOW + timedelta(days=1), now=NOW):
    return decide_refresh(
        POLICY, used_at=used_at, revoked_at=revoked_at, expires_at=expires, idle_expires_at=idle, now=now
    )


def test_refresh_decisions():
    assert decide() is RefreshDecision.ROTATE
    assert decide(used_at=NOW - timedelta(seconds=3)) is RefreshDecision.REPLAY_IN_GRACE
    assert decide(used_at=NOW - timedelta(seconds=11)) is RefreshDecision.REUSE
    assert decide(revoked_at=NOW) is RefreshDecision.INACTIVE
    assert decide(idle=NOW) is RefreshDecision.INACTIVE
    assert decide(expires=NOW - timedelta(seconds=1)) is RefreshDecision.INACTIVE
    # A spent token of a revoked session is refused, not "reused" again.
    assert decide(used_at=NOW - timedelta(days=1), revoked_at=NOW) is RefreshDecision.INACTIVE


def test_refresh_token_format_and_deterministic_successor():
    token = refresh.new_token(INTERNAL)
    prefix, tenant_hex, secret = token.split(".")
    assert prefix == "zr1" and tenant_hex == INTERNAL.replace("-", "") and len(secret) == 43
    assert refresh.tenant_of(token) == INTERNAL
    assert refresh.new_token(INTERNAL) != token
    pepper = b"p" * 32
    successor = refresh.successor(pepper, token)
    assert successor == refresh.successor(pepper, token)  # grace replays yield the same token
    assert successor != refresh.successor(b"q" * 32, token)
    assert refresh.tenant_of(successor) == INTERNAL
    assert len(refresh.digest(token)) == 32
    for bad in ("", "zr1", "zr2." + token[4:], token + "x", token.replace("zr1.0", "zr1.g"), "Bearer " + token):
        assert refresh.tenant_of(bad) is None


# -- claims -------------------------------------------------------------------------------------


def test_user_and_service_claims():
    claims = user_claims(
        issuer="zenops-identity",
        user_id="u",
        tenant_id=INTERNAL,
        audience="web",
        roles=["valuer", "valuer"],
        session_id="s",
        channel_id=None,
        now=100,
        ttl=900,
    )
    assert set(claims) == {"iss", "sub", "aud", "tid", "roles", "caps", "cv", "sid", "jti", "iat", "nbf", "exp"}
    assert claims["roles"] == ["valuer"] and claims["cv"] == CAPABILITY_TABLE_VERSION
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (100, 100, 1000)
    assert claims["caps"] == sorted(claims["caps"]) and "assignments.read" in claims["caps"]
    portal = user_claims(
        issuer="i",
        user_id="u",
        tenant_id=EXTERNAL,
        audience="portal",
        roles=["portal_user"],
        session_id="s",
        channel_id="c",
        now=1,
        ttl=1,
    )
    assert portal["channel_id"] == "c"
    service = service_claims(issuer="i", client_id="gateway", capabilities={"control.read"}, now=1, ttl=600)
    assert service["sub"] == "service:gateway" and service["aud"] == "service"
    assert "tid" not in service and "sid" not in service


def test_service_client_capabilities_are_known_and_small():
    assert set(SERVICE_CLIENT_CAPABILITIES) == set(KNOWN_SERVICE_CLIENTS)
    for caps in SERVICE_CLIENT_CAPABILITIES.values():
        assert caps <= ALL_CAPABILITIES and len(caps) <= 5
        assert not caps & {"users.write", "tenants.write", "control.write"}


# -- users, paging, audit -----------------------------------------------------------------------


def test_update_mask_and_last_super_admin():
    assert check_update_mask(["display_name", "email"]) == ["display_name", "email"]
    for bad in ([], ["password"], ["roles", "email"]):
        with pytest.raises(InvalidArgument) as err:
            check_update_mask(bad)
        assert err.value.violations[0].field == "update_mask"
    check_keeps_a_super_admin(["super_admin"], ["valuer"], 1)
    with pytest.raises(FailedPrecondition) as err:
        check_keeps_a_super_admin(["super_admin"], ["valuer"], 0)
    assert err.value.reason == "LAST_SUPER_ADMIN"


def test_nobody_grants_more_than_they_hold():
    hr_caps = ROLES["hr"].capabilities
    check_grantable(hr_caps, ["hr"])
    with pytest.raises(PermissionDenied) as err:
        check_grantable(hr_caps, ["hr", "accounts", "super_admin"])
    assert err.value.reason == "ROLE_NOT_GRANTABLE" and err.value.metadata["roles"] == "accounts,super_admin"
    check_grantable(ALL_CAPABILITIES, list(ROLES))


def test_user_field_rules():
    assert clean_display_name("  Mary-Jane   O'Neil ") == "Mary-Jane O'Neil"
    for bad in ("", "   ", "x" * 201, "bell\x07"):
        with pytest.raises(InvalidArgument):
            clean_display_name(bad)
    channel = "5f0c6a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
    assert clean_channel_id(channel.upper(), ["portal_user"]) == channel
    assert clean_channel_id("", ["valuer"]) is None
    for value, roles in (("", ["portal_user"]), ("nope", ["portal_user"]), (channel, ["valuer"])):
        with pytest.raises(InvalidArgument) as err:
            clean_channel_id(value, roles)
        assert err.value.violations[0].field == "channel_id"
    with pytest.raises(InvalidArgument):
        check_role_change(["portal_user"], ["valuer"])
    check_role_change(["valuer"], ["hr"])
    with pytest.raises(FailedPrecondition) as err:
        check_disable("me", "me", ["valuer"], 3)
    assert err.value.reason == "CANNOT_DISABLE_SELF"
    with pytest.raises(FailedPrecondition) as err:
        check_disable("them", "me", ["super_admin"], 0)
    assert err.value.reason == "LAST_SUPER_ADMIN"
    check_disable("them", "me", ["super_admin"], 1)


def test_cursors_are_opaque_and_checked():
    assert page_limit(0) == 50 and page_limit(1000) == MAX_LIMIT and page_limit(7) == 7
    with pytest.raises(InvalidArgument):
        page_limit(-1)
    cursor = encode_cursor("users", ["a@b.c", "id"])
    assert decode_cursor(cursor, "users", 2) == ["a@b.c", "id"]
    assert decode_cursor("", "users", 2) is None
    for bad in ("garbage!", encode_cursor("audit", ["x", "y"]), encode_cursor("users", ["x"])):
        with pytest.raises(InvalidArgument) as err:
            decode_cursor(bad, "users", 2)
        assert err.value.violations[0].field == "page.cursor"


def test_audit_detail_is_stringly_bounded_and_redacts_secret_keys():
    detail = clean_detail(
        {
            "roles": ["a", "b"],
            "password": "hunter2hunter2",
            "refresh_token": "zr1...",
            "n": 3,
            "none": None,
            "long": "x" * 1000,
        }
    )
    assert detail["roles"] == "a,b" and detail["n"] == "3" and "none" not in detail
    assert detail["password"] == detail["refresh_token"] == "[REDACTED]"
    assert len(detail["long"]) == 500


# -- settings -----------------------------------------------------------------------------------


def test_settings_validate_tenants_and_client_secrets_without_echoing_them():
    with pytest.raises(ValidationError, match="must be a UUID"):
        IdentitySettings(internal_tenant_id="firm")
    with pytest.raises(ValidationError, match="must differ"):
        IdentitySettings(external_tenant_id=INTERNAL)
    for bad in ("not json", "[1]", '{"gateway": ""}', '{"nobody": "x"}', '{"ops": 3}'):
        with pytest.raises(ValidationError) as err:
            IdentitySettings(service_client_secrets=bad)
        assert "s3cr3t-value" not in str(err.value)
    with pytest.raises(ValidationError) as err:
        IdentitySettings(service_client_secrets='{"gateway": "s3cr3t-value", "x": "s3cr3t-value"}')
    assert "s3cr3t-value" not in str(err.value)
    assert IdentitySettings(service_client_secrets='{"gateway": "g"}').service_clients == {"gateway": "g"}
    assert IdentitySettings(bootstrap_admin_password="").bootstrap_admin_password is None


def test_production_refuses_local_defaults():
    base = {"environment": "production", "database_url": "postgresql://identity:pw@db/identity"}
    with pytest.raises(DefaultSecretError) as err:
        IdentitySettings(**base)
    assert "ZENOPS_KEY_ENCRYPTION_SECRET" in str(err.value) and "ZENOPS_SERVICE_CLIENT_SECRETS" in str(err.value)
    # The kit or identity's own check, whichever sees it first: the shared local secret is refused.
    with pytest.raises((ValidationError, DefaultSecretError)):
        IdentitySettings(
            **base, key_encryption_secret="k" * 40, service_client_secrets='{"gateway": "zenops-local-service-secret"}'
        )
    with pytest.raises(ValidationError, match="at least 32"):
        IdentitySettings(**base, key_encryption_secret="short", service_client_secrets='{"gateway": "g"}')
    ok = IdentitySettings(**base, key_encryption_secret="k" * 40, service_client_secrets='{"gateway": "g"}')
    assert ok.bootstrap_admin_password is None  # only needed on the first start
