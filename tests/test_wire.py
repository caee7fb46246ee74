"""The wire format: round trips exactly, stays compact, and refuses what it does not know.

Version 2 is what agents send; version 1 must still decode (messages left in outboxes). Sizes
are only ever compared with each other here (version 2 smaller than version 1), never with fixed
numbers: bench/wire_bytes.py measures them against line protocol.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import zlib

import msgspec
import pytest

from collector.lineproto import sample_set_lines
from devstack.polling import poll_recording
from pantau.wire import (
    SAMPLE_SET_VERSION,
    SCHEMA_VERSION,
    Field,
    Gap,
    Group,
    Kind,
    SampleSet,
    Status,
    WireError,
    decode_gap,
    decode_sample_set,
    decode_status,
    encode_gap,
    encode_sample_set,
    encode_status,
    name_check,
)
from pantau.wire import codec as wire
from pantau.wire.dictionaries import _TABLES_1, DICTIONARIES, _schema_bytes
from pantau.wire.model import DICTIONARY_ID, ENC_MSGPACK, ENC_MSGPACK_ZLIB, V2_PLAIN

SITE, DEVICE = "s1", "radio"

# SHA-256 of every dictionary ever released. A dictionary must never change once an agent may
# have compressed with it: add a new id instead (see pantau/wire/dictionaries.py).
DICTIONARY_SHA256 = {
    1: "15a89a2e8e7377e04578b0939ae595a58502dab0da76cf23b407c7c4d393065d",
}


def sample(n_rows: int = 1) -> SampleSet:
    groups = [
        Group(
            "system",
            {},
            [
                Field("uptime_seconds", Kind.GAUGE, 1234.5),
                Field("descr", Kind.INFO, "Radio ümlaut"),
            ],
        )
    ]
    for i in range(n_rows):
        groups.append(
            Group(
                "interface",
                {"ifIndex": str(i + 1), "ifName": f"eth{i}"},
                [
                    Field("in_octets", Kind.COUNTER, 2**64 - 1 - i),
                    Field("oper_status", Kind.STATE, 1),
                ],
            )
        )
    return SampleSet(
        site=SITE,
        device=DEVICE,
        seq=42,
        ts_ms=1_790_000_000_000,
        duration_ms=120,
        up=True,
        reason="",
        groups=groups,
        errors={"no_such_object": 2},
    )


def awkward() -> SampleSet:
    """Everything the encoder must keep exactly: order, types, odd shapes and odd numbers."""
    iface = {"ifIndex": "1", "ifName": "eth0", "ifDescr": "GbE 0"}
    return SampleSet(
        site=SITE,
        device=DEVICE,
        seq=2**63 - 1,
        ts_ms=1_790_000_000_123,
        duration_ms=0,
        up=True,
        reason="",
        reboots=3,
        rebooted=True,
        errors={"wrong_type": 1, "timeout": 0},
        groups=[
            Group(
                "power",
                {},
                [
                    Field("dc_bus_voltage_volts", Kind.GAUGE, 53.5),
                    Field("rectifier_count", Kind.GAUGE, 2),  # an int gauge
                    Field("load_current_amperes", Kind.GAUGE, -0.0),
                    Field("alarms", Kind.GAUGE, 1e-300),
                    Field("big", Kind.GAUGE, 1.7976931348623157e308),
                    Field("inf", Kind.GAUGE, math.inf),
                ],
            ),
            Group(
                "interface",
                iface,
                [Field("in_octets", Kind.COUNTER, 0), Field("speed_bps", Kind.GAUGE, 1e9)],
            ),
            Group(
                "interface",
                {**iface, "ifIndex": "2"},
                [Field("in_octets", Kind.COUNTER, 7), Field("speed_bps", Kind.GAUGE, 1.0)],
            ),
            # a row missing a value, then the first shape again: order must survive
            Group("interface", {**iface, "ifIndex": "3"}, [Field("speed_bps", Kind.GAUGE, 0.1)]),
            Group(
                "interface",
                {**iface, "ifIndex": "4"},
                [Field("in_octets", Kind.COUNTER, 9), Field("speed_bps", Kind.GAUGE, 2.5)],
            ),
            # the same keys in another order, and a tag left out
            Group(
                "interface",
                {"ifName": "eth5", "ifIndex": "5"},
                [Field("in_octets", Kind.COUNTER, 2**64 - 1), Field("speed_bps", Kind.GAUGE, 3)],
            ),
            Group("signal", {"ifIndex": "1"}, []),  # tags but no fields
            Group("signal", {"ifIndex": "2"}, []),
            Group("empty", {}, []),  # neither
            Group("empty", {}, []),
            Group("dupes", {}, [Field("x", Kind.STATE, -(2**63) + 1), Field("x", Kind.INFO, "")]),
            # values the collector will reject still travel unchanged, so it can say why
            Group(
                "bad",
                {"k": "v"},
                [
                    Field("c", Kind.COUNTER, -1),
                    Field("g", Kind.GAUGE, "12"),
                    Field("i", Kind.INFO, 3),
                    Field("f", Kind.COUNTER, 1.5),
                ],
            ),
        ],
    )


def down() -> SampleSet:
    return SampleSet(
        site=SITE,
        device=DEVICE,
        seq=81235,
        ts_ms=1_790_000_060_000,
        duration_ms=5003,
        up=False,
        reason="deadline",
        errors={"no_such_instance": 3, "deadline": 1},
    )


def typed(ss: SampleSet) -> list[object]:
    """The sample set with every value's type beside it: 1 == 1.0 and 0.0 == -0.0 in Python,
    but not on the wire."""
    return [
        ss.site,
        ss.device,
        ss.seq,
        ss.ts_ms,
        ss.duration_ms,
        ss.up,
        ss.reason,
        ss.errors,
        ss.reboots,
        ss.rebooted,
        [
            (
                g.measurement,
                list(g.tags.items()),
                [
                    (
                        f.name,
                        f.kind,
                        type(f.value),
                        struct.pack(">d", f.value) if isinstance(f.value, float) else f.value,
                    )
                    for f in g.fields
                ],
            )
            for g in ss.groups
        ],
    ]


def v2(ss: SampleSet) -> SampleSet:
    return decode_sample_set(encode_sample_set(ss), site=ss.site, device=ss.device)


def body_v2(ss: SampleSet) -> bytes:
    """The MessagePack body of a version 2 payload, whether or not it was compressed."""
    payload = encode_sample_set(ss)
    if payload[1] == V2_PLAIN:
        return payload[6:]
    return zlib.decompressobj(-15, zdict=DICTIONARIES[payload[1]]).decompress(payload[6:])


def payload_v2(
    body: bytes, dictionary: int = DICTIONARY_ID, site: str = SITE, device: str = DEVICE
) -> bytes:
    """A hand-made version 2 payload around `body` (compressed unless dictionary is 0)."""
    if dictionary != V2_PLAIN:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=DICTIONARIES[dictionary])
        body = deflater.compress(body) + deflater.flush()
    return (
        bytes((2, dictionary))
        + name_check(site).to_bytes(2, "big")
        + name_check(device).to_bytes(2, "big")
        + body
    )


def header(ss: SampleSet) -> list[object]:
    return [ss.seq, ss.ts_ms, ss.duration_ms, ss.up, ss.reason]


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: sample(0), lambda: sample(40), awkward, down])
def test_version_2_round_trip_is_exact(make):
    ss = make()
    payload = encode_sample_set(ss)
    assert payload[0] == SAMPLE_SET_VERSION == 2
    assert payload[1] in (V2_PLAIN, DICTIONARY_ID)
    assert payload[2:4] == name_check(SITE).to_bytes(2, "big")
    assert payload[4:6] == name_check(DEVICE).to_bytes(2, "big")
    back = decode_sample_set(payload, site=SITE, device=DEVICE)
    assert typed(back) == typed(ss)
    assert sample_set_lines(back) == sample_set_lines(ss)


@pytest.mark.parametrize(("rows", "encoding"), [(0, ENC_MSGPACK), (40, ENC_MSGPACK_ZLIB)])
def test_version_1_still_decodes(rows, encoding):
    ss = sample(rows)
    payload = encode_sample_set(ss, version=1)
    assert payload[:2] == bytes((1, encoding))
    assert decode_sample_set(payload) == ss  # carries site and device itself
    assert decode_sample_set(payload, site="other", device="other") == ss  # the caller compares


def test_floats_travel_exactly():
    """Decimal columns (integers × 10^e) give back the very same float, bit for bit."""
    rnd = random.Random(7)
    floats = (
        [round(rnd.uniform(-1e4, 1e4), rnd.randint(0, 9)) for _ in range(300)]
        + [rnd.uniform(-1, 1) for _ in range(100)]
        + [struct.unpack(">d", rnd.randbytes(8))[0] for _ in range(100)]
        + [0.1 + 0.2, 5e-324, 2.0**53 + 2, 1e22, 1e23, 123456789012345.6, -0.0, 0.0]
    )
    floats = [f for f in floats if math.isfinite(f)]
    for column in ([f] for f in floats):  # one value per column: each its own exponent
        ss = msgspec.structs.replace(
            sample(0), groups=[Group("m", {}, [Field("g", Kind.GAUGE, column[0])])]
        )
        assert typed(v2(ss)) == typed(ss)
    rows = [Group("m", {"i": str(i)}, [Field("g", Kind.GAUGE, f)]) for i, f in enumerate(floats)]
    ss = msgspec.structs.replace(sample(0), groups=rows)  # one column, one shared exponent
    assert typed(v2(ss)) == typed(ss)


def test_scaled_gauges_travel_as_integers():
    ss = msgspec.structs.replace(
        sample(0),
        groups=[
            Group("power", {"rectifier": str(i)}, [Field("current_amperes", Kind.GAUGE, i / 10)])
            for i in range(1, 30)
        ],
    )
    (table,) = wire._v2_decoder.decode(body_v2(ss)).tables
    assert table.exponents == [-1] and table.values == list(range(1, 30))
    assert typed(v2(ss)) == typed(ss)


def test_rows_of_one_table_share_their_names():
    ss = sample(40)
    raw = wire._v2_decoder.decode(body_v2(ss))
    assert [(t.measurement, t.rows) for t in raw.tables] == [("system", 1), ("interface", 40)]
    assert raw.tables[1].tag_keys == ["ifIndex", "ifName"]
    assert [c.name for c in raw.tables[1].columns] == ["in_octets", "oper_status"]


def test_every_message_decodes_on_its_own():
    """No state between messages: out of order, duplicated, on any collector."""
    sets = [msgspec.structs.replace(sample(i % 5), seq=i) for i in range(1, 21)]
    payloads = [encode_sample_set(ss) for ss in sets]
    order = list(range(20)) * 2
    random.Random(3).shuffle(order)
    for i in order:
        assert decode_sample_set(payloads[i], site=SITE, device=DEVICE) == sets[i]


def test_version_2_is_smaller_than_version_1():
    for ss in (sample(0), sample(3), sample(40), awkward(), down()):
        assert len(encode_sample_set(ss)) < len(encode_sample_set(ss, version=1))


@pytest.mark.parametrize("community", ["huawei-smu_11b", "ceraos", "xos_sfp", "netsure"])
def test_real_polls_round_trip_and_shrink(tmp_path, snmpsim, community):
    """Sample sets the agent really produces from recordings (small and large devices)."""
    ss, _ = poll_recording(tmp_path, snmpsim.port, community)
    ss = msgspec.structs.replace(ss, site="kpg-ridge-01", device="dev-1", seq=10_080)
    payload = encode_sample_set(ss)
    assert typed(decode_sample_set(payload, site="kpg-ridge-01", device="dev-1")) == typed(ss)
    assert len(payload) < len(encode_sample_set(ss, version=1))
    saved = DICTIONARIES[DICTIONARY_ID]
    try:
        DICTIONARIES[DICTIONARY_ID] = b""  # the same encoder without the preset dictionary
        without = encode_sample_set(ss)
    finally:
        DICTIONARIES[DICTIONARY_ID] = saved
    assert len(payload) < len(without)


def test_version_1_can_still_be_encoded_and_nothing_else():
    with pytest.raises(ValueError):
        encode_sample_set(sample(), version=3)


def test_version_2_needs_the_topic():
    with pytest.raises(TypeError):
        decode_sample_set(encode_sample_set(sample()))


# --- the preset dictionary -----------------------------------------------------------------------


def test_dictionaries_never_change():
    assert set(DICTIONARIES) == set(DICTIONARY_SHA256)
    for ident, data in DICTIONARIES.items():
        assert 1 <= ident <= 255
        assert len(data) <= 32768  # DEFLATE only reaches back 32 KiB
        assert hashlib.sha256(data).hexdigest() == DICTIONARY_SHA256[ident], (
            f"dictionary {ident} changed: agents and collectors would disagree. Add a new id."
        )
    assert DICTIONARY_ID in DICTIONARIES


def test_dictionary_holds_the_bytes_the_encoder_writes():
    """The dictionary is worth something only while it matches the encoder's layout."""
    for schema in (_TABLES_1[0], _TABLES_1[-1]):
        measurement, keys, columns = schema
        group = Group(
            measurement,
            {k: "x" for k in keys},
            [Field(name, Kind(kind), 0) for name, kind in columns],
        )
        ss = msgspec.structs.replace(sample(0), groups=[group])
        assert _schema_bytes(schema) in body_v2(ss)
        assert _schema_bytes(schema) in DICTIONARIES[1]


