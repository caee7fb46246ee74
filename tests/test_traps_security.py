"""SNMPv3 trap security (agent.traps.usm, agent.traps.timeline): what a forger or a replaying
attacker on the network could do with real net-snmp messages. Each test sends with snmptrap or
snmpinform, or records one of snmptrap's datagrams on a socket of its own and sends it again,
to the agent's real receiver on loopback with a real outbox."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_agent_config
from agent.traps.receiver import TokenBucket, TrapReceiver
from agent.traps.timeline import TIMELINE_FILE
from agent.traps.usm import MAX_ENGINES_PER_DEVICE, read_header
from tests.test_traps_v3 import AUTH_KEY, LINK_DOWN, PRIV_KEY, _net_snmp, _run, _user

pytestmark = pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp tools")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The keys of tests.test_traps_v3's configuration (its `_config`)."""
    from tests.test_traps_v3 import RADIO_AUTH, RADIO_PRIV

    monkeypatch.setenv("T_NOC_PRIV", PRIV_KEY)
    monkeypatch.setenv("T_RADIO_AUTH", RADIO_AUTH)
    monkeypatch.setenv("T_RADIO_PRIV", RADIO_PRIV)
    return tmp_path


@pytest.fixture(autouse=True)
def _snmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """net-snmp's persistent state (its engine boots) per test."""
    (tmp_path / "net-snmp").mkdir()
    monkeypatch.setenv("T_SNMP_DIR", str(tmp_path / "net-snmp"))


ENGINE = "0x8000000001020304"


def _record(*args: str, clock: str | None = None) -> bytes:
    """One snmptrap -v3 datagram as it goes on the wire, caught on a socket of the test's own
    (`clock`: snmptrap's -Z boots,time, the sender engine's clock it authenticates)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    with sock:
        extra = ["-Z", clock] if clock else []
        proc = subprocess.run(
            ["snmptrap", "-M", "/dev/null", "-m", "", "--clientaddr=127.0.0.1", "-v", "3",
             *args, *extra, f"127.0.0.1:{sock.getsockname()[1]}", "", LINK_DOWN,
             "1.3.6.1.2.1.2.2.1.1.4", "i", "4"],
            capture_output=True,
            env={**os.environ, "SNMP_PERSISTENT_DIR": os.environ["T_SNMP_DIR"],
                 "HOME": "/nonexistent"},
            check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return sock.recv(65535)


async def _send(port: int, *datagrams: bytes, source: str = "127.0.0.1") -> None:
    """Send datagrams as they are, from `source`, paced so no per-device limit is hit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    with sock:
        for d in datagrams:
            sock.sendto(d, ("127.0.0.1", port))
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)


def _stored(out: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.device, e.trap) for e in out["events"]]


# -- security level (review item 1) -------------------------------------------------------------


def test_traps_below_the_users_security_level_are_refused(
    env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """noc is an authPriv user: its traps without privacy, or without authentication, are
    refused (pysnmp checks the level only for informs, where it is the authoritative engine)."""

    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            await _net_snmp("snmptrap", port, "-u", "noc", "-l", "noAuthNoPriv", "-e", ENGINE),
            await _net_snmp(
                "snmptrap", port, "-u", "noc", "-l", "authNoPriv", "-a", "SHA", "-A", AUTH_KEY,
                "-e", "0x8000000001020305",
            ),
            # the same user at its level is accepted
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, "0x8000000001020306")),
        ]  # fmt: skip

    with caplog.at_level(logging.INFO, logger="pantau.agent.traps"):
        out = _run(env, scenario)
    assert _stored(out) == [("r1", "linkDown")]
    assert out["counters"]["auth_failure"] == 2
    assert "detail=wrong_security_level user='noc'" in caplog.text  # logged once per 30 s
    assert AUTH_KEY not in caplog.text and PRIV_KEY not in caplog.text


def test_an_inform_below_the_users_security_level_is_refused(env: Path) -> None:
    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            await _net_snmp("snmpinform", port, "-u", "noc", "-l", "authNoPriv", "-a", "SHA",
                            "-A", AUTH_KEY),
        ]  # fmt: skip

    out = _run(env, scenario)
    assert out["results"][0][0] != 0  # not acknowledged
    assert out["events"] == [] and out["counters"]["auth_failure"] >= 1


