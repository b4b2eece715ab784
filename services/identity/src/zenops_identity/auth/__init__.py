"""Authentication use cases: login, refresh, logout, sessions, password change, service
tokens, introspection and signing-key rotation. Each runs its reads and writes — with its
audit row and outbox events — in one transaction; domain/ decides, store/ stores."""
