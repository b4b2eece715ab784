"""Password policy (OWASP ASVS 5.0 §6.2), email normalisation and argon2id/bcrypt hashing, with the real libraries."""

from __future__ import annotations

import asyncio
import statistics
import time
import unicodedata

import argon2
import bcrypt
import pytest

from zenops_identity.credentials import (
    MAX_LENGTH,
    MIN_LENGTH,
    PasswordHasher,
    check_password,
    common_password_count,
    is_common,
    normalize_email,
    policy,
    validate_password,
)
from zenops_kit.errors import InvalidArgument

PHRASE = "copper kettles sing at dawn while the river turns over stones "


def passphrase(length: int) -> str:
    """A harmless, uncommon password of exactly `length` characters."""
    text = (PHRASE * (length // len(PHRASE) + 1))[:length]
    assert not is_common(text)
    return text


def descriptions(violations) -> list[str]:
    return [v.description for v in violations]


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


# --- policy: ASVS 5.0 §6.2 ------------------------------------------------------------------------------------


def test_asvs_6_2_1_minimum_length_is_12_characters():
    assert MIN_LENGTH == 12
    assert check_password(passphrase(12)) == []
    violations = check_password(passphrase(11))
    assert len(violations) == 1
    assert violations[0].field == "password"
    assert "at least 12 characters" in violations[0].description
    assert check_password("")[0].description == violations[0].description


def test_asvs_6_2_9_maximum_length_is_128_characters_with_boundaries():
    assert MAX_LENGTH == 128
    assert check_password(passphrase(127)) == []
    assert check_password(passphrase(128)) == []
    violations = check_password(passphrase(129))
    assert len(violations) == 1
    assert "at most 128 characters" in violations[0].description
    # Long passwords (ASVS asks that at least 64 be allowed) are allowed.
    assert check_password(passphrase(64)) == []


def test_length_counts_characters_not_bytes():
    # Cyrillic: 2 bytes each; emoji: 4 bytes each. Characters are what count.
    assert check_password("ж" * 12) == []
    assert "at least 12" in check_password("ж" * 11)[0].description
    assert check_password("🔑" * 128) == []
    assert "at most 128" in check_password("🔑" * 129)[0].description


def test_length_is_counted_after_nfc_normalisation():
    decomposed = unicodedata.normalize("NFD", "é")
    assert len(decomposed) == 2
    # 6 "é" typed decomposed are 12 code points, but 6 characters: too short.
    assert "at least 12" in check_password(decomposed * 6)[0].description
    # 100 decomposed "é" are 200 code points, but 100 characters: within the maximum.
    assert check_password(decomposed * 100) == []


def test_asvs_6_2_5_no_composition_rules():
    assert check_password("correct horse battery staple") == []  # lower case and spaces only
    assert check_password("quietly the otters assemble") == []
    assert check_password("8302 5591 7740 1236") == []  # digits and spaces only
    assert check_password("   leading and trailing whitespace kept   ") == []
    assert check_password("தமிழ் கடவுச்சொல் சொற்றொடர்") == []  # any script


def test_asvs_6_2_4_and_6_2_12_common_password_list_is_shipped_and_checked_offline():
    assert common_password_count() == 19640
    assert common_password_count() >= 10_000
    for candidate in ("password1234", "PASSWORD1234", "PassWord1234", "qwerty123456", "1q2w3e4r5t6y"):
        assert is_common(candidate), candidate
        violations = check_password(candidate)
        assert len(violations) == 1, candidate
        assert "common" in violations[0].description
    # Short common passwords fail both rules.
    assert len(check_password("qwerty")) == 2
    assert not is_common(PHRASE)


def test_common_list_is_loaded_once():
    assert policy._common_passwords() is policy._common_passwords()
    assert policy._common_passwords.cache_info().currsize == 1


def test_asvs_6_2_11_password_must_not_contain_email_local_part():
    violations = check_password("my PRIYA.SHARMA passphrase", email="Priya.Sharma@firm.example")
    assert len(violations) == 1
    assert "email" in violations[0].description
    assert check_password("my priya sharma passphrase", email="priya.sharma@firm.example") == []
    # Local parts shorter than 3 characters are not checked (they would match too much).
    assert check_password("absolutely fine phrase ab", email="ab@firm.example") == []
    assert check_password("absolutely fine phrase abc", email="abc@firm.example") != []


def test_asvs_6_2_11_password_must_not_contain_users_name():
    for password in ("sharma is my favourite word", "PRIYA rides the morning bus", "the priya sharma passphrase"):
        violations = check_password(password, display_name="Priya Sharma")
        assert len(violations) == 1, password
        assert "name" in violations[0].description
    # Name parts are split on punctuation too.
    assert check_password("jane walks the long road", display_name="Mary-Jane O'Neil") != []
    assert check_password("neil walks the long road", display_name="Mary-Jane O'Neil") != []
    # Parts shorter than 3 characters are ignored; the whole name still counts.
    assert check_password("lily naps on a quiet afternoon", display_name="Li Na") == []
    assert check_password("here lives li na the cat", display_name="Li Na") != []
    # Case-insensitive across scripts.
    assert check_password("ЖЕНЯ любит длинные фразы", display_name="Женя Петров") != []


def test_every_failed_rule_is_returned_at_once():
    violations = check_password("password", email="password@firm.example", display_name="Password Person")
    text = descriptions(violations)
    assert len(violations) == 4
    assert any("at least 12" in d for d in text)
    assert any("common" in d for d in text)
    assert any("email" in d for d in text)
    assert any("name" in d for d in text)
    assert {v.field for v in violations} == {"password"}


def test_violations_name_the_requested_field():
    violations = check_password("short", field="new_password")
    assert [v.field for v in violations] == ["new_password"]


def test_descriptions_never_contain_the_password_or_the_matched_part():
    cases = [
        ("Dragon", "dragon@firm.example", "Dragon Rider"),
        ("Zebra", "", ""),
        ("x" * 200, "", ""),
        ("the priya sharma passphrase", "priya.sharma@firm.example", "Priya Sharma"),
        ("PassWord1234", "", ""),
    ]
    for password, email, name in cases:
        violations = check_password(password, email=email, display_name=name)
        assert violations
        for description in descriptions(violations):
            assert password.casefold() not in description.casefold()
            assert "priya" not in description.casefold()
            assert "sharma" not in description.casefold()


def test_validate_password_raises_with_every_violation():
    validate_password(passphrase(40), email="someone@firm.example", display_name="Some One")
    with pytest.raises(InvalidArgument) as caught:
        validate_password("password", email="password@firm.example", field="new_password")
    err = caught.value
    assert err.reason == "PASSWORD_POLICY"
    assert err.message == "password does not meet the policy"
    assert len(err.violations) == 3
    assert {v.field for v in err.violations} == {"new_password"}
    assert "password@" not in str(err)


# --- email normalisation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Priya.Sharma@Firm.Example ", "priya.sharma@firm.example"),
        ("ACCOUNTS+gst@zenops.in", "accounts+gst@zenops.in"),
        ("admin@zenops.local", "admin@zenops.local"),  # the local default bootstrap admin
        ("Admin@ZenOps.LOCAL", "admin@zenops.local"),
        ("qa@example.test", "qa@example.test"),
        ("Ünïcode@Exämple.com", "ünïcode@exämple.com"),
    ],
)
def test_normalize_email_accepts_and_lower_cases(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "no-at-sign",
        "two@@signs.example",
        "spaces in@firm.example",
        "nodot@localhost",
        "a@b",
        "@firm.example",
        "someone@",
        "someone@.local",
        "someone@site.invalid",
        "Name <someone@firm.example>",
        "a" * 250 + "@x.example",
    ],
)
def test_normalize_email_rejects_bad_addresses_naming_the_field(raw):
    with pytest.raises(InvalidArgument) as caught:
        normalize_email(raw, field="user.email")
    err = caught.value
    assert err.reason == "VALIDATION_FAILED"
    assert len(err.violations) == 1
    assert err.violations[0].field == "user.email"
    assert err.violations[0].description


