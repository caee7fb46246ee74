"""What a site gateway need not keep in memory (issue 11, item 20; bench/footprint.py measures).

Each test guards one cut of docs/performance.md (Footprint) against coming back unnoticed: a
library loaded although the config does not use it, an executor thread per poll to look up an
address that needs no lookup, a validator kept for objects the agent builds itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import pydantic
import pytest

from agent.config import AgentConfig, Device, load_agent_config
from agent.snmp import SnmpError
from agent.snmp.client import resolve
from devstack import procs

REPO = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, ping: bool) -> Path:
    devices = [procs.snmpsim_device(f"d{i}", "uhp", 16100) for i in range(3)]
    return procs.agent_config(
        tmp_path / "agent.yaml",
        site="fp",
        broker_port=1883,
        devices=devices,
        defaults={"ping": ping},
    )


def _loaded_after_start(config: Path) -> set[str]:
    """Top-level modules loaded by what `pantau-agent run` imports and builds before polling."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import agent.cli, agent.service\n"
        "from agent.config import load_agent_config\n"
        "from agent.icmp import Pinger\n"
        f"cfg = load_agent_config(Path({str(config)!r}))\n"
        "Pinger()\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return set(out.stdout.split())


def test_a_config_that_pings_nothing_does_not_load_icmplib(tmp_path):
    assert "icmplib" not in _loaded_after_start(_config(tmp_path, ping=False))


def test_a_config_that_pings_loads_icmplib_with_the_first_ping(tmp_path):
    from agent.icmp import Pinger, PingSettings

    assert "icmplib" not in _loaded_after_start(_config(tmp_path, ping=True))  # not at start
    group = asyncio.run(Pinger().ping("127.0.0.1", PingSettings(count=1, timeout=0.5)))
    assert "icmplib" in sys.modules
    assert group is None or group.measurement == "icmp"  # None: no ICMP allowed here (logged)


def test_an_ipv4_address_is_its_own_answer_without_an_executor_thread():
    async def main() -> tuple[tuple[str, int], int, int]:
        before = threading.active_count()
        answer = await resolve("192.0.2.7", 161)
        return answer, before, threading.active_count()

    answer, before, after = asyncio.run(main())
    assert answer == ("192.0.2.7", 161)
    assert after == before  # looking it up ran getaddrinfo on a new executor thread


@pytest.mark.parametrize(
    ("host", "address"),
    [("localhost", "127.0.0.1"), ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1")],
)
def test_names_and_shorthand_addresses_are_still_looked_up(host, address):
    assert asyncio.run(resolve(host, 1161)) == (address, 1161)


@pytest.mark.parametrize("host", ["no-such-host.invalid", "::1", "300.1.2.3", ""])
def test_what_is_neither_an_ipv4_address_nor_a_known_name_is_a_resolve_error(host):
    with pytest.raises(SnmpError) as info:
        asyncio.run(resolve(host, 161))
    assert info.value.reason == "resolve"


def test_devices_and_the_agent_config_are_plain_immutable_objects(tmp_path):
    """Built only by load_agent_config from validated parts: no second validation, no
    validator or serializer kept for them (0.4 MiB), and as immutable as the models were."""
    cfg = load_agent_config(_config(tmp_path, ping=False))
    assert not issubclass(AgentConfig, pydantic.BaseModel)
    assert not issubclass(Device, pydantic.BaseModel)
    device = cfg.devices[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        device.interval = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.site = "other"  # type: ignore[misc]
    assert dataclasses.replace(device, interval=5.0).interval == 5.0
    assert cfg.client_id == "pantau-agent-fp"
    assert device == load_agent_config(_config(tmp_path, ping=False)).devices[0]
