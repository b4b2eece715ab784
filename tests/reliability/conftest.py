"""The reliability suite's fast form (run by `make test`): its own suite — the chaos kills and
restarts its processes, PostgreSQL and NATS — on free ports in a temp dir, multi-tenant so that
the isolation sweep has a second tenant. Each test records its figures; the session prints them
and writes `.reliability/summary.json` (the full form, `make reliability`, writes the same)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from zenops_devstack.suite import REPO_ROOT, Ports, Suite

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO_ROOT / "services" / "billing" / "tests"))
from chaos_harness import World, sbi_world, suite_env  # noqa: E402
from fake_providers import FakeProviders  # noqa: E402
from reliability_summary import FIGURES, print_table, write_summary  # noqa: E402


@pytest.fixture(scope="session")
def rproviders():
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(scope="session")
def rsuite(rproviders):
    data = Path(tempfile.mkdtemp(prefix="zenops-reliability-"))
    s = Suite(data, Ports.free(), extra_env=suite_env(rproviders))
    s.up(say=lambda *_: None)
    yield s
    s.down()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def world(rsuite) -> World:
    return sbi_world(rsuite)


@pytest.fixture
def figures():
    """`figures("r2", {...})` records a test's figures for the session's summary."""
    return FIGURES.__setitem__


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        write_summary(REPO_ROOT / ".reliability" / "summary.json", FIGURES, form="fast")
        print_table(FIGURES, terminalreporter.write_line)
