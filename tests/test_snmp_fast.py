"""The SNMP v1/v2c fast path (agent/snmp_fast.py).

* The BER codec against pyasn1, pysnmp's own encoder and decoder: every type both ways, long
  lengths, negative integers, 64-bit counters, and malformed or truncated input refused with a
  DecodeError (every prefix of a message, random corruption, and one case per rule).
* The UDP client against a scripted agent on loopback, side by side with the pysnmp path:
  request-ids, retries, timeouts, stray datagrams, late answers, and the fallback to pysnmp for
  answers the fast decoder refuses; one socket, none leaked.
* Equivalence with real agents: for every recording in tests/data/devices (snmpsim), v1 and
  v2c, GETNEXT and GETBULK, a walk of system and of every ifTable and ifXTable column gives the
  same answers through the fast path as through pysnmp, request by request; so does net-snmp's
  snmpd (v2c and v1); a silent community times out alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.ber import encoder as ber_encoder
from pysnmp.proto.api import v1 as pv1
from pysnmp.proto.api import v2c as pv2c
from pysnmp.proto.proxy import rfc2576

from agent.config import load_agent_config
from agent.poller import DevicePoller
from agent.snmp import (
    END_OF_MIB,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    Credentials,
    IpValue,
    OidValue,
    SnmpClient,
    SnmpError,
    SnmpTimeout,
    oid_tuple,
)
from agent.snmp.ber import (
    COUNTER32,
    COUNTER64,
    GAUGE32,
    GET,
    GETBULK,
    GETNEXT,
    INTEGER,
    IP_ADDRESS,
    OPAQUE,
    RESPONSE,
    TIMETICKS,
    DecodeError,
    Message,
    Typed,
    decode_message,
    encode_integer,
    encode_message,
    encode_oid,
    encode_request,
    encode_tlv,
)
from agent.snmp.fast import FastSession
from agent.snmp.pysnmp_session import SnmpSession, convert
from devstack.servers import Snmpd, SnmpSim
from tests.support.snmp_agent import Reply, answer, client_loop, scripted_agent

# ---------------------------------------------------------------------------------------------
# The codec against pyasn1

NAME = (1, 3, 6, 1, 4, 1, 2281, 10, 1)

# (value as encoded by us, the same as a pysnmp object, the plain value convert() gives)
CASES: list[tuple[Any, Any, Any]] = [
    *[
        (v, pv2c.Integer32(v), v)
        for v in (0, 1, -1, 127, 128, -128, -129, 255, 256, -32768, 2**31 - 1, -(2**31))
    ],
    (b"", pv2c.OctetString(b""), b""),
    (b"ether1", pv2c.OctetString(b"ether1"), b"ether1"),
    (bytes(range(256)) * 4, pv2c.OctetString(bytes(range(256)) * 4), bytes(range(256)) * 4),
    (None, pv2c.Null(""), b""),  # convert() gives b"" (pyasn1's Null is an OctetString)
    *[
        (OidValue(o), pv2c.ObjectIdentifier(o), OidValue(o))
        for o in (
            "1.3.6.1.4.1.2281.1.20.2.2",
            "0.0",
            "1.39",
            "2.999.3",
            "2.47",
            "1.3.6.1.4.1.4294967295.18446744073709551616",
            "1.3" + ".127" * 200,
        )
    ],
    (IpValue("10.213.0.1"), pv2c.IpAddress("10.213.0.1"), IpValue("10.213.0.1")),
    (IpValue("255.255.255.255"), pv2c.IpAddress("255.255.255.255"), IpValue("255.255.255.255")),
    *[(Typed(COUNTER32, v), pv2c.Counter32(v), v) for v in (0, 127, 128, 2**31, 2**32 - 1)],
    *[(Typed(GAUGE32, v), pv2c.Gauge32(v), v) for v in (0, 1_000_000_000, 2**32 - 1)],
    *[(Typed(TIMETICKS, v), pv2c.TimeTicks(v), v) for v in (0, 1669123, 2**32 - 1)],
    (
        Typed(OPAQUE, b"\x9f\x78\x04\x3f\x80\x00\x00"),
        pv2c.Opaque(b"\x9f\x78\x04\x3f\x80\x00\x00"),
        b"\x9f\x78\x04\x3f\x80\x00\x00",
    ),
    *[(Typed(COUNTER64, v), pv2c.Counter64(v), v) for v in (0, 2**32, 2**63 - 1, 2**63, 2**64 - 1)],
    (NO_SUCH_OBJECT, pv2c.NoSuchObject(), NO_SUCH_OBJECT),
    (NO_SUCH_INSTANCE, pv2c.NoSuchInstance(), NO_SUCH_INSTANCE),
    (END_OF_MIB, pv2c.EndOfMibView(), END_OF_MIB),
]
V1_CASES = [
    c
    for c in CASES
    if not isinstance(
        c[1], (pv2c.Counter64, pv2c.NoSuchObject, pv2c.NoSuchInstance, pv2c.EndOfMibView)
    )
]


def pysnmp_encode(
    version: int, community: bytes, request_id: int, varbinds: list[Any], pdu: Any = None
) -> bytes:
    mod = pv1 if version == 0 else pv2c
    if pdu is None:
        pdu = mod.GetResponsePDU()
        mod.apiPDU.set_defaults(pdu)
    mod.apiPDU.set_request_id(pdu, request_id)
    mod.apiPDU.set_varbinds(pdu, varbinds)
    msg = mod.Message()
    mod.apiMessage.set_defaults(msg)
    mod.apiMessage.set_community(msg, community)
    mod.apiMessage.set_pdu(msg, pdu)
    return bytes(ber_encoder.encode(msg))


def pysnmp_decode(data: bytes) -> tuple[int, list[tuple[tuple[int, ...], Any]]]:
    """(request-id, varbinds as convert() gives them), decoded the way pysnmp does."""
    version = data[4]
    mod = pv1 if version == 0 else pv2c
    msg, _ = ber_decoder.decode(data, asn1Spec=mod.Message())
    pdu = mod.apiMessage.get_pdu(msg)
    if version == 0:
        pdu = rfc2576.v1_to_v2(pdu, pv2c.GetRequestPDU())
    return (
        int(pv2c.apiPDU.get_request_id(pdu)),
        [(tuple(o), convert(v)) for o, v in pv2c.apiPDU.get_varbinds(pdu)],
    )


def as_pysnmp_v1(value: Any) -> Any:
    return rfc2576.V2_TO_V1_VALUE_MAP[value.tagSet].clone(value)


@pytest.mark.parametrize("version", [0, 1], ids=["v1", "v2c"])
def test_every_type_round_trips_and_agrees_with_pyasn1(version: int):
    cases = V1_CASES if version == 0 else CASES
    ours = [(NAME + (i,), mine) for i, (mine, _, _) in enumerate(cases)]
    theirs = [
        (NAME + (i,), as_pysnmp_v1(ref) if version == 0 else ref)
        for i, (_, ref, _) in enumerate(cases)
    ]
    expected = [(NAME + (i,), plain) for i, (_, _, plain) in enumerate(cases)]

    data = encode_message(version, b"public", RESPONSE, 4242, 0, 0, ours)
    message = decode_message(data)
    assert message == Message(version, b"public", RESPONSE, 4242, 0, 0, expected)
    # what we encode, pyasn1 reads as the same values, and byte for byte as it would encode
    # it, but for -128, -32768 and -2**31, which pyasn1 pads with a needless 0xff
    assert pysnmp_decode(data) == (4242, expected)
    keep = [
        i
        for i, (_, _, plain) in enumerate(cases)
        if not (type(plain) is int and plain in (-128, -32768, -(2**31)))
    ]
    assert len(keep) == len(cases) - 3
    assert encode_message(
        version, b"public", RESPONSE, 4242, 0, 0, [ours[i] for i in keep]
    ) == pysnmp_encode(version, b"public", 4242, [theirs[i] for i in keep])
    # what pyasn1 encodes, we read as convert() reads pysnmp's objects
    assert decode_message(pysnmp_encode(version, b"public", 4242, theirs)).varbinds == expected
    for (_, value), (_, plain) in zip(message.varbinds, expected, strict=True):
        assert type(value) is type(plain)


def test_lengths_in_long_form_of_one_two_and_three_octets():
    for size in (127, 128, 255, 256, 65535, 70000):
        data = encode_message(1, b"c", RESPONSE, 1, 0, 0, [(NAME, b"x" * size)])
        assert decode_message(data).varbinds == [(NAME, b"x" * size)]
    assert encode_tlv(0x04, b"x" * 127)[:2] == b"\x04\x7f"
    assert encode_tlv(0x04, b"x" * 128)[:3] == b"\x04\x81\x80"
    assert encode_tlv(0x04, b"x" * 256)[:4] == b"\x04\x82\x01\x00"
    assert encode_tlv(0x04, b"x" * 70000)[:5] == b"\x04\x83\x01\x11\x70"
    # a name longer than 127 octets has a long-form length too
    long_name = (1, 3) + (300,) * 100
    data = encode_message(1, b"c", RESPONSE, 1, 0, 0, [(long_name, 5)])
    assert decode_message(data).varbinds == [(long_name, 5)]
    # a non-minimal long form (0x81 0x0a for 10) is BER all the same, and pyasn1 takes it too
    inner = encode_oid((1, 3, 6, 1, 2, 1)) + encode_integer(5)
    data = response_raw(b"\x30\x81" + bytes((len(inner),)) + inner)
    assert decode_message(data).varbinds == [((1, 3, 6, 1, 2, 1), 5)]
    assert pysnmp_decode(data)[1] == [((1, 3, 6, 1, 2, 1), 5)]


def test_integers_are_minimal_twos_complement():
    assert encode_integer(0) == b"\x02\x01\x00"
    assert encode_integer(127) == b"\x02\x01\x7f"
    assert encode_integer(128) == b"\x02\x02\x00\x80"
    assert encode_integer(-1) == b"\x02\x01\xff"
    assert encode_integer(-128) == b"\x02\x01\x80"
    assert encode_integer(-129) == b"\x02\x02\xff\x7f"
    assert encode_integer(2**32 - 1, COUNTER32) == b"\x41\x05\x00\xff\xff\xff\xff"
    assert encode_integer(2**64 - 1, COUNTER64) == b"\x46\x09\x00" + b"\xff" * 8
    for value in [*range(-70000, 70000, 37), -(2**31), 2**31 - 1, -128, -32768, -32769]:
        assert ber_decoder.decode(encode_integer(value), asn1Spec=pv2c.Integer32())[0] == value


def test_oids_encode_as_pyasn1_does():
    for oid in [
        (1, 3),
        (1, 3, 6, 1, 2, 1, 1, 1, 0),
        (2, 999, 1),
        (0, 39),
        (1, 3, 128, 16383, 16384, 2**32),
    ]:
        assert encode_oid(oid) == ber_encoder.encode(pv2c.ObjectIdentifier(oid))
    for bad in [(1,), (3, 1), (1, 40), (1, 3, -1)]:
        with pytest.raises(ValueError):
            encode_oid(bad)


@pytest.mark.parametrize(
    ("pdu_tag", "version"), [(GET, 1), (GETNEXT, 0), (GETNEXT, 1), (GETBULK, 1)]
)
def test_requests_are_byte_for_byte_what_pysnmp_sends(pdu_tag: int, version: int):
    oids = [(1, 3, 6, 1, 2, 1, 2, 2, 1, c) for c in range(1, 23)] + [(1, 3, 6, 1, 4, 1, 2281)]
    data = encode_request(version, b"s3cret", pdu_tag, 0xABCDEF, oids, 25)
    mod = pv1 if version == 0 else pv2c
    pdu = {GET: mod.GetRequestPDU, GETNEXT: mod.GetNextRequestPDU, GETBULK: pv2c.GetBulkRequestPDU}[
        pdu_tag
    ]()
    mod.apiPDU.set_defaults(pdu)
    if pdu_tag == GETBULK:
        pv2c.apiBulkPDU.set_max_repetitions(pdu, 25)
    reference = pysnmp_encode(version, b"s3cret", 0xABCDEF, [(o, mod.Null()) for o in oids], pdu)
    assert data == reference
    message = decode_message(data)
    assert (message.pdu_tag, message.request_id, message.version) == (pdu_tag, 0xABCDEF, version)
    assert message.error_index == (25 if pdu_tag == GETBULK else 0)
    assert [o for o, _ in message.varbinds] == oids


def valid_response() -> bytes:
    return encode_message(
        1,
        b"public",
        RESPONSE,
        77,
        0,
        0,
        [
            ((1, 3, 6, 1, 2, 1, 1, 1, 0), b"Linux gw"),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), Typed(COUNTER32, 3_000_000_000)),
            ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1), Typed(COUNTER64, 2**40)),
            ((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1), IpValue("10.0.0.1")),
            ((1, 3, 6, 1, 2, 1, 99, 0), END_OF_MIB),
        ],
    )


def test_every_truncation_is_refused_with_a_decode_error():
    data = valid_response()
    assert decode_message(data).request_id == 77
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode_message(data[:cut])
    with pytest.raises(DecodeError, match="truncated"):
        decode_message(data[:-3])


def test_random_corruption_decodes_or_raises_decode_error_only():
    data = valid_response()
    rng = random.Random(7)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            decode_message(bytes(mutated))
            outcomes["decoded"] += 1
        except DecodeError:
            outcomes["refused"] += 1
    assert outcomes["decoded"] and outcomes["refused"]


def response_raw(
    varbinds: bytes,
    version: int = 1,
    status: bytes = b"\x02\x01\x00",
    request_id: int = 5,
    community: bytes = b"public",
    after: bytes = b"",
) -> bytes:
    """A response with the raw varbind list content given (and octets `after` it)."""
    pdu = encode_integer(request_id) + status + b"\x02\x01\x00" + encode_tlv(0x30, varbinds) + after
    return encode_tlv(
        0x30, encode_integer(version) + encode_tlv(0x04, community) + encode_tlv(RESPONSE, pdu)
    )


def response_with(value_tlv: bytes, version: int = 1, status: bytes = b"\x02\x01\x00") -> bytes:
    """A response whose one varbind has the raw value encoding given."""
    return response_raw(encode_tlv(0x30, encode_oid(NAME) + value_tlv), version, status)


MALFORMED = [
    # (a Counter32 of 4 octets with the top bit set, "negative", is read as net-snmp reads it:
    # see test_what_net_snmp_reads_is_read_and_counted)
    ("counter32 unpadded 5 octets", response_with(b"\x41\x05\x80" + b"\x00" * 4), "out of range"),
    ("counter32 too big", response_with(b"\x41\x05\x01\x00\x00\x00\x00"), "out of range"),
    ("counter64 too big", response_with(b"\x46\x09\x01" + b"\x00" * 8), "out of range"),
    ("gauge32 empty", response_with(b"\x42\x00"), "empty value"),
    ("integer empty", response_with(b"\x02\x00"), "empty INTEGER"),
    ("integer beyond 64 bits", response_with(b"\x02\x09\x01" + b"\x00" * 8), "Integer32"),
    ("ipaddress of 5 octets", response_with(b"\x40\x05\x0a\x00\x00\x00\x01"), "IpAddress of 5"),
    ("null with content", response_with(b"\x05\x01\x00"), "non-empty"),
    ("noSuchObject with content", response_with(b"\x80\x01\x00"), "non-empty"),
    ("unknown application type", response_with(b"\x48\x01\x01"), "unsupported value tag 0x48"),
    ("counter64 in v1", response_with(b"\x46\x01\x01", version=0), "Counter64 in an SNMPv1"),
    ("endOfMibView in v1", response_with(b"\x82\x00", version=0), "in an SNMPv1"),
    ("oid arc too long", response_with(encode_tlv(6, b"\x2b" + b"\x81" * 40 + b"\x01")), "arc of"),
    ("oid truncated arc", response_with(b"\x06\x02\x2b\x86"), "truncated arc"),
    ("oid empty", response_with(b"\x06\x00"), "empty OBJECT IDENTIFIER"),
    ("value overruns varbind", response_with(b"\x04\x7f" + b"x" * 10), "does not end its varbind"),
    ("indefinite length", b"\x30\x80" + valid_response()[2:], "indefinite length"),
    ("multi-octet tag", valid_response().replace(b"\xa2", b"\xbf", 1), "multi-octet tag"),
    ("multi-octet value tag", response_with(b"\x5f\x81\x01\x00"), "unsupported value tag"),
    (
        "error-status out of range",
        response_with(b"\x05\x00", status=b"\x02\x01\x13"),
        "error-status 19",
    ),
    (
        "v1 error-status out of range",
        response_with(b"\x05\x00", version=0, status=b"\x02\x01\x06"),
        "error-status 6",
    ),
    ("not a sequence", b"\x31\x03\x02\x01\x01", "not a SEQUENCE"),
    ("unknown pdu", valid_response().replace(b"\xa2", b"\xa9", 1), "unknown PDU tag"),
    (
        "octets after the varbind list",
        response_raw(encode_tlv(0x30, encode_oid(NAME) + b"\x05\x00"), after=b"\x05\x00"),
        "octets after the varbind list",
    ),
    (
        "empty varbind",
        response_raw(b"\x30\x00" + encode_tlv(0x30, encode_oid(NAME) + b"\x05\x00")),
        "varbind without a name",
    ),
    (
        "varbind without value",
        response_raw(encode_tlv(0x30, encode_oid(NAME))),
        "varbind without a value",
    ),
]


@pytest.mark.parametrize(
    ("data", "fragment"), [(d, f) for _, d, f in MALFORMED], ids=[name for name, _, _ in MALFORMED]
)
def test_malformed_input_raises_a_clear_decode_error(data: bytes, fragment: str):
    with pytest.raises(DecodeError, match=fragment) as info:
        decode_message(data)
    assert " at offset " in str(info.value)


def test_octets_after_the_message_are_ignored_as_pysnmp_does():
    data = valid_response()
    assert decode_message(data + b"\x00junk") == decode_message(data)
    assert pysnmp_decode(data + b"\x00junk") == pysnmp_decode(data)


# ---------------------------------------------------------------------------------------------
# The client against a scripted agent


@pytest.fixture(scope="module")
def runner() -> Iterator[tuple[asyncio.Runner, SnmpClient]]:
    with client_loop() as r:
        yield r


async def both(
    client: SnmpClient, port: int, creds: Credentials, *, timeout: float = 0.3, retries: int = 0
) -> tuple[FastSession, SnmpSession]:
    fast = await client.session("127.0.0.1", port, creds, timeout=timeout, retries=retries)
    slow = await client.session(
        "127.0.0.1", port, creds, timeout=timeout, retries=retries, fast=False
    )
    assert isinstance(fast, FastSession) and type(slow) is SnmpSession
    return fast, slow


V2C = Credentials("2c", "public")
V1 = Credentials("1", "public")
SYS_DESCR = oid_tuple("1.3.6.1.2.1.1.1.0")
SYS_UPTIME = oid_tuple("1.3.6.1.2.1.1.3.0")


def test_session_kinds(runner: tuple[asyncio.Runner, SnmpClient]):
    loop, client = runner

    async def run() -> None:
        for creds, fast, kind in [
            (V2C, True, FastSession),
            (V1, True, FastSession),
            (V2C, False, SnmpSession),
            (Credentials("2c", "caf\u00e9"), True, SnmpSession),
            (Credentials("3", user="u"), True, SnmpSession),
        ]:
            session = await client.session("127.0.0.1", 161, creds, timeout=1, retries=0, fast=fast)
            assert type(session) is kind
            assert session.version == creds.version
        session = await client.session("127.0.0.1", 161, V2C, timeout=1, retries=0)
        assert session.forget_engine() is False and session.requests == 0
        with pytest.raises(SnmpError) as info:
            await client.session("no-such-host.invalid", 161, V2C, timeout=1, retries=0)
        assert info.value.reason == "resolve"

    loop.run(run())


def test_retries_send_new_request_ids_like_pysnmp(runner: tuple[asyncio.Runner, SnmpClient]):
    loop, client = runner

    async def run() -> None:
        # answers only every third request: the third attempt of each GET
        async with scripted_agent(lambda r, n: [(0, answer(r))] if n % 3 == 0 else []) as (
            agent,
            port,
        ):
            fast, slow = await both(client, port, V2C, timeout=0.15, retries=2)
            for session in (fast, slow):
                agent.requests.clear()
                started = time.monotonic()
                assert await session.get([SYS_UPTIME]) == {SYS_UPTIME: 7}
                # two timeouts (pysnmp's may end up to a tick of 0.1 s early)
                assert 0.3 - (0.2 if session is slow else 0) <= time.monotonic() - started < 0.6
                ids = [r.request_id for r in agent.requests]
                assert len(ids) == 3 and len(set(ids)) == 3, ids  # a new id for each attempt
                assert {r.pdu_tag for r in agent.requests} == {GET}
                assert session.requests == 1
                if session is fast:  # 31-bit, unpredictable (not pysnmp's 24-bit sequence)
                    assert all(0 <= i <= 0x7FFFFFFF for i in ids)
                    assert ids != list(range(ids[0], ids[0] + 3))
                else:
                    assert all(0 <= i <= 0xFFFFFF for i in ids)

    loop.run(run())


def test_late_answer_to_an_earlier_attempt_is_ignored_like_pysnmp(
    runner: tuple[asyncio.Runner, SnmpClient],
):
    loop, client = runner

    async def run() -> None:
        # the first attempt is answered after its timeout; the second never
        reply: Reply = lambda r, n: [(0.25, answer(r))] if n == 1 else []  # noqa: E731
        async with scripted_agent(reply) as (agent, port):
            for fast in (True, False):
                agent.requests.clear()
                session = await client.session(
                    "127.0.0.1", port, V2C, timeout=0.15, retries=1, fast=fast
                )
                started = time.monotonic()
                with pytest.raises(SnmpTimeout):
                    await session.get([SYS_UPTIME])
                assert 0.3 - (0 if fast else 0.2) <= time.monotonic() - started < 0.55
                assert len(agent.requests) == 2
                await asyncio.sleep(0.15)

    loop.run(run())
    assert client._fast.stray >= 1


def test_stray_datagrams_are_ignored(runner: tuple[asyncio.Runner, SnmpClient]):
    loop, client = runner

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        return [
            (0, answer(r, [(SYS_UPTIME, 1)], request_id=(r.request_id + 1) & 0xFFFFFF)),
            (0, answer(r, [(SYS_UPTIME, 2)], community=b"other")),
            (0, answer(r, [(SYS_UPTIME, 3)], version=0)),
            (0, answer(r, [(SYS_UPTIME, 4)], pdu_tag=GET)),
            (0.05, answer(r, [(SYS_UPTIME, 5)])),
        ]

    async def run() -> None:
        async with scripted_agent(reply) as (_, port):
            fast, slow = await both(client, port, V2C)
            before = client._fast.stray
            assert await fast.get([SYS_UPTIME]) == {SYS_UPTIME: 5}
            assert client._fast.stray - before == 4
            assert await slow.get([SYS_UPTIME]) == {SYS_UPTIME: 5}
            assert fast.fallbacks == {}

    loop.run(run())


BAD_COUNTER = bytes.fromhex("41050100000000")  # a Counter32 2**32: pyasn1 and we both refuse it


def indefinite_message(data: bytes) -> bytes:
    """`data` (short form message length) with the message in indefinite length: legal BER,
    which pyasn1 reads and the fast codec does not (not even its request-id)."""
    assert data[0] == 0x30 and data[1] < 0x80
    return b"\x30\x80" + data[2:] + b"\x00\x00"


def vbl_indefinite(r: Message) -> bytes:
    """The answer to `r` with its varbind list in indefinite length: the header reads, the
    body does not (pyasn1 reads both)."""
    data = answer(r)
    # the varbind list: the first SEQUENCE inside the PDU
    pdu_at = data.index(b"\xa2")
    at = data.index(b"\x30", pdu_at)
    n = data[at + 1]
    body = data[:at] + b"\x30\x80" + data[at + 2 : at + 2 + n] + b"\x00\x00"
    out = bytearray(body)
    out[1] += 2
    out[pdu_at + 1] += 2
    return bytes(out)


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (vbl_indefinite, "decode"),  # header read, body not
        (lambda r: indefinite_message(answer(r)), "unreadable"),  # not even a request-id
        (lambda r: answer(r, pdu_tag=0xA8), "report"),
    ],
    ids=["indefinite-varbind-list", "indefinite-message", "report"],
)
def test_answers_the_fast_decoder_refuses_go_through_pysnmp(
    first: Callable[[Message], bytes], reason: str, runner: tuple[asyncio.Runner, SnmpClient]
):
    loop, client = runner

    async def run() -> None:
        # The first request gets the odd answer; pysnmp's request after it a good one.
        reply: Reply = lambda r, n: [(0, first(r) if n == 1 else answer(r))]  # noqa: E731
        async with scripted_agent(reply) as (agent, port):
            session = await client.session("127.0.0.1", port, V1, timeout=0.3, retries=0)
            assert isinstance(session, FastSession)
            assert await session.get([SYS_UPTIME]) == {SYS_UPTIME: 7}
            assert session.fallbacks == {reason: 1}
            assert session.requests == 2 and len(agent.requests) == 2

    loop.run(run())


def test_an_answer_neither_path_can_read_fails_as_it_does_through_pysnmp(
    runner: tuple[asyncio.Runner, SnmpClient],
):
    loop, client = runner

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        bad = encode_tlv(0x30, encode_oid(SYS_UPTIME) + BAD_COUNTER)
        return [(0, response_raw(bad, request_id=r.request_id, community=r.community))]

    async def run() -> None:
        async with scripted_agent(reply) as (agent, port):
            fast, slow = await both(client, port, V2C, timeout=0.2, retries=0)
            outcomes = []
            for session in (fast, slow):
                with pytest.raises(SnmpError) as info:
                    await session.next_rows([SYS_DESCR], 10, True)
                outcomes.append(info.value.reason)
            # pysnmp drops what it cannot decode: the device looks silent through it; the fast
            # path tells it apart (issue: an operator must see a device answering garbage)
            assert outcomes == ["unreadable", "timeout"]
            assert fast.fallbacks == {"decode": 1}

    loop.run(run())


def test_v1_noSuchName_and_errors_match_pysnmp(runner: tuple[asyncio.Runner, SnmpClient]):
    loop, client = runner
    missing = (1, 3, 6, 1, 2, 1, 1, 99, 0)

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        oids = [o for o, _ in r.varbinds]
        if r.pdu_tag == GET and missing in oids:  # noSuchName, index of the missing OID
            return [(0, answer(r, list(r.varbinds), status=2, index=oids.index(missing) + 1))]
        if r.pdu_tag == GETNEXT and missing in oids:
            return [(0, answer(r, list(r.varbinds), status=2, index=oids.index(missing) + 1))]
        if oids == [SYS_DESCR]:
            return [(0, answer(r, list(r.varbinds), status=5, index=1))]  # genErr
        return [(0, answer(r, [(o + (1,), Typed(GAUGE32, i)) for i, o in enumerate(oids)]))]

    async def run() -> None:
        async with scripted_agent(reply) as (agent, port):
            fast, slow = await both(client, port, V1)
            results = []
            for session in (fast, slow):
                agent.requests.clear()
                got: list[Any] = [await session.get([SYS_UPTIME, missing, SYS_UPTIME[:-1]])]
                got.append(await session.next_rows([SYS_UPTIME, missing, SYS_DESCR[:-1]], 25, True))
                for call in (session.get([SYS_DESCR]), session.next_rows([SYS_DESCR], 5, False)):
                    with pytest.raises(SnmpError) as info:
                        await call
                    got.append((info.value.reason, info.value.detail))
                got.append([(r.pdu_tag, r.error_status, r.error_index) for r in agent.requests])
                results.append(got)
            assert results[0] == results[1]
            assert results[0][0][missing] is NO_SUCH_OBJECT
            assert results[0][1][0][1] == (missing, END_OF_MIB)
            assert results[0][2] == ("snmp_error", "genErr at index 1")
            # v1 has no GETBULK: both sent GETNEXTs
            assert {tag for tag, _, _ in results[0][4]} == {GET, GETNEXT}

    loop.run(run())


def test_empty_and_short_responses_match_pysnmp(runner: tuple[asyncio.Runner, SnmpClient]):
    loop, client = runner

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        if len(r.varbinds) == 1:
            return [(0, answer(r, []))]
        return [(0, answer(r, [r.varbinds[0]]))]  # one varbind for two columns

    async def run() -> None:
        async with scripted_agent(reply) as (_, port):
            fast, slow = await both(client, port, V2C)
            outcomes = []
            for session in (fast, slow):
                got: list[Any] = [await session.get([SYS_UPTIME])]
                for oids in ([SYS_DESCR], [SYS_DESCR, SYS_UPTIME]):
                    with pytest.raises(SnmpError) as info:
                        await session.next_rows(oids, 5, True)
                    got.append((info.value.reason, info.value.detail))
                outcomes.append(got)
            assert outcomes[0] == outcomes[1]
            assert outcomes[0][1] == ("snmp_error", "Empty SNMP response message")

    loop.run(run())


def test_concurrent_requests_share_one_socket_and_get_their_own_answers(
    runner: tuple[asyncio.Runner, SnmpClient],
):
    loop, client = runner

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        oid = r.varbinds[0][0]
        # answers out of order: the larger the index, the sooner
        return [(0.002 * (60 - oid[-1]), answer(r, [(oid, oid[-1] * 1000)]))]

    async def run() -> None:
        async with scripted_agent(reply) as (_, port):
            sessions = [
                await client.session("127.0.0.1", port, V2C, timeout=1, retries=0)
                for _ in range(50)
            ]
            results = await asyncio.gather(
                *(s.get([SYS_UPTIME + (i,)]) for i, s in enumerate(sessions))
            )
            assert results == [{SYS_UPTIME + (i,): i * 1000} for i in range(50)]

    loop.run(run())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_one_socket_and_none_leaked():
    async def run() -> tuple[int, int, int]:
        async with scripted_agent(lambda r, n: [(0, answer(r))]) as (_, port):
            before = open_fds()
            async with SnmpClient() as client:
                opened = open_fds()
                for version in ("1", "2c") * 20:
                    session = await client.session(
                        "127.0.0.1", port, Credentials(version), timeout=1, retries=0
                    )
                    assert await session.get([SYS_UPTIME]) == {SYS_UPTIME: 7}
                used = open_fds()
            return before, opened, used

    with asyncio.Runner() as loop:
        before, opened, used = loop.run(run())
        after = open_fds()
    assert used - opened == 1  # one UDP socket for 40 fast sessions
    assert after <= before


# ---------------------------------------------------------------------------------------------
# Equivalence with real agents

IF_COLUMNS = [(1, 3, 6, 1, 2, 1, 2, 2, 1, c) for c in range(1, 23)]
IFX_COLUMNS = [(1, 3, 6, 1, 2, 1, 31, 1, 1, 1, c) for c in range(1, 20)]
# SNMPv1 cannot carry the Counter64 columns (ifHC*, 6 to 13): a v1 agent skips them, and
# snmpsim takes seconds to skip a whole column of them on the big recordings.
V1_IFX_COLUMNS = [c for c in IFX_COLUMNS if not 6 <= c[-1] <= 13]
SYSTEM = (1, 3, 6, 1, 2, 1, 1)
SCALARS = [
    SYS_DESCR,
    oid_tuple("1.3.6.1.2.1.1.2.0"),
    SYS_UPTIME,
    oid_tuple("1.3.6.1.6.3.10.2.1.3.0"),
    (1, 3, 6, 1, 2, 1, 1, 99, 0),
    (1, 3, 6, 1, 2, 1, 2, 2, 1, 1),
]


async def trace(
    session: SnmpSession, bulk: bool, max_repetitions: int = 10, max_requests: int = 1000
) -> tuple[list[Any], dict[tuple[int, ...], Any]]:
    """Every answer of a fixed plan, raw, and what it walked ({oid: value}).

    The plan: a walk of the system subtree; one of every ifTable column together and one of
    every ifXTable column together, as the poller walks a table, each of at most
    `max_requests` requests; a GET of some scalars, some absent. The next request depends on
    the answers, so equal traces mean equal answers to equal requests."""
    answers: list[Any] = []
    walked: dict[tuple[int, ...], Any] = {}
    for columns in (
        [SYSTEM],
        IF_COLUMNS,
        V1_IFX_COLUMNS if session.version == "1" else IFX_COLUMNS,
    ):
        position = {c: c for c in columns}
        limit = len(answers) + max_requests
        while position and len(answers) < limit:
            active = list(position)
            try:
                rows = await session.next_rows([position[c] for c in active], max_repetitions, bulk)
            except SnmpError as exc:
                answers.append((type(exc).__name__, exc.reason, exc.detail))
                break
            answers.append(rows)
            done = set()
            for row in rows:
                for col, (oid, value) in zip(active, row, strict=False):
                    if col in done:
                        continue
                    if value is END_OF_MIB or oid[: len(col)] != col or oid <= position[col]:
                        done.add(col)
                        continue
                    walked[oid] = value
                    position[col] = oid
            for col in done:
                position.pop(col)
    try:
        answers.append(await session.get(SCALARS))
    except SnmpError as exc:
        answers.append((type(exc).__name__, exc.reason, exc.detail))
    return answers, walked


def typed(answers: Any) -> Any:
    """Values with their types, so b"1" == 1-like confusions cannot pass."""
    if isinstance(answers, list):
        return [typed(a) for a in answers]
    if isinstance(answers, dict):
        return {k: typed(v) for k, v in answers.items()}
    if isinstance(answers, tuple) and len(answers) == 2 and isinstance(answers[0], tuple):
        return (answers[0], type(answers[1]).__name__, answers[1])
    return answers


RECORDINGS = sorted(p.stem for p in (Path(__file__).parent / "data" / "devices").glob("*.snmprec"))
MODES = [("1", False), ("2c", False), ("2c", True)]
GETNEXT_REQUESTS = 40
"""GETNEXT walks stop after this many requests (rows) per table, to keep the time in bounds
on the recordings with hundreds of interfaces; GETBULK walks go to the end."""


@pytest.mark.parametrize("community", RECORDINGS)
def test_every_recording_reads_the_same_through_both_paths(
    community: str, snmpsim: SnmpSim, runner: tuple[asyncio.Runner, SnmpClient]
):
    loop, client = runner

    async def run() -> list[tuple[str, bool, int]]:
        sizes = []
        for version, bulk in MODES:
            creds = Credentials(version, community)
            fast = await client.session(snmpsim.host, snmpsim.port, creds, timeout=10, retries=0)
            slow = await client.session(
                snmpsim.host, snmpsim.port, creds, timeout=10, retries=0, fast=False
            )
            assert isinstance(fast, FastSession)
            # side by side: while snmpsim answers one, the other decodes
            (fast_answers, fast_walked), (slow_answers, slow_walked) = await asyncio.gather(
                trace(fast, bulk, max_requests=1000 if bulk else GETNEXT_REQUESTS),
                trace(slow, bulk, max_requests=1000 if bulk else GETNEXT_REQUESTS),
            )
            assert typed(fast_answers) == typed(slow_answers), (version, bulk)
            assert fast_walked == slow_walked
            assert fast.fallbacks == {}
            assert fast.requests == slow.requests
            sizes.append((version, bulk, len(fast_walked)))
        return sizes

    sizes = loop.run(run())
    assert all(n > 0 for _, _, n in sizes), sizes  # every recording has at least system


def test_a_silent_community_times_out_alike(
    snmpsim: SnmpSim, runner: tuple[asyncio.Runner, SnmpClient]
):
    loop, client = runner
    creds = Credentials("2c", "none-" + secrets.token_hex(4))
    assert creds.community not in snmpsim.communities
    timeout, retries = 0.2, 2

    async def run() -> list[float]:
        fast, slow = await both(client, snmpsim.port, creds, timeout=timeout, retries=retries)
        took = []
        for call in (
            fast.get([SYS_UPTIME]),
            slow.get([SYS_UPTIME]),
            fast.next_rows([SYSTEM], 25, True),
            slow.next_rows([SYSTEM], 25, True),
        ):
            started = time.monotonic()
            with pytest.raises(SnmpTimeout):
                await call
            took.append(time.monotonic() - started)
        return took

    took = loop.run(run())
    expected = timeout * (retries + 1)
    # pysnmp counts time in ticks of 0.1 s, so its attempts may end up to a tick early
    for seconds in took:
        assert expected - 0.11 <= seconds < expected + 0.35, took
    assert took[0] >= expected and took[2] >= expected  # the fast path waits out every attempt


def poll_config(tmp_path: Path, sim: SnmpSim, community: str, version: str, fast: bool) -> Any:
    path = tmp_path / f"{community}-{version}-{fast}.yaml"
    path.write_text(
        f"site: s\ndefaults: {{ping: false, fast_snmp: {str(not fast).lower()}}}\n"
        f"devices:\n  - name: d\n    host: {sim.host}\n    port: {sim.port}\n"
        f"    fast_snmp: {str(fast).lower()}\n"
        f"    snmp: {{version: '{version}', community: {community}}}\n"
    )
    return load_agent_config(path).devices[0]


@pytest.mark.parametrize(
    ("community", "version"), [("ceraos", "2c"), ("uhp", "1"), ("routeros_rb750gr3", "2c")]
)
def test_a_poll_gives_the_same_sample_set_through_both_paths(
    community: str,
    version: str,
    tmp_path: Path,
    snmpsim: SnmpSim,
    runner: tuple[asyncio.Runner, SnmpClient],
):
    loop, client = runner
    results = []
    for fast in (True, False):
        device = poll_config(tmp_path, snmpsim, community, version, fast)
        assert device.fast_snmp is fast
        poller = DevicePoller("s", device, client, lambda _: 1)
        results.append(loop.run(poller.poll()))
        assert isinstance(poller._session, FastSession) is fast
    fast_set, slow_set = results
    assert fast_set.up and fast_set.groups
    assert (fast_set.groups, fast_set.errors) == (slow_set.groups, slow_set.errors)


def sandwiched(a: Any, b: Any, c: Any, where: str = "") -> None:
    """a, b and c read one after another: equal, except that counters and clocks may grow."""
    if isinstance(a, list | tuple) and not isinstance(a, str):
        assert isinstance(b, type(a)) and isinstance(c, type(a)), where
        assert len(a) == len(b) == len(c), where
        for i, (x, y, z) in enumerate(zip(a, b, c, strict=True)):
            sandwiched(x, y, z, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys() == c.keys(), where
        for k in a:
            sandwiched(a[k], b[k], c[k], f"{where}[{k}]")
    elif isinstance(a, int) and not isinstance(a, bool):
        assert type(a) is type(b) is type(c), where
        assert a <= b <= c, (where, a, b, c)
    else:
        assert type(a) is type(b) is type(c) and a == b == c, (where, a, b, c)


@pytest.mark.parametrize("version", ["2c", "1"])
def test_net_snmp_snmpd_reads_the_same_through_both_paths(
    version: str, tmp_path: Path, runner: tuple[asyncio.Runner, SnmpClient]
):
    loop, client = runner
    community = "c" + secrets.token_hex(6)

    async def run(agent: Snmpd) -> None:
        creds = Credentials(version, community)
        fast = await client.session(agent.host, agent.port, creds, timeout=2, retries=1)
        slow = await client.session(agent.host, agent.port, creds, timeout=2, retries=1, fast=False)
        assert isinstance(fast, FastSession)
        for bulk in [False, True] if version == "2c" else [False]:
            # fast, pysnmp, fast: the loopback counters grow meanwhile (this traffic)
            first = await trace(fast, bulk, 5)
            middle = await trace(slow, bulk, 5)
            last = await trace(fast, bulk, 5)
            sandwiched(typed(first[1]), typed(middle[1]), typed(last[1]))
            assert len(first[1]) > 40  # lo and eth0 or so, with both tables
            assert any(type(v) is OidValue for v in first[1].values())
        assert fast.fallbacks == {}

    with Snmpd(tmp_path / "snmpd", community=community) as agent:
        loop.run(run(agent))


# ---------------------------------------------------------------------------------------------
# Configuration


def test_fast_snmp_setting_merges_like_the_others(tmp_path: Path):
    path = tmp_path / "a.yaml"
    base = "site: s\n{defaults}devices:\n  - {{name: a, host: h}}\n  - {{name: b, host: h, fast_snmp: {b}}}\n"
    path.write_text(base.format(defaults="", b="false"))
    assert [d.fast_snmp for d in load_agent_config(path).devices] == [True, False]
    path.write_text(base.format(defaults="defaults: {fast_snmp: false}\n", b="true"))
    assert [d.fast_snmp for d in load_agent_config(path).devices] == [False, True]


def test_poller_asks_for_the_configured_path(tmp_path: Path):
    asked = []

    class Client:
        async def session(self, *args: Any, **kwargs: Any) -> Any:
            asked.append(kwargs.get("fast"))
            raise SnmpTimeout()

    path = tmp_path / "a.yaml"
    path.write_text(
        "site: s\ndefaults: {ping: false}\ndevices:\n  - {name: a, host: h}\n"
        "  - {name: b, host: h, fast_snmp: false}\n"
    )
    for device in load_agent_config(path).devices:
        result = asyncio.run(DevicePoller("s", device, Client(), lambda _: 1).poll())  # type: ignore[arg-type]
        assert result.reason == "timeout"
    assert asked == [True, False]


def test_only_devices_that_need_pysnmp_say_so(tmp_path: Path):
    path = tmp_path / "a.yaml"
    path.write_text(
        "site: s\ndefaults: {ping: false}\ndevices:\n"
        "  - {name: a, host: h}\n"
        "  - {name: b, host: h, snmp: {version: '1'}}\n"
        "  - {name: c, host: h, fast_snmp: false}\n"
        "  - {name: d, host: h, snmp: {version: '3', user: u}}\n"
    )
    pollers = [
        DevicePoller("s", d, SnmpClient(), lambda _: 1) for d in load_agent_config(path).devices
    ]
    assert [p.needs_pysnmp for p in pollers] == [False, False, True, True]


def test_typed_values_check_their_payloads():
    with pytest.raises(TypeError):
        encode_message(1, b"c", RESPONSE, 1, 0, 0, [(NAME, Typed(COUNTER32, b"1"))])
    with pytest.raises(TypeError):
        encode_message(1, b"c", RESPONSE, 1, 0, 0, [(NAME, True)])
    assert decode_message(
        encode_message(
            1,
            b"c",
            RESPONSE,
            1,
            0,
            0,
            [(NAME, Typed(IP_ADDRESS, "1.2.3.4")), (NAME, Typed(INTEGER, -5))],
        )
    ).varbinds == [(NAME, IpValue("1.2.3.4")), (NAME, -5)]


# ---------------------------------------------------------------------------------------------
# pysnmp is loaded on first need only (issue 7: ~30 MB of RSS an all-v1/v2c agent never needs)

LAZY_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from agent.config import load_agent_config
from agent.probe import probe
from agent.snmp import Credentials, SnmpClient

def loaded():
    return sorted({m.split(".")[0] for m in sys.modules} & {"pysnmp", "pyasn1", "pysmi"})

cfg = load_agent_config(Path(sys.argv[1]))
results = asyncio.run(probe(cfg, list(cfg.devices)))
out = {"up": {r.sample_set.device: r.sample_set.up for r in results},
       "values": {r.sample_set.device: len(r.rows()) for r in results},
       "after_probe": loaded()}

async def through_pysnmp():
    device = cfg.devices[0]
    async with SnmpClient() as client:
        session = await client.session(device.host, device.port, Credentials("2c", sys.argv[2]),
                                       timeout=5, retries=0, fast=False)
        return await session.get([(1, 3, 6, 1, 2, 1, 1, 3, 0)])

out["pysnmp_answer"] = [repr(v) for v in asyncio.run(through_pysnmp()).values()]
out["after_pysnmp"] = loaded()
print(json.dumps(out))
"""