# -- replays and old messages (review item 2) ---------------------------------------------------


def test_a_recorded_trap_sent_again_is_refused(env: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorded = _record(*_user("noc", AUTH_KEY, PRIV_KEY, ENGINE), clock="5,2000")

    async def scenario(port: int) -> None:
        await _send(port, *[recorded] * 10)

    with caplog.at_level(logging.INFO, logger="pantau.agent.traps"):
        out = _run(env, scenario)
    assert _stored(out) == [("r1", "linkDown")]
    assert out["counters"]["auth_failure"] == 9
    assert "detail=replayed user='noc'" in caplog.text


def test_traps_older_than_the_senders_clock_are_refused(env: Path) -> None:
    """RFC 3414 3.2.7 b: lower boots (recorded before the sender restarted), or the same boots
    and a time more than 150 s behind; a trap within the window still passes."""
    user = _user("noc", AUTH_KEY, PRIV_KEY, ENGINE)
    now = _record(*user, clock="5,2000")
    before_restart = _record(*user, clock="1,2000")
    old = _record(*user, clock="5,1010")  # 990 s older
    slightly_late = _record(*user, clock="5,1900")  # 100 s: a slow network, in the window
    newer_boots = _record(*user, clock="6,10")

    async def scenario(port: int) -> None:
        await _send(port, now, before_restart, old, slightly_late, newer_boots)

    out = _run(env, scenario)
    assert len(out["events"]) == 3  # now, slightly_late, newer_boots
    assert out["counters"]["auth_failure"] == 2


def test_sender_timelines_outlive_a_restart(env: Path) -> None:
    user = _user("noc", AUTH_KEY, PRIV_KEY, ENGINE)
    first = _record(*user, clock="5,2000")
    replay_later = _record(*user, clock="4,2000")
    state = env / "state"
    state.mkdir()

    async def send_first(port: int) -> None:
        await _send(port, first)

    async def send_old(port: int) -> None:
        await _send(port, replay_later)

    assert len(_run(env, send_first, state_dir=state)["events"]) == 1
    assert (state / TIMELINE_FILE).exists()
    out = _run(env, send_old, state_dir=state)
    assert out["events"] == [] and out["counters"]["auth_failure"] == 1


def test_an_unreadable_timelines_file_is_moved_aside(
    env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = env / "state"
    state.mkdir()
    (state / TIMELINE_FILE).write_text("[]")
    recorded = _record(*_user("noc", AUTH_KEY, PRIV_KEY, ENGINE), clock="5,2000")

    async def scenario(port: int) -> None:
        await _send(port, recorded)

    with caplog.at_level(logging.INFO, logger="pantau.agent.traps"):
        out = _run(env, scenario, state_dir=state)
    assert len(out["events"]) == 1
    assert "SNMPv3 sender timelines unreadable" in caplog.text
    assert (state / (TIMELINE_FILE + ".bad")).read_text() == "[]"


# -- sender engine IDs: lock-out and forged registrations (review items 3, 4, 13) ---------------


def test_wrong_key_traps_do_not_use_up_a_devices_engine_ids(env: Path) -> None:
    """Forged traps (wrong key, new engine IDs) from r1's address leave no registration behind:
    r1's genuine trap from yet another engine ID is stored afterwards."""

    async def scenario(port: int) -> list[tuple[int, str]]:
        results = [
            await _net_snmp("snmptrap", port, *_user("noc", "wrong-auth-key-9", PRIV_KEY, f"0x80000000010203{i:02x}"))
            for i in range(MAX_ENGINES_PER_DEVICE + 1)
        ]  # fmt: skip
        results.append(
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, "0x80000000010203ff"))
        )  # fmt: skip
        return results

    receivers: list[TrapReceiver] = []
    out = _run(env, scenario, setup=receivers.append)
    assert _stored(out) == [("r1", "linkDown")]
    assert out["counters"]["auth_failure"] == MAX_ENGINES_PER_DEVICE + 1
    assert out["counters"]["engine_id_limit"] == 0
    usm = receivers[0].usm
    assert usm is not None
    assert _pysnmp_rows(usm, "noc") == {usm.engine_id.hex(), "80000000010203ff"}