def test_unknown_dictionary_is_refused_with_a_clear_reason():
    payload = bytearray(encode_sample_set(sample(40)))
    assert payload[1] == DICTIONARY_ID
    payload[1] = 200
    with pytest.raises(WireError) as err:
        decode_sample_set(bytes(payload), site=SITE, device=DEVICE)
    assert err.value.reason == "unknown_dictionary"
    assert "dictionary 200" in err.value.detail and "upgrade" in err.value.detail


# --- rejections ----------------------------------------------------------------------------------


def test_site_or_device_other_than_the_topic_is_refused():
    payload = encode_sample_set(sample())
    for site, device, reason in [
        ("s2", DEVICE, "site_mismatch"),
        ("S1", DEVICE, "site_mismatch"),
        (SITE, "radio2", "device_mismatch"),
    ]:
        with pytest.raises(WireError) as err:
            decode_sample_set(payload, site=site, device=device)
        assert err.value.reason == reason
        assert repr(site if reason == "site_mismatch" else device) in err.value.detail


def test_unknown_version_is_refused():
    for version in (0, 3, 255):
        payload = bytearray(encode_sample_set(sample()))
        payload[0] = version
        with pytest.raises(WireError) as err:
            decode_sample_set(bytes(payload), site=SITE, device=DEVICE)
        assert err.value.reason == "unknown_version"


