"""The messages agents and collectors exchange, as typed values, and the constants of their format.

Both sides import these types; only pantau.wire.codec turns them into bytes. See
docs/wire-format.md for the layout and its versions.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

SCHEMA_VERSION: Final = 1
"""Version of status messages (`Status.v`) and of gap payloads (byte 0)."""

SAMPLE_SET_VERSION: Final = 2
"""Version byte of the metrics payloads agents send. Bump on any incompatible change."""
SAMPLE_SET_VERSIONS: Final = (1, 2)
"""Versions the collector decodes: 1 stays for messages still waiting in outboxes."""

ENC_MSGPACK: Final = 0  # version 1: byte 1 = 0, plain MessagePack
ENC_MSGPACK_ZLIB: Final = 1  # version 1: byte 1 = 1, zlib stream

COMPRESS_ABOVE: Final = 256
"""Version 1 only: shorter bodies went uncompressed, zlib's own overhead would eat the gain."""

V2_PLAIN: Final = 0
"""Version 2, byte 1 = 0: the body is plain MessagePack. Any other value is the id of the preset
dictionary the raw DEFLATE body was compressed with."""
DICTIONARY_ID: Final = 1
"""The dictionary agents compress with (pantau/wire/dictionaries.py); collectors know every id there."""
V2_HEADER: Final = 6  # version, dictionary id, CRC-16 of site, CRC-16 of device
MAX_EXPONENT: Final = 30
"""Largest |exponent| of a decimal column (values sent as integers × 10^exponent)."""

# Bounds on the work one sample set may cause, checked by the decoder before it builds any
# group (a 4 KB message of one table of 4,000,000 rows would otherwise cost seconds of CPU and
# gigabytes of memory). Beyond them a message is refused with reason `too_many_points`
# (`oversize` for the decoded size). The largest recorded device (tests/data/devices) sends 45
# rows and 226 values: the limits leave two orders of magnitude of room for big chassis.
MAX_POINTS_PER_MESSAGE: Final = 10_000
"""Rows (groups) per sample set; each becomes one InfluxDB point."""
MAX_VALUES_PER_MESSAGE: Final = 200_000
"""Rows × (columns + tag keys), summed over the tables of a sample set: the values decoded."""
MAX_DECODED_BYTES: Final = 4 << 20
"""Bytes a compressed sample set may inflate to."""

# What one value may hold, checked by the collector (reason `bad_value`) and kept to by the
# agent before it sends (agent/limits.py), so that a device answering a 10 MB ifAlias costs
# that value, not the whole poll.
MAX_TAG_CHARS: Final = 256
"""Characters of a tag value (interface names and aliases, sensor names, ...)."""
MAX_TEXT_CHARS: Final = 4096
"""Characters of an info (text) value."""
MAX_MESSAGE_BYTES: Final = 256 * 1024
"""Bytes of one encoded message: the collector's default `max_message_bytes`. An agent keeps
its sample sets below it; a collector configured below it refuses larger ones (oversize)."""


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


ACK_VERSION: Final = 1
"""Version byte of acknowledgement payloads (collector → agent, pantau/<site>/ack)."""


class DeviceAck(msgspec.Struct, array_like=True, frozen=True):
    """One device's sequence numbers accounted for by a collector since its previous ack:
    every number in [upto - span, upto] (the lowest run, contiguous) and in each [lo, hi] pair
    of `above` (flat: lo, hi, lo, hi, ...; runs above it, ascending) is stored in InfluxDB.
    `upto` 0 means no sample set (sequence numbers start at 1). The gap records written are
    in `gaps`, apart, so that a stored sample set is never taken for a recorded loss."""

    device: str
    upto: int
    span: int = 0
    above: list[int] = []
    # Gap records written (flat lo, hi pairs of the records' ranges): these numbers are
    # accounted for as lost, not stored.
    gaps: list[int] = []


class Ack(msgspec.Struct, array_like=True, frozen=True):
    """Acknowledgement from a collector to one site (its site is the topic's).

    `events`: this collector acknowledges trap events too, each device's under the entry
    "<device>/event" (the events' own sequence numbers), so the agent keeps them until then.
    A trailing element, sent only when true: collectors older than it leave it out (the agent
    then takes an event as delivered at PUBACK) and agents older than it ignore it (msgspec
    ignores extra trailing elements of an array-like struct)."""

    devices: list[DeviceAck]
    events: bool = False


class _Column(msgspec.Struct, array_like=True, frozen=True):
    """Version 2: one field of a table, the same in every row."""

    name: str
    kind: Kind


class _Table(msgspec.Struct, array_like=True, frozen=True):
    """Version 2: consecutive groups with the same measurement, tag keys and fields (names and
    kinds, in order), stored by column: `tag_values` holds tag 0 of every row, then tag 1...;
    `values` holds field 0 of every row, then field 1... A column whose exponent is not None
    carries integers m standing for the floats m × 10^exponent (exactly: see _decimal_column)."""

    measurement: str
    tag_keys: list[str]
    columns: list[_Column]
    rows: int
    exponents: list[int | None]  # [] when no column is decimal, else one per column
    tag_values: list[str]
    values: list[Value]


