"""`pantau-agent probe` against real agents: SNMPv3 USM and v2c against net-snmp's snmpd, SNMPv1
against snmpsim's UHP VSAT modem recording.

Every SNMPv3 auth/priv pair below is one net-snmp really answers (see tests/support/servers.py),
and each user's rouser line demands its security level, so a probe that silently dropped privacy
would be refused. Keys are random per run so the tests can check they never reach the output.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import snmprec
from devstack.servers import Snmpd, SnmpSim, V3User

AGENT = Path(sys.executable).parent / "pantau-agent"
TIMEOUT = 1.0  # per request; retries 0. Only the failure cases wait for it.

IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_OUT_OCTETS = "1.3.6.1.2.1.2.2.1.16"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"


@dataclass(frozen=True)
class Case:
    """One USM user. Our config's protocol names are net-snmp's for all of these; "AES-256"
    means the Blumenthal key extension in both (Cisco's Reeder variant is "AES-256-C")."""

    id: str
    auth: str
    priv: str | None
    secrets_from: str  # "file" or "env"


CASES = [
    Case("sha-aes", "SHA", "AES", "file"),
    Case("sha256-aes", "SHA-256", "AES", "env"),
    Case("sha512-aes256", "SHA-512", "AES-256", "file"),
    # SHA-1 gives 20 bytes, AES-256 needs 32: only here does the key extension (Blumenthal vs
    # Reeder) change the key, so only this pair proves the "AES-256" mapping right.
    Case("sha-aes256", "SHA", "AES-256", "env"),
    Case("sha-authnopriv", "SHA", None, "file"),
    Case("md5-des", "MD5", "DES", "env"),
]
WRONG_AUTH_USER = "wrong-auth"
WRONG_PRIV_USER = "wrong-priv"


def new_key() -> str:
    return "k" + secrets.token_hex(10)


def make_user(name: str, auth: str, priv: str | None) -> V3User:
    return V3User(name, auth, new_key(), priv, new_key() if priv else None)


@dataclass
class ProbeRun:
    config: Path
    rc: int
    stdout: str
    stderr: str

    @property
    def results(self) -> list[dict[str, Any]]:
        return json.loads(self.stdout)

    def result(self, device: str) -> dict[str, Any]:
        found = [r for r in self.results if r["device"] == device]
        assert len(found) == 1, f"{device} not exactly once in {self.stdout}"
        return found[0]


def run_probe(config: Path, *args: str, env: dict[str, str] | None = None) -> ProbeRun:
    proc = subprocess.run(
        [str(AGENT), "probe", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return ProbeRun(config, proc.returncode, proc.stdout, proc.stderr)


def write_config(folder: Path, devices: list[dict[str, Any]]) -> Path:
    path = folder / "agent.yaml"
    doc = {"site": "lab", "defaults": {"timeout": TIMEOUT, "retries": 0}, "devices": devices}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Secrets:
    """Hands secrets to the agent as 0600 files or environment variables, and remembers them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env: dict[str, str] = {}
        self.values: list[str] = []

    def give(self, what: str, value: str, how: str) -> dict[str, str]:
        self.values.append(value)
        slot = f"{what}_{len(self.values)}"
        if how == "env":
            var = f"PANTAU_TEST_{slot.upper()}"
            self.env[var] = value
            return {f"{what}_env": var}
        path = self.folder / f"{slot}.secret"
        path.write_text(value + "\n")
        path.chmod(0o600)
        return {f"{what}_file": str(path)}

    def assert_not_in(self, run: ProbeRun) -> None:
        for value in self.values:
            assert value not in run.stdout and value not in run.stderr, "a secret leaked"


def v3_device(
    name: str,
    snmpd: Snmpd,
    user: V3User,
    sec: Secrets,
    how: str = "file",
    auth_key: str | None = None,
    priv_key: str | None = None,
) -> dict[str, Any]:
    """A device entry for `user` on `snmpd`; auth_key/priv_key override the user's keys."""
    assert user.auth_protocol is not None and user.auth_key is not None
    snmp: dict[str, Any] = {
        "version": 3,
        "user": user.name,
        "auth_protocol": user.auth_protocol,
        **sec.give("auth_key", auth_key or user.auth_key, how),
    }
    if user.priv_protocol is not None and user.priv_key is not None:
        snmp["priv_protocol"] = user.priv_protocol
        snmp.update(sec.give("priv_key", priv_key or user.priv_key, how))
    return {
        "name": name,
        "host": snmpd.host,
        "port": snmpd.port,
        "profiles": ["system"],
        "snmp": snmp,
    }


def system_values(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in result["values"] if v["measurement"] == "system"}


@pytest.fixture(scope="module")
def users() -> dict[str, V3User]:
    out = {c.id: make_user(c.id, c.auth, c.priv) for c in CASES}
    out[WRONG_AUTH_USER] = make_user(WRONG_AUTH_USER, "SHA", "AES")
    out[WRONG_PRIV_USER] = make_user(WRONG_PRIV_USER, "SHA", "AES")
    return out


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory, users: dict[str, V3User]) -> Iterator[Snmpd]:
    with Snmpd(
        tmp_path_factory.mktemp("snmpd"),
        users=users.values(),
        community="c" + secrets.token_hex(6),
        sysname="pantau-v3-" + secrets.token_hex(3),
    ) as agent:
        yield agent


@pytest.fixture(scope="module")
def good_run(
    tmp_path_factory: pytest.TempPathFactory, snmpd: Snmpd, users: dict[str, V3User]
) -> tuple[ProbeRun, Secrets]:
    """One probe of every user in CASES plus a v2c device, all against `snmpd` at once (as the
    agent polls them: concurrently, through one SNMP engine)."""
    folder = tmp_path_factory.mktemp("good")
    sec = Secrets(folder)
    devices = [v3_device(c.id, snmpd, users[c.id], sec, c.secrets_from) for c in CASES]
    devices.append(
        {
            "name": "v2c",
            "host": snmpd.host,
            "port": snmpd.port,
            "profiles": ["system"],
            "snmp": {"version": "2c", **sec.give("community", snmpd.community, "file")},
        }
    )
    return run_probe(write_config(folder, devices), "--json", env=sec.env), sec


@pytest.mark.parametrize("device", [c.id for c in CASES] + ["v2c"])
def test_user_is_polled(device: str, good_run: tuple[ProbeRun, Secrets], snmpd: Snmpd):
    run, _ = good_run
    result = run.result(device)
    assert (result["up"], result["reason"], result["errors"]) == (True, "", {})
    values = system_values(result)
    assert values["name"]["value"] == snmpd.sysname
    uptime = values["uptime_seconds"]
    assert type(uptime["value"]) in (int, float) and uptime["value"] > 0
    assert uptime["unit"] == "s"


def test_probe_of_good_users_exits_0_and_shows_no_secret(good_run: tuple[ProbeRun, Secrets]):
    run, sec = good_run
    assert run.rc == 0, run.stdout + run.stderr
    assert len(sec.values) == 2 * len(CASES) - sum(c.priv is None for c in CASES) + 1
    sec.assert_not_in(run)
    table = run_probe(run.config, env=sec.env)  # the human-readable form too
    assert table.rc == 0 and table.stdout.count("== ") == len(CASES) + 1
    sec.assert_not_in(table)


@pytest.mark.parametrize(
    ("mistake", "reason"),
    [
        ("wrong auth key", "auth"),
        ("unknown user", "auth"),
        # snmpd cannot tell a wrong priv key from line noise: the scoped PDU decrypts to garbage,
        # fails to parse and is dropped without a report (snmpInASNParseErrs). Only silence is left.
        ("wrong priv key", "timeout"),
    ],
)
def test_v3_wrong_credentials_fail_clearly_without_leaking(
    mistake: str, reason: str, snmpd: Snmpd, users: dict[str, V3User], tmp_path: Path
):
    sec = Secrets(tmp_path)
    if mistake == "wrong auth key":
        device = v3_device("dev", snmpd, users[WRONG_AUTH_USER], sec, auth_key=new_key())
    elif mistake == "unknown user":
        stranger = make_user("nobody-" + secrets.token_hex(3), "SHA", "AES")
        device = v3_device("dev", snmpd, stranger, sec)
    else:
        device = v3_device("dev", snmpd, users[WRONG_PRIV_USER], sec, priv_key=new_key())
    config = write_config(tmp_path, [device])
    run = run_probe(config, "--json", env=sec.env)
    assert run.rc == 1, run.stdout + run.stderr
    result = run.result("dev")
    snmp_values = [v for v in result["values"] if v["measurement"] != "icmp"]
    assert (result["up"], result["reason"], snmp_values) == (False, reason, [])
    assert result["errors"] == {reason: 1}
    sec.assert_not_in(run)
    # the right keys of that user must not show either
    for user in users.values():
        for key in (user.auth_key, user.priv_key):
            assert key is None or (key not in run.stdout and key not in run.stderr)


def test_v3_same_user_name_with_different_keys_on_two_devices(tmp_path: Path):
    name = "pantau"
    first, second = make_user(name, "SHA", "AES"), make_user(name, "SHA", "AES")
    sec = Secrets(tmp_path)
    with (
        Snmpd(tmp_path / "a", users=[first], sysname="site-a") as a,
        Snmpd(tmp_path / "b", users=[second], sysname="site-b") as b,
    ):
        config = write_config(
            tmp_path, [v3_device("a", a, first, sec), v3_device("b", b, second, sec)]
        )
        run = run_probe(config, "--json", env=sec.env)
    sec.assert_not_in(run)
    got = {
        r["device"]: (r["up"], r["reason"], system_values(r).get("name", {}).get("value"))
        for r in run.results
    }
    assert got == {"a": (True, "", "site-a"), "b": (True, "", "site-b")}
    assert run.rc == 0


def test_v1_reads_32_bit_counters_of_a_vsat_modem(
    snmpsim: SnmpSim, devices_dir: Path, tmp_path: Path
):
    records = snmprec.load(devices_dir / "uhp.snmprec")
    in_octets = snmprec.column(records, IF_IN_OCTETS)
    out_octets = snmprec.column(records, IF_OUT_OCTETS)
    # what makes this recording the right one: 32-bit ifTable counters only, no ifXTable
    assert in_octets and out_octets and any(in_octets.values())
    assert not snmprec.column(records, IF_HC_IN_OCTETS)
    assert not snmprec.column(records, IF_HC_OUT_OCTETS)
    assert "uhp" in snmpsim.communities

    device = {
        "name": "vsat",
        "host": snmpsim.host,
        "port": snmpsim.port,
        "profiles": ["system", "if-mib"],
        "snmp": {"version": 1, "community": "uhp"},
    }
    run = run_probe(write_config(tmp_path, [device]), "--json")
    assert run.rc == 0, run.stdout + run.stderr
    result = run.result("vsat")
    assert (result["up"], result["reason"]) == (True, "")
    rows: dict[str, dict[str, Any]] = {}
    for v in result["values"]:
        if v["measurement"] == "interface":
            rows.setdefault(v["tags"]["ifIndex"], {})[v["name"]] = v["value"]
    assert set(rows) == set(snmprec.column(records, IF_OPER_STATUS))
    assert {i: r.get("in_octets") for i, r in rows.items()} == in_octets
    assert {i: r.get("out_octets") for i, r in rows.items()} == out_octets
    assert system_values(result)["uptime_seconds"]["value"] == pytest.approx(
        records["1.3.6.1.2.1.1.3.0"] / 100
    )
