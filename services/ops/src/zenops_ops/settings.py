"""Settings of the ops service (environment variables ZENOPS_*)."""

from typing import Literal

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings


class OpsSettings(ServiceSettings):
    grpc_port: int = 50052
    database_url: SecretStr = SecretStr(f"postgresql://ops:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/ops")

    # billing validates channels' billing account refs (GetAccount with ops' service token).
    billing_addr: str = "127.0.0.1:50053"
    billing_call_timeout: float = 5.0

    # Documents: where file bytes live. "local": a directory on this machine, signed URLs
    # served by the gateway (/v1/files/<token>); "s3": any S3-compatible store.
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
    max_upload_bytes: int = 25 * 1024 * 1024
