"""Settings of the repogen service (environment variables ZENOPS_*)."""

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings


class RepogenSettings(ServiceSettings):
    grpc_port: int = 50054
    database_url: SecretStr = SecretStr(f"postgresql://repogen:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/repogen")
