"""SNMPv3 traps and informs (docs/traps.md): net-snmp's snmptrap -v3 and snmpinform -v3
(authPriv SHA/AES) to the agent's real receiver on loopback, into a real outbox; and once
(SHA-256/AES-256) through a real agent process, Mosquitto and the collector."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from agent.config import AgentConfig, TrapsConfig, TrapUser, load_agent_config
from agent.outbox import Outbox
from agent.traps.receiver import TrapReceiver, default_engine_id
from agent.traps.usm import MAX_ENGINES_PER_DEVICE, read_header
from pantau.wire import decode_event

pytestmark = pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp tools")

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
AUTH_KEY, PRIV_KEY = "noc-auth-secret-1", "noc-priv-secret-1"
RADIO_AUTH, RADIO_PRIV = "radio-auth-key-22", "radio-priv-key-22"


def _config(tmp_path: Path) -> AgentConfig:
    (tmp_path / "auth.key").write_text(AUTH_KEY + "\n")
    (tmp_path / "auth.key").chmod(0o600)
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"""site: s1
outbox: {{path: {tmp_path / "o.sqlite"}}}
devices:
  - {{name: r1, host: 127.0.0.1}}
  - name: radio
    host: 127.0.0.2
    snmp: {{version: 3, user: radio, auth_protocol: SHA, auth_key_env: T_RADIO_AUTH,
            priv_protocol: AES, priv_key_env: T_RADIO_PRIV}}
traps:
  listen: "127.0.0.1:0"
  poll_min_interval: 60
  users:
    - {{user: noc, auth_protocol: SHA, auth_key_file: {tmp_path / "auth.key"},
        priv_protocol: AES, priv_key_env: T_NOC_PRIV}}