def _pysnmp_rows(usm: Any, user: str) -> set[str]:
    """The engine IDs pysnmp's USM table holds `user` under (the rows themselves, not our
    bookkeeping of them)."""
    (entry,) = usm.engine.get_mib_builder().import_symbols("SNMP-USER-BASED-SM-MIB", "usmUserEntry")
    candidates = {usm.engine_id} | {bytes.fromhex(f"80000000010203{i:02x}") for i in range(256)}
    held = set()
    for engine in candidates:
        index = entry.getInstIdFromIndices(engine, user)
        try:
            entry.getNode(entry.name + (2,) + index)
        except Exception:  # pysnmp's NoSuchInstanceError: no such row
            continue
        held.add(engine.hex())
    return held


def test_a_wrong_key_trap_leaves_no_keys_behind(env: Path) -> None:
    """After a forged trap with engine E, the genuine trap with E still authenticates (the
    forged one's registration was removed, not kept half-made)."""

    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            await _net_snmp("snmptrap", port, *_user("noc", "wrong-auth-key-9", PRIV_KEY, ENGINE)),
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, ENGINE)),
        ]  # fmt: skip

    out = _run(env, scenario)
    assert _stored(out) == [("r1", "linkDown")]
    assert out["counters"]["auth_failure"] == 1


def test_a_device_registers_one_new_engine_id_per_interval(env: Path) -> None:
    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, "0x8000000001020301")),
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, "0x8000000001020302")),
            # a known engine ID needs no registration
            await _net_snmp("snmptrap", port, *_user("noc", AUTH_KEY, PRIV_KEY, "0x8000000001020301")),
        ]  # fmt: skip

    out = _run(env, scenario, registration_interval=10.0)
    assert len(out["events"]) == 2
    assert out["counters"]["engine_id_limit"] == 1


SHARED_AUTH_A, SHARED_PRIV_A = "mon-auth-of-a-1", "mon-priv-of-a-1"
SHARED_AUTH_B, SHARED_PRIV_B = "mon-auth-of-b-2", "mon-priv-of-b-2"


def _shared_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Devices a (127.0.0.1) and b (127.0.0.2) each poll with a user `mon` of their own keys."""
    for name, value in (("T_AA", SHARED_AUTH_A), ("T_AP", SHARED_PRIV_A),
                        ("T_BA", SHARED_AUTH_B), ("T_BP", SHARED_PRIV_B)):  # fmt: skip
        monkeypatch.setenv(name, value)
    path = tmp_path / "shared.yaml"
    path.write_text(
        f"""site: s1
outbox: {{path: {tmp_path / "o.sqlite"}}}
devices:
  - name: a
    host: 127.0.0.1
    snmp: {{version: 3, user: mon, auth_protocol: SHA, auth_key_env: T_AA,
            priv_protocol: AES, priv_key_env: T_AP}}
  - name: b
    host: 127.0.0.2
    snmp: {{version: 3, user: mon, auth_protocol: SHA, auth_key_env: T_BA,
            priv_protocol: AES, priv_key_env: T_BP}}