def test_normalize_email_length_limit_is_254():
    local = "a" * 64
    domain = ".".join(["b" * 60, "b" * 60, "b" * 59]) + ".example"  # 64 + 1 + 189 = 254
    address = f"{local}@{domain}"
    assert len(address) == 254
    assert normalize_email(address) == address
    with pytest.raises(InvalidArgument) as caught:
        normalize_email(address + "x")
    assert "254" in caught.value.violations[0].description


# --- hashing ----------------------------------------------------------------------------------------------------


async def test_hash_is_argon2id_with_at_least_owasp_parameters(hasher):
    stored = await hasher.hash(passphrase(20))
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19456
    assert params.time_cost >= 2
    assert hasher.parameters == {"memory_cost_kib": 19456, "time_cost": 2, "parallelism": 1}


async def test_hashes_are_salted(hasher):
    password = passphrase(20)
    first, second = await hasher.hash(password), await hasher.hash(password)
    assert first != second
    assert await hasher.verify(first, password)
    assert await hasher.verify(second, password)


def test_parameters_below_owasp_minimum_are_refused():
    with pytest.raises(ValueError, match="memory_cost"):
        PasswordHasher(memory_cost=19455)
    with pytest.raises(ValueError, match="time_cost"):
        PasswordHasher(time_cost=1)
    with pytest.raises(ValueError, match="parallelism"):
        PasswordHasher(parallelism=0)
    assert PasswordHasher(memory_cost=65536, time_cost=3, parallelism=2).parameters == {
        "memory_cost_kib": 65536,
        "time_cost": 3,
        "parallelism": 2,
    }


async def test_verify_accepts_the_right_password_and_refuses_a_wrong_one(hasher):
    password = "correct horse battery staple"
    stored = await hasher.hash(password)
    assert await hasher.verify(stored, password) is True
    assert await hasher.verify(stored, "correct horse battery stapler") is False
    assert await hasher.verify(stored, "") is False


