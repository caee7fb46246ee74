"""Bytes of the wire format: encode and decode every pantau message, and nothing else.

Sites pay for every byte over VSAT. A sample set travels behind a small header that carries the
schema version. Version 2 (what agents send) is columnar MessagePack: consecutive rows of one
table share their measurement, tag keys and field names, which are written once, and numbers
with a short decimal form travel as integers; the body is raw DEFLATE with a preset dictionary
(pantau/wire/dictionaries.py) of the names pantau's profiles use, named by an id in the header. Site and
device are in the topic; the header keeps only a CRC-16 of each so the collector still notices a
payload published under another site's topic. Every message decodes on its own. Version 1 (plain
row-wise MessagePack, optionally zlib) is still decoded for messages left in outboxes. The
collector rejects any version or dictionary it does not know instead of guessing.
Status (birth/will/heartbeat) messages are small, rare and read by people with mosquitto_sub,
so they are JSON. See docs/wire-format.md.
"""

from __future__ import annotations

import binascii
import contextlib
import zlib
from collections.abc import Iterator

import msgspec

from pantau.errors import PantauError
from pantau.wire.dictionaries import DICTIONARIES
from pantau.wire.model import (
    ACK_VERSION,
    COMPRESS_ABOVE,
    DICTIONARY_ID,
    ENC_MSGPACK,
    ENC_MSGPACK_ZLIB,
    EVENT_VERSION,
    MAX_DECODED_BYTES,
    MAX_EXPONENT,
    MAX_HELP_CHARS,
    MAX_NAMES_BYTES,
    MAX_NAMES_DECODED,
    MAX_NAMES_DEVICES,
    MAX_NAMES_FIELDS,
    MAX_NAMES_PROFILES,
    MAX_NAMES_STATES,
    MAX_POINTS_PER_MESSAGE,
    MAX_STATE_CHARS,
    MAX_STATES,
    MAX_VALUES_PER_MESSAGE,
    NAMES_VERSION,
    SAMPLE_SET_VERSION,
    SAMPLE_SET_VERSIONS,
    SCHEMA_VERSION,
    V2_HEADER,
    V2_PLAIN,
    Ack,
    DeviceAck,
    Event,
    Field,
    Gap,
    Group,
    Kind,
    Names,
    SampleSet,
    Status,
    Value,
    _Column,
    _SampleSetV2,
    _Table,
)


class WireError(PantauError, ValueError):
    """A payload that is not a valid pantau message; `reason` is a short metric label."""


