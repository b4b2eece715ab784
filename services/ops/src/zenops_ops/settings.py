"""Settings of the ops service (environment variables ZENOPS_*)."""

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings
from zenops_kit.storage.settings import StorageSettings


class OpsSettings(ServiceSettings, StorageSettings):
    grpc_port: int = 50052
    database_url: SecretStr = SecretStr(f"postgresql://ops:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/ops")

    # billing validates channels' billing account refs (GetAccount with ops' service token).
    billing_addr: str = "127.0.0.1:50053"
    billing_call_timeout: float = 5.0

    # Documents' files: the storage settings (driver, directory, S3 store, signing key, URL
    # lifetime) come from the kit's StorageSettings (zenops_kit.storage.settings).
    max_upload_bytes: int = 25 * 1024 * 1024
