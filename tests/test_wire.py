"""The wire format: round trips exactly, stays compact, and refuses what it does not know."""

from __future__ import annotations

import zlib

import msgspec
import pytest

from agent.wire import (
    ENC_MSGPACK,
    ENC_MSGPACK_ZLIB,
    SCHEMA_VERSION,
    Field,
    Group,
    Kind,
    SampleSet,
    Status,
    WireError,
    decode_sample_set,
    decode_status,
    encode_sample_set,
    encode_status,
)


def sample(n_rows: int = 1) -> SampleSet:
    groups = [Group("system", {}, [Field("uptime_seconds", Kind.GAUGE, 1234.5),
                                   Field("descr", Kind.INFO, "Radio ümlaut")])]
    for i in range(n_rows):
        groups.append(Group("interface", {"ifIndex": str(i + 1), "ifName": f"eth{i}"}, [
            Field("in_octets", Kind.COUNTER, 2**64 - 1 - i),
            Field("oper_status", Kind.STATE, 1),
        ]))
    return SampleSet(site="s1", device="radio", seq=42, ts_ms=1_790_000_000_000,
                     duration_ms=120, up=True, reason="", groups=groups,
                     errors={"no_such_object": 2})


@pytest.mark.parametrize("rows", [0, 40])
def test_round_trip_is_exact(rows):
    ss = sample(rows)
    payload = encode_sample_set(ss)
    assert payload[0] == SCHEMA_VERSION
    assert payload[1] == (ENC_MSGPACK_ZLIB if rows else ENC_MSGPACK)
    assert decode_sample_set(payload) == ss


def test_compressed_payload_is_much_smaller_than_msgpack():
    ss = sample(40)
    raw = msgspec.msgpack.encode(ss)
    assert len(encode_sample_set(ss)) < len(raw) / 3


def test_unknown_version_is_refused():
    payload = bytearray(encode_sample_set(sample()))
    payload[0] = SCHEMA_VERSION + 1
    with pytest.raises(WireError) as err:
        decode_sample_set(bytes(payload))
    assert err.value.reason == "unknown_version"


@pytest.mark.parametrize(("payload", "reason"), [
    (b"\x01", "malformed"),
    (bytes((SCHEMA_VERSION, 7)) + b"xyz", "malformed"),
    (bytes((SCHEMA_VERSION, ENC_MSGPACK)) + b"\xc1\xc1\xc1", "malformed"),
    (bytes((SCHEMA_VERSION, ENC_MSGPACK_ZLIB)) + b"not zlib", "malformed"),
    (bytes((SCHEMA_VERSION, ENC_MSGPACK)) + msgspec.msgpack.encode(["s", "d", "x"]),
     "invalid_schema"),
])
def test_garbage_gets_a_reason(payload, reason):
    with pytest.raises(WireError) as err:
        decode_sample_set(payload)
    assert err.value.reason == reason


def test_zip_bomb_is_stopped():
    bomb = bytes((SCHEMA_VERSION, ENC_MSGPACK_ZLIB)) + zlib.compress(b"\x00" * (8 << 20))
    with pytest.raises(WireError) as err:
        decode_sample_set(bomb, max_inflated=1 << 20)
    assert err.value.reason == "oversize"


def test_status_is_readable_json():
    st = Status(v=1, site="s1", online=True, ts_ms=5, agent_version="0.1.0", interval_s=60.0,
                devices=["a", "b"])
    text = encode_status(st)
    assert b'"online":true' in text and b'"devices":["a","b"]' in text
    assert decode_status(text) == st
    with pytest.raises(WireError):
        decode_status(b'{"v": 9, "site": "s1", "online": true, "ts_ms": 1}')
