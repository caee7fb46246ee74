"""A small BER codec for SNMP v1/v2c messages: exactly what GET/GETNEXT/GETBULK and their
responses carry.

INTEGER, OCTET STRING, NULL, OBJECT IDENTIFIER, SEQUENCE, the application types (IpAddress,
Counter32, Gauge32, TimeTicks, Opaque, Counter64, UInteger32), the context-specific noSuchObject /
noSuchInstance / endOfMibView and the PDU tags. Decoding returns the plain values of
agent.snmp.values, the same pysnmp's values convert to. A message this codec cannot read raises
DecodeError (the fast session then asks pysnmp), and only DecodeError, whatever the input.
Pure functions, no I/O: the fast session (agent.snmp.fast) and the tests use it.

Devices as they are: what net-snmp reads, this codec reads too, where pysnmp (pyasn1) drops the
whole response. Each such tolerance is counted in the `anomalies` Counter the decoders take
(under the keys of ANOMALIES), so a device that needs one can be told from one that does not:

* `unsigned_unpadded`: a Counter32, Gauge32, TimeTicks or Counter64 whose first content octet
  has its top bit set (the leading 0x00 left out, so it reads as negative): the content octets
  are read as an unsigned number, as net-snmp does (for the usual full-width value, 4 or 8
  octets, every net-snmp version agrees).
* `integer_beyond_int32`: an INTEGER of up to 8 octets outside the Integer32 range: truncated to
  32 bits the way net-snmp's asn_parse_int (CHECK_OVERFLOW_S) does: above 2^31-1 the low 32 bits
  (so 3000000000 stays 3000000000), below -2^31 the negated low 32 bits.
* `uinteger32`: the obsolete UInteger32 (application 7, tag 0x47, RFC 1442), read as a Gauge32.
* `oid_arc_padding`: an OBJECT IDENTIFIER arc with leading 0x80 octets (non-minimal): the arc's
  value, as net-snmp's asn_parse_objid reads it.

Still refused: an INTEGER of more than 8 octets, an unsigned value beyond its range (more
octets than the type holds), an OID arc of more than MAX_ARC_OCTETS octets (far beyond the
128-bit arcs of 2.25 UUID OIDs; an arc of 4,300 digits would not even print).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from agent.snmp.values import (
    END_OF_MIB,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    IpValue,
    Missing,
    Oid,
    OidValue,
    SnmpValue,
)

# Universal tags
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
# Application tags (RFC 2578, RFC 1155)
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
UINTEGER32 = 0x47  # obsolete (RFC 1442); net-snmp still reads it
# Context-specific exceptions in v2c varbinds (RFC 3416)
NO_SUCH_OBJECT_TAG = 0x80
NO_SUCH_INSTANCE_TAG = 0x81
END_OF_MIB_VIEW_TAG = 0x82
# PDU tags
GET = 0xA0
GETNEXT = 0xA1
RESPONSE = 0xA2
SET = 0xA3
TRAP_V1 = 0xA4
GETBULK = 0xA5
INFORM = 0xA6
TRAP_V2 = 0xA7
REPORT = 0xA8

VERSION_1 = 0
VERSION_2C = 1

_INT32 = (-(2**31), 2**31 - 1)
_UNSIGNED = {COUNTER32: 2**32 - 1, GAUGE32: 2**32 - 1, TIMETICKS: 2**32 - 1, COUNTER64: 2**64 - 1}
_UNSIGNED_OCTETS = {COUNTER32: 4, GAUGE32: 4, TIMETICKS: 4, UINTEGER32: 4, COUNTER64: 8}
"""Octets of an unsigned type's value, not counting the leading 0x00 a top bit needs."""
MAX_INTEGER_OCTETS = 8
"""The longest INTEGER read (net-snmp: sizeof(long)); request-id, error-status and the like too."""
MAX_ARC_OCTETS = 32
"""The longest OBJECT IDENTIFIER arc read: 224 bits (a 2.25 UUID arc takes 19 octets)."""
ANOMALIES = ("unsigned_unpadded", "integer_beyond_int32", "uinteger32", "oid_arc_padding")
"""The keys the decoders count tolerated encodings under (see the module docstring)."""
_MISSING_BY_TAG: dict[int, Missing] = {
    NO_SUCH_OBJECT_TAG: NO_SUCH_OBJECT,
    NO_SUCH_INSTANCE_TAG: NO_SUCH_INSTANCE,
    END_OF_MIB_VIEW_TAG: END_OF_MIB,
}
_TAG_BY_MISSING = {id(v): k for k, v in _MISSING_BY_TAG.items()}