_ENC = msgspec.msgpack.encode


def _table(
    rows=1,
    keys=("k",),
    tag_values=("a",),
    columns=(("f", 0),),
    exponents=(),
    values=(1.5,),
    measurement="m",
) -> list[object]:
    return [
        measurement,
        list(keys),
        [list(c) for c in columns],
        rows,
        list(exponents),
        list(tag_values),
        list(values),
    ]


def _body(*tables, top=None) -> bytes:
    return _ENC([*(top or header(sample())), list(tables), {}, 0, False])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x02", "malformed"),
        (b"\x02\x01\x00\x00\x00", "malformed"),
        (payload_v2(b"", V2_PLAIN), "malformed"),
        (payload_v2(b"\xc1\xc1\xc1", V2_PLAIN), "malformed"),
        (payload_v2(_body(_table())[:-3], V2_PLAIN), "malformed"),
        (payload_v2(_body(_table()))[:-4], "malformed"),  # the DEFLATE stream cut short
        (payload_v2(_body(_table())) + b"\x00", "malformed"),  # bytes after its end
        (payload_v2(b"")[:6] + b"\xff\xff\xff\xff", "malformed"),  # not DEFLATE at all
        (payload_v2(_ENC(["seven", 1, 1, True, "", [], {}, 0, False])), "invalid_schema"),
        (payload_v2(_ENC([1, 1, 1, 1, "", [], {}, 0, False])), "invalid_schema"),  # up as an int
        (payload_v2(_ENC([1, 1, 1, True, ""])), "invalid_schema"),  # too short
        (payload_v2(_body(_table(columns=(("f", 9),)))), "invalid_schema"),  # unknown Kind
        (payload_v2(_body(_table(values=(True,)))), "invalid_schema"),  # a bool value
        (payload_v2(_body(_table(values=(None,)))), "invalid_schema"),
        (payload_v2(_body(_table(tag_values=(7,)))), "invalid_schema"),  # a tag value not text
        (payload_v2(_body(_table(rows=2))), "invalid_schema"),  # rows without their values
        (payload_v2(_body(_table(values=(1, 2)))), "invalid_schema"),
        (payload_v2(_body(_table(rows=0, tag_values=(), values=()))), "invalid_schema"),
        (
            payload_v2(_body(_table(rows=10**6, keys=(), tag_values=(), columns=(), values=()))),
            "invalid_schema",
        ),  # rows that cost no bytes
        (payload_v2(_body(_table(keys=("k", "k"), tag_values=("a", "b")))), "invalid_schema"),
        (payload_v2(_body(_table(exponents=(-1, -1)))), "invalid_schema"),
        (payload_v2(_body(_table(exponents=(-1,), values=(1.5,)))), "invalid_schema"),
        (payload_v2(_body(_table(exponents=(-1,), values=("15",)))), "invalid_schema"),
        (payload_v2(_body(_table(exponents=(10**6,), values=(15,)))), "invalid_schema"),
        (payload_v2(_body(_table(exponents=("x",), values=(15,)))), "invalid_schema"),
    ],
)
def test_version_2_garbage_gets_a_reason(payload, reason):
    with pytest.raises(WireError) as err:
        decode_sample_set(payload, site=SITE, device=DEVICE)
    assert err.value.reason == reason


