"""Vendor and UPS-MIB trap definitions (config/profiles): net-snmp's snmptrap sends their OIDs to
the agent's real receiver (SNMPv2c, and SNMPv1 where the vendor sends v1 Trap-PDUs), and the
collector's alarm state raises and clears what they say."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pydantic
import pytest

from agent.config import load_agent_config
from agent.outbox import Outbox
from agent.profiles.model import Profile
from agent.traps.receiver import TrapReceiver
from collector.events import EventState
from pantau.wire import Event, decode_event

pytestmark = pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp tools")

UPS_ALARM_ID = "1.3.6.1.2.1.33.1.6.2.1.1"
UPS_ALARM_DESCR = "1.3.6.1.2.1.33.1.6.2.1.2"
UPS_LOW_BATTERY = "1.3.6.1.2.1.33.1.6.3.3"  # upsWellKnownAlarms.upsAlarmLowBattery
SP2 = "1.3.6.1.4.1.12148.10.1"
MAINS_FAILURE_STATUS = "1.3.6.1.4.1.12148.10.3.2.1"


def _ups(trap: str, alarm_id: int) -> list[str]:
    return [
        f"1.3.6.1.2.1.33.2.{trap}",
        f"{UPS_ALARM_ID}.{alarm_id}", "i", str(alarm_id),
        f"{UPS_ALARM_DESCR}.{alarm_id}", "o", UPS_LOW_BATTERY,
    ]  # fmt: skip


def _sp2(trap: int, on: int, status_oid: str = MAINS_FAILURE_STATUS) -> list[str]:
    return [
        f"{SP2}.2.{trap}",
        f"{SP2}.1.1.0", "s", "MainsFailure",
        f"{SP2}.1.2.0", "o", status_oid,
        f"{SP2}.1.3.0", "i", "3" if on else "1",
        f"{SP2}.1.4.0", "i", str(on),
        f"{SP2}.1.5.0", "o", "1.3.6.1.4.1.12148.10.3.2.5",
        f"{SP2}.1.6.0", "i", "0",
    ]  # fmt: skip


def _received(tmp_path: Path, profiles: list[str], traps: list[list[str]]) -> list[Event]:
    """Send `traps` with snmptrap -v 2c from 127.0.0.1 (a device with `profiles`); the events
    the receiver stored in a real outbox, oldest first."""
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"site: s1\noutbox: {{path: {tmp_path / 'o.sqlite'}}}\n"
        f"devices:\n  - {{name: dev, host: 127.0.0.1, profiles: {profiles}}}\n"
        "traps: {listen: '127.0.0.1:0', rate: 100, burst: 100, poll_min_interval: 60}\n"
    )
    cfg = load_agent_config(path)
    assert cfg.traps is not None
    events: list[Event] = []

    async def run() -> None:
        with Outbox(tmp_path / "o.sqlite", max_bytes=1 << 20, max_age_s=3600) as box:
            receiver = TrapReceiver(cfg.traps, "s1", cfg.devices, box)  # type: ignore[arg-type]
            stop = asyncio.Event()
            task = asyncio.create_task(receiver.run(stop))
            while receiver.bound is None:
                await asyncio.sleep(0.01)
            for args in traps:
                target = f"127.0.0.1:{receiver.bound[1]}"
                # ["v1", enterprise, generic, specific, varbinds...]: an SNMPv1 Trap-PDU
                how = (
                    ["-v", "1", "-c", "public", target, args[1], "127.0.0.1", *args[2:4], "",
                     *args[4:]]
                    if args[0] == "v1"
                    else ["-v", "2c", "-c", "public", target, "", *args]
                )  # fmt: skip
                proc = await asyncio.create_subprocess_exec(
                    "snmptrap", "-M", "/dev/null", "-m", "", *how, stderr=subprocess.PIPE
                )
                _, err = await proc.communicate()
                assert proc.returncode == 0, err
            for _ in range(100):
                if receiver.counters["stored"] == len(traps):
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await task
            while (item := box.take()) is not None:
                events.append(decode_event(item.payload))
                box.ack(item)

    asyncio.run(run())
    return sorted(events, key=lambda e: e.seq)


def _alarms(events: list[Event]) -> dict[str, str]:
    state = EventState()
    for e in events:
        state.on_event(e)
    return {alarm: sev for (_, _, alarm), sev in state.snapshot().alarms.items()}


def test_ups_mib_alarm_entry_added_raises_and_removed_clears(tmp_path: Path) -> None:
    events = _received(
        tmp_path,
        ["system", "ups-mib"],
        [_ups("3", 7), _ups("3", 8), _ups("4", 7), ["1.3.6.1.2.1.33.2.1",
         "1.3.6.1.2.1.33.1.2.2.0", "i", "42"]],
    )  # fmt: skip
    assert [(e.trap, e.severity) for e in events] == [
        ("upsTrapAlarmEntryAdded", "major"),
        ("upsTrapAlarmEntryAdded", "major"),
        ("upsTrapAlarmEntryRemoved", "clear"),
        ("upsTrapOnBattery", "major"),
    ]
    assert events[0].varbinds == {"upsAlarmId": 7, "upsAlarmDescr": UPS_LOW_BATTERY}
    assert events[2].clears == ["upsTrapAlarmEntryAdded:upsAlarmId=7"]
    assert events[3].varbinds == {"upsSecondsOnBattery": 42} and events[3].alarm == ""
    # alarm 7 came and went, alarm 8 is still raised
    assert _alarms(events) == {"upsTrapAlarmEntryAdded:upsAlarmId=8": "major"}
    assert _alarms(events[:2]) == {
        "upsTrapAlarmEntryAdded:upsAlarmId=7": "major",
        "upsTrapAlarmEntryAdded:upsAlarmId=8": "major",
    }


def test_eltek_alarm_on_raises_and_the_same_trap_off_clears(tmp_path: Path) -> None:
    rect = "1.3.6.1.4.1.12148.10.5.4.1"  # another status object: its own alarm
    events = _received(
        tmp_path,
        ["system", "eltek-enexus"],
        [_sp2(4, 1), _sp2(5, 1, rect), _sp2(4, 0), ["1.3.6.1.4.1.12148.10.1.2.13",
         f"{SP2}.1.1.0", "s", "alive"]],
    )  # fmt: skip
    mains = f"alarmMainsTrap:statusOid={MAINS_FAILURE_STATUS}"
    assert [(e.trap, e.severity, e.alarm, e.clears) for e in events] == [
        ("alarmMainsTrap", "major", mains, []),
        ("alarmRectifierTrap", "minor", f"alarmRectifierTrap:statusOid={rect}", []),
        ("alarmMainsTrap", "clear", "", [mains]),
        ("infoHeartBeatTrap", "info", "", []),
    ]
    assert events[0].varbinds["source"] == "MainsFailure" and events[0].varbinds["onOff"] == 1
    assert _alarms(events) == {f"alarmRectifierTrap:statusOid={rect}": "minor"}
    assert _alarms(events[:1]) == {mains: "major"}


APC = "1.3.6.1.4.1.318"
MTRAPARGS_STRING = "1.3.6.1.4.1.318.2.3.3.0"  # a text varbind no definition names: by its OID


def test_apc_powernet_pairs_raise_and_clear(tmp_path: Path) -> None:
    """PowerNet-MIB: an NMC's SNMPv1 traps (enterprise apc, specific 5, 9, 7, 11, ...) and the
    same as SNMPv2c notifications (318.0.<specific>) are one definition each."""
    msg = [MTRAPARGS_STRING, "s", "UPS: On battery power in response to an input power problem."]
    events = _received(
        tmp_path,
        ["system", "apc-ups"],
        [
            ["v1", APC, "6", "5", *msg],          # upsOnBattery
            ["v1", APC, "6", "7", *msg],          # lowBattery
            [f"{APC}.0.2", *msg],                 # upsOverload (v2c)
            [f"{APC}.0.1"],                       # communicationLost (v2c)
            [f"{APC}.0.3"],                       # upsDiagnosticsFailed (v2c)
            ["v1", APC, "6", "11", *msg],         # returnFromLowBattery
            ["v1", APC, "6", "9", *msg],          # powerRestored
            [f"{APC}.0.33"],                      # upsOverloadCleared
            [f"{APC}.0.8"],                       # communicationEstablished
            [f"{APC}.0.10"],                      # upsDiagnosticsPassed
            ["v1", APC, "6", "17"],               # upsBatteryNeedsReplacement
        ],
    )  # fmt: skip
    assert [(e.trap, e.severity, e.alarm, e.clears) for e in events] == [
        ("upsOnBattery", "major", "upsOnBattery", []),
        ("lowBattery", "critical", "lowBattery", []),
        ("upsOverload", "major", "upsOverload", []),
        ("communicationLost", "major", "communicationLost", []),
        ("upsDiagnosticsFailed", "minor", "upsDiagnosticsFailed", []),
        ("returnFromLowBattery", "clear", "", ["lowBattery"]),
        ("powerRestored", "clear", "", ["upsOnBattery"]),
        ("upsOverloadCleared", "clear", "", ["upsOverload"]),
        ("communicationEstablished", "clear", "", ["communicationLost"]),
        ("upsDiagnosticsPassed", "clear", "", ["upsDiagnosticsFailed"]),
        ("upsBatteryNeedsReplacement", "minor", "", []),
    ]
    assert events[0].trap_oid == f"{APC}.0.5" and events[0].varbinds == {MTRAPARGS_STRING: msg[2]}
    assert _alarms(events[:5]) == {
        "upsOnBattery": "major",
        "lowBattery": "critical",
        "upsOverload": "major",
        "communicationLost": "major",
        "upsDiagnosticsFailed": "minor",
    }
    assert _alarms(events[:6]) == {  # power still out: only the low battery is over
        "upsOnBattery": "major",
        "upsOverload": "major",
        "communicationLost": "major",
        "upsDiagnosticsFailed": "minor",
    }
    assert _alarms(events) == {}


CERAGON_ALARM = "1.3.6.1.4.1.2281.10.3.1.2.1"  # MWRM-UNIT-MIB genEquipCurrentAlarmEntry


def _ceragon(trap: list[str], alarm_id: int, if_index: int, state: int) -> list[str]:
    return [
        *trap,
        f"{CERAGON_ALARM}.1.9", "i", "9",
        f"{CERAGON_ALARM}.3.9", "i", str(alarm_id),
        f"{CERAGON_ALARM}.5.9", "i", "1",
        f"{CERAGON_ALARM}.6.9", "i", "2",
        f"{CERAGON_ALARM}.7.9", "i", str(if_index),
        f"{CERAGON_ALARM}.9.9", "s", "Loss of frame on radio",
        f"{CERAGON_ALARM}.12.9", "i", str(state),
    ]  # fmt: skip


def test_ceragon_alarm_state_raises_and_clears_per_alarm_and_interface(tmp_path: Path) -> None:
    v3 = ["1.3.6.1.4.1.2281.11.1"]  # generalV3Trap as SNMPv2c
    v1 = ["v1", "1.3.6.1.4.1.2281", "6", "1001"]  # alarmTrap as SNMPv1
    events = _received(
        tmp_path,
        ["system", "if-mib", "ceragon-ceraos"],
        [
            _ceragon(v3, 1105, 3, 1),   # raised on radio ifIndex 3
            _ceragon(v3, 1105, 4, 1),   # the same alarm on radio ifIndex 4
            _ceragon(v1, 1200, 3, 1),   # SNMPv1 alarmTrap
            _ceragon(v3, 1105, 3, 0),   # cleared on ifIndex 3
            _ceragon(v3, 7, 3, 2),      # an event: raises nothing
            _ceragon(v1, 1200, 3, 0),   # cleared
            ["1.3.6.1.4.1.2281.11.3"],  # heartbeatV3Trap
        ],
    )  # fmt: skip
    on3 = "generalV3Trap:alarmId=1105,ifIndex=3,instance=1"
    on4 = "generalV3Trap:alarmId=1105,ifIndex=4,instance=1"
    v1_alarm = "alarmTrap:alarmId=1200,ifIndex=3,instance=1"
    assert [(e.trap, e.severity, e.alarm, e.clears) for e in events] == [
        ("generalV3Trap", "major", on3, []),
        ("generalV3Trap", "major", on4, []),
        ("alarmTrap", "major", v1_alarm, []),
        ("generalV3Trap", "clear", "", [on3]),
        ("generalV3Trap", "clear", "", ["generalV3Trap:alarmId=7,ifIndex=3,instance=1"]),
        ("alarmTrap", "clear", "", [v1_alarm]),
        ("heartbeatV3Trap", "info", "", []),
    ]
    assert events[0].varbinds["description"] == "Loss of frame on radio"
    assert events[0].varbinds["severity"] == 2 and events[0].varbinds["state"] == 1
    assert _alarms(events[:3]) == {on3: "major", on4: "major", v1_alarm: "major"}
    assert _alarms(events) == {on4: "major"}


BASE = {"name": "x", "measurement": "x", "scalars": [{"name": "a", "oid": "1.3.6.1.2.1.1.3.0"}]}
VB = [{"name": "onOff", "oid": "1.3.6.1.4.1.1.1"}]


@pytest.mark.parametrize(
    ("trap", "message"),
    [
        ({"severity": "major", "varbinds": VB, "clear_when": {"varbind": "onOff", "values": [0]}},
         "raises an alarm"),
        ({"severity": "major", "alarm": True, "varbinds": VB,
          "clear_when": {"varbind": "nope", "values": [0]}}, "names no varbind"),
        ({"severity": "major", "alarm": True, "varbinds": VB,
          "clear_when": {"varbind": "onOff", "values": []}}, "at least 1"),
        ({"severity": "major", "alarm": True, "varbinds": VB,
          "clear_when": {"varbind": "onOff", "values": [0], "also": 1}}, "Extra"),
    ],
)  # fmt: skip
def test_clear_when_mistakes_are_refused(trap: dict[str, object], message: str) -> None:
    spec = {"name": "t", "oid": "1.3.6.1.4.1.1.0.1", **trap}
    with pytest.raises(pydantic.ValidationError, match=message):
        Profile.model_validate({**BASE, "traps": [spec]})
