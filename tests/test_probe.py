"""`pantau-agent probe`, the field tool: run as a subprocess against the session snmpsim, with the
expected values read from the recordings."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.profiles.model import builtin_profiles
from devstack import snmprec
from devstack.servers import SnmpSim

AGENT = Path(sys.executable).parent / "pantau-agent"
TIMEOUT = 1.0  # per request, retries 0

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"

RADIO = ("radio", "ceraos")  # device name, community = recording
GATEWAY = ("gateway", "routeros_rb750gr3")


@dataclass
class ProbeRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        out = {r["device"]: r for r in json.loads(self.stdout)}
        assert len(out) == len(json.loads(self.stdout)), "a device reported twice"
        return out


def run_probe(config: Path, *args: str) -> ProbeRun:
    started = time.monotonic()
    proc = subprocess.run(
        [str(AGENT), "probe", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - started
    assert "Traceback" not in proc.stderr, proc.stderr
    return ProbeRun(proc.returncode, proc.stdout, proc.stderr, seconds)


def write_config(path: Path, sim: SnmpSim, devices: list[tuple[str, str]]) -> Path:
    """devices: (name, community)."""
    doc = {
        "site": "lab",
        "defaults": {"timeout": TIMEOUT, "retries": 0},
        "devices": [
            {"name": name, "host": sim.host, "port": sim.port, "snmp": {"community": community}}
            for name, community in devices
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def text(value: object) -> str:
    assert isinstance(value, bytes)
    return value.decode()


def interfaces(result: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{ifIndex: {field name: value row}} from a probe's JSON result."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for v in result["values"]:
        if v["measurement"] == "interface":
            out.setdefault(v["tags"]["ifIndex"], {})[v["name"]] = v
    return out


@pytest.fixture(scope="module")
def radio_records(devices_dir: Path) -> dict[str, object]:
    return snmprec.load(devices_dir / f"{RADIO[1]}.snmprec")


@pytest.fixture(scope="module")
def expected_in_octets(radio_records: dict[str, object]) -> dict[str, object]:
    """in_octets per ifIndex: ifHCInOctets where the radio has it, else 32-bit ifInOctets."""
    hc = snmprec.column(radio_records, IF_HC_IN_OCTETS)
    low = snmprec.column(radio_records, IF_IN_OCTETS)
    # The data must let a wrong choice show: some row has both counters and they differ.
    assert any(hc[i] != low[i] for i in hc.keys() & low.keys())
    return {**low, **hc}


@pytest.fixture
def config(tmp_path: Path, snmpsim: SnmpSim) -> Path:
    assert {RADIO[1], GATEWAY[1]} <= set(snmpsim.communities)
    return write_config(tmp_path / "agent.yaml", snmpsim, [RADIO, GATEWAY])


def test_table_output_names_interfaces_with_values_and_units(
    config: Path, radio_records: dict[str, object], expected_in_octets: dict[str, object]
):
    run = run_probe(config, "--device", RADIO[0])
    assert run.rc == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert re.fullmatch(rf"== {RADIO[0]} \(127\.0\.0\.1:\d+\) up in \d+ ms", lines[0])
    assert text(radio_records[SYS_DESCR]) in run.stdout

    names = snmprec.column(radio_records, IF_NAME)
    ifindexes = snmprec.column(radio_records, IF_OPER_STATUS)
    assert ifindexes and set(ifindexes) <= set(names)
    for index in ifindexes:
        row_lines = [line for line in lines if re.search(rf"ifIndex={index}[,}}]", line)]
        assert row_lines, f"no row for ifIndex {index}"
        assert all(f"ifName={text(names[index])}" in line for line in row_lines)

    in_octets = {}
    for line in lines:
        if match := re.search(r"ifIndex=(\d+)[,}].*\sin_octets\s+(\S+)( \S+)?$", line):
            assert match[3] == " bytes", line
            in_octets[match[1]] = int(match[2])
    assert in_octets == expected_in_octets

    uptime = [line for line in lines if re.search(r"\suptime_seconds\s", line)]
    assert len(uptime) == 1 and uptime[0].endswith(" s")
    shown = float(uptime[0].split()[-2])
    assert shown == pytest.approx(int(radio_records[SYS_UPTIME]) / 100)  # type: ignore[call-overload]


def test_json_values_equal_the_recording(
    config: Path, radio_records: dict[str, object], expected_in_octets: dict[str, object]
):
    run = run_probe(config, "--json", "--device", RADIO[0])
    assert run.rc == 0, run.stdout + run.stderr
    result = run.results[RADIO[0]]
    assert (result["up"], result["reason"]) == (True, "")

    system = {v["name"]: v for v in result["values"] if v["measurement"] == "system"}
    assert system["descr"]["value"] == text(radio_records[SYS_DESCR])
    assert system["object_id"]["value"] == radio_records[SYS_OBJECT_ID]
    assert system["uptime_seconds"]["value"] == pytest.approx(int(radio_records[SYS_UPTIME]) / 100)  # type: ignore[call-overload]
    assert system["uptime_seconds"]["unit"] == "s"

    rows = interfaces(result)
    got_in = {i: r["in_octets"]["value"] for i, r in rows.items() if "in_octets" in r}
    assert got_in == expected_in_octets
    assert {r["in_octets"]["unit"] for r in rows.values() if "in_octets" in r} == {"bytes"}

    states = next(
        c.states
        for t in builtin_profiles()["if-mib"].tables
        for c in t.columns
        if c.name == "oper_status"
    )
    assert states is not None
    oper = snmprec.column(radio_records, IF_OPER_STATUS)
    assert len(set(oper.values())) > 1  # up and down both present: a constant would not pass
    assert {i: rows[i]["oper_status"]["value"] for i in oper} == oper
    for index, value in oper.items():
        assert rows[index]["oper_status"]["state"] == states[value]  # type: ignore[index]


def test_device_option_selects_one_device(config: Path, devices_dir: Path):
    gateway = snmprec.load(devices_dir / f"{GATEWAY[1]}.snmprec")
    run = run_probe(config, "--json", "--device", GATEWAY[0])
    assert run.rc == 0, run.stdout + run.stderr
    assert list(run.results) == [GATEWAY[0]]
    result = run.results[GATEWAY[0]]
    system = {v["name"]: v["value"] for v in result["values"] if v["measurement"] == "system"}
    assert system["descr"] == text(gateway[SYS_DESCR])
    assert result["up"] is True


def test_unknown_device_exits_2(config: Path):
    run = run_probe(config, "--device", "no-such-device")
    assert run.rc == 2
    assert run.stdout == ""
    assert "no-such-device" in run.stderr and str(config) in run.stderr


DEAD = [f"dead{i}" for i in range(6)]


@pytest.fixture(scope="module")
def dead_run(tmp_path_factory: pytest.TempPathFactory, snmpsim: SnmpSim) -> ProbeRun:
    """Six devices whose community matches no recording (snmpsim stays silent) and the radio,
    dead ones first, in one probe."""
    devices = [(name, "none-" + secrets.token_hex(4)) for name in DEAD]
    assert not {c for _, c in devices} & set(snmpsim.communities)
    path = tmp_path_factory.mktemp("dead") / "agent.yaml"
    return run_probe(write_config(path, snmpsim, [*devices, RADIO]), "--json")


def test_dead_device_times_out_without_holding_up_the_others(dead_run: ProbeRun):
    assert dead_run.rc == 1, dead_run.stdout + dead_run.stderr
    results = dead_run.results
    timeout_ms = TIMEOUT * 1000
    for name in DEAD:
        dead = results[name]
        snmp_values = [v for v in dead["values"] if v["measurement"] != "icmp"]
        assert (dead["up"], dead["reason"], snmp_values) == (False, "timeout", [])
        # The host itself answers ping: the NOC can tell "SNMP dead" from "device gone".
        assert {v["name"]: v["value"] for v in dead["values"]}.get("received") == 3
        assert dead["errors"] == {"timeout": 1}
        assert dead["duration_ms"] >= timeout_ms  # it did wait for its answer
    radio = results[RADIO[0]]
    assert (radio["up"], radio["reason"]) == (True, "")
    assert any(v["name"] == "in_octets" for v in radio["values"])
    # Not queued behind the dead devices: all polls start together, so the radio must be done
    # at least half a timeout before the first dead device gives up. (Relative, because every
    # duration also holds the CPU-bound set-up pysnmp does on the first request, ~0.5 s here.)
    first_dead_done = min(results[name]["duration_ms"] for name in DEAD)
    assert radio["duration_ms"] <= first_dead_done - timeout_ms / 2


def test_devices_are_probed_concurrently(dead_run: ProbeRun):
    # One after the other, each dead device's poll would start a whole timeout after the
    # previous one's; probed together, they all start before the first has timed out.
    starts = sorted(dead_run.results[name]["ts_ms"] for name in DEAD)
    assert (starts[-1] - starts[0]) / 1000 < TIMEOUT, starts
