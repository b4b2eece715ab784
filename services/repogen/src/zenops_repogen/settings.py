"""Settings of the repogen service (environment variables ZENOPS_*)."""

from pydantic import SecretStr

from zenops_kit.settings import LOCAL_DEFAULT_DB_PASSWORD, ServiceSettings

from .factory.settings import FactorySettings


class RepogenSettings(ServiceSettings, FactorySettings):
    # The factory's settings (artifact storage, report templates, render retries, the PDF
    # converter) come from FactorySettings (factory/settings.py, helper R3's).
    grpc_port: int = 50054
    database_url: SecretStr = SecretStr(f"postgresql://repogen:{LOCAL_DEFAULT_DB_PASSWORD}@127.0.0.1:15432/repogen")

    # -- peers, called with repogen's own service token (service_tokens.py) ------------------
    # ops: GetAssignment (a work order's assignment, bank code, channel, billing account) and
    # GetDocument (evidence).
    ops_addr: str = "127.0.0.1:50052"
    ops_call_timeout: float = 5.0
    # billing: AuthorizeRelease (the release gate).
    billing_addr: str = "127.0.0.1:50053"
    billing_call_timeout: float = 5.0

    # -- readiness ---------------------------------------------------------------------------
    # An inspection older than this many days is a readiness warning.
    inspection_max_age_days: int = 90
