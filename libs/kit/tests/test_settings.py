import pytest
from pydantic import SecretStr

from zenops_kit.db import async_url
from zenops_kit.settings import DefaultSecretError, ServiceSettings


def test_local_mode_accepts_the_local_defaults():
    assert ServiceSettings(environment="local").database_url.get_secret_value()


def test_production_refuses_default_secrets_and_names_them():
    with pytest.raises(DefaultSecretError, match="ZENOPS_DATABASE_URL"):
        ServiceSettings(environment="production")


def test_production_accepts_real_secrets(monkeypatch):
    monkeypatch.setenv("ZENOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("ZENOPS_DATABASE_URL", "postgresql://billing:s3cr3t-from-vault@db:5432/billing")
    monkeypatch.setenv("ZENOPS_SERVICE_CLIENT_SECRET", "client-s3cr3t-from-vault")
    settings = ServiceSettings()
    assert settings.is_production
    assert isinstance(settings.database_url, SecretStr)
    assert "s3cr3t" not in repr(settings)  # secrets never print


def test_production_refuses_the_local_service_client_secret(monkeypatch):
    monkeypatch.setenv("ZENOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("ZENOPS_DATABASE_URL", "postgresql://billing:s3cr3t-from-vault@db:5432/billing")
    with pytest.raises(DefaultSecretError, match="ZENOPS_SERVICE_CLIENT_SECRET"):
        ServiceSettings()


def test_operator_urls_are_driven_by_asyncpg():
    assert async_url("postgresql://u:p@h:5432/d") == "postgresql+asyncpg://u:p@h:5432/d"
    assert async_url("postgresql+asyncpg://u:p@h/d") == "postgresql+asyncpg://u:p@h/d"
