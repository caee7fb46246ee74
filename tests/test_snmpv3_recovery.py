"""A device that reboots is noticed (sysUpTime backwards) and, over SNMPv3, followed without
an agent restart: with the same engine ID (new boots/time) and with a new one (reset)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from agent.config import load_agent_config
from agent.poller import DevicePoller
from agent.snmp import SnmpClient
from devstack.servers import Snmpd, V3User

USER = V3User("pantau", "SHA", "authpass-1234", "AES", "privpass-1234")


def config(tmp_path: Path, port: int):
    for name, key in (("auth", USER.auth_key), ("priv", USER.priv_key)):
        (tmp_path / name).write_text(str(key))
        (tmp_path / name).chmod(0o600)
    (tmp_path / "agent.yaml").write_text(
        "site: s\ndevices:\n  - name: core\n    host: 127.0.0.1\n"
        f"    port: {port}\n    timeout: 1\n    retries: 0\n    profiles: [system]\n"
        "    snmp: {version: 3, user: pantau, auth_protocol: SHA, "
        f"auth_key_file: {tmp_path / 'auth'}, priv_protocol: AES, "
        f"priv_key_file: {tmp_path / 'priv'}}}\n"
    )
    return load_agent_config(tmp_path / "agent.yaml")


def reset_engine(snmpd: Snmpd) -> None:
    """Restart with an empty persistent dir: a new engine ID, as after a factory reset."""
    snmpd.stop()
    for entry in snmpd.persistent_dir.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    snmpd.start()


@pytest.mark.parametrize("how", ["reboot", "new-engine-id"])
def test_v3_device_is_followed_across_reboot(tmp_path, how):
    with Snmpd(tmp_path / "snmpd", users=[USER], sysname="core-sw") as snmpd:
        cfg = config(tmp_path, snmpd.port)

        async def run() -> list:
            results = []
            async with SnmpClient() as client:
                poller = DevicePoller("s", cfg.devices[0], client, lambda _: 0)
                results.append(await poller.poll())
                time.sleep(1.1)  # let sysUpTime advance past a tick or two
                results.append(await poller.poll())
                if how == "reboot":
                    snmpd.restart()
                else:
                    reset_engine(snmpd)
                for _ in range(3):
                    results.append(await poller.poll())
            return results

        results = asyncio.run(run())
    assert results[0].up and results[1].up
    after = results[2:]
    # At most the first poll after the restart may fail; the agent recovers by itself.
    assert all(r.up for r in after[1:]), [(r.up, r.reason) for r in after]
    names = {f.value for r in after if r.up for g in r.groups for f in g.fields if f.name == "name"}
    assert names == {"core-sw"}
    # The reboot is reported once, and counted.
    first_up = next(r for r in after if r.up)
    assert first_up.rebooted and first_up.reboots == 1
    assert not after[-1].rebooted and after[-1].reboots == 1
