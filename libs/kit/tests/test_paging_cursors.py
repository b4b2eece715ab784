"""Cursors come back from clients: every decode is checked before any of it reaches SQL."""

import pytest

from zenops_kit.errors import InvalidArgument
from zenops_kit.paging import decode_cursor, encode_cursor

ID = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
AT = "2024-05-01T10:00:00+00:00"


def test_a_genuine_cursor_round_trips_in_canonical_form():
    cursor = encode_cursor("audit", [AT, ID.upper()])
    assert decode_cursor(cursor, "audit", 2, types=("timestamp", "uuid")) == [AT, ID]
    assert decode_cursor(encode_cursor("n", ["-42"]), "n", 1, types=("int",)) == ["-42"]
    assert decode_cursor("", "audit", 2) is None


@pytest.mark.parametrize(
    ("cursor", "types"),
    [
        (encode_cursor("audit", [AT, "not-a-uuid"]), ("timestamp", "uuid")),
        (encode_cursor("audit", ["yesterday", ID]), ("timestamp", "uuid")),
        (encode_cursor("audit", ["2024-05-01T10:00:00", ID]), ("timestamp", "uuid")),  # naive
        (encode_cursor("n", [str(2**63)]), ("int",)),
        (encode_cursor("n", ["1e3"]), ("int",)),
        (encode_cursor("users", ["a\x00b", ID]), None),  # PostgreSQL text cannot hold NUL
        (encode_cursor("users", ["x" * 2000, ID]), None),
        (encode_cursor("users", [1, ID]), None),
        (encode_cursor("other", [AT, ID]), None),
        ("A" * 5000, None),
        ("%%%", None),
    ],
)
def test_tampered_cursors_are_invalid_argument_naming_the_field(cursor, types):
    kind = "n" if types == ("int",) else ("audit" if types else "users")
    with pytest.raises(InvalidArgument) as err:
        decode_cursor(cursor, kind, len(types) if types else 2, types=types, field="page.cursor")
    assert [v.field for v in err.value.violations] == ["page.cursor"]


def test_types_must_match_the_arity():
    with pytest.raises(TypeError):
        decode_cursor(encode_cursor("a", [AT]), "a", 1, types=("timestamp", "uuid"))
    with pytest.raises(TypeError):
        decode_cursor(encode_cursor("a", [AT]), "a", 1, types=("date",))