traps: {{listen: "127.0.0.1:0"}}
"""
    )
    return load_agent_config(path)


def test_a_device_cannot_use_another_devices_engine_id_or_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _shared_user_config(tmp_path, monkeypatch)
    engine_a = "0x80000000010a0a0a"
    keys_a = _user("mon", SHARED_AUTH_A, SHARED_PRIV_A, engine_a)
    keys_b = _user("mon", SHARED_AUTH_B, SHARED_PRIV_B, engine_a)

    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            # a's keys from b's address, an inform to our engine: checked with a's keys, which
            # are not b's user's
            await _net_snmp("snmpinform", port, *keys_a[:-2], source="127.0.0.2"),
            # b, with its own keys, uses a's engine ID first: b's trap, checked with b's keys
            await _net_snmp("snmptrap", port, *keys_b, source="127.0.0.2"),
            # a's genuine trap is stored as a all the same: b's keys make way
            await _net_snmp("snmptrap", port, *keys_a, source="127.0.0.1"),
            # b's keys with a's engine ID from a's address: not a's user
            await _net_snmp("snmptrap", port, *keys_b, source="127.0.0.1"),
            # a's keys from b's address, a trap: checked with b's keys
            await _net_snmp("snmptrap", port, *keys_a, source="127.0.0.2"),
        ]

    with caplog.at_level(logging.INFO, logger="pantau.agent.traps"):
        out = _run(tmp_path, scenario, cfg=cfg)
    assert _stored(out) == [("b", "linkDown"), ("a", "linkDown")]
    assert out["results"][0][0] != 0  # the inform from b with a's keys: not acknowledged
    assert out["counters"]["auth_failure"] >= 3
    assert "device=b source=127.0.0.2 detail=keys_of_another_device user='mon'" in caplog.text
    for secret in (SHARED_AUTH_A, SHARED_PRIV_A, SHARED_AUTH_B, SHARED_PRIV_B):
        assert secret not in caplog.text


def test_each_device_sharing_a_user_name_sends_with_its_own_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _shared_user_config(tmp_path, monkeypatch)

    async def scenario(port: int) -> list[tuple[int, str]]:
        return [
            await _net_snmp("snmptrap", port, *_user("mon", SHARED_AUTH_A, SHARED_PRIV_A, "0x80000000010a0a0a")),
            await _net_snmp("snmptrap", port, *_user("mon", SHARED_AUTH_B, SHARED_PRIV_B, "0x80000000010b0b0b"), source="127.0.0.2"),
        ]  # fmt: skip

    out = _run(tmp_path, scenario, cfg=cfg)
    assert sorted(_stored(out)) == [("a", "linkDown"), ("b", "linkDown")]


# -- load bounds (review item 6) ---------------------------------------------------------------


def test_v3_messages_over_the_receivers_limit_are_suppressed(env: Path) -> None:
    """One budget for pysnmp's work, all senders together (here made small); each device's own
    limit is not reached."""
    recorded = [
        _record(*_user("noc", AUTH_KEY, PRIV_KEY, ENGINE), clock=f"5,{2000 + i}") for i in range(7)
    ]

    async def scenario(port: int) -> None:
        await _send(port, *recorded)

    def small_budget(receiver: TrapReceiver) -> None:
        receiver._v3_bucket = TokenBucket(0.001, 3)

    out = _run(env, scenario, setup=small_budget)
    assert len(out["events"]) == 3
    assert out["counters"]["suppressed"] == 4


def test_unknown_sources_share_one_rate_limit(tmp_path: Path) -> None:
    """With accept_unknown, each new address is no new budget: 8 addresses, burst 3."""
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"site: s1\noutbox: {{path: {tmp_path / 'o.sqlite'}}}\n"
        "devices:\n  - {name: r1, host: 127.0.0.1}\n"
        "traps: {listen: '127.0.0.1:0', accept_unknown: true, rate: 0.001, burst: 3}\n"
    )
    cfg = load_agent_config(path)

    async def scenario(port: int) -> None:
        for i in range(2, 10):
            await _send(port, _v2c_cold_start(), source=f"127.0.0.{i}")

    out = _run(tmp_path, scenario, cfg=cfg)
    assert len(out["events"]) == 3
    assert out["counters"]["suppressed"] == 5


def _v2c_cold_start() -> bytes:
    from agent.snmp import ber

    varbinds = ber.encode_tlv(
        ber.SEQUENCE,
        ber.encode_tlv(
            ber.SEQUENCE,
            ber.encode_oid((1, 3, 6, 1, 2, 1, 1, 3, 0)) + ber.encode_integer(0, ber.TIMETICKS),
        )
        + ber.encode_tlv(
            ber.SEQUENCE,
            ber.encode_oid((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0))
            + ber.encode_oid((1, 3, 6, 1, 6, 3, 1, 1, 5, 1)),
        ),
    )
    pdu = ber.encode_tlv(
        0xA7,
        ber.encode_integer(1) + ber.encode_integer(0) + ber.encode_integer(0) + varbinds,
    )
    return ber.encode_tlv(
        ber.SEQUENCE, ber.encode_integer(1) + ber.encode_tlv(ber.OCTET_STRING, b"public") + pdu
    )


def test_header_reads_boots_time_and_digest(env: Path) -> None:
    h = read_header(_record(*_user("noc", AUTH_KEY, PRIV_KEY, ENGINE), clock="7,1234"))
    assert (h.engine_id.hex(), h.user, h.flags & 3, h.boots, h.time) == (
        ENGINE[2:],
        b"noc",
        3,
        7,
        1234,
    )
    assert len(h.digest) == 12  # HMAC-SHA-96


# -- durability of the alarm state and the engine's boots (review items 7, 8, 9, 12) -----------

_LINK_UP = "1.3.6.1.6.3.1.1.5.4"


def _event(seq: int, ts_ms: int, raised: bool = True) -> Any:
    from pantau.wire import Event

    if raised:
        return Event("s1", "d1", seq, ts_ms, LINK_DOWN, "linkDown", "major",
                     {"ifIndex": 3}, alarm="linkDown:ifIndex=3")  # fmt: skip
    return Event("s1", "d1", seq, ts_ms, _LINK_UP, "linkUp", "clear", {"ifIndex": 3},
                 clears=["linkDown:ifIndex=3"])  # fmt: skip


class _Acks:
    """The collector's acknowledgements to the agent, each with whether the alarm state file
    held the alarm at that moment."""

    def __init__(self, alarms: Path) -> None:
        self.alarms = alarms
        self.sent: list[tuple[str, str, int, bool]] = []

    def stored(self, site: str, device: str, seq: int) -> None:
        saved = self.alarms.exists() and "linkDown:ifIndex=3" in self.alarms.read_text()
        self.sent.append((site, device, seq, saved))

    def gap(self, site: str, device: str, first: int, last: int) -> None:
        pass


def _pipeline(tmp_path: Path, acks: Any) -> Any:
    from collector.pipeline import Pipeline, RejectedStore
    from collector.state import State
    from tests.support.recording import RecordingMetrics

    class Sink:
        def write(self, lines: list[str]) -> None:
            pass

    return Pipeline(
        sink=Sink(),  # type: ignore[arg-type]
        state=State(900),
        metrics=RecordingMetrics(),
        ack=lambda m: None,
        rejected=RejectedStore(tmp_path / "rejected.jsonl", 1 << 20),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=60.0,
        acks=acks,
    )


def _write_event(pipe: Any, event: Any) -> None:
    import threading

    from collector.intake import Inbound
    from collector.pipeline import Batch
    from pantau.wire import encode_event, event_topic

    pipe.handle(Inbound(event_topic("s1", "d1"), encode_event(event), 1, 1, 0))
    batch, pipe._batch = pipe._batch, Batch()
    assert pipe.flush(batch, threading.Event())


def test_an_event_is_acknowledged_only_once_the_alarm_it_raised_is_saved(tmp_path: Path) -> None:
    """The agent deletes an acknowledged event: a collector crash between the acknowledgement
    and the save (up to a second later) would lose the raise for good."""
    alarms = tmp_path / "state" / "alarms.json"
    acks = _Acks(alarms)
    pipe = _pipeline(tmp_path, acks)
    pipe.state.events.load(alarms)  # its directory is missing: the save fails
    now = int(time.time() * 1000)
    _write_event(pipe, _event(5, now))
    assert acks.sent == [] and pipe.state.events.save_errors == 1  # held back
    (tmp_path / "state").mkdir()
    _write_event(pipe, _event(5, now))  # the agent sends it again
    assert acks.sent == [("s1", "d1/event", 5, True)]
    _write_event(pipe, _event(6, now + 1, raised=False))
    assert acks.sent[-1][2] == 6
    assert '"linkDown:ifIndex=3",6,false' in alarms.read_text()  # the clear, saved before


def test_alarms_follow_an_agent_whose_event_numbers_restarted() -> None:
    from collector.events import EventState

    state = EventState()
    state.on_event(_event(900, 1_800_000_000_000))  # raised, seq 900
    # the agent's outbox was recreated: numbers start again, times go on
    state.on_event(_event(1, 1_800_000_060_000, raised=False))
    assert state.snapshot().alarms == {} and state.renumbered == 1
    state.on_event(_event(2, 1_800_000_120_000))
    assert state.snapshot().alarms == {("s1", "d1", "linkDown:ifIndex=3"): "major"}
    # a number seen before, with another time, is another event (not a redelivery)
    state.on_event(_event(900, 1_800_000_180_000, raised=False))
    assert state.snapshot().alarms == {} and state.duplicates == 0
    # a late backlog (lower number, older time) still changes nothing
    state.on_event(_event(899, 1_800_000_170_000))
    assert state.snapshot().alarms == {}
    state.on_event(_event(900, 1_800_000_180_000, raised=False))  # a redelivery
    assert state.duplicates == 1


def test_an_alarm_state_file_of_five_element_alarms_loads(tmp_path: Path) -> None:
    from collector.events import EventState

    path = tmp_path / "alarms.json"
    path.write_text(
        '{"version": 1, "devices": [{"site": "s1", "device": "d1", "alarms": '
        '[["linkDown:ifIndex=3", 4, true, "major", 1800000000000]]}]}'
    )
    state = EventState()
    state.load(path)
    assert state.snapshot().alarms == {("s1", "d1", "linkDown:ifIndex=3"): "major"}
    assert path.exists()


def test_state_files_are_renamed_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After os.replace the directory itself is fsynced (else a power cut may lose the rename:
    for the engine's boots, a reused value reopens the inform replay window)."""
    import stat

    from agent.traps.engineboots import next_boots
    from agent.traps.timeline import SenderTimelines
    from collector.events import EventState

    synced_dirs: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced_dirs.append("dir")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    next_boots(tmp_path, bytes.fromhex("80004fb8047331"))
    assert synced_dirs == ["dir"]
    state = EventState()
    state.load(tmp_path / "alarms.json")
    state.on_event(_event(1, 1_800_000_000_000))
    assert state.save()
    assert synced_dirs == ["dir", "dir"]
    timelines = SenderTimelines(tmp_path / TIMELINE_FILE)
    timelines.accept("d1", b"\x80\x00\x00\x00\x01", 1, 10, b"digest", 1.0)
    assert synced_dirs == ["dir", "dir", "dir"]