def test_hand_made_version_2_payload_decodes():
    """The layout as docs/wire-format.md describes it, built without the encoder."""
    body = _body(
        _table(
            rows=2,
            keys=("ifIndex",),
            tag_values=("1", "2"),
            columns=(("in_octets", 1), ("rx_power_dbm", 0)),
            exponents=(None, -2),
            values=(10, 20, -312, 150),
        )
    )
    for dictionary in (V2_PLAIN, DICTIONARY_ID):
        ss = decode_sample_set(payload_v2(body, dictionary), site=SITE, device=DEVICE)
        assert [(g.tags, [(f.name, f.kind, f.value) for f in g.fields]) for g in ss.groups] == [
            ({"ifIndex": "1"}, [("in_octets", Kind.COUNTER, 10), ("rx_power_dbm", 0, -3.12)]),
            ({"ifIndex": "2"}, [("in_octets", Kind.COUNTER, 20), ("rx_power_dbm", 0, 1.5)]),
        ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x01", "malformed"),
        (bytes((1, 7)) + b"xyz", "malformed"),
        (bytes((1, ENC_MSGPACK)) + b"\xc1\xc1\xc1", "malformed"),
        (bytes((1, ENC_MSGPACK_ZLIB)) + b"not zlib", "malformed"),
        (bytes((1, ENC_MSGPACK_ZLIB)) + zlib.compress(b"\x90")[:-3], "malformed"),
        (bytes((1, ENC_MSGPACK)) + msgspec.msgpack.encode(["s", "d", "x"]), "invalid_schema"),
    ],
)
def test_version_1_garbage_gets_a_reason(payload, reason):
    with pytest.raises(WireError) as err:
        decode_sample_set(payload)
    assert err.value.reason == reason


