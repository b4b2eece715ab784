"""Settings of the billing service (environment variables ZENOPS_*)."""

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings


class BillingSettings(ServiceSettings):
    grpc_port: int = 50053
    database_url: SecretStr = SecretStr(f"postgresql://billing:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/billing")
