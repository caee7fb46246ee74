"""Trap decoding, trap definitions, events on the wire and at the collector (fast, no servers)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pydantic
import pytest

from agent.config import TrapsConfig
from agent.outbox import Outbox
from agent.profiles.model import Profile, builtin_profiles
from agent.snmp import ber
from agent.snmp.values import IpValue, OidValue
from agent.traps.catalog import Catalog
from agent.traps.decode import SNMP_TRAP_OID, SYS_UPTIME, decode_trap, inform_response
from agent.traps.receiver import TrapReceiver, event_key
from collector.events import EventState, check_event, event_line
from collector.validate import Rejected
from pantau.wire import Event, decode_event, encode_event, event_topic, parse_topic

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)


def v2_trap(trap_oid: str, if_index: int = 3, inform: bool = False, request_id: int = 7) -> bytes:
    return ber.encode_message(
        ber.VERSION_2C,
        b"public",
        ber.INFORM if inform else ber.TRAP_V2,
        request_id,
        0,
        0,
        [
            (SYS_UPTIME, ber.Typed(ber.TIMETICKS, 12345)),
            (SNMP_TRAP_OID, OidValue(trap_oid)),
            ((*IF_INDEX, if_index), if_index),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 7, if_index), 1),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, if_index), 2),
        ],
    )


def v1_trap(
    generic: int, specific: int = 0, enterprise: tuple[int, ...] = (1, 3, 6, 1, 4, 1, 8072)
) -> bytes:
    vbl = ber.encode_tlv(
        ber.SEQUENCE,
        ber.encode_tlv(ber.SEQUENCE, ber.encode_oid((*IF_INDEX, 2)) + ber.encode_integer(2)),
    )
    pdu = (
        ber.encode_oid(enterprise)
        + ber.encode_value(IpValue("10.0.0.9"))
        + ber.encode_integer(generic)
        + ber.encode_integer(specific)
        + ber.encode_integer(555, ber.TIMETICKS)
        + vbl
    )
    return ber.encode_tlv(
        ber.SEQUENCE,
        ber.encode_integer(0)
        + ber.encode_tlv(ber.OCTET_STRING, b"public")
        + ber.encode_tlv(ber.TRAP_V1, pdu),
    )


def test_v2c_trap_and_inform_decode():
    trap = decode_trap(v2_trap(LINK_DOWN))
    assert (trap.version, trap.inform, trap.trap_oid, trap.uptime) == (1, False, LINK_DOWN, 12345)
    assert trap.varbinds[0] == ((*IF_INDEX, 3), 3)
    data = v2_trap(LINK_UP, inform=True, request_id=99)
    inform = decode_trap(data)
    assert inform.inform and inform.request_id == 99
    response = ber.decode_message(inform_response(data, inform))
    assert response.pdu_tag == ber.RESPONSE and response.request_id == 99
    assert response.error_status == 0 and len(response.varbinds) == 5


def test_v1_traps_map_to_rfc3584_oids():
    trap = decode_trap(v1_trap(2))  # linkDown
    assert trap.trap_oid == LINK_DOWN and trap.agent_addr == "10.0.0.9" and trap.uptime == 555
    assert decode_trap(v1_trap(6, 17)).trap_oid == "1.3.6.1.4.1.8072.0.17"


def test_garbage_raises_decode_error_only():
    rng = random.Random(5)
    samples = [v2_trap(LINK_DOWN), v1_trap(3), v2_trap(LINK_UP, inform=True)]
    for data in samples:
        for cut in range(len(data)):
            with pytest.raises(ber.DecodeError):
                decode_trap(data[:cut])
        for _ in range(300):
            mutated = bytearray(data)
            mutated[rng.randrange(len(data))] = rng.randrange(256)
            try:
                decode_trap(bytes(mutated))
            except ber.DecodeError:
                pass
    get = ber.encode_request(1, b"public", ber.GET, 1, [(1, 3, 6, 1)])
    with pytest.raises(ber.DecodeError):
        decode_trap(get)


def test_standard_definitions_raise_and_clear_link_alarms():
    profiles = builtin_profiles()
    catalog = Catalog([profiles["system"], profiles["if-mib"]])
    down = catalog.classify(decode_trap(v2_trap(LINK_DOWN, 4)))
    assert (down.trap, down.severity, down.alarm, down.poll) == (
        "linkDown",
        "major",
        "linkDown:ifIndex=4",
        True,
    )
    assert down.varbinds == {"ifIndex": 4, "ifAdminStatus": 1, "ifOperStatus": 2}
    up = catalog.classify(decode_trap(v2_trap(LINK_UP, 4)))
    assert up.alarm == "" and up.clears == ["linkDown:ifIndex=4"]
    cold = catalog.classify(decode_trap(v1_trap(0)))
    assert (cold.trap, cold.severity, cold.poll) == ("coldStart", "warning", True)
    auth = catalog.classify(decode_trap(v1_trap(4)))
    assert (auth.trap, auth.poll) == ("authenticationFailure", False)
    unknown = catalog.classify(decode_trap(v1_trap(6, 1)))
    assert (unknown.trap, unknown.severity) == ("", "info")
    assert unknown.varbinds == {"1.3.6.1.2.1.2.2.1.1.2": 2}


BASE = {"name": "x", "measurement": "x", "scalars": [{"name": "a", "oid": "1.3.6.1.2.1.1.3.0"}]}


@pytest.mark.parametrize(
    ("traps", "message"),
    [
        ([{"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "bad"}], "severity"),
        (
            [{"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "major", "key": ["i"]}],
            "key names no varbind",
        ),
        (
            [{"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "info", "alarm": True}],
            "above info",
        ),
        ([{"name": "t", "oid": "nope", "severity": "major"}], "OID"),
        (
            [{"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "major", "clears": ["u"]}],
            "clears names no trap",
        ),
        (
            [
                {"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "major"},
                {"name": "u", "oid": "1.3.6.1.4.1.1.0.2", "severity": "clear", "clears": ["t"]},
            ],
            "raises no alarm",
        ),
        (
            [
                {"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "major"},
                {"name": "t", "oid": "1.3.6.1.4.1.1.0.2", "severity": "major"},
            ],
            "duplicate trap names",
        ),
        ([{"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "major", "poll": "yes"}], "bool"),
        ([{"name": "t", "oid": "1.3.6.1.4.1.1.0.1", "severity": "major", "colour": 1}], "Extra"),
    ],
)
def test_trap_definition_mistakes_are_refused(traps, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        Profile.model_validate({**BASE, "traps": traps})


def event(**kw: object) -> Event:
    base: dict[str, object] = dict(
        site="s1",
        device="d1",
        seq=1,
        ts_ms=1_800_000_000_000,
        trap_oid=LINK_DOWN,
        trap="linkDown",
        severity="major",
        varbinds={"ifIndex": 3},
        alarm="linkDown:ifIndex=3",
    )
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


def test_event_wire_round_trip_and_checks():
    e = event()
    payload = encode_event(e)
    assert payload[0] == 1 and decode_event(payload) == e
    assert parse_topic(event_topic("s1", "d1")) == ("event", "s1", "d1")
    assert check_event("s1", "d1", payload, 65536, now_ms=e.ts_ms) == e
    line = event_line(e)
    assert line.startswith("pantau_event,device=d1,severity=major,site=s1,trap=linkDown seq=1i,")
    assert line.endswith(" 1800000000000")
    for bad, reason in [
        (event(severity="panic"), "bad_value"),
        (event(trap="no way"), "bad_name"),
        (event(trap_oid="1.3.x"), "bad_value"),
        (event(varbinds={"a b": 1}), "bad_name"),
        (event(alarm="x\ny"), "bad_name"),
    ]:
        with pytest.raises(Rejected) as exc:
            check_event("s1", "d1", encode_event(bad), 65536, now_ms=e.ts_ms)
        assert exc.value.reason == reason
    with pytest.raises(Rejected, match="device"):
        check_event("s1", "other", payload, 65536, now_ms=e.ts_ms)
    with pytest.raises(Rejected) as exc:
        check_event("s1", "d1", b"\x09\x00\x90", 65536)
    assert exc.value.reason == "unknown_version"


def test_alarm_state_follows_sequence_numbers_not_arrival():
    state = EventState()
    up = event(
        seq=2,
        trap="linkUp",
        trap_oid=LINK_UP,
        severity="clear",
        alarm="",
        clears=["linkDown:ifIndex=3"],
    )
    state.on_event(up)  # the newest first, as the outbox sends after an outage
    state.on_event(event(seq=1))
    snap = state.snapshot()
    assert snap.alarms == {}
    assert snap.traps == {("s1", "d1", "linkUp"): 1, ("s1", "d1", "linkDown"): 1}
    state.on_event(event(seq=3, varbinds={"ifIndex": 5}, alarm="linkDown:ifIndex=5"))
    state.on_event(event(seq=3, varbinds={"ifIndex": 5}, alarm="linkDown:ifIndex=5"))  # again
    snap = state.snapshot()
    assert snap.alarms == {("s1", "d1", "linkDown:ifIndex=5"): "major"}
    assert snap.traps[("s1", "d1", "linkDown")] == 2 and snap.duplicates == 1
    state.forget_site("s1")
    assert state.snapshot().traps == {}


def test_traps_are_off_unless_configured(tmp_path: Path):
    from agent.config import load_agent_config

    path = tmp_path / "agent.yaml"
    path.write_text("site: s1\ndevices:\n  - {name: r1, host: 127.0.0.2}\n")
    assert load_agent_config(path).traps is None


def test_traps_config_is_strict():
    assert TrapsConfig().port == 1162 and not TrapsConfig().accept_unknown
    assert TrapsConfig(listen="[::1]:162").host == "::1"
    for bad in ("0.0.0.0", ":162", "x:99999"):
        with pytest.raises(pydantic.ValidationError):
            TrapsConfig(listen=bad)


def test_receiver_counts_unknown_senders_floods_and_malformed(tmp_path: Path, monkeypatch):
    from agent.config import load_agent_config

    path = tmp_path / "agent.yaml"
    path.write_text(
        "site: s1\ndevices:\n  - {name: r1, host: 127.0.0.2}\n"
        f"outbox: {{path: {tmp_path / 'o.sqlite'}}}\n"
        "traps: {listen: '127.0.0.1:0', rate: 1, burst: 3, poll_min_interval: 60}\n"
    )
    cfg = load_agent_config(path)
    assert cfg.traps is not None
    polls: list[str] = []

    async def run() -> None:
        with Outbox(tmp_path / "o.sqlite", max_bytes=1 << 20, max_age_s=3600) as box:
            receiver = TrapReceiver(cfg.traps, "s1", cfg.devices, box, polls.append)  # type: ignore[arg-type]
            stop = asyncio.Event()
            task = asyncio.create_task(receiver.run(stop))
            while receiver.bound is None:
                await asyncio.sleep(0.01)
            receiver.datagram_received(v2_trap(LINK_DOWN), ("127.0.0.9", 5000))
            receiver.datagram_received(b"\x30\x03garbage", ("127.0.0.2", 5000))
            for _ in range(10):
                receiver.datagram_received(v2_trap(LINK_DOWN), ("127.0.0.2", 5000))
            await asyncio.sleep(0.2)
            stop.set()
            await task
            assert receiver.counters["unknown_source"] == 1
            assert receiver.counters["malformed"] == 1
            assert receiver.counters["stored"] == 2  # burst 3: one went to the garbage
            assert receiver.counters["suppressed"] == 8
            assert polls == ["r1"]  # once: poll_min_interval
            items = [box.take(), box.take()]
            stored = [decode_event(i.payload) for i in items if i is not None]
            assert {i.topic for i in items if i is not None} == {"pantau/s1/r1/event"}
            assert sorted((e.seq, e.device, e.trap) for e in stored) == [
                (1, "r1", "linkDown"),
                (2, "r1", "linkDown"),
            ]
            assert stored[0].ts_ms != stored[1].ts_ms  # unique per device: no point overwritten
            assert box.next_seq(event_key("r1")) == 3

    asyncio.run(run())
