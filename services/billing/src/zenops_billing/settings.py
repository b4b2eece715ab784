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

    # -- payment providers (checkout, webhooks). A provider without its secret key is
    # unavailable (CreateCheckout: UNAVAILABLE PROVIDER_NOT_CONFIGURED), and its webhooks are
    # refused until its webhook secret is set. The API bases point the official SDKs elsewhere
    # (tests run a fake provider).
    razorpay_key_id: str = ""
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    razorpay_api_base: str = "https://api.razorpay.com"
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    provider_call_timeout: float = 20.0
    # What a top-up credit costs (paise); a top-up checkout charges credits × this.
    credit_price_paise: int = 50000
    # Where Stripe Checkout sends the payer back ({CHECKOUT_SESSION_ID} is Stripe's placeholder).
    checkout_success_url: str = "http://localhost:8080/billing/checkout/done?session_id={CHECKOUT_SESSION_ID}"
    checkout_cancel_url: str = "http://localhost:8080/billing/checkout/cancelled"
    # Seconds between sweeps that apply stored but unapplied provider events.
    payment_sweep_interval: float = 300.0