"""
    )
    return load_agent_config(path)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("T_NOC_PRIV", PRIV_KEY)
    monkeypatch.setenv("T_RADIO_AUTH", RADIO_AUTH)
    monkeypatch.setenv("T_RADIO_PRIV", RADIO_PRIV)
    return tmp_path


async def _net_snmp(
    tool: str, port: int, *args: str, source: str = "127.0.0.1", inform_oid: str = COLD_START
) -> tuple[int, str]:
    """snmptrap/snmpinform -v3 with numeric OIDs; its persistent state (its engine boots) in a
    temporary directory, its source address chosen."""
    proc = await asyncio.create_subprocess_exec(
        tool, "-M", "/dev/null", "-m", "", f"--clientaddr={source}", "-v", "3", "-t", "1",
        "-r", "1", *args, f"127.0.0.1:{port}", "", LINK_DOWN if tool == "snmptrap" else inform_oid,
        "1.3.6.1.2.1.2.2.1.1.4", "i", "4",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SNMP_PERSISTENT_DIR": os.environ["T_SNMP_DIR"], "HOME": "/nonexistent"},
    )  # fmt: skip
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode()


def _user(user: str, auth: str, priv: str, engine: str | None = None) -> list[str]:
    args = ["-u", user, "-l", "authPriv", "-a", "SHA", "-A", auth, "-x", "AES", "-X", priv]
    return [*args, "-e", engine] if engine else args


def _run(
    tmp_path: Path,
    scenario: Any,
    registration_interval: float = 0.0,
    state_dir: Path | None = None,
    cfg: AgentConfig | None = None,
    setup: Callable[[TrapReceiver], None] = lambda receiver: None,
) -> dict[str, Any]:
    """Run the receiver of `_config` with a real outbox while `scenario(port)` sends; return
    its counters and the stored events. Tests that send from several new sender engine IDs at
    once lift the per-device registration interval (its own test keeps it)."""
    cfg = _config(tmp_path) if cfg is None else cfg
    traps, devices = cfg.traps, cfg.devices
    assert traps is not None
    out: dict[str, Any] = {}

    async def run() -> None:
        with Outbox(tmp_path / "o.sqlite", max_bytes=1 << 20, max_age_s=3600) as box:
            receiver = TrapReceiver(traps, "s1", devices, box, state_dir=state_dir)
            stop = asyncio.Event()
            task = asyncio.create_task(receiver.run(stop))
            while receiver.bound is None:
                await asyncio.sleep(0.01)
            if receiver.usm is not None:
                receiver.usm.registration_interval = registration_interval
            setup(receiver)
            out["results"] = await scenario(receiver.bound[1])
            await asyncio.sleep(0.2)
            stop.set()
            await task
            out["counters"] = receiver.counters
            events = []
            while (item := box.take()) is not None:
                events.append(decode_event(item.payload))
                box.ack(item)
            out["events"] = events

    asyncio.run(run())
    return out


@pytest.fixture(autouse=True)
def _snmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "net-snmp").mkdir()
    monkeypatch.setenv("T_SNMP_DIR", str(tmp_path / "net-snmp"))


def test_v3_trap_and_inform_authpriv_are_stored_and_the_inform_acknowledged(env: Path) -> None:
    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            # a trap: the sender's engine ID, registered on first sight
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, "0x8000000001020304")),
            # an inform: to our engine ID, which snmpinform discovers first
            await _net_snmp("snmpinform", port, *_user("noc", AUTH_KEY, PRIV_KEY)),
            # the device's own polling user is accepted from that device
            await _net_snmp(
                "snmptrap", port, *_user("radio", RADIO_AUTH, RADIO_PRIV, "0x8000000001aabbcc"),
                source="127.0.0.2",
            ),
        ]  # fmt: skip

    out = _run(env, scenario)
    assert [rc for rc, _ in out["results"]] == [0, 0, 0], out["results"]
    c = out["counters"]
    assert (c["stored"], c["informs_acknowledged"], c["auth_failure"]) == (3, 1, 0)
    assert c["engine_discovery"] >= 1
    events = sorted(out["events"], key=lambda e: (e.device, e.seq))
    assert [(e.device, e.trap, e.inform, e.varbinds) for e in events] == [
        ("r1", "linkDown", False, {"ifIndex": 4}),
        ("r1", "coldStart", True, {"1.3.6.1.2.1.2.2.1.1.4": 4}),
        ("radio", "linkDown", False, {"ifIndex": 4}),
    ]
    assert events[0].alarm == "linkDown:ifIndex=4"


def test_wrong_keys_and_foreign_users_are_auth_failures_logged_without_keys(
    env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            await _net_snmp("snmptrap", port, *_user("noc", "wrong-auth-key-9", PRIV_KEY, "0x8000000001020305")),
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, "wrong-priv-key-9", "0x8000000001020306")),
            await _net_snmp("snmpinform", port, *_user("noc", "wrong-auth-key-9", PRIV_KEY)),
            # radio's user from r1's address: not r1's user
            await _net_snmp("snmptrap", port, *_user("radio", RADIO_AUTH, RADIO_PRIV, "0x8000000001020307")),
            await _net_snmp("snmptrap", port, *_user("nobody", AUTH_KEY, PRIV_KEY, "0x8000000001020308")),
        ]  # fmt: skip

    with caplog.at_level(logging.INFO, logger="pantau.agent.traps"):
        out = _run(env, scenario)
    c = out["counters"]
    assert out["events"] == [] and c["stored"] == 0
    assert c["auth_failure"] >= 5  # the inform is sent again after its failure Report
    assert out["results"][2][0] != 0  # the inform was not acknowledged
    text = caplog.text
    assert "reason=auth_failure device=r1" in text and "wrong_digest user='noc'" in text
    for secret in (AUTH_KEY, PRIV_KEY, RADIO_AUTH, RADIO_PRIV, "wrong-auth-key-9"):
        assert secret not in text


def test_a_device_registers_few_sender_engine_ids(env: Path) -> None:
    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, f"0x80000000010203{i:02x}"))
            for i in range(MAX_ENGINES_PER_DEVICE + 2)
        ]  # fmt: skip

    out = _run(env, scenario)
    assert out["counters"]["stored"] == MAX_ENGINES_PER_DEVICE
    assert out["counters"]["engine_id_limit"] == 2


def test_v3_is_unsupported_without_users(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"site: s1\noutbox: {{path: {tmp_path / 'o.sqlite'}}}\n"
        "devices:\n  - {name: r1, host: 127.0.0.1}\ntraps: {listen: '127.0.0.1:0'}\n"
    )
    cfg = load_agent_config(path)
    assert cfg.traps is not None

    async def run() -> Any:
        with Outbox(tmp_path / "o.sqlite", max_bytes=1 << 20, max_age_s=3600) as box:
            receiver = TrapReceiver(cfg.traps, "s1", cfg.devices, box)  # type: ignore[arg-type]
            stop = asyncio.Event()
            task = asyncio.create_task(receiver.run(stop))
            while receiver.bound is None:
                await asyncio.sleep(0.01)
            await _net_snmp(
                "snmptrap",
                receiver.bound[1],
                *_user("noc", AUTH_KEY, PRIV_KEY, "0x8000000001020304"),
            )
            await asyncio.sleep(0.1)
            stop.set()
            await task
            assert receiver.usm is None  # pysnmp not even loaded for it
            return receiver.counters

    assert asyncio.run(run())["unsupported_version"] == 1


def test_engine_id_and_header() -> None:
    assert default_engine_id("site-a").hex() == "80004fb804" + b"site-a".hex()
    assert len(default_engine_id("x" * 64)) == 32
    assert TrapsConfig(engine_id="0x80001F8880AABBCC").engine_id == "80001f8880aabbcc"
    with pytest.raises(ValueError):
        read_header(b"\x30\x03\x02\x01\x01")  # SNMPv1


@pytest.mark.parametrize(
    ("traps", "message"),
    [
        ({"engine_id": "0x8000"}, "5 to 32 octets"),
        ({"engine_id": "xyz"}, "not hex"),
        ({"users": [{"user": "a", "version": "2c"}]}, "only for version 3|SNMPv3 users"),
        ({"users": [{"user": "a", "community": "x"}]}, "not used by version 3"),
        ({"users": [{"user": "a", "auth_protocol": "SHA"}]}, "go together"),
        ({"users": [{"user": "a"}, {"user": "a"}]}, "appears twice"),
        ({"users": [{"user": "a", "auth_protocol": "SHA", "auth_key_env": "NOPE_UNSET"}]}, "NOPE"),
    ],
)
def test_trap_user_mistakes_are_refused(traps: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        TrapsConfig.model_validate(traps)


def test_trap_user_is_v3_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "eight-chars")
    u = TrapUser.model_validate({"user": "a", "auth_protocol": "SHA", "auth_key_env": "K"})
    assert u.version == "3" and u.auth_key == "eight-chars"
    assert "eight-chars" not in repr(u)


@pytest.mark.servers
def test_v3_inform_through_the_whole_stack_raises_the_alarm(
    tmp_path: Path, mosquitto: Any, victoria: Any
) -> None:
    """A real agent process (keys from its environment) → Mosquitto → collector."""
    from devstack import procs
    from devstack.servers import free_port

    http, trap_port = free_port(), free_port("udp")
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http,
    )
    user = {"user": "noc", "auth_protocol": "SHA-256", "auth_key_env": "T_AUTH",
            "priv_protocol": "AES-256", "priv_key_env": "T_PRIV"}  # fmt: skip
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site="v3-01",
        broker_port=mosquitto.port,
        devices=[{"name": "gw", "host": "127.0.0.1", "port": free_port("udp"), "ping": False}],
        interval=30.0,
        traps={"listen": f"127.0.0.1:{trap_port}", "users": [user]},
    )
    env = {"T_AUTH": AUTH_KEY, "T_PRIV": PRIV_KEY}
    with (
        procs.collector(ccfg, tmp_path / "collector.log"),
        procs.agent(acfg, tmp_path / "agent.log", env) as agent,
    ):
        key = ("pantau_site_online", (("site", "v3-01"),))
        procs.wait_until(lambda: procs.scrape(http).get(key) == 1.0, 30, "site online")
        rc, err = asyncio.run(
            _net_snmp(
                "snmpinform", trap_port, "-u", "noc", "-l", "authPriv", "-a", "SHA-256",
                "-A", AUTH_KEY, "-x", "AES-256", "-X", PRIV_KEY, inform_oid=LINK_DOWN,
            )
        )  # fmt: skip
        assert rc == 0, err
        alarm = (
            "pantau_device_alarm",
            (("alarm", "linkDown:ifIndex=4"), ("device", "gw"), ("severity", "major"),
             ("site", "v3-01")),
        )  # fmt: skip
        procs.wait_until(lambda: procs.scrape(http).get(alarm) == 1.0, 15, "the alarm raised")
        assert AUTH_KEY not in agent.log() and PRIV_KEY not in agent.log()
        assert "SNMPv3 traps and informs: engine_id=80004fb804" in agent.log()
