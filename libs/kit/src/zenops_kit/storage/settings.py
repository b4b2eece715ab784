"""The settings of a service that keeps files (environment variables ZENOPS_*), mixed into
its settings class:

    class OpsSettings(ServiceSettings, StorageSettings): ...

A service may override a default (its own directory, its own bucket) by redeclaring the
field. The signing key is a secret: a production start refuses its shipped default
(KitSettings' rule), whichever driver runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from zenops_kit.settings import KitSettings


class StorageSettings(KitSettings):
    # Where file bytes live. "local": a directory on this machine, signed URLs served by the
    # gateway; "s3": any S3-compatible store.
    storage_driver: Literal["local", "s3"] = "local"
    storage_dir: str = ".data/files"
    s3_bucket: str = "zenops-documents"
    s3_endpoint_url: str = ""  # empty: AWS itself; else MinIO, R2, ...
    s3_region: str = "ap-south-1"
    # None: boto3's own credential chain (e.g. a Kubernetes service account's role), so a
    # production start does not demand keys it may not use.
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    # Signs the local driver's URLs (HMAC-SHA256).
    storage_signing_key: SecretStr = SecretStr("zenops-local-storage-signing-key")
    # Lifetime of a signed upload or download URL.
    signed_url_ttl_seconds: int = 900