def test_v1_v2c_polls_never_load_pysnmp(tmp_path: Path, snmpsim: SnmpSim):
    """A probe of v1 and v2c devices in a fresh interpreter leaves pysnmp (and pyasn1)
    unimported; the first session that needs pysnmp then loads it and works."""
    devices = [("radio", "ceraos", "2c"), ("gateway", "routeros_rb750gr3", "1")]
    assert {c for _, c, _ in devices} <= set(snmpsim.communities)
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "lab",
                "defaults": {"timeout": 5.0, "retries": 1, "ping": False},
                "devices": [
                    {
                        "name": name,
                        "host": snmpsim.host,
                        "port": snmpsim.port,
                        "snmp": {"version": version, "community": community},
                    }
                    for name, community, version in devices
                ],
            }
        )
    )
    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-c", LAZY_SCRIPT, str(config), devices[0][1]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["up"] == {"radio": True, "gateway": True}
    assert all(n > 10 for n in out["values"].values()), out["values"]
    assert out["after_probe"] == []
    assert len(out["pysnmp_answer"]) == 1 and int(out["pysnmp_answer"][0]) > 0
    assert {"pysnmp", "pyasn1"} <= set(out["after_pysnmp"])


def test_engines_are_made_on_the_first_fallback_only(snmpsim: SnmpSim):
    """A fresh SnmpClient makes no pysnmp engine for fast sessions that never fall back; the
    first fallback makes it (and the session's pysnmp session), and counts its request."""

    async def run() -> None:
        async with SnmpClient() as client:
            session = await client.session(
                snmpsim.host, snmpsim.port, V2C_RADIO, timeout=5, retries=0
            )
            assert isinstance(session, FastSession)
            assert isinstance(await session.get([SYS_UPTIME]), dict)
            assert client._engines is None and session._slow is None
            assert session.requests == 1 and session.fallbacks == {}
            # An answer the fast decoder refuses: routed to pysnmp, made now.
            real = session._request

            async def refuse(*args: Any, **kwargs: Any) -> Any:
                await real(*args, **kwargs)
                session.fallbacks["decode"] += 1
                return None

            session._request = refuse  # type: ignore[method-assign]
            value = (await session.get([SYS_UPTIME]))[SYS_UPTIME]
            assert isinstance(value, int) and value > 0
            assert client._engines is not None and len(client._engines) == 1
            assert session._slow is not None and session._slow.requests == 1
            assert session.requests == 3 and session.fallbacks == {"decode": 1}
            assert session.forget_engine() is False
        assert client._engines is None

    asyncio.run(run())


V2C_RADIO = Credentials("2c", "ceraos")
