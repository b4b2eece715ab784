"""python -m zenops_identity serve | migrate | downgrade --revision R | reencrypt-signing-keys"""

import asyncio
import logging
import sys

from zenops_kit.cli import service_main
from zenops_kit.db import create_engine
from zenops_kit.logging import setup_logging

from .app import MIGRATIONS, build_app
from .settings import IdentitySettings
from .tokens.keys import SigningKeyStore

REENCRYPT = "reencrypt-signing-keys"


async def reencrypt_signing_keys(settings: IdentitySettings) -> tuple[int, int]:
    """Every signing key re-encrypted under ZENOPS_KEY_ENCRYPTION_SECRET (decrypting with it or
    ZENOPS_KEY_DECRYPTION_SECRETS); (keys, re-encrypted). Serving replicas are unaffected."""
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1, application_name="identity-reencrypt")
    try:
        store = SigningKeyStore(
            engine,
            secret=settings.key_encryption_secret.get_secret_value(),
            decrypt_only=settings.decryption_secrets,
            algorithm=settings.signing_algorithm,
            access_token_ttl=settings.access_token_ttl,
            max_age=settings.signing_key_max_age,
            cache_seconds=settings.signing_key_cache_seconds,
        )
        return await store.reencrypt()
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv == [REENCRYPT]:
        settings = IdentitySettings()
        setup_logging("identity", settings.log_level)
        keys, changed = asyncio.run(reencrypt_signing_keys(settings))
        logging.getLogger("zenops.identity.keys").info(
            "signing keys re-encrypted", extra={"keys": keys, "reencrypted": changed}
        )
        return
    service_main("identity", IdentitySettings, build_app, MIGRATIONS, argv)


if __name__ == "__main__":
    main()
