"""The wire format between agents and collectors: one module, imported by both sides.

Sites pay for every byte over VSAT, so a sample set travels as MessagePack arrays (no repeated
key names), optionally zlib-compressed, behind a two-byte header that carries the schema version
and the encoding. The collector rejects any version it does not know instead of guessing.
Status (birth/will/heartbeat) messages are small, rare and read by people with mosquitto_sub,
so they are JSON. See docs/wire-format.md.
"""

from __future__ import annotations

import enum
import zlib
from typing import Final

import msgspec

SCHEMA_VERSION: Final = 1
"""Version byte of metrics payloads. Bump on any incompatible change."""

ENC_MSGPACK: Final = 0
ENC_MSGPACK_ZLIB: Final = 1

COMPRESS_ABOVE: Final = 256
"""Payloads shorter than this are sent uncompressed: zlib's own overhead would eat the gain."""

TOPIC_PREFIX: Final = "pantau"


class Kind(enum.IntEnum):
    """What a value means, so the collector can expose it without knowing the profile."""

    GAUGE = 0
    COUNTER = 1
    STATE = 2  # an enumeration: the number is the value, names live in the profile
    INFO = 3  # a string


Value = int | float | str


class Field(msgspec.Struct, array_like=True, frozen=True):
    name: str
    kind: Kind
    value: Value


class Group(msgspec.Struct, array_like=True, frozen=True):
    """One row: a measurement, the tags that identify the row, and its values."""

    measurement: str
    tags: dict[str, str]
    fields: list[Field]


class SampleSet(msgspec.Struct, array_like=True, frozen=True):
    """Everything one poll of one device produced, success or failure."""

    site: str
    device: str
    seq: int  # per device, strictly increasing; the collector uses it to find gaps/duplicates
    ts_ms: int  # poll start, milliseconds since the Unix epoch
    duration_ms: int
    up: bool
    reason: str  # "" when up; otherwise why the poll failed (timeout, auth, ...)
    groups: list[Group] = []
    errors: dict[str, int] = {}  # cumulative per-device SNMP anomaly counters, by kind
    reboots: int = 0  # cumulative reboots the agent detected (sysUpTime/snmpEngineTime)
    rebooted: bool = False  # this poll found the device rebooted: no rate across it


class Gap(msgspec.Struct, array_like=True, frozen=True):
    """Sample sets the agent dropped on purpose (outbox over budget): lost for good."""

    site: str
    device: str
    first_seq: int
    last_seq: int
    count: int
    ts_ms: int  # when they were dropped


class Status(msgspec.Struct, frozen=True, omit_defaults=True):
    """Retained site status: birth and heartbeats while connected, the will when it vanishes.

    Heartbeats carry the outbox's health so the NOC sees a backhaul that is slow, not dead.
    """

    v: int
    site: str
    online: bool
    ts_ms: int
    agent_version: str = ""
    interval_s: float = 0.0
    devices: list[str] = []
    reason: str = ""
    outbox_pending: int = 0
    outbox_bytes: int = 0
    outbox_oldest_age_s: float = 0.0
    dropped_total: int = 0
    publish_latency_s: float = 0.0
    pending_from: dict[str, int] = {}  # device → lowest sequence number not yet published


class WireError(ValueError):
    """A payload that is not a valid pantau message; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_encoder = msgspec.msgpack.Encoder()
_sample_decoder = msgspec.msgpack.Decoder(SampleSet)
_gap_decoder = msgspec.msgpack.Decoder(Gap)
_status_decoder = msgspec.json.Decoder(Status)
_json_encoder = msgspec.json.Encoder()


def metrics_topic(site: str, device: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/{device}/metrics"


def status_topic(site: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/status"


def gap_topic(site: str, device: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/{device}/gap"


def encode_gap(gap: Gap) -> bytes:
    return bytes((SCHEMA_VERSION, ENC_MSGPACK)) + _encoder.encode(gap)


def decode_gap(payload: bytes) -> Gap:
    if len(payload) < 3:
        raise WireError("malformed", f"payload of {len(payload)} bytes is too short")
    if payload[0] != SCHEMA_VERSION:
        raise WireError("unknown_version", f"schema version {payload[0]}")
    if payload[1] != ENC_MSGPACK:
        raise WireError("malformed", f"unknown encoding {payload[1]}")
    try:
        return _gap_decoder.decode(payload[2:])
    except msgspec.ValidationError as exc:
        raise WireError("invalid_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise WireError("malformed", str(exc)) from None


def encode_sample_set(sample_set: SampleSet) -> bytes:
    body = _encoder.encode(sample_set)
    if len(body) >= COMPRESS_ABOVE:
        packed = zlib.compress(body, 9)
        if len(packed) < len(body):
            return bytes((SCHEMA_VERSION, ENC_MSGPACK_ZLIB)) + packed
    return bytes((SCHEMA_VERSION, ENC_MSGPACK)) + body


def decode_sample_set(payload: bytes, max_inflated: int = 4 << 20) -> SampleSet:
    """Decode and type-check a metrics payload; raise WireError with a reason label."""
    if len(payload) < 3:
        raise WireError("malformed", f"payload of {len(payload)} bytes is too short")
    version, encoding = payload[0], payload[1]
    if version != SCHEMA_VERSION:
        raise WireError("unknown_version", f"schema version {version}, expected {SCHEMA_VERSION}")
    body = payload[2:]
    if encoding == ENC_MSGPACK_ZLIB:
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(body, max_inflated)
        except zlib.error as exc:
            raise WireError("malformed", f"zlib: {exc}") from None
        if inflater.unconsumed_tail:
            raise WireError("oversize", f"inflates beyond {max_inflated} bytes")
    elif encoding != ENC_MSGPACK:
        raise WireError("malformed", f"unknown encoding {encoding}")
    try:
        return _sample_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise WireError("invalid_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise WireError("malformed", str(exc)) from None


def encode_status(status: Status) -> bytes:
    return _json_encoder.encode(status)


def decode_status(payload: bytes) -> Status:
    try:
        status = _status_decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise WireError("invalid_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise WireError("malformed", str(exc)) from None
    if status.v != SCHEMA_VERSION:
        raise WireError("unknown_version", f"status version {status.v}")
    return status