async def test_asvs_6_2_8_verified_exactly_as_received_without_truncation(hasher):
    base = passphrase(99)
    first, second = base + "a", base + "b"
    first_hash, second_hash = await hasher.hash(first), await hasher.hash(second)
    assert await hasher.verify(first_hash, first) and not await hasher.verify(first_hash, second)
    assert await hasher.verify(second_hash, second) and not await hasher.verify(second_hash, first)

    longest = passphrase(127) + "Z"
    assert check_password(longest) == []
    stored = await hasher.hash(longest)
    assert await hasher.verify(stored, longest)
    assert not await hasher.verify(stored, longest[:127])
    assert not await hasher.verify(stored, longest[:127] + "z")  # no case transformation either
    assert not await hasher.verify(stored, longest.upper())


async def test_longest_multibyte_password_hashes_and_verifies(hasher):
    password = "🔑" * MAX_LENGTH  # 512 UTF-8 bytes
    stored = await hasher.hash(password)
    assert await hasher.verify(stored, password)
    assert not await hasher.verify(stored, "🔑" * (MAX_LENGTH - 1))


async def test_canonically_equivalent_input_verifies(hasher):
    composed = "café crème brûlée à minuit"
    stored = await hasher.hash(unicodedata.normalize("NFD", composed))
    assert await hasher.verify(stored, composed)


async def test_over_long_input_is_refused_without_error(hasher):
    stored = await hasher.hash(passphrase(30))
    assert await hasher.verify(stored, "x" * (MAX_LENGTH * 4 + 1)) is False
    assert await hasher.verify(stored, "x" * 1_000_000) is False
    with pytest.raises(ValueError):
        await hasher.hash("x" * (MAX_LENGTH * 4 + 1))


async def test_needs_rehash_when_parameters_change(hasher):
    stored = await hasher.hash(passphrase(20))
    assert hasher.needs_rehash(stored) is False
    stronger = PasswordHasher(memory_cost=32768, time_cost=3)
    assert stronger.needs_rehash(stored) is True
    # The old hash still verifies under the new parameters, so the login can re-hash it.
    assert await stronger.verify(stored, passphrase(20))
    assert stronger.needs_rehash(await stronger.hash(passphrase(20))) is False
    assert PasswordHasher(parallelism=2).needs_rehash(stored) is True


@pytest.mark.parametrize("prefix", ["$2b$", "$2a$", "$2y$"])
async def test_imported_bcrypt_hash_verifies_and_needs_rehash(hasher, prefix):
    password = "legacy portal passphrase"
    legacy = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", prefix, 1)
    assert legacy.startswith(prefix)
    assert await hasher.verify(legacy, password) is True
    assert await hasher.verify(legacy, "legacy portal passphrasE") is False
    assert hasher.needs_rehash(legacy) is True
    upgraded = await hasher.hash(password)
    assert hasher.needs_rehash(upgraded) is False
    assert await hasher.verify(upgraded, password)


async def test_imported_bcrypt_hash_of_a_long_password_keeps_legacy_semantics(hasher):
    # bcrypt only ever saw the first 72 bytes; the legacy system truncated silently.
    password = passphrase(90)
    legacy = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert await hasher.verify(legacy, password)
    assert not await hasher.verify(legacy, password[:71])
    # After the upgrade every character counts.
    upgraded = await hasher.hash(password)
    assert not await hasher.verify(upgraded, password[:72])


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not-a-hash",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$bm90LWJhc2U2NA$!!!",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo",
        "$2b$garbage",
        "$2b$04$tooshort",
        "$5$rounds=5000$salt$hash",
        "plaintext-password-stored-by-mistake",
    ],
)
async def test_unparsable_hash_verifies_false(hasher, stored):
    assert await hasher.verify(stored, "plaintext-password-stored-by-mistake") is False
    assert hasher.needs_rehash(stored) is True


async def test_verify_dummy_takes_time_comparable_to_a_real_verify(hasher):
    stored = await hasher.hash(passphrase(24))
    cases = {
        "real": lambda: hasher.verify(stored, "wrong password guess"),
        "dummy": lambda: hasher.verify_dummy("wrong password guess"),
        "unparsable": lambda: hasher.verify("garbage", "wrong password guess"),
        "over-long": lambda: hasher.verify(stored, "x" * 10_000),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    await hasher.verify_dummy("warm up")
    # Round-robin, so load changes on a busy machine hit every case alike; medians drop outliers.
    for _ in range(9):
        for name, run in cases.items():
            started = time.perf_counter()
            await run()
            samples[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    real = medians.pop("real")
    for name, measured in medians.items():
        assert 0.5 <= measured / real <= 2.0, f"{name}: {measured * 1000:.1f} ms vs real {real * 1000:.1f} ms"


async def test_hash_and_verify_do_not_block_the_event_loop(hasher):
    ticks = 0
    hashing_done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not hashing_done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def work():
        try:
            stored = await hasher.hash(passphrase(20))
            assert await hasher.verify(stored, passphrase(20))
            await hasher.verify_dummy("anything")
        finally:
            hashing_done.set()

    await asyncio.gather(ticker(), work())
    # Three argon2 computations ran in worker threads while the loop kept scheduling the ticker.
    assert ticks > 20
