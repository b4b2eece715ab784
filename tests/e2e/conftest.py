import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from zenops_devstack.suite import Ports, Suite

# The payment providers' fake HTTP API (billing's tests own it: the wire format the official
# SDKs speak, and the providers' webhook signers).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "billing" / "tests"))
from fake_providers import FakeProviders  # noqa: E402


@pytest.fixture(scope="session")
def providers():
    """Razorpay's and Stripe's APIs (the fake), for checkouts made through the suite."""
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(scope="session")
def suite(providers):
    """The whole suite as `make run` starts it (same code), on free ports in a temp dir."""
    data = Path(tempfile.mkdtemp(prefix="zenops-e2e-"))
    env = {
        # Reconciliation looks at reservations of any age (the e2e tests make them seconds before).
        "ZENOPS_RECONCILE_THRESHOLD_SECONDS": "0",
        # Billing's provider secrets and the SDKs' API base: the fake above.
        **{f"ZENOPS_{name.upper()}": str(value) for name, value in providers.settings().items()},
    }
    s = Suite(data, Ports.free(), extra_env=env)
    s.up(say=lambda *_: None)
    yield s
    s.down()
    shutil.rmtree(data, ignore_errors=True)
