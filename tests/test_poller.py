"""Poll logic in front of a small fake SNMP session: value conversion, walks that misbehave,
per-row fallback. The real-agent paths are covered by test_end_to_end.py against snmpsim."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.config import load_agent_config
from agent.poller import DevicePoller
from agent.profiles.model import ValueSpec
from agent.profiles.plan import CompiledValue, Converter, decode_text
from agent.snmp import NO_SUCH_OBJECT, OidValue, SnmpTimeout, oid_tuple
from tests.support.fake_snmp import FakeClient, FakeSession


def spec(**kw) -> CompiledValue:
    return CompiledValue.of(ValueSpec(name="v", oid="1.3.6.1.4.1.1.0", **kw))


@pytest.mark.parametrize(
    ("kw", "raw", "expected"),
    [
        ({"scale": 0.1}, 123, 12.3),
        ({"scale": 1e6}, 1000, 1_000_000_000),
        ({"scale": 0.1, "offset": -40}, 500, 10.0),
        ({}, b"-40", -40),
        ({}, b"10.5 dB", 10.5),
        ({"invalid": [65535]}, 65535, None),
        ({"kind": "counter"}, 2**64 - 1, 2**64 - 1),
        ({"kind": "state"}, 2, 2),
        ({"kind": "info"}, b"ALFOplus2\x00\x00", "ALFOplus2"),
        ({"kind": "info"}, OidValue("1.3.6.1.4.1.2281"), "1.3.6.1.4.1.2281"),
        ({}, NO_SUCH_OBJECT, None),
        ({}, b"no signal", None),
    ],
)
def test_conversion(kw, raw, expected):
    conv = Converter()
    got = conv.value(spec(**kw), raw)
    assert got == (pytest.approx(expected) if isinstance(expected, float) else expected)
    assert type(got) is type(expected) or isinstance(expected, float)


def test_conversion_counts_what_it_cannot_use():
    conv = Converter()
    conv.value(spec(), NO_SUCH_OBJECT)
    conv.value(spec(), b"garbage")
    conv.value(spec(kind="counter"), -5)
    assert conv.errors == {"no_such_object": 1, "wrong_type": 2}


def test_decode_text_never_produces_unprintable_strings():
    assert decode_text("Démodulateur".encode()) == "Démodulateur"
    assert decode_text(b"\x00\x1b\x21\xff\x10") == "0x001b21ff10"


def device(tmp_path: Path, **extra):
    text = (
        "site: s\ndevices:\n  - name: d\n    host: 127.0.0.1\n    profiles: [if-mib]\n"
        + "".join(f"    {k}: {v}\n" for k, v in extra.items())
    )
    (tmp_path / "a.yaml").write_text(text)
    return load_agent_config(tmp_path / "a.yaml").devices[0]


IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"


def test_fallback_to_32_bit_counters_per_row(tmp_path):
    # Row 1 has ifHCInOctets, row 2 only ifInOctets (as on many VSAT modems).
    records = [
        (f"{IF}.8.1", 1),
        (f"{IF}.8.2", 2),
        (f"{IF}.10.1", 111),
        (f"{IF}.10.2", 222),
        (f"{IFX}.1.1", b"eth0"),
        (f"{IFX}.1.2", b"sat0"),
        (f"{IFX}.6.1", 2**40),
    ]
    poller = DevicePoller("s", device(tmp_path), FakeClient(FakeSession(records)), lambda _: 1)
    result = asyncio.run(poller.poll())
    rows = {g.tags["ifName"]: {f.name: f.value for f in g.fields} for g in result.groups}
    assert rows["eth0"]["in_octets"] == 2**40
    assert rows["sat0"]["in_octets"] == 222
    assert rows["sat0"]["oper_status"] == 2


def test_non_increasing_oids_are_kept_and_counted(tmp_path):
    # Like aviat-wtm: .60 is served before .59.
    col = f"{IF}.8"
    records = [(f"{col}.58", 1), (f"{col}.60", 1), (f"{col}.59", 2), (f"{col}.61", 1)]
    poller = DevicePoller("s", device(tmp_path), FakeClient(FakeSession(records)), lambda _: 1)
    result = asyncio.run(poller.poll())
    indexes = sorted(int(g.tags["ifIndex"]) for g in result.groups)
    assert indexes == [58, 59, 60, 61]
    assert result.errors["oid_not_increasing"] == 1


def test_agent_that_loops_is_stopped(tmp_path):
    class Looping(FakeSession):
        def _next(self, oid):
            a, b = oid_tuple(f"{IF}.8.1"), oid_tuple(f"{IF}.8.2")
            return (b, 1) if oid != b else (a, 1)

    poller = DevicePoller("s", device(tmp_path), FakeClient(Looping([])), lambda _: 1)
    result = asyncio.run(poller.poll())
    assert result.up and len(result.groups) == 2
    assert result.errors["oid_not_increasing"] >= 1


def test_failed_poll_is_data(tmp_path):
    poller = DevicePoller("s", device(tmp_path), FakeClient(SnmpTimeout()), lambda _: 9)
    result = asyncio.run(poller.poll())
    assert (result.up, result.reason, result.seq, result.groups) == (False, "timeout", 9, [])
    assert result.errors == {"timeout": 1}


def test_deadline_bounds_a_slow_device(tmp_path):
    class Slow(FakeSession):
        async def next_rows(self, oids, max_repetitions, bulk):
            await asyncio.sleep(30)

    dev = device(tmp_path, interval=1, deadline=0.2)
    poller = DevicePoller("s", dev, FakeClient(Slow([])), lambda _: 1)
    result = asyncio.run(asyncio.wait_for(poller.poll(), 5))
    assert (result.up, result.reason) == (False, "deadline")
    assert result.duration_ms < 1000


def test_max_varbinds_caps_every_request(tmp_path):
    class Recording(FakeSession):
        def __init__(self, records):
            super().__init__(records)
            self.sizes: list[int] = []

        async def get(self, oids):
            self.sizes.append(len(oids))
            return await super().get(oids)

        async def next_rows(self, oids, max_repetitions, bulk):
            self.sizes.append(len(oids))
            assert bulk is False  # bulk: false is honoured
            return await super().next_rows(oids, max_repetitions, bulk)

    records = [(f"{IF}.{c}.{i}", i) for c in (2, 7, 8, 10, 13, 14, 16, 19, 20) for i in (1, 2)]
    session = Recording(records)
    dev = device(tmp_path, max_varbinds=3, bulk="false")
    result = asyncio.run(DevicePoller("s", dev, FakeClient(session), lambda _: 1).poll())
    assert result.up and len(result.groups) == 2
    assert session.sizes and max(session.sizes) <= 3


def test_reboot_detection_and_the_497_day_wrap():
    from agent.poller import WRAP_TICKS, RebootDetector

    d = RebootDetector()
    assert not d.update(1000, 10, now=0.0)
    assert not d.update(7000, 70, now=60.0)  # a minute later: forwards
    assert d.update(500, 5, now=120.0)  # backwards: rebooted
    assert d.reboots == 1
    # Near the wrap: sysUpTime restarts from 0 after 2^32 ticks, the device did not reboot,
    # and snmpEngineTime (seconds, no wrap) went on.
    d = RebootDetector()
    d.update(WRAP_TICKS - 3000, 42_949_600, now=0.0)
    assert not d.update(3000, 42_949_660, now=60.0)
    assert d.reboots == 0
    # Same wrap position but snmpEngineTime went back too: a real reboot.
    d = RebootDetector()
    d.update(WRAP_TICKS - 3000, 42_949_600, now=0.0)
    assert d.update(3000, 30, now=60.0)
    # No sysUpTime at all: snmpEngineTime alone decides.
    d = RebootDetector()
    d.update(None, 5000, now=0.0)
    assert d.update(None, 20, now=60.0) and d.reboots == 1


@pytest.mark.parametrize(
    ("kw", "raw", "expected"),
    [
        ({"bit": 0}, 0b101, 1),
        ({"bit": 1}, 0b101, 0),
        ({"map": {3: 1}, "map_default": 0}, 3, 1),
        ({"map": {3: 1}, "map_default": 0}, 2, 0),
        ({"map": {3: 1}}, 2, None),
    ],
)
def test_bit_and_map_make_zero_one_gauges(kw, raw, expected):
    assert Converter().value(spec(**kw), raw) == expected


def test_multiply_by_and_scalar_fallback(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: p\n    measurement: host\n    scalars:\n"
        "      - {name: memory_bytes, oid: 1.3.6.1.4.1.1.1.0, fallback_oid: 1.3.6.1.4.1.1.2.0,"
        " fallback_scale: 1024}\n"
        "    tables:\n      - measurement: storage\n        columns:\n"
        "          - {name: allocation_unit_bytes, oid: 1.3.6.1.4.1.1.3.1.4}\n"
        "          - {name: used_bytes, oid: 1.3.6.1.4.1.1.3.1.6,"
        " multiply_by: allocation_unit_bytes}\n"
    )
    (tmp_path / "a.yaml").write_text(
        "site: s\nprofile_files: [p.yaml]\ndevices:\n  - name: d\n    host: 127.0.0.1\n"
        "    profiles: [p]\n"
    )
    dev = load_agent_config(tmp_path / "a.yaml").devices[0]
    records = [
        ("1.3.6.1.4.1.1.2.0", 2048),
        ("1.3.6.1.4.1.1.3.1.4.1", 4096),
        ("1.3.6.1.4.1.1.3.1.6.1", 10),
    ]
    result = asyncio.run(
        DevicePoller("s", dev, FakeClient(FakeSession(records)), lambda _: 1).poll()
    )
    got = {(g.measurement, f.name): f.value for g in result.groups for f in g.fields}
    assert got[("host", "memory_bytes")] == 2048 * 1024
    assert got[("storage", "used_bytes")] == 40960


def test_mw_to_dbm_conversion():
    conv = Converter()
    assert conv.value(spec(convert="mw_to_dbm", scale=0.001), 1000) == 0.0  # 1 mW
    assert conv.value(spec(convert="mw_to_dbm"), 2) == 3.01
    assert conv.value(spec(convert="mw_to_dbm"), 0) is None  # no light: absent


def test_entity_sensor_options():
    from agent.profiles.transforms import entity_sensor

    row = {"type": 6, "scale": 7, "precision": 0, "value": 10646, "status": 1}
    _, (f,) = entity_sensor(row, {"sensor": "SFP TX Power Sensor"}, "sensor")
    assert (f.name, f.value) == ("tx_power_dbm", 10.272)  # 10646 µW as the standard says
    _, (f,) = entity_sensor(row, {"sensor": "SFP TX Power Sensor"}, "sensor", precision_offset=1)
    assert f.value == 0.272  # read as 0.1 µW, as ExtremeXOS means it
    cisco = {
        "type": 1,
        "scale": 9,
        "precision": 1,
        "value": -52,
        "status": 1,
        "units_display": "dBm",
    }
    m, (f,) = entity_sensor(cisco, {"sensor": "subslot 0/0 transceiver 0 Rx Power"}, "sensor")
    assert (m, f.name, f.value) == ("signal", "rx_power_dbm", -5.2)


def test_scalar_tags_and_oid_value_detection(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: modem\n    measurement: signal\n"
        "    match: {oid_value: {1.3.6.1.4.1.9.1.0: '^RUT'}}\n    scalars:\n"
        "      - {name: snr_db, oid: 1.3.6.1.4.1.9.2.0, tags: {demod: '1'}}\n"
        "      - {name: snr_db, oid: 1.3.6.1.4.1.9.3.0, tags: {demod: '2'}}\n"
    )
    (tmp_path / "a.yaml").write_text(
        "site: s\nprofile_files: [p.yaml]\ndevices:\n  - name: d\n    host: 127.0.0.1\n"
    )
    dev = load_agent_config(tmp_path / "a.yaml").devices[0]
    records = [
        ("1.3.6.1.2.1.1.1.0", b"Linux"),
        ("1.3.6.1.2.1.1.2.0", OidValue("1.3.6.1.4.1.8072")),
        ("1.3.6.1.4.1.9.1.0", b"RUT955"),
        ("1.3.6.1.4.1.9.2.0", 12),
        ("1.3.6.1.4.1.9.3.0", 7),
    ]
    poller = DevicePoller("s", dev, FakeClient(FakeSession(records)), lambda _: 1)
    result = asyncio.run(poller.poll())
    assert "modem" in poller.plan.profiles
    snr = {
        g.tags.get("demod"): f.value for g in result.groups for f in g.fields if f.name == "snr_db"
    }
    assert snr == {"1": 12, "2": 7}
    # The same device without the model answer is not claimed.
    records[2] = ("1.3.6.1.4.1.9.1.0", b"Some other box")
    poller = DevicePoller("s", dev, FakeClient(FakeSession(records)), lambda _: 1)
    asyncio.run(poller.poll())
    assert "modem" not in poller.plan.profiles
