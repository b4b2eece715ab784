"""Settings of the billing service (environment variables ZENOPS_*)."""

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings


class BillingSettings(ServiceSettings):
    grpc_port: int = 50053
    database_url: SecretStr = SecretStr(f"postgresql://billing:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/billing")

    # A reservation without an explicit expires_at expires this long after it is made.
    reservation_ttl_seconds: int = 7 * 24 * 3600
    # Seconds between background runs (this process runs them when run_workers is set).
    expiry_sweep_interval: float = 60.0
    refill_interval: float = 3600.0
    reconcile_interval: float = 3600.0
    # Reconciliation only looks at ACTIVE reservations at least this old.
    reconcile_threshold_seconds: int = 24 * 3600
    # How many reservations one scheduled reconciliation run looks at.
    reconcile_batch: int = 100
    # The owners billing asks about refs (GetBillingRefState), and how long it waits for them.
    ops_addr: str = "127.0.0.1:50052"
    repogen_addr: str = "127.0.0.1:50054"
    owner_call_timeout: float = 5.0