class _SampleSetV2(msgspec.Struct, array_like=True, frozen=True):
    """Version 2 body. Site and device come from the topic (their CRC-16s are in the header)."""

    seq: int
    ts_ms: int
    duration_ms: int
    up: bool
    reason: str
    tables: list[_Table]
    errors: dict[str, int]
    reboots: int
    rebooted: bool


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
    # How the agent knows a sample set is delivered (docs/delivery.md): "end-to-end" (the
    # collector confirms what InfluxDB stored, pantau/<site>/ack), "broker" (PUBACK), or
    # "waiting" (broker.confirm: auto, no acknowledgement from a collector yet, or none for
    # broker.confirm_timeout). "" from agents older than acknowledgements.
    confirm: str = ""
    unconfirmed: int = 0  # published (PUBACKed) sample sets the NOC has not confirmed yet
    # Published, unconfirmed sample sets the outbox budget removed (perhaps stored, perhaps
    # not: never counted as dropped; docs/delivery.md "Budget"). Persisted, like dropped_total.
    forgotten_total: int = 0
    # Items the broker answered with PUBACK 16 "no matching subscribers" (no collector session:
    # thrown away there, kept in the outbox and sent again), since the agent started. 0 from
    # agents older than this field.
    unrouted_total: int = 0
    # The trap receiver's running counters since the agent started (docs/traps.md: received,
    # stored, unknown_source, suppressed, auth_failure, ...): the drops that no event carries.
    # {} from agents without a receiver or older than this field.
    traps: dict[str, int] = {}


MAX_STATUS_TRAP_COUNTERS: Final = 32
"""Trap receiver counters one status may carry; the collector refuses more (`bad_value`)."""


NAMES_VERSION: Final = 1
"""Version byte of names payloads (agent → collector, retained on pantau/<site>/names)."""
MAX_NAMES_BYTES: Final = 64 * 1024
"""Bytes of one encoded names message: larger ones are refused (`oversize`). The shipped
profiles' names for a site with one device of every vendor take a few KB (docs/wire-format.md)."""
MAX_NAMES_DECODED: Final = 256 * 1024
"""Bytes a compressed names message may inflate to: what the collector keeps per site is
bounded by it (one device per shipped profile inflates to 24 KB)."""
MAX_NAMES_DEVICES: Final = 1_000
"""Devices one names message may describe (the collector's default devices per site)."""
MAX_NAMES_FIELDS: Final = 20_000
"""Field entries over all the profiles of one names message."""
MAX_NAMES_PROFILES: Final = 64
"""Profiles one device may be polled with, as far as a names message says."""
MAX_NAMES_STATES: Final = 10_000
"""State names over all the profiles of one names message (what the collector keeps of a site
is bounded by it): the 41 shipped profiles name 453."""
MAX_STATES: Final = 256
"""Named values of one enumeration; the agent sends the lowest ones."""
MAX_STATE_CHARS: Final = 64
"""Characters of one state name; the agent cuts longer ones."""
MAX_HELP_CHARS: Final = 200
"""Characters of one help text (the profile format's own limit)."""


class FieldNames(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True):
    """What a profile says about one field that numbers cannot: its help text and, for an
    enumeration (kind state), the name of each value. The same vendor-neutral field (a modem's
    `lock_state`) is numbered differently per vendor, so names travel per device."""

    measurement: str
    field: str
    help: str = ""
    states: dict[int, str] = {}


class Names(msgspec.Struct, array_like=True, frozen=True):
    """A site's devices and the names of their fields (retained, pantau/<site>/names).

    `profiles` holds each profile's named fields once, however many devices use it (20 radios
    of one model, the `system` profile of every device); `devices` maps each device to the
    indexes of its profiles, in poll order (the first profile naming a field wins)."""

    profiles: list[list[FieldNames]]
    devices: dict[str, list[int]]


EVENT_VERSION: Final = 1
"""Version of event payloads (byte 0). Bump on any incompatible change."""
MAX_EVENT_VARBINDS: Final = 64
"""Varbinds one event may carry; the agent keeps the first ones (and counts the rest)."""


class Event(msgspec.Struct, array_like=True, frozen=True):
    """What a device told the agent on its own: one SNMP trap or inform (docs/traps.md).

    `alarm` names the alarm this event raises ("" if none), `clears` those it clears; both are
    worked out by the agent from the profiles' trap definitions, so the collector needs no
    profile. `suppressed` is the agent's running count of this device's traps dropped by its
    rate limit (since the agent started)."""

    site: str
    device: str
    seq: int  # per device, strictly increasing; its own series, apart from sample sets
    ts_ms: int  # when the agent received it
    trap_oid: str  # snmpTrapOID (v2c) or the one built from a v1 trap (RFC 3584 §3)
    trap: str  # its name in the definitions, "" when unknown
    severity: str  # critical, major, minor, warning, info, clear
    varbinds: dict[str, Value] = {}  # by the definition's names, else by numeric OID
    alarm: str = ""
    clears: list[str] = []
    inform: bool = False
    source: str = ""  # sender's IP address
    suppressed: int = 0
    malformed: int = 0  # the agent's running count of this device's malformed datagrams


def replace_sample_set(ss: SampleSet, **changes: object) -> SampleSet:
    """A copy of `ss` with some fields changed; every other field, present or future, kept."""
    return msgspec.structs.replace(ss, **changes)
