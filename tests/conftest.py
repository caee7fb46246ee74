"""Shared pytest fixtures: real servers on loopback (see tests/support/servers.py)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# `--import-mode=importlib` leaves sys.path alone; make `tests.support` importable under any runner
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devstack.servers import Mosquitto, SnmpSim, VictoriaMetrics  # noqa: E402

SERVER_FIXTURES = {"mosquitto", "victoria", "snmpsim"}
SERVER_MODULES = (
    "devstack.servers",
    "devstack.procs",
    "devstack.prometheus",
    "devstack.netcut",
    "devstack.polling",
    "tests.support.netns",
)
"""A test that uses one of these starts real servers or processes: it is marked `servers`."""


def _starts_servers(item: pytest.Item) -> bool:
    if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    for value in vars(module).values() if module is not None else ():
        name = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        if isinstance(name, str) and name.startswith(SERVER_MODULES):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test `servers` (real servers or processes, seconds each) or `unit` (pure, in
    process): `make check` runs the unit tests only, `make test` runs both."""
    for item in items:
        if item.get_closest_marker("servers") is None and not _starts_servers(item):
            item.add_marker(pytest.mark.unit)
        elif item.get_closest_marker("servers") is None:
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (the directory holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def devices_dir(repo_root: Path) -> Path:
    """tests/data/devices: the snmpsim recordings (community = file name without .snmprec)."""
    return repo_root / "tests" / "data" / "devices"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh mosquitto broker with persistence, stopped (SIGTERM) after the test."""
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A fresh, empty VictoriaMetrics, stopped after the test.

    Deduplication of identical (series, timestamp) points is on, as in InfluxDB, where a point
    written again with the same series and timestamp replaces the first: pantau relies on it
    to make redelivered sample sets harmless."""
    with VictoriaMetrics(tmp_path / "victoria", extra_args=("-dedup.minScrapeInterval=1ms",)) as vm:
        yield vm


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory, devices_dir: Path) -> Iterator[SnmpSim]:
    """One snmpsim for the session serving every tests/data/devices/*.snmprec under its stem.

    Shared: do not stop or restart it in a test; start your own SnmpSim for that.
    """
    recordings = sorted(devices_dir.glob("*.snmprec"))
    with SnmpSim(tmp_path_factory.mktemp("snmpsim"), recordings) as sim:
        yield sim