ERROR_STATUS_NAMES = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)
"""RFC 3416 error-status names, as pysnmp's prettyPrint() spells them."""


def error_status_name(status: int) -> str:
    return ERROR_STATUS_NAMES[status] if 0 <= status < len(ERROR_STATUS_NAMES) else str(status)


class DecodeError(ValueError):
    """A message the fast decoder does not accept: malformed, truncated, or outside what it
    handles. `offset` is where in the message it gave up."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} at offset {offset}")
        self.what = what
        self.offset = offset


# ---------------------------------------------------------------------------------------------
# Encoding


class Typed(NamedTuple):
    """A value with an explicit tag, for encoding the types a plain int or bytes leaves open
    (Counter32, Gauge32, TimeTicks, Counter64, Opaque)."""

    tag: int
    value: int | bytes | str | None


def encode_length(n: int) -> bytes:
    if n < 0:
        raise ValueError("negative length")
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def encode_tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + encode_length(n) + content


def encode_integer(value: int, tag: int = INTEGER) -> bytes:
    """Two's complement, minimal length (also for the unsigned application types)."""
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return encode_tlv(tag, value.to_bytes(size, "big", signed=True))


def encode_oid(oid: Sequence[int]) -> bytes:
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40) or min(oid) < 0:
        raise ValueError(f"not an encodable OBJECT IDENTIFIER: {oid!r}")
    first = oid[0] * 40 + oid[1]
    if first < 0x80 and max(oid[2:], default=0) < 0x80:
        return encode_tlv(OBJECT_IDENTIFIER, bytes((first, *oid[2:])))
    out = bytearray()
    for arc in (first, *oid[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return encode_tlv(OBJECT_IDENTIFIER, bytes(out))


def _oid_of_text(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.strip(".").split("."))


def encode_value(value: SnmpValue | Typed | None) -> bytes:
    """A varbind value: plain values as agent.snmp.convert() gives them (int is INTEGER, bytes
    OCTET STRING, OidValue, IpValue, the Missing sentinels), None for NULL, or a Typed."""
    if isinstance(value, Typed):
        tag, payload = value
        if tag in (INTEGER, UINTEGER32, *_UNSIGNED):
            if not isinstance(payload, int):
                raise TypeError(f"tag 0x{tag:02x} needs an int")
            return encode_integer(payload, tag)
        if tag in (OCTET_STRING, OPAQUE):
            if not isinstance(payload, bytes):
                raise TypeError(f"tag 0x{tag:02x} needs bytes")
            return encode_tlv(tag, payload)
        if tag == IP_ADDRESS:
            raw = payload if isinstance(payload, bytes) else bytes(_oid_of_text(str(payload)))
            return encode_tlv(IP_ADDRESS, raw)
        if tag == OBJECT_IDENTIFIER:
            return encode_oid(_oid_of_text(str(payload)))
        if tag in (NULL, *_MISSING_BY_TAG):
            return bytes((tag, 0))
        raise ValueError(f"no encoding for tag 0x{tag:02x}")
    if value is None:
        return b"\x05\x00"
    if isinstance(value, Missing):
        return bytes((_TAG_BY_MISSING[id(value)], 0))
    if isinstance(value, IpValue):
        return encode_tlv(IP_ADDRESS, bytes(_oid_of_text(value)))
    if isinstance(value, OidValue):
        return encode_oid(_oid_of_text(value))
    if isinstance(value, bool):
        raise TypeError("bool is not an SNMP value")
    if isinstance(value, int):
        return encode_integer(value)
    if isinstance(value, bytes):
        return encode_tlv(OCTET_STRING, value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_message(
    version: int,
    community: bytes,
    pdu_tag: int,
    request_id: int,
    error_status: int,
    error_index: int,
    varbinds: Sequence[tuple[Oid, SnmpValue | Typed | None]],
) -> bytes:
    """Any v1/v2c message with the common PDU shape. For GETBULK, error_status and error_index
    are non-repeaters and max-repetitions (RFC 3416 keeps the same positions)."""
    vbl = b"".join(
        encode_tlv(SEQUENCE, encode_oid(oid) + encode_value(value)) for oid, value in varbinds
    )
    pdu = (
        encode_integer(request_id)
        + encode_integer(error_status)
        + encode_integer(error_index)
        + encode_tlv(SEQUENCE, vbl)
    )
    return encode_tlv(
        SEQUENCE,
        encode_integer(version) + encode_tlv(OCTET_STRING, community) + encode_tlv(pdu_tag, pdu),
    )


def encode_request(
    version: int,
    community: bytes,
    pdu_tag: int,
    request_id: int,
    oids: Sequence[Oid],
    max_repetitions: int = 0,
) -> bytes:
    """A GET, GETNEXT or GETBULK (non-repeaters 0) request: every value NULL."""
    second = max_repetitions if pdu_tag == GETBULK else 0
    return encode_message(
        version, community, pdu_tag, request_id, 0, second, [(oid, None) for oid in oids]
    )


# ---------------------------------------------------------------------------------------------
# Decoding


class Header(NamedTuple):
    """What routing a message needs: read before the rest, and without it."""

    version: int
    community: bytes
    pdu_tag: int
    request_id: int
    body: int  # offset of error-status (or non-repeaters)
    end: int  # end of the PDU


class Message(NamedTuple):
    version: int
    community: bytes
    pdu_tag: int
    request_id: int
    error_status: int  # non-repeaters in a GETBULK
    error_index: int  # max-repetitions in a GETBULK
    varbinds: list[tuple[Oid, SnmpValue]]


def _long_length(data: bytes, pos: int) -> tuple[int, int]:
    """(length, content offset) for the long form whose first octet is at `pos`."""
    k = data[pos] & 0x7F
    if k == 0:
        raise DecodeError("indefinite length", pos)
    if k > 4:
        raise DecodeError("length of more than 4 octets", pos)
    end = pos + 1 + k
    if end > len(data):
        raise DecodeError("truncated length", pos)
    return int.from_bytes(data[pos + 1 : end], "big"), end


def read_tlv(data: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at `pos`, which must end by `limit`."""
    if pos + 2 > limit:
        raise DecodeError("truncated", pos)
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DecodeError("multi-octet tag", pos)
    n = data[pos + 1]
    if n < 0x80:
        start = pos + 2
    else:
        n, start = _long_length(data, pos + 1)
    end = start + n
    if end > limit:
        if end > len(data):
            raise DecodeError(f"truncated value of tag 0x{tag:02x}", pos)
        raise DecodeError(f"value of tag 0x{tag:02x} overruns its container", pos)
    return tag, start, end


def _int_at(data: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    tag, start, end = read_tlv(data, pos, limit)
    if tag != INTEGER:
        raise DecodeError(f"{what} is not an INTEGER", pos)
    if start == end:
        raise DecodeError(f"{what} is empty", pos)
    if end - start > MAX_INTEGER_OCTETS:
        raise DecodeError(f"{what} of {end - start} octets", pos)
    return int.from_bytes(data[start:end], "big", signed=True), end


_HEADS = [(0, i) for i in range(40)] + [(1, i) for i in range(40)] + [(2, i) for i in range(48)]


def decode_oid(data: bytes, start: int, end: int, anomalies: Counter[str] | None = None) -> Oid:
    """The arcs of an OBJECT IDENTIFIER's content octets data[start:end]. Arcs padded with
    leading 0x80 octets are read (counted as `oid_arc_padding`); arcs of more than
    MAX_ARC_OCTETS octets are refused."""
    if start >= end:
        raise DecodeError("empty OBJECT IDENTIFIER", start)
    chunk = data[start:end]
    if chunk.isascii():  # every arc in one octet: the usual case
        return _HEADS[chunk[0]] + tuple(chunk[1:])
    arcs: list[int] = []
    value = 0
    octets = 0
    padded = False
    for i, octet in enumerate(chunk):
        if octets == 0 and octet == 0x80:
            padded = True
        octets += 1
        if octets > MAX_ARC_OCTETS:
            raise DecodeError(
                f"arc of more than {MAX_ARC_OCTETS} octets in OBJECT IDENTIFIER", start + i
            )
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
            octets = 0
    if octets:
        raise DecodeError("truncated arc in OBJECT IDENTIFIER", end)
    if padded and anomalies is not None:
        anomalies["oid_arc_padding"] += 1
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return head + tuple(arcs[1:])


def _unsigned(tag: int, data: bytes, start: int, end: int, anomalies: Counter[str] | None) -> int:
    """An unsigned application value, read as net-snmp reads it (see the module docstring)."""
    n = end - start
    if n == 0:
        raise DecodeError(f"empty value of tag 0x{tag:02x}", start)
    width = _UNSIGNED_OCTETS[tag]
    if n > width + 1 or (n == width + 1 and data[start] != 0):
        raise DecodeError(f"value of {n} octets out of range for tag 0x{tag:02x}", start)
    if data[start] & 0x80 and anomalies is not None:
        anomalies["unsigned_unpadded"] += 1
    return int.from_bytes(data[start:end], "big")


def decode_value(
    tag: int,
    data: bytes,
    start: int,
    end: int,
    v1: bool = False,
    anomalies: Counter[str] | None = None,
) -> SnmpValue:
    """A varbind value (content octets data[start:end]) as agent.snmp.convert() gives it.
    Tolerated encodings are counted in `anomalies` (see the module docstring)."""
    if tag in _UNSIGNED:
        if tag == COUNTER64 and v1:
            raise DecodeError("Counter64 in an SNMPv1 message", start)
        return _unsigned(tag, data, start, end, anomalies)
    if tag == UINTEGER32:
        if anomalies is not None:
            anomalies["uinteger32"] += 1
        return _unsigned(tag, data, start, end, anomalies)
    if tag == OCTET_STRING or tag == OPAQUE:
        return data[start:end]
    if tag == INTEGER:
        if start == end:
            raise DecodeError("empty INTEGER", start)
        if end - start > MAX_INTEGER_OCTETS:
            raise DecodeError(f"INTEGER of {end - start} octets beyond Integer32", start)
        number = int.from_bytes(data[start:end], "big", signed=True)
        if not _INT32[0] <= number <= _INT32[1]:
            # as net-snmp's CHECK_OVERFLOW_S truncates it
            number = number & 0xFFFFFFFF if number > 0 else -(number & 0xFFFFFFFF)
            if anomalies is not None:
                anomalies["integer_beyond_int32"] += 1
        return number
    if tag == OBJECT_IDENTIFIER:
        return OidValue(".".join(map(str, decode_oid(data, start, end, anomalies))))
    if tag == IP_ADDRESS:
        if end - start != 4:
            raise DecodeError(f"IpAddress of {end - start} octets", start)
        return IpValue("%d.%d.%d.%d" % tuple(data[start:end]))  # noqa: UP031
    if tag == NULL or tag in _MISSING_BY_TAG:
        if start != end:
            raise DecodeError(f"non-empty value of tag 0x{tag:02x}", start)
        if tag == NULL:
            # What convert() gives for a NULL: pyasn1's Null is an OctetString, and convert()
            # tests for OctetString first.
            return b""
        if v1:
            raise DecodeError(f"v2c exception 0x{tag:02x} in an SNMPv1 message", start)
        return _MISSING_BY_TAG[tag]
    raise DecodeError(f"unsupported value tag 0x{tag:02x}", start)


def decode_varbinds(
    data: bytes,
    pos: int,
    end: int,
    v1: bool = False,
    anomalies: Counter[str] | None = None,
) -> list[tuple[Oid, SnmpValue]]:
    """The varbinds whose encodings fill data[pos:end] (the content of a VarBindList)."""
    out: list[tuple[Oid, SnmpValue]] = []
    append = out.append
    heads = _HEADS
    while pos < end:
        if data[pos] != SEQUENCE:
            raise DecodeError("varbind is not a SEQUENCE", pos)
        n = data[pos + 1]
        if n < 0x80:
            start = pos + 2
        else:
            n, start = _long_length(data, pos + 1)
        vend = start + n
        if vend > end:
            raise DecodeError("varbind overruns its list", pos)
        if start + 2 > vend:
            raise DecodeError("varbind without a name", pos)
        # name
        if data[start] != OBJECT_IDENTIFIER:
            raise DecodeError("varbind name is not an OBJECT IDENTIFIER", start)
        n = data[start + 1]
        if n < 0x80:
            ostart = start + 2
        else:
            n, ostart = _long_length(data, start + 1)
        oend = ostart + n
        if oend > vend:
            raise DecodeError("varbind name overruns its varbind", start)
        chunk = data[ostart:oend]
        if chunk and chunk.isascii():
            name = heads[chunk[0]] + tuple(chunk[1:])
        else:
            name = decode_oid(data, ostart, oend, anomalies)
        # value
        if oend + 2 > vend:
            raise DecodeError("varbind without a value", oend)
        tag = data[oend]
        n = data[oend + 1]
        if n < 0x80:
            vstart = oend + 2
        else:
            n, vstart = _long_length(data, oend + 1)
        if vstart + n != vend:
            raise DecodeError("varbind value does not end its varbind", oend)
        if (tag == COUNTER32 or tag == GAUGE32 or tag == TIMETICKS) and (
            0 < n <= 4 and data[vstart] < 0x80 or n == 5 and data[vstart] == 0
        ):  # the bulk of a walk, canonical
            append((name, int.from_bytes(data[vstart:vend], "big")))
        else:
            append((name, decode_value(tag, data, vstart, vend, v1, anomalies)))
        pos = vend
    return out


def decode_header(data: bytes) -> Header:
    """Version, community, PDU tag and request-id: enough to match a response to its request.

    Octets after the message are ignored, as pysnmp does.
    """
    try:
        tag, pos, msg_end = read_tlv(data, 0, len(data))
        if tag != SEQUENCE:
            raise DecodeError("message is not a SEQUENCE", 0)
        version, pos = _int_at(data, pos, msg_end, "version")
        tag, start, pos = read_tlv(data, pos, msg_end)
        if tag != OCTET_STRING:
            raise DecodeError("community is not an OCTET STRING", start)
        community = data[start:pos]
        pdu_tag, start, pdu_end = read_tlv(data, pos, msg_end)
        if not GET <= pdu_tag <= REPORT:
            raise DecodeError(f"unknown PDU tag 0x{pdu_tag:02x}", pos)
        if pdu_end != msg_end:
            raise DecodeError("octets after the PDU", pdu_end)
        request_id, body = _int_at(data, start, pdu_end, "request-id")
    except IndexError:
        raise DecodeError("truncated", len(data)) from None
    return Header(version, community, pdu_tag, request_id, body, pdu_end)


def decode_body(
    data: bytes, header: Header, anomalies: Counter[str] | None = None
) -> tuple[int, int, list[tuple[Oid, SnmpValue]]]:
    """(error-status, error-index, varbinds) of a message whose header has been read; tolerated
    encodings counted in `anomalies`."""
    v1 = header.version == VERSION_1
    try:
        pos, end = header.body, header.end
        error_status, pos = _int_at(data, pos, end, "error-status")
        error_index, pos = _int_at(data, pos, end, "error-index")
        tag, start, vbl_end = read_tlv(data, pos, end)
        if tag != SEQUENCE:
            raise DecodeError("varbind list is not a SEQUENCE", pos)
        if vbl_end != end:
            raise DecodeError("octets after the varbind list", vbl_end)
        varbinds = decode_varbinds(data, start, vbl_end, v1, anomalies)
    except IndexError:
        raise DecodeError("truncated", len(data)) from None
    if header.pdu_tag == RESPONSE:
        if not 0 <= error_status <= (5 if v1 else 18):
            raise DecodeError(f"error-status {error_status} out of range", header.body)
        if error_index < 0:
            raise DecodeError(f"negative error-index {error_index}", header.body)
    return error_status, error_index, varbinds


def decode_message(data: bytes, anomalies: Counter[str] | None = None) -> Message:
    """A whole v1/v2c message (GET, GETNEXT, GETBULK, RESPONSE... all share one shape); tolerated
    encodings counted in `anomalies`. Raises DecodeError, and nothing else, on any input."""
    header = decode_header(data)
    if header.version not in (VERSION_1, VERSION_2C):
        raise DecodeError(f"SNMP version {header.version} is not v1 or v2c", 2)
    if header.pdu_tag == TRAP_V1:
        raise DecodeError("SNMPv1 Trap-PDU is not handled", 0)
    error_status, error_index, varbinds = decode_body(data, header, anomalies)
    return Message(
        header.version,
        header.community,
        header.pdu_tag,
        header.request_id,
        error_status,
        error_index,
        varbinds,
    )