# -- clear_when mistakes (review item 11) ------------------------------------------------------

_ONOFF_TRAP = {
    "name": "mainsAlarm",
    "oid": "1.3.6.1.4.1.12148.10.0.1",
    "severity": "major",
    "varbinds": [
        {"name": "statusOid", "oid": "1.3.6.1.4.1.12148.10.1.1.3"},
        {"name": "onOff", "oid": "1.3.6.1.4.1.12148.10.1.1.4"},
    ],
    "alarm": True,
}


def test_clear_when_on_a_key_varbind_is_refused() -> None:
    import pydantic

    from agent.profiles.model import TrapSpec

    with pytest.raises(pydantic.ValidationError, match="is in key"):
        TrapSpec.model_validate(
            {
                **_ONOFF_TRAP,
                "key": ["statusOid", "onOff"],
                "clear_when": {"varbind": "onOff", "values": [0]},
            }  # fmt: skip
        )


@pytest.mark.parametrize("sent", [0, b"0"])  # INTEGER or OCTET STRING on the wire
def test_clear_when_values_match_text_and_numbers_alike(sent: Any) -> None:
    from agent.profiles.model import Profile
    from agent.traps.catalog import Catalog
    from agent.traps.decode import Trap

    spec = {**_ONOFF_TRAP, "key": ["statusOid"], "clear_when": {"varbind": "onOff", "values": [0]}}
    profile = {
        "name": "eltek-test",
        "measurement": "power",
        "scalars": [{"name": "foo_db", "oid": "1.3.6.1.4.1.32473.1.1.0"}],
        "traps": [spec],
    }
    catalog = Catalog([Profile.model_validate(profile)])

    def trap(onoff: Any) -> Trap:
        varbinds = [((1, 3, 6, 1, 4, 1, 12148, 10, 1, 1, 3, 7), 5),
                    ((1, 3, 6, 1, 4, 1, 12148, 10, 1, 1, 4, 7), onoff)]  # fmt: skip
        return Trap(2, b"public", False, 1, _ONOFF_TRAP["oid"], 0, varbinds)  # type: ignore[arg-type]

    raised, cleared = catalog.classify(trap(1)), catalog.classify(trap(sent))
    assert raised.alarm == "mainsAlarm:statusOid=5" and raised.clears == []
    assert cleared.severity == "clear" and cleared.clears == ["mainsAlarm:statusOid=5"]
