"""Every conversion from device data is total: a value no number (or text) can be made of becomes
an absent value counted per device (`errors`, kind `bad_value` or `wrong_type`), and the other
values of the same poll survive.

The hostile values are what one broken or malicious datagram can carry. The poll-level tests
serve them from a small fake SNMP session (as tests/test_poller.py does): snmpsim could serve
them from a recording as well, but the fake keeps each case to the conversion under test and
lets a value be 10 MB, which no UDP datagram (so no real agent) can carry.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from pathlib import Path

import pytest

from agent.config import load_agent_config
from agent.poller import DevicePoller
from agent.profiles.model import ValueSpec
from agent.profiles.plan import CompiledValue, Converter
from agent.profiles.transforms import entity_sensor
from pantau.wire import decode_sample_set, encode_sample_set
from tests.support.fake_snmp import FakeClient, FakeSession

HUGE_TEXT = b"1" + b"0" * 4999  # a 5,000-digit number written as text
TEN_MB = 10 * 1024 * 1024


def spec(**kw) -> CompiledValue:
    return CompiledValue.of(ValueSpec(name="v", oid="1.3.6.1.4.1.1.0", **kw))


STATE = {"kind": "state"}
BIT = {"bit": 0}
MAP = {"map": {1: 1}, "map_default": 0}


@pytest.mark.parametrize(
    ("kw", "raw", "kind"),
    [
        # the reproductions
        ({}, HUGE_TEXT, "bad_value"),
        (STATE, HUGE_TEXT, "bad_value"),
        ({"kind": "counter"}, HUGE_TEXT, "bad_value"),
        (STATE, b"1e400", "bad_value"),
        (BIT, b"1e400", "bad_value"),
        (MAP, b"1e400", "bad_value"),
        (STATE, b"inf", "bad_value"),
        (BIT, b"-inf", "bad_value"),
        (MAP, b"Infinity", "bad_value"),
        ({"scale": 0.1}, b"9" * 400, "bad_value"),  # a huge integer times a scale
        ({"scale": 1e300}, b"1e300", "bad_value"),  # finite × finite = inf
        # more of the same family
        ({}, b"nan", "bad_value"),
        (STATE, b"-nan", "bad_value"),
        (BIT, b"NaN", "bad_value"),
        ({"kind": "counter"}, b"18446744073709551616", "bad_value"),  # 2^64: beyond the wire
        (STATE, 2**64 - 1, "bad_value"),  # a Counter64 where a state is: beyond InfluxDB's i
        (STATE, b"9223372036854775808", "bad_value"),  # 2^63 as text
        ({}, b"-9223372036854775809", "bad_value"),  # below int64
        ({}, b"7" * TEN_MB, "bad_value"),  # a 10 MB number column
        ({}, b"x" * TEN_MB, "bad_value"),
        ({"kind": "info"}, b"x" * TEN_MB, "bad_value"),  # a 10 MB info value
        ({}, b"\xff\xfe\xfd", "wrong_type"),  # not UTF-8 (nor a number in Latin-1)
        (STATE, b"\xc3\x28", "wrong_type"),
    ],
)
def test_hostile_values_are_absent_and_counted(kw, raw, kind):
    conv = Converter()
    assert conv.value(spec(**kw), raw) is None
    assert conv.errors == {kind: 1}


@pytest.mark.parametrize(
    ("kw", "raw", "expected"),
    [
        ({}, b"-0.0", 0.0),
        ({"scale": 0.1}, b"-0.0", 0.0),
        ({"scale": -0.1}, b"0.0", 0.0),  # a negative scale times zero
        (STATE, b"-0.0", 0),
        ({}, b"\xff-40\xfe", -40),  # not UTF-8 around a number: the number is still read
        ({"kind": "counter"}, b"18446744073709551615", 2**64 - 1),  # the largest that fits
        ({}, b"info 12", 12),  # "inf" only as a word
        ({}, b"-9223372036854775808", -(2**63)),
    ],
)
def test_edge_values_that_are_readable(kw, raw, expected):
    conv = Converter()
    got = conv.value(spec(**kw), raw)
    assert got == expected and type(got) is type(expected)
    if isinstance(got, float):
        assert math.copysign(1.0, got) == 1.0  # zero, not minus zero
    assert not conv.errors


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"type": 8, "scale": 200, "precision": 0, "value": 42, "status": 1}, []),
        ({"type": 8, "scale": -200, "precision": 0, "value": 42, "status": 1}, []),
        ({"type": 8, "scale": 9, "precision": 10**6, "value": 42, "status": 1}, []),
        ({"type": 6, "scale": 9, "precision": -(10**6), "value": 42, "status": 1}, []),
        ({"type": 8, "scale": 9, "precision": 0, "value": math.inf, "status": 1}, []),
        ({"type": 8, "scale": 9, "precision": 0, "value": "n/a", "status": 1}, []),
        ({"type": 8, "scale": 9, "precision": 0, "value": 42, "status": "up"}, []),
    ],
)
def test_entity_sensor_rows_that_cannot_be_read(row, expected):
    errors: Counter[str] = Counter()
    _, fields = entity_sensor(row, {"sensor": "board"}, "sensor", errors=errors)
    assert fields == expected
    assert errors == {"bad_value": 1}


def test_entity_sensor_in_range_is_still_read():
    errors: Counter[str] = Counter()
    row = {"type": 8, "scale": 9, "precision": 1, "value": 425, "status": 1}
    _, (f,) = entity_sensor(row, {"sensor": "board"}, "sensor", errors=errors)
    assert (f.name, f.value) == ("temperature_celsius", 42.5)
    assert not errors


# ------------------------------------------------------------------------------------------
# whole polls: the hostile value is left out, the rest of the poll survives


def poll(tmp_path: Path, records: list[tuple[str, object]], profiles_yaml: str, names: str):
    files = ""
    if profiles_yaml:
        (tmp_path / "p.yaml").write_text(profiles_yaml)
        files = "profile_files: [p.yaml]\n"
    (tmp_path / "a.yaml").write_text(
        f"site: s\n{files}devices:\n  - name: d\n    host: 127.0.0.1\n"
        f"    ping: false\n    profiles: [{names}]\n"
    )
    dev = load_agent_config(tmp_path / "a.yaml").devices[0]
    poller = DevicePoller("s", dev, FakeClient(FakeSession(records, sort=True)), lambda _: 1)
    result = asyncio.run(poller.poll())
    # what the poll gives can always be sent
    decoded = decode_sample_set(encode_sample_set(result), site="s", device="d")
    assert decoded.groups == result.groups
    return result


E = "1.3.6.1.4.1.99999"
PROFILE = (
    "profiles:\n  - name: p\n    measurement: m\n    scalars:\n"
    f"      - {{name: a, oid: {E}.1.0, kind: state}}\n"
    f"      - {{name: b, oid: {E}.2.0, scale: 0.1}}\n"
    f"      - {{name: c, oid: {E}.3.0, bit: 1}}\n"
    f"      - {{name: d, oid: {E}.4.0, map: {{1: 1}}, map_default: 0}}\n"
    f"      - {{name: e, oid: {E}.5.0, kind: counter}}\n"
    f"      - {{name: f, oid: {E}.6.0}}\n"
    f"      - {{name: g, oid: {E}.7.0, kind: info}}\n"
    "    tables:\n      - measurement: storage\n        columns:\n"
    f"          - {{name: unit_bytes, oid: {E}.9.1.4}}\n"
    f"          - {{name: used_bytes, oid: {E}.9.1.6, multiply_by: unit_bytes}}\n"
)


def test_one_datagram_of_hostile_values_leaves_the_rest_of_the_poll(tmp_path):
    records = [
        (f"{E}.1.0", b"1e400"),  # state
        (f"{E}.2.0", b"9" * 400),  # huge × scale
        (f"{E}.3.0", b"inf"),  # bit
        (f"{E}.4.0", HUGE_TEXT),  # map
        (f"{E}.5.0", b"18446744073709551616"),  # counter beyond 64 bits
        (f"{E}.6.0", b"-12.5 dBm"),  # fine
        (f"{E}.7.0", b"x" * 5000),  # info beyond any DisplayString
        (f"{E}.9.1.4.1", 2**40),
        (f"{E}.9.1.6.1", 2**40),  # 2^80 bytes: beyond the wire format
        (f"{E}.9.1.4.2", 4096),
        (f"{E}.9.1.6.2", 10),
    ]
    result = poll(tmp_path, records, PROFILE, "p")
    assert result.up and result.reason == ""
    got = {
        (g.measurement, g.tags.get("index"), f.name): f.value
        for g in result.groups
        for f in g.fields
    }
    assert got[("m", None, "f")] == -12.5
    assert got[("storage", "2", "used_bytes")] == 40960
    assert ("storage", "1", "used_bytes") not in got
    assert got[("storage", "1", "unit_bytes")] == 2**40
    assert not {"a", "b", "c", "d", "e", "g"} & {name for (m, _, name) in got if m == "m"}
    assert result.errors == {"bad_value": 7}


SENSOR = "1.3.6.1.2.1.99.1.1.1"
NAME = "1.3.6.1.2.1.47.1.1.1.1.7"


def test_entity_sensor_scale_200_leaves_the_other_sensors(tmp_path):
    records = []
    for index, name, scale in ((1, b"board", 9), (2, b"broken", 200), (3, b"inlet", 9)):
        records += [
            (f"{NAME}.{index}", name),
            (f"{SENSOR}.1.{index}", 8),  # celsius
            (f"{SENSOR}.2.{index}", scale),
            (f"{SENSOR}.3.{index}", 0),
            (f"{SENSOR}.4.{index}", 40 + index),
            (f"{SENSOR}.5.{index}", 1),
        ]
    result = poll(tmp_path, records, "", "entity-sensor")
    assert result.up
    temps = {g.tags["sensor"]: f.value for g in result.groups for f in g.fields}
    assert temps == {"board": 41.0, "inlet": 43.0}
    assert result.errors == {"bad_value": 1}


def test_a_10_mb_tag_is_skipped_for_the_next_one(tmp_path):
    records = [
        (f"{NAME}.1", b"n" * TEN_MB),
        ("1.3.6.1.2.1.47.1.1.1.1.2.1", b"Board temperature"),  # entPhysicalDescr
        (f"{SENSOR}.1.1", 8),
        (f"{SENSOR}.2.1", 9),
        (f"{SENSOR}.3.1", 0),
        (f"{SENSOR}.4.1", 41),
        (f"{SENSOR}.5.1", 1),
    ]
    result = poll(tmp_path, records, "", "entity-sensor")
    (group,) = result.groups
    assert group.tags["sensor"] == "Board temperature"
    assert result.errors == {"bad_value": 1}


def test_the_sessions_own_counts_reach_the_sample_set(tmp_path):
    """What the SNMP session counted (fast-path fallbacks, stray datagrams, tolerated
    encodings: agent.snmp's `counters`) travels in the sample set's errors, next to the
    conversion counts, so the NOC sees a device that answers oddly."""
    session = FakeSession([(f"{E}.6.0", b"-12.5"), (f"{E}.1.0", b"inf")], sort=True)
    session.counters = Counter({"anomaly_unsigned_unpadded": 3, "stray_wrong_source": 1})
    (tmp_path / "p.yaml").write_text(PROFILE)
    (tmp_path / "a.yaml").write_text(
        "site: s\nprofile_files: [p.yaml]\ndevices:\n  - name: d\n    host: 127.0.0.1\n"
        "    ping: false\n    profiles: [p]\n"
    )
    dev = load_agent_config(tmp_path / "a.yaml").devices[0]
    poller = DevicePoller("s", dev, FakeClient(session), lambda _: 1)
    result = asyncio.run(poller.poll())
    assert result.errors == {
        "bad_value": 1,
        "no_such_object": 5,  # the profile's other scalars
        "anomaly_unsigned_unpadded": 3,
        "stray_wrong_source": 1,
    }