@pytest.mark.parametrize("version", [1, 2])
def test_zip_bomb_is_stopped(version):
    inflated = b"\x00" * (8 << 20)
    if version == 1:
        bomb = bytes((1, ENC_MSGPACK_ZLIB)) + zlib.compress(inflated)
    else:
        bomb = payload_v2(inflated)
    with pytest.raises(WireError) as err:
        decode_sample_set(bomb, max_inflated=1 << 20, site=SITE, device=DEVICE)
    assert err.value.reason == "oversize"


# --- gaps and status (unchanged, version 1) ------------------------------------------------------


def test_gap_round_trip():
    gap = Gap(SITE, DEVICE, 5, 9, 5, 1_790_000_000_000)
    payload = encode_gap(gap)
    assert payload[0] == SCHEMA_VERSION == 1
    assert decode_gap(payload) == gap


def test_status_is_readable_json():
    st = Status(
        v=1,
        site="s1",
        online=True,
        ts_ms=5,
        agent_version="0.1.0",
        interval_s=60.0,
        devices=["a", "b"],
    )
    text = encode_status(st)
    assert b'"online":true' in text and b'"devices":["a","b"]' in text
    assert decode_status(text) == st
    with pytest.raises(WireError):
        decode_status(b'{"v": 9, "site": "s1", "online": true, "ts_ms": 1}')
