"""Traps and informs end to end on real servers: net-snmp snmptrap (v1, v2c) and snmpinform
(v2c) → agent → Mosquitto → collector → VictoriaMetrics and /metrics (docs/traps.md)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from agent.snmp import ber
from agent.snmp.values import OidValue
from agent.traps.decode import SNMP_TRAP_OID, SYS_UPTIME
from devstack import procs
from devstack.servers import free_port

pytestmark = pytest.mark.servers

SITE = "trap-01"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
FLOODER = "127.0.0.2"  # another loopback address: the flooding device's traps come from it


def _net_snmp(tool: str, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    # -M /dev/null -m "": numeric OIDs only, no MIB loading (and no warnings about MIBs)
    return subprocess.run(
        [tool, "-M", "/dev/null", "-m", "", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def stack(tmp_path: Path, mosquitto: Any, victoria: Any, snmpsim: Any) -> Any:
    http_port, trap_port = free_port(), free_port("udp")
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http_port,
    )
    devices = [
        procs.snmpsim_device("gw", "routeros_rb750gr3", snmpsim.port, interval=30.0, ping=False),
        procs.snmpsim_device("radio", "ceraos", snmpsim.port, interval=1.0, ping=False),
        {
            "name": "flood",
            "host": FLOODER,
            "port": free_port("udp"),
            "interval": 30.0,
            "ping": False,
        },
    ]
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=devices,
        traps={"listen": f"127.0.0.1:{trap_port}", "rate": 5, "burst": 10, "poll_min_interval": 5},
        defaults={"jitter": 0.0},
    )
    coll = procs.collector(ccfg, tmp_path / "collector.log").start()
    agent = procs.agent(acfg, tmp_path / "agent.log").start()
    up = ("pantau_device_up", (("device", "gw"), ("site", SITE)))
    procs.wait_until(lambda: up in procs.scrape(http_port), 30, "gw polled")
    yield {
        "http": http_port,
        "trap": f"127.0.0.1:{trap_port}",
        "agent": agent,
        "victoria": victoria,
        "mosquitto": mosquitto,
        "port": trap_port,
    }
    agent.stop()
    coll.stop()


def _polls(vm: Any, device: str) -> list[int]:
    series = vm.export(f'pantau_poll_seq{{site="{SITE}",device="{device}"}}')
    return series[0]["timestamps"] if series else []


def _metric(http: int, name: str, **labels: str) -> float | None:
    key = (name, tuple(sorted({"site": SITE, **labels}.items())))
    return procs.scrape(http).get(key)


def test_link_down_raises_alarm_polls_at_once_and_link_up_clears_it(stack: Any) -> None:
    http, vm = stack["http"], stack["victoria"]
    polls = procs.wait_until(lambda: _polls(vm, "gw"), 20, "gw's first poll in VictoriaMetrics")
    sent = time.time()
    done = _net_snmp(
        "snmptrap", "-v", "2c", "-c", "public", stack["trap"], "", LINK_DOWN,
        f"{IF_INDEX}.2", "i", "2", "1.3.6.1.2.1.2.2.1.8.2", "i", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    alarm = {"device": "gw", "alarm": "linkDown:ifIndex=2", "severity": "major"}
    procs.wait_until(
        lambda: _metric(http, "pantau_device_alarm", **alarm) == 1.0, 15, "linkDown alarm raised"
    )
    assert _metric(http, "pantau_device_traps_total", device="gw", trap="linkDown") == 1.0
    # The poll it asked for: gw polls every 30 s, the next one came within seconds.
    later = procs.wait_until(
        lambda: [t for t in _polls(vm, "gw") if t > polls[-1]], 10, "a poll right after linkDown"
    )
    assert later[0] / 1000 - sent < 5
    (seq,) = procs.wait_until(
        lambda: vm.export(f'pantau_event_seq{{site="{SITE}",device="gw",trap="linkDown"}}'),
        10,
        "the event in VictoriaMetrics",
    )
    assert seq["values"] == [1] and seq["metric"]["severity"] == "major"

    # SNMPv1 linkUp (generic trap 3) for the same ifIndex clears it.
    done = _net_snmp(
        "snmptrap", "-v", "1", "-c", "public", stack["trap"], "1.3.6.1.4.1.8072", "127.0.0.1",
        "3", "0", "", f"{IF_INDEX}.2", "i", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    procs.wait_until(
        lambda: _metric(http, "pantau_device_traps_total", device="gw", trap="linkUp") == 1.0,
        15,
        "linkUp counted",
    )
    assert _metric(http, "pantau_device_alarm", **alarm) is None


def test_inform_while_broker_is_down_is_acknowledged_and_delivered_once(stack: Any) -> None:
    http, vm, broker = stack["http"], stack["victoria"], stack["mosquitto"]
    broker.stop()
    t0 = time.monotonic()
    done = _net_snmp(
        "snmpinform", "-v", "2c", "-c", "public", "-t", "2", "-r", "2", stack["trap"], "",
        COLD_START,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # acknowledged: it is on the agent's disk
    assert time.monotonic() - t0 < 3
    time.sleep(1.0)
    broker.restart()
    key = {"device": "gw", "trap": "coldStart"}
    procs.wait_until(
        lambda: _metric(http, "pantau_device_traps_total", **key) == 1.0, 30, "coldStart arrived"
    )
    time.sleep(2.0)
    assert _metric(http, "pantau_device_traps_total", **key) == 1.0
    (points,) = vm.export(f'pantau_event_seq{{site="{SITE}",device="gw",trap="coldStart"}}')
    assert points["values"] == [1]


def _v2_trap(request_id: int) -> bytes:
    return ber.encode_message(
        ber.VERSION_2C, b"public", ber.TRAP_V2, request_id, 0, 0,
        [(SYS_UPTIME, ber.Typed(ber.TIMETICKS, 1)), (SNMP_TRAP_OID, OidValue(LINK_DOWN)),
         ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 7), 7)],
    )  # fmt: skip


def test_flood_is_suppressed_and_counted_and_other_devices_keep_schedule(stack: Any) -> None:
    http, vm = stack["http"], stack["victoria"]
    procs.wait_until(lambda: len(_polls(vm, "radio")) >= 2, 20, "radio polling")
    start_ms = time.time() * 1000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((FLOODER, 0))
        end = time.monotonic() + 4.0
        sent = 0
        while time.monotonic() < end:
            for _ in range(50):
                s.sendto(_v2_trap(sent), ("127.0.0.1", stack["port"]))
                s.sendto(b"\x30\x82\xff\xff junk", ("127.0.0.1", stack["port"]))
                sent += 1
            time.sleep(0.005)
        stop_ms = time.time() * 1000
        time.sleep(1.0)  # the bucket refills: the next trap carries the suppressed count
        s.sendto(_v2_trap(sent), ("127.0.0.1", stack["port"]))
    assert sent > 1000
    suppressed = procs.wait_until(
        lambda: _metric(http, "pantau_device_traps_suppressed_total", device="flood"),
        15,
        "suppressed traps reported",
    )
    # 5/s with a burst of 10 over ~4 s: about 30 stored, the rest suppressed
    assert suppressed > sent * 0.9
    stored = _metric(http, "pantau_device_traps_total", device="flood", trap="linkDown")
    assert stored is not None and stored <= 10 + 5 * 6
    assert (_metric(http, "pantau_device_traps_malformed_total", device="flood") or 0) > 0
    procs.wait_until(
        lambda: [t for t in _polls(vm, "radio") if t > stop_ms + 1000], 10, "radio after flood"
    )
    stamps = [t for t in _polls(vm, "radio") if start_ms - 1500 <= t <= stop_ms + 1500]
    gaps = [(b - a) / 1000 for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(stamps) >= 4 and max(gaps) < 1.5, gaps
