"""Reachability by ICMP echo: RTT and loss per device and per upstream target, including a
device that answers ping but not SNMP, and a target that never answers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import yaml

from agent.icmp import Pinger, PingSettings
from devstack import procs
from tests.support.netns import silent_host

FAST = PingSettings(count=3, interval=0.05, timeout=0.5)


def fields(group) -> dict:
    return {f.name: f.value for f in group.fields}


def test_loopback_answers_with_rtt_and_no_loss():
    group = asyncio.run(Pinger().ping("127.0.0.1", FAST))
    got = fields(group)
    assert (got["sent"], got["received"], got["loss_ratio"]) == (3, 3, 0.0)
    assert 0 < got["rtt_min_seconds"] <= got["rtt_seconds"] <= got["rtt_max_seconds"] < 0.5


def test_silent_host_gives_full_loss_and_no_rtt():
    with silent_host() as address:
        t0 = time.monotonic()
        group = asyncio.run(Pinger().ping(address, FAST))
        elapsed = time.monotonic() - t0
    got = fields(group)
    assert (got["sent"], got["received"], got["loss_ratio"]) == (3, 0, 1.0)
    assert "rtt_seconds" not in got
    assert elapsed < 3  # bounded by the timeout, not hanging


def test_probe_shows_ping_beside_snmp_and_upstream_targets(tmp_path, snmpsim):
    with silent_host() as silent:
        cfg = tmp_path / "agent.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "site": "vsat-01",
                    "defaults": {
                        "timeout": 0.5,
                        "retries": 0,
                        "ping_count": 2,
                        "ping_interval": 0.05,
                        "ping_timeout": 0.5,
                    },
                    "devices": [
                        {
                            "name": "radio",
                            "host": "127.0.0.1",
                            "port": snmpsim.port,
                            "snmp": {"community": "ceraos"},
                        },
                        # answers ping (it is this host) but not SNMP (no such community)
                        {
                            "name": "modem",
                            "host": "127.0.0.1",
                            "port": snmpsim.port,
                            "snmp": {"community": "no-such-recording"},
                        },
                        {
                            "name": "quiet",
                            "host": "127.0.0.1",
                            "port": snmpsim.port,
                            "ping": False,
                            "snmp": {"community": "ceraos"},
                        },
                    ],
                    "ping_targets": [
                        {"name": "noc", "host": "127.0.0.1"},
                        {"name": "vsat-hub", "host": silent},
                    ],
                }
            )
        )
        run = subprocess.run(
            [str(procs.BIN / "pantau-agent"), "probe", "--config", str(cfg), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    results = {r["device"]: r for r in json.loads(run.stdout)}
    assert run.returncode == 1  # modem and vsat-hub are down

    def icmp(device: str) -> dict:
        return {
            v["name"]: v["value"] for v in results[device]["values"] if v["measurement"] == "icmp"
        }

    assert results["radio"]["up"] and icmp("radio")["received"] == 2
    assert (results["modem"]["up"], results["modem"]["reason"]) == (False, "timeout")
    assert icmp("modem")["received"] == 2  # the NOC sees: pings fine, SNMP dead
    assert icmp("quiet") == {}
    assert results["noc"]["up"] and icmp("noc")["loss_ratio"] == 0.0
    assert icmp("noc")["rtt_seconds"] > 0
    assert (results["vsat-hub"]["up"], results["vsat-hub"]["reason"]) == (False, "unreachable")
    assert icmp("vsat-hub")["loss_ratio"] == 1.0
    # ICMP-only targets poll no SNMP at all
    assert {v["measurement"] for v in results["noc"]["values"]} == {"icmp"}
