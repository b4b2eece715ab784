"""Revocations reach the other processes: the relay publishes identity's outbox to NATS and
the kit's RevocationList (what the gateway and every service follow) applies it."""

import asyncio

from identity_harness import STAFF_PASSWORD, pb

from zenops_devstack.testing import poll
from zenops_kit.auth import RevocationList


async def test_logout_and_disable_reach_a_revocation_list(identity):
    async with identity() as h:
        revocations = RevocationList()
        follower = asyncio.create_task(revocations.follow(h.app.runtime.bus, lookback=60))
        try:
            admin = await h.admin()
            pair = await h.login()
            await h.call("Logout", pb.LogoutRequest(), pair.access_token)
            user = await h.create_user(admin, "val@zenops.local")
            valuer = await h.login("val@zenops.local", STAFF_PASSWORD)
            await h.call("DisableUser", pb.DisableUserRequest(id=user.id), admin)

            async def applied():
                return revocations.is_revoked(pair.session_id) and revocations.is_revoked(valuer.session_id)

            await poll(applied, timeout=15, what="revocation events to arrive")
            (admin_session,) = [s.id for s in (await h.call("ListSessions", pb.ListSessionsRequest(), admin)).sessions]
            assert not revocations.is_revoked(admin_session)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
