import shutil
import tempfile
from pathlib import Path

import pytest

from zenops_devstack.suite import Ports, Suite


@pytest.fixture(scope="session")
def suite():
    """The whole suite as `make run` starts it (same code), on free ports in a temp dir."""
    data = Path(tempfile.mkdtemp(prefix="zenops-e2e-"))
    # Reconciliation looks at reservations of any age (the e2e tests make them seconds before).
    s = Suite(data, Ports.free(), extra_env={"ZENOPS_RECONCILE_THRESHOLD_SECONDS": "0"})
    s.up(say=lambda *_: None)
    yield s
    s.down()
    shutil.rmtree(data, ignore_errors=True)