_encoder = msgspec.msgpack.Encoder()
_sample_decoder = msgspec.msgpack.Decoder(SampleSet)
_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])  # counts items, decodes none
_v2_decoder = msgspec.msgpack.Decoder(_SampleSetV2)
_gap_decoder = msgspec.msgpack.Decoder(Gap)
_status_decoder = msgspec.json.Decoder(Status)
_json_encoder = msgspec.json.Encoder()


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """msgspec's errors as WireError: the shape is wrong (invalid_schema) or the bytes are not
    MessagePack/JSON at all (malformed)."""
    try:
        yield
    except msgspec.ValidationError as exc:
        raise WireError("invalid_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise WireError("malformed", str(exc)) from None


def _msgpack_body(payload: bytes, version: int, what: str) -> bytes:
    """The body behind the two header bytes of gaps and events: a version, then encoding 0
    (plain MessagePack)."""
    if len(payload) < 3:
        raise WireError("malformed", f"payload of {len(payload)} bytes is too short")
    if payload[0] != version:
        raise WireError("unknown_version", f"{what} version {payload[0]}")
    if payload[1] != ENC_MSGPACK:
        raise WireError("malformed", f"unknown encoding {payload[1]}")
    return payload[2:]


def encode_gap(gap: Gap) -> bytes:
    return bytes((SCHEMA_VERSION, ENC_MSGPACK)) + _encoder.encode(gap)


def decode_gap(payload: bytes) -> Gap:
    with _translated():
        return _gap_decoder.decode(_msgpack_body(payload, SCHEMA_VERSION, "schema"))


def peek_seq(
    payload: bytes, max_inflated: int = MAX_DECODED_BYTES, *, site: str, device: str
) -> int | None:
    """The sequence number of a metrics payload that may fail every other check, read without
    decoding its groups; None if even that cannot be read, or if the payload is not the topic's
    `site` and `device` (a version 2 header's checks, a version 1 payload's names). The
    collector uses it to acknowledge a message it set aside, so that the agent stops sending
    it: a payload published under another device's topic must not confirm that device's
    number."""
    try:
        if len(payload) < 3 or payload[0] not in (1, 2):
            return None
        if payload[0] == 2:
            if len(payload) <= V2_HEADER or not _same_checks(payload, site, device):
                return None
            body = payload[V2_HEADER:]
            if payload[1] != V2_PLAIN:
                if payload[1] not in DICTIONARIES:
                    return None
                inflater = zlib.decompressobj(-15, zdict=DICTIONARIES[payload[1]])
                body = _inflate(inflater, body, max_inflated, "deflate")
            index = 0
        else:
            body = payload[2:]
            if payload[1] == ENC_MSGPACK_ZLIB:
                body = _inflate(zlib.decompressobj(), body, max_inflated, "zlib")
            index = 2
        items = _raw_list_decoder.decode(body)
        if payload[0] == 1 and not _same_names(items, site, device):
            return None
        seq = msgspec.msgpack.decode(items[index]) if len(items) > index else None
    except (WireError, msgspec.DecodeError, ValueError):
        return None
    return seq if type(seq) is int and seq >= 0 else None


def _same_checks(payload: bytes, site: str, device: str) -> bool:
    """A version 2 header carries the CRC-16 of the site and device it was encoded for."""
    return int.from_bytes(payload[2:4], "big") == name_check(site) and int.from_bytes(
        payload[4:6], "big"
    ) == name_check(device)


def _same_names(items: list[msgspec.Raw], site: str, device: str) -> bool:
    """The first two items of a version 1 sample set, a gap record or an event are its site
    and device."""
    if len(items) < 2:
        return False
    return bool(
        msgspec.msgpack.decode(items[0]) == site and msgspec.msgpack.decode(items[1]) == device
    )


def peek_gap(payload: bytes, *, site: str, device: str) -> tuple[int, int] | None:
    """(first, last) of a gap payload that may fail its other checks; None if unreadable or
    not the topic's `site` and `device` (for events' gaps: "<device>/event")."""
    try:
        items = _raw_list_decoder.decode(_msgpack_body(payload, SCHEMA_VERSION, "schema"))
        if not _same_names(items, site, device):
            return None
        first, last = (msgspec.msgpack.decode(items[i]) for i in (2, 3))
    except (WireError, msgspec.DecodeError, ValueError, IndexError):
        return None
    if type(first) is int and type(last) is int and 0 <= first <= last:
        return first, last
    return None


def peek_event_seq(payload: bytes, *, site: str, device: str) -> int | None:
    """The sequence number of an event payload that may fail its other checks; None if
    unreadable or not the topic's `site` and `device`. The collector acknowledges an event it
    set aside with it (collector/pipeline.py)."""
    try:
        items = _raw_list_decoder.decode(_msgpack_body(payload, EVENT_VERSION, "event"))
        if not _same_names(items, site, device):
            return None
        seq = msgspec.msgpack.decode(items[2])
    except (WireError, msgspec.DecodeError, ValueError, IndexError):
        return None
    return seq if type(seq) is int and seq >= 0 else None


def name_check(name: str) -> int:
    """CRC-16 (CCITT, initial 0xFFFF) of a site or device name, as carried in a v2 header.

    A mismatch always shows when two names of the same length differ in a single character or
    within 16 consecutive bits; other differences are missed with probability about 1/65536."""
    return binascii.crc_hqx(name.encode(), 0xFFFF)


def encode_sample_set(sample_set: SampleSet, version: int = SAMPLE_SET_VERSION) -> bytes:
    """The payload of a sample set (version 2 unless asked for 1, which tests and benches use)."""
    if version == 1:
        return _encode_v1(sample_set)
    if version != 2:
        raise ValueError(f"cannot encode sample set version {version}")
    body = _encoder.encode(
        _SampleSetV2(
            sample_set.seq,
            sample_set.ts_ms,
            sample_set.duration_ms,
            sample_set.up,
            sample_set.reason,
            _tables(sample_set.groups),
            sample_set.errors,
            sample_set.reboots,
            sample_set.rebooted,
        )
    )
    deflater = zlib.compressobj(
        9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARIES[DICTIONARY_ID]
    )
    packed = deflater.compress(body) + deflater.flush()
    dictionary = DICTIONARY_ID
    if len(packed) >= len(body):
        packed, dictionary = body, V2_PLAIN
    return (
        bytes((2, dictionary))
        + name_check(sample_set.site).to_bytes(2, "big")
        + name_check(sample_set.device).to_bytes(2, "big")
        + packed
    )


def _encode_v1(sample_set: SampleSet) -> bytes:
    body = _encoder.encode(sample_set)
    if len(body) >= COMPRESS_ABOVE:
        packed = zlib.compress(body, 9)
        if len(packed) < len(body):
            return bytes((1, ENC_MSGPACK_ZLIB)) + packed
    return bytes((1, ENC_MSGPACK)) + body


_Shape = tuple[str, tuple[str, ...], tuple[tuple[str, Kind], ...]]
"""A table's measurement, tag keys and (field name, kind) columns."""


def _tables(groups: list[Group]) -> list[_Table]:
    """Runs of consecutive groups with one shape, stored by column. Keeping runs consecutive
    keeps the groups' order, so decoding gives back exactly the list that was encoded."""
    runs: list[tuple[_Shape, list[Group]]] = []
    last: _Shape | None = None
    for g in groups:
        shape = (g.measurement, tuple(g.tags), tuple((f.name, f.kind) for f in g.fields))
        # A group with neither tags nor fields stays a table of its own: the decoder refuses
        # rows that cost no bytes, so a tiny message cannot ask for millions of groups.
        if shape == last and (shape[1] or shape[2]):
            runs[-1][1].append(g)
        else:
            runs.append((shape, [g]))
            last = shape
    tables = []
    for (measurement, tag_keys, schema), run in runs:
        values: list[Value] = []
        exponents: list[int | None] = []
        for j in range(len(schema)):
            column = [g.fields[j].value for g in run]
            decimal = _decimal_column(column)
            if decimal is None:
                exponents.append(None)
                values.extend(column)
            else:
                exponents.append(decimal[0])
                values.extend(decimal[1])
        tables.append(
            _Table(
                measurement,
                list(tag_keys),
                [_Column(name, kind) for name, kind in schema],
                len(run),
                exponents if any(e is not None for e in exponents) else [],
                [g.tags[k] for k in tag_keys for g in run],
                values,
            )
        )
    return tables


def _decimal(value: float) -> tuple[int, int] | None:
    """(m, e) with value == float(f"{m}e{e}") and m not a multiple of 10 (0 gives (0, 0)),
    from the shortest repr that round-trips; None for inf, nan and -0.0."""
    text = repr(value)
    if text[-1] in "fn" or text == "-0.0":
        return None
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    frac = frac.rstrip("0")
    m = int(whole + frac)
    if m == 0:
        return 0, 0
    e = (int(exp) if exp else 0) - len(frac)
    while m % 10 == 0:
        m //= 10
        e += 1
    return m, e


def _decimal_column(column: list[Value]) -> tuple[int, list[int]] | None:
    """A column of floats as (exponent, integers) when that is exact, else None. Never longer:
    an integer below 2^64 takes at most the 9 bytes of a float64.

    Exact because decoding divides (or multiplies) Python integers, which rounds correctly to
    the nearest float, and that float is the value whose shortest repr gave the digits."""
    parts = []
    for v in column:
        if type(v) is not float:
            return None
        part = _decimal(v)
        if part is None:
            return None
        parts.append(part)
    exponent = min((e for m, e in parts if m), default=0)
    if not -MAX_EXPONENT <= exponent <= MAX_EXPONENT:
        return None
    ints = [m * 10 ** (e - exponent) for m, e in parts]
    if not all(-(2**63) <= m < 2**64 for m in ints):
        return None
    return exponent, ints


def decode_sample_set(
    payload: bytes,
    max_inflated: int = MAX_DECODED_BYTES,
    *,
    site: str | None = None,
    device: str | None = None,
    max_points: int = MAX_POINTS_PER_MESSAGE,
    max_values: int = MAX_VALUES_PER_MESSAGE,
) -> SampleSet:
    """Decode and type-check a metrics payload of any known version; raise WireError with a
    reason label. Version 2 does not carry site and device: pass the topic's (version 1 carries
    them, and the caller compares them with the topic).

    The work a payload may cause is bounded before it is done: at most `max_inflated` bytes
    inflated (`oversize`), and at most `max_points` rows and `max_values` values (rows ×
    (columns + tag keys)) counted before any group is built (`too_many_points`)."""
    if len(payload) < 3:
        raise WireError("malformed", f"payload of {len(payload)} bytes is too short")
    version = payload[0]
    if version == 2:
        if site is None or device is None:
            raise TypeError("a version 2 sample set needs the site and device of its topic")
        return _decode_v2(payload, max_inflated, site, device, max_points, max_values)
    if version != 1:
        raise WireError(
            "unknown_version",
            f"schema version {version}, expected one of {', '.join(map(str, SAMPLE_SET_VERSIONS))}",
        )
    body = payload[2:]
    encoding = payload[1]
    if encoding == ENC_MSGPACK_ZLIB:
        body = _inflate(zlib.decompressobj(), body, max_inflated, "zlib")
    elif encoding != ENC_MSGPACK:
        raise WireError("malformed", f"unknown encoding {encoding}")
    with _translated():
        # Version 1 is row-wise: count its groups (item 7) before decoding them.
        items = _raw_list_decoder.decode(body)
        groups = len(_raw_list_decoder.decode(items[7])) if len(items) > 7 else 0
        if groups > max_points:
            raise WireError("too_many_points", f"{groups} groups > {max_points}")
        ss = _sample_decoder.decode(body)
    values = sum(len(g.tags) + len(g.fields) for g in ss.groups)
    if values > max_values:
        raise WireError("too_many_points", f"{values} values > {max_values}")
    return ss


def _inflate(inflater: zlib._Decompress, body: bytes, max_inflated: int, what: str) -> bytes:
    try:
        out = inflater.decompress(body, max_inflated)
    except zlib.error as exc:
        raise WireError("malformed", f"{what}: {exc}") from None
    # At the bound with the stream not at its end: more would come out (the rest of the input
    # may already be inside zlib, leaving no unconsumed tail).
    if inflater.unconsumed_tail or (len(out) >= max_inflated and not inflater.eof):
        raise WireError("oversize", f"inflates beyond {max_inflated} bytes")
    if not inflater.eof:
        raise WireError("malformed", f"{what}: the compressed stream is truncated")
    if inflater.unused_data:
        raise WireError(
            "malformed", f"{what}: {len(inflater.unused_data)} bytes after the compressed stream"
        )
    return out


def _decode_v2(
    payload: bytes, max_inflated: int, site: str, device: str, max_points: int, max_values: int
) -> SampleSet:
    if len(payload) < V2_HEADER + 1:
        raise WireError("malformed", f"payload of {len(payload)} bytes is too short")
    dictionary = payload[1]
    if dictionary != V2_PLAIN and dictionary not in DICTIONARIES:
        raise WireError(
            "unknown_dictionary",
            f"compressed with dictionary {dictionary}; this "
            f"collector knows {', '.join(map(str, sorted(DICTIONARIES)))}: "
            "upgrade it",
        )
    site_check = int.from_bytes(payload[2:4], "big")
    if site_check != name_check(site):
        raise WireError(
            "site_mismatch",
            f"payload site check {site_check:#06x} on topic of "
            f"site {site!r} ({name_check(site):#06x})",
        )
    device_check = int.from_bytes(payload[4:6], "big")
    if device_check != name_check(device):
        raise WireError(
            "device_mismatch",
            f"payload device check {device_check:#06x} on topic "
            f"of device {device!r} ({name_check(device):#06x})",
        )
    body = payload[V2_HEADER:]
    if dictionary != V2_PLAIN:
        inflater = zlib.decompressobj(-15, zdict=DICTIONARIES[dictionary])
        body = _inflate(inflater, body, max_inflated, "deflate")
    with _translated():
        raw = _v2_decoder.decode(body)
    return SampleSet(
        site,
        device,
        raw.seq,
        raw.ts_ms,
        raw.duration_ms,
        raw.up,
        raw.reason,
        _groups(raw.tables, max_points, max_values),
        raw.errors,
        raw.reboots,
        raw.rebooted,
    )


def _groups(
    tables: list[_Table],
    max_points: int = MAX_POINTS_PER_MESSAGE,
    max_values: int = MAX_VALUES_PER_MESSAGE,
) -> list[Group]:
    """The groups of the tables, in order, each row checked to have all its values.

    Every table is checked, and the rows and values of all of them counted against the limits,
    before the first group is built: a few bytes of `rows` must not buy millions of objects."""
    points = cells = 0
    for t in tables:
        n, keys, columns, measurement = t.rows, t.tag_keys, t.columns, t.measurement
        if n < 1 or (n > 1 and not keys and not columns):
            raise WireError("invalid_schema", f"table {measurement[:64]!r}: {n} rows")
        if len(t.tag_values) != n * len(keys) or len(t.values) != n * len(columns):
            raise WireError(
                "invalid_schema",
                f"table {measurement[:64]!r}: {n} rows need "
                f"{n * len(keys)} tag values and {n * len(columns)} values, got "
                f"{len(t.tag_values)} and {len(t.values)}",
            )
        if len(set(keys)) != len(keys):
            raise WireError("invalid_schema", f"table {measurement[:64]!r}: a tag key twice")
        points += n
        cells += n * (len(keys) + len(columns))
    if points > max_points:
        raise WireError("too_many_points", f"{points} rows > {max_points}")
    if cells > max_values:
        raise WireError("too_many_points", f"{cells} values > {max_values}")
    groups: list[Group] = []
    append = groups.append
    for t in tables:
        n, keys, columns, measurement = t.rows, t.tag_keys, t.columns, t.measurement
        values = _undecimal(t, n) if t.exponents else t.values
        tag_values = t.tag_values
        names = [c.name for c in columns]
        kinds = [c.kind for c in columns]
        for i in range(n):  # row i: every n-th item from i on (lengths checked above)
            append(
                Group(
                    measurement,
                    dict(zip(keys, tag_values[i::n], strict=False)),
                    list(map(Field, names, kinds, values[i::n])),
                )
            )
    return groups


def _undecimal(t: _Table, n: int) -> list[Value]:
    if len(t.exponents) != len(t.columns):
        raise WireError(
            "invalid_schema",
            f"table {t.measurement[:64]!r}: "
            f"{len(t.exponents)} exponents for {len(t.columns)} columns",
        )
    values = list(t.values)
    for j, exponent in enumerate(t.exponents):
        if exponent is None:
            continue
        if not -MAX_EXPONENT <= exponent <= MAX_EXPONENT:
            raise WireError("invalid_schema", f"exponent {exponent} out of range")
        column = values[j * n : (j + 1) * n]
        if set(map(type, column)) != {int}:
            raise WireError(
                "invalid_schema",
                f"decimal column {t.columns[j].name[:64]!r} holds a value that is not an integer",
            )
        scale = 10 ** abs(exponent)
        values[j * n : (j + 1) * n] = (
            [m / scale for m in column] if exponent < 0 else [float(m * scale) for m in column]
        )
    return values


def encode_status(status: Status) -> bytes:
    return _json_encoder.encode(status)


def decode_status(payload: bytes) -> Status:
    with _translated():
        status = _status_decoder.decode(payload)
    if status.v != SCHEMA_VERSION:
        raise WireError("unknown_version", f"status version {status.v}")
    return status


_event_decoder = msgspec.msgpack.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """Version byte, encoding byte 0 (plain MessagePack), then the event (array-like)."""
    return bytes((EVENT_VERSION, ENC_MSGPACK)) + _encoder.encode(event)


def decode_event(payload: bytes) -> Event:
    body = _msgpack_body(payload, EVENT_VERSION, "event")
    with _translated():
        return _event_decoder.decode(body)


_ack_decoder = msgspec.msgpack.Decoder(Ack)
MAX_ACK_BYTES = 64 * 1024
"""Larger acknowledgements are refused (a collector splits nothing: one covers a few seconds)."""


def encode_ack(ack: Ack) -> bytes:
    """Version byte, then the Ack as plain MessagePack (array-like: no field names), each
    device's entry without its trailing defaults (a lone new number: [device, upto]), and
    `events` only when true (one byte: older agents ignore it)."""
    entries: list[list[object]] = []
    for d in ack.devices:
        entry: list[object] = [d.device, d.upto, d.span, d.above, d.gaps]
        while len(entry) > 2 and not entry[-1]:
            entry.pop()
        entries.append(entry)
    body: list[object] = [entries, True] if ack.events else [entries]
    return bytes((ACK_VERSION,)) + _encoder.encode(body)


def decode_ack(payload: bytes) -> Ack:
    if len(payload) < 2:
        raise WireError("malformed", f"payload of {len(payload)} bytes is too short")
    if len(payload) > MAX_ACK_BYTES:
        raise WireError("oversize", f"acknowledgement of {len(payload)} bytes")
    if payload[0] != ACK_VERSION:
        raise WireError("unknown_version", f"ack version {payload[0]}")
    with _translated():
        ack = _ack_decoder.decode(payload[1:])
    for d in ack.devices:
        if d.span < 0 or d.upto - d.span < 0 or len(d.above) % 2 or len(d.gaps) % 2:
            raise WireError("invalid_schema", f"bad ranges for device {d.device[:64]!r}")
    return ack


def ack_ranges(d: DeviceAck) -> list[tuple[int, int]]:
    """The [lo, hi] runs of stored sample sets one device's entry covers, lowest first."""
    runs = [(d.upto - d.span, d.upto)] if d.upto > 0 else []
    runs += [(d.above[i], d.above[i + 1]) for i in range(0, len(d.above), 2)]
    return [(max(lo, 1), hi) for lo, hi in runs if lo <= hi]


def ack_gaps(d: DeviceAck) -> list[tuple[int, int]]:
    """The [first, last] ranges of the gap records written that the entry covers."""
    pairs = [(d.gaps[i], d.gaps[i + 1]) for i in range(0, len(d.gaps), 2)]
    return [(lo, hi) for lo, hi in pairs if lo <= hi]


def device_ack(
    device: str, runs: list[tuple[int, int]], gaps: tuple[tuple[int, int], ...] = ()
) -> DeviceAck:
    """The entry for sorted, disjoint [lo, hi] runs of stored numbers and the gap records."""
    flat_gaps = [n for run in gaps for n in run]
    if not runs:
        return DeviceAck(device, 0, 0, [], flat_gaps)
    (lo, hi), rest = runs[0], runs[1:]
    return DeviceAck(device, hi, hi - lo, [n for run in rest for n in run], flat_gaps)


_names_decoder = msgspec.msgpack.Decoder(Names)


def encode_names(names: Names) -> bytes:
    """Version byte, dictionary byte (as in a v2 sample set: 0 plain, else the id of the preset
    dictionary), then the Names as MessagePack, raw DEFLATE unless that is not shorter."""
    body = _encoder.encode(names)
    deflater = zlib.compressobj(
        9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARIES[DICTIONARY_ID]
    )
    packed = deflater.compress(body) + deflater.flush()
    if len(packed) >= len(body):
        return bytes((NAMES_VERSION, V2_PLAIN)) + body
    return bytes((NAMES_VERSION, DICTIONARY_ID)) + packed


def _one_line(text: str) -> bool:
    return not any(ord(c) < 0x20 or c == "\x7f" for c in text)


def decode_names(payload: bytes) -> Names:
    """Decode and check a names message; every bound (model.MAX_NAMES_*) is checked, and a
    help text or state name must be one line of text (they end up in /metrics HELP lines and
    on the status page)."""
    if len(payload) < 3:
        raise WireError("malformed", f"payload of {len(payload)} bytes is too short")
    if len(payload) > MAX_NAMES_BYTES:
        raise WireError("oversize", f"names message of {len(payload)} bytes > {MAX_NAMES_BYTES}")
    if payload[0] != NAMES_VERSION:
        raise WireError("unknown_version", f"names version {payload[0]}")
    dictionary = payload[1]
    body = payload[2:]
    if dictionary != V2_PLAIN:
        if dictionary not in DICTIONARIES:
            raise WireError("unknown_dictionary", f"compressed with dictionary {dictionary}")
        inflater = zlib.decompressobj(-15, zdict=DICTIONARIES[dictionary])
        body = _inflate(inflater, body, MAX_NAMES_DECODED, "deflate")
    with _translated():
        names = _names_decoder.decode(body)
    if len(names.devices) > MAX_NAMES_DEVICES:
        raise WireError("too_many_points", f"{len(names.devices)} devices > {MAX_NAMES_DEVICES}")
    fields = sum(map(len, names.profiles))
    if fields > MAX_NAMES_FIELDS:
        raise WireError("too_many_points", f"{fields} fields > {MAX_NAMES_FIELDS}")
    states = sum(len(f.states) for entries in names.profiles for f in entries)
    if states > MAX_NAMES_STATES:
        raise WireError("too_many_points", f"{states} state names > {MAX_NAMES_STATES}")
    for device, indexes in names.devices.items():
        if len(indexes) > MAX_NAMES_PROFILES:
            raise WireError("too_many_points", f"device {device[:64]!r}: {len(indexes)} profiles")
        if not all(0 <= i < len(names.profiles) for i in indexes):
            raise WireError(
                "invalid_schema", f"device {device[:64]!r}: a profile index out of range"
            )
    for entries in names.profiles:
        for f in entries:
            what = f"{f.measurement[:64]!r} {f.field[:64]!r}"
            if not 0 < len(f.measurement) <= 64 or not 0 < len(f.field) <= 64:
                raise WireError("bad_name", f"{what}: names are 1 to 64 characters")
            if len(f.help) > MAX_HELP_CHARS or not _one_line(f.help):
                raise WireError(
                    "bad_value",
                    f"{what}: help is not one line of at most {MAX_HELP_CHARS} characters",
                )
            if len(f.states) > MAX_STATES:
                raise WireError("bad_value", f"{what}: {len(f.states)} states > {MAX_STATES}")
            for name in f.states.values():
                if not name or len(name) > MAX_STATE_CHARS or not _one_line(name):
                    raise WireError(
                        "bad_value",
                        f"{what}: a state name is not one line of "
                        f"1 to {MAX_STATE_CHARS} characters",
                    )
    return names
