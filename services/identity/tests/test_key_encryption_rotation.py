"""Rotating ZENOPS_KEY_ENCRYPTION_SECRET without downtime (README "Rotating the
key-encryption secret"): replicas first accept the new secret for decryption, then encrypt
under it while still accepting the old one, `reencrypt-signing-keys` moves every stored
key over, and the old secret is dropped — tokens keep verifying and logins keep working at
every step, and no stored key is readable with the old secret at the end."""

import json
import os
import subprocess
import sys

import jwt
from identity_harness import ADMIN_EMAIL, pb

from zenops_identity.__main__ import reencrypt_signing_keys
from zenops_identity.settings import IdentitySettings
from zenops_identity.tokens.secrets import encrypted_under

OLD = "old-key-encryption-secret-" + "o" * 24
NEW = "new-key-encryption-secret-" + "n" * 24


async def test_rotating_the_key_encryption_secret_keeps_serving(identity, make_database):
    url = make_database("identity")
    async with identity(database_url=url, key_encryption_secret=OLD) as before:
        token = await before.admin()
        first_kid = jwt.get_unverified_header(token)["kid"]

    # 1. Every replica learns the new secret, for decryption only.
    async with identity(
        database_url=url,
        key_encryption_secret=OLD,
        key_decryption_secrets=json.dumps([NEW]),
        signing_key_cache_seconds=0,
    ) as phase1:
        assert (await phase1.call("GetMe", pb.GetMeRequest(), token)).user.email == ADMIN_EMAIL

        # 2. Replicas switch to encrypting under the new secret (the old one still decrypts),
        #    while phase-1 replicas keep serving next to them.
        async with identity(
            database_url=url, key_encryption_secret=NEW, key_decryption_secrets=json.dumps([OLD])
        ) as phase2:
            admin = await phase2.admin()  # signs with the key the old secret encrypted
            new_kid = (await phase2.call("RotateSigningKey", pb.RotateSigningKeyRequest(), admin)).kid
            # The phase-1 replica reads the key encrypted under the new secret.
            assert jwt.get_unverified_header(await phase1.admin())["kid"] == new_kid
            assert await reencrypt_signing_keys(phase2.settings) == (2, 1)
            assert await reencrypt_signing_keys(phase2.settings) == (2, 0)  # idempotent
            blobs = [
                bytes(r.private_key) for r in await phase2.sql("SELECT private_key FROM signing_keys", tenant=None)
            ]

    assert all(encrypted_under(NEW, b) and not encrypted_under(OLD, b) for b in blobs)
    # 3. The old secret is gone: everything still works, tokens of the first key included.
    async with identity(database_url=url, key_encryption_secret=NEW) as after:
        assert (await after.call("GetMe", pb.GetMeRequest(), token)).user.email == ADMIN_EMAIL
        assert jwt.get_unverified_header(await after.admin())["kid"] == new_kid != first_kid


async def test_reencrypt_command_changes_nothing_when_a_key_opens_with_no_configured_secret(identity, make_database):
    url = make_database("identity")
    async with identity(database_url=url, key_encryption_secret=OLD):
        pass
    env = {**os.environ, "ZENOPS_DATABASE_URL": url, "ZENOPS_KEY_ENCRYPTION_SECRET": NEW}
    command = [sys.executable, "-m", "zenops_identity", "reencrypt-signing-keys"]
    # The old secret forgotten: the command fails loudly and changes nothing.
    failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and "InvalidToken" in failed.stderr
    settings = IdentitySettings(database_url=url, key_encryption_secret=OLD)
    assert await reencrypt_signing_keys(settings) == (1, 0)  # still under the old secret
    done = subprocess.run(
        command,
        env={**env, "ZENOPS_KEY_DECRYPTION_SECRETS": json.dumps([OLD])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"reencrypted": 1' in done.stdout + done.stderr
    assert await reencrypt_signing_keys(IdentitySettings(database_url=url, key_encryption_secret=NEW)) == (1, 0)
