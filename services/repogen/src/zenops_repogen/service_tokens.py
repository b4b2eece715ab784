"""Repogen's own service token (aud=service, sub=service:repogen), for its calls to ops and
billing: one provider per process, made on first use from identity (client id "repogen",
ZENOPS_SERVICE_CLIENT_SECRET), shared by every peer client and closed by the app at stop.

Identity grants repogen's client assignments.read, masterdata.read, documents.read and
documents.read_sensitive (ops) — billing accepts a service token for AuthorizeRelease.

`install_service_tokens(runtime, provider)` puts another provider in place before first use
(tests sign their own tokens with the same key the services under test trust).
"""

from __future__ import annotations

from zenops_kit.auth import ServiceTokenProvider

CLIENT_ID = "repogen"
_ATTR = "_repogen_service_tokens"


def service_tokens_for(runtime) -> ServiceTokenProvider:
    tokens = getattr(runtime, _ATTR, None)
    if tokens is None:
        s = runtime.settings
        tokens = ServiceTokenProvider.from_identity(
            s.identity_addr, CLIENT_ID, s.service_client_secret.get_secret_value()
        )
        setattr(runtime, _ATTR, tokens)
    return tokens


def install_service_tokens(runtime, tokens: ServiceTokenProvider) -> None:
    setattr(runtime, _ATTR, tokens)


async def close_service_tokens(runtime) -> None:
    tokens = getattr(runtime, _ATTR, None)
    if tokens is not None:
        setattr(runtime, _ATTR, None)
        await tokens.close()
