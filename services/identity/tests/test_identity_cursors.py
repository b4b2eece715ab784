"""Tampered page cursors on identity's lists are INVALID_ARGUMENT on `page.cursor`, never a
database error (they decoded, then reached SQL as a bad UUID/timestamp: 500)."""

import grpc
import pytest
from identity_harness import pb

from zenops.common.v1 import common_pb2
from zenops_kit.paging import encode_cursor

TAMPERED = {
    "users": [
        encode_cursor("users", ["a@zenops.local", "not-a-uuid"]),
        encode_cursor("users", ["a@zenops.local\x00", "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"]),
        encode_cursor("users", ["x" * 5000, "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"]),
        "A" * 10_000,
    ],
    "audit": [
        encode_cursor("audit", ["2024-01-01T00:00:00+00:00", "not-a-uuid"]),
        encode_cursor("audit", ["yesterday", "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"]),
        encode_cursor("audit", ["2024-01-01T00:00:00", "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"]),  # naive
        encode_cursor("audit", ["2024-01-01T00:00:00+00:00\x00", "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"]),
    ],
}


@pytest.mark.parametrize("listing", ["users", "audit"])
async def test_tampered_cursors_are_field_errors(identity, listing):
    method, request = {
        "users": ("ListUsers", pb.ListUsersRequest),
        "audit": ("ListAuditEvents", pb.ListAuditEventsRequest),
    }[listing]
    async with identity() as h:
        admin = await h.admin()
        await h.create_user(admin, "val@zenops.local")  # a second user (and audit row): a second page
        for cursor in TAMPERED[listing]:
            err = await h.fails(method, request(page=common_pb2.PageRequest(cursor=cursor)), admin)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT, (cursor[:40], err)
            assert [v.field for v in err.violations] == ["page.cursor"]
        # A genuine cursor still pages.
        first = await h.call(method, request(page=common_pb2.PageRequest(limit=1)), admin)
        assert first.page.next_cursor
        await h.call(method, request(page=common_pb2.PageRequest(limit=1, cursor=first.page.next_cursor)), admin)
