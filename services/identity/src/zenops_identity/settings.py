"""Settings of the identity service (environment variables ZENOPS_*)."""

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings


class IdentitySettings(ServiceSettings):
    grpc_port: int = 50051
    database_url: SecretStr = SecretStr(f"postgresql://identity:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/identity")
