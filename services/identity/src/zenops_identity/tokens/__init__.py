"""Tokens: signing keys (JWKS, rotation), access-token minting, refresh tokens, and
identity's own verifier (keys from its database, session state checked per call)."""
