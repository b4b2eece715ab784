"""Settings of the ops service (environment variables ZENOPS_*)."""

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings


class OpsSettings(ServiceSettings):
    grpc_port: int = 50052
    database_url: SecretStr = SecretStr(f"postgresql://ops:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/ops")
