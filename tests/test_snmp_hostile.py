"""The SNMP client against devices as they really are, and against a hostile site LAN.

* Answers are believed only from the address and port asked, with an unpredictable request-id,
  and for the OIDs asked: another device (or anyone on the LAN) cannot inject values into a
  device's poll; what is not believed is counted per device.
* Encodings net-snmp reads (unpadded counters, INTEGERs beyond 32 bits, UInteger32, padded OID
  arcs) are read and counted, not handed to pysnmp to be dropped; a datagram neither path can
  read fails at once with the reason `unreadable`, not `timeout` after every retry.
* The decoder raises DecodeError, and nothing else, on any input (a seeded fuzz).
* Datagrams pysnmp chokes on are logged as one counted line, not one traceback each.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pyasn1.codec.ber import decoder as ber_decoder
from pysnmp.proto.api import v2c as pv2c

from agent.snmp import Credentials, OidValue, SnmpClient, SnmpError, SnmpTimeout
from agent.snmp.ber import (
    ANOMALIES,
    COUNTER32,
    COUNTER64,
    GAUGE32,
    GETBULK,
    GETNEXT,
    RESPONSE,
    TIMETICKS,
    DecodeError,
    Message,
    Typed,
    decode_message,
    decode_value,
    encode_integer,
    encode_message,
    encode_oid,
    encode_request,
    encode_tlv,
)
from agent.snmp.client import PysnmpErrors
from agent.snmp.fast import FastSession, RequestIds
from agent.snmp.pysnmp_session import SnmpSession
from tests.support.snmp_agent import Reply, answer, client_loop, scripted_agent

V2C = Credentials("2c", "public")
V1 = Credentials("1", "public")
SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_IN = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)
ERROR_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # what the collector accepts in `errors`


def raw_answer(request: Message, varbind_tlvs: list[bytes]) -> bytes:
    """The response to `request` whose varbinds are the raw encodings given."""
    vbl = b"".join(encode_tlv(0x30, v) for v in varbind_tlvs)
    pdu = encode_integer(request.request_id) + b"\x02\x01\x00\x02\x01\x00" + encode_tlv(0x30, vbl)
    return encode_tlv(
        0x30,
        encode_integer(request.version)
        + encode_tlv(0x04, request.community)
        + encode_tlv(RESPONSE, pdu),
    )


@pytest.fixture(scope="module")
def runner() -> Iterator[tuple[asyncio.Runner, SnmpClient]]:
    with client_loop() as r:
        yield r


async def fast_session(
    client: SnmpClient,
    port: int,
    creds: Credentials = V2C,
    *,
    host: str = "127.0.0.1",
    timeout: float = 0.3,
    retries: int = 0,
) -> FastSession:
    session = await client.session(host, port, creds, timeout=timeout, retries=retries)
    assert isinstance(session, FastSession)
    return session


# ---------------------------------------------------------------------------------------------
# 1. Answers from the wrong address are not believed


@pytest.mark.parametrize("answer_from", ["127.0.0.1", "127.0.0.2"], ids=["port", "address"])
def test_an_answer_from_another_port_or_address_is_not_believed(
    answer_from: str, runner: tuple[asyncio.Runner, SnmpClient]
):
    """The right request-id, version and community, but from another socket than the one
    asked: net-snmp ignores it, and so does the fast path (the request times out), counting it
    against the session it claimed to answer."""
    loop, client = runner

    async def run() -> None:
        reply: Reply = lambda r, n: [(0, answer(r, [(SYS_UPTIME, 666)]))]  # noqa: E731
        async with scripted_agent(reply, answer_from=answer_from) as (agent, port):
            session = await fast_session(client, port, timeout=0.15, retries=1)
            started = time.monotonic()
            with pytest.raises(SnmpTimeout):
                await session.get([SYS_UPTIME])
            assert time.monotonic() - started >= 0.3
            assert len(agent.requests) == 2
            assert session.stray["wrong_source"] == 2
            assert session.counters["stray_wrong_source"] == 2
            assert session.fallbacks == {}

    loop.run(run())


def test_a_device_cannot_inject_values_into_another_devices_poll(
    runner: tuple[asyncio.Runner, SnmpClient],
):
    """Device B, asked for its sysName, answers and then sprays forged answers for the next
    request-ids (the old ids were one sequence shared by every device) with a sysName of its
    choosing; device A, asked right after, must still read its own sysName."""
    loop, client = runner
    forged_ids: list[int] = []

    def liar(r: Message, n: int) -> list[tuple[float, bytes]]:
        out = [(0.0, answer(r, [(SYS_NAME, b"B")]))]
        for k in range(1, 9):
            rid = r.request_id + k
            forged_ids.append(rid)
            out.append((0.02, answer(r, [(SYS_NAME, b"pwned")], request_id=rid)))
        return out

    def honest(r: Message, n: int) -> list[tuple[float, bytes]]:
        return [(0.1, answer(r, [(SYS_NAME, b"A")]))]

    async def run() -> None:
        async with scripted_agent(liar) as (_, port_b), scripted_agent(honest) as (agent_a, port_a):
            a = await fast_session(client, port_a, timeout=1)
            b = await fast_session(client, port_b, timeout=1)
            assert await b.get([SYS_NAME]) == {SYS_NAME: b"B"}
            assert await a.get([SYS_NAME]) == {SYS_NAME: b"A"}
            assert agent_a.requests[0].request_id not in forged_ids
            await asyncio.sleep(0.05)
            # the forged datagrams are stray, counted against the device that sent them
            assert b.stray["late"] == 8
            assert a.stray == Counter()

    loop.run(run())


def test_request_ids_are_unpredictable_31_bit():
    ids = RequestIds()
    busy: dict[int, Any] = {}
    drawn = [ids(busy) for _ in range(2000)]
    assert all(0 <= i <= 0x7FFFFFFF for i in drawn)
    assert len(set(drawn)) == len(drawn)
    steps = Counter(b - a for a, b in zip(drawn, drawn[1:], strict=False))
    assert steps.most_common(1)[0][1] < 5  # no sequence
    assert max(drawn) > 0xFFFFFF * 16  # the full 31 bits are used
    # never one that is outstanding
    busy = dict.fromkeys(range(1000))
    rng_ids = RequestIds()
    assert all(rng_ids(busy) not in busy for _ in range(200))


def test_a_get_answered_with_other_oids_is_not_believed(
    runner: tuple[asyncio.Runner, SnmpClient],
):
    """A GET is answered for what it asked, in the order asked: any other varbind is left out
    and counted (both kinds of session: the check is RequestSession's)."""
    loop, client = runner

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        asked = [o for o, _ in r.varbinds]
        if asked == [SYS_UPTIME]:  # another OID than asked
            return [(0, answer(r, [(SYS_DESCR, b"injected")]))]
        if asked == [SYS_UPTIME, SYS_NAME]:  # the right OIDs, in another order
            return [(0, answer(r, [(SYS_NAME, b"n"), (SYS_UPTIME, 5)]))]
        if asked == [SYS_NAME]:  # the OID asked, and one more
            return [(0, answer(r, [(SYS_NAME, b"n"), (SYS_DESCR, b"more")]))]
        return [(0, answer(r))]

    async def run() -> None:
        async with scripted_agent(reply) as (_, port):
            fast = await fast_session(client, port)
            slow = await client.session("127.0.0.1", port, V2C, timeout=0.3, retries=0, fast=False)
            assert isinstance(slow, SnmpSession)
            for session in (fast, slow):
                assert await session.get([SYS_UPTIME]) == {}
                assert await session.get([SYS_UPTIME, SYS_NAME]) == {}
                assert await session.get([SYS_NAME]) == {SYS_NAME: b"n"}
                assert await session.get([SYS_DESCR]) == {SYS_DESCR: 7}
                assert session.stray["wrong_oid"] == 4
            assert fast.counters["stray_wrong_oid"] == 4

    loop.run(run())


def test_walk_steps_that_do_not_increase_are_counted(runner: tuple[asyncio.Runner, SnmpClient]):
    """A walk step must go past the OID asked (and past the row before it): one that does not
    is counted, and passed on (the poller follows agents like aviat-wtm and stops loops)."""
    loop, client = runner

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        col = r.varbinds[0][0]
        rows = [IF_IN + (1,), IF_IN + (3,), IF_IN + (2,)]  # .3 before .2
        if r.pdu_tag == GETNEXT:
            return [(0, answer(r, [(col, Typed(COUNTER32, 1))]))]  # the OID asked, again
        return [(0, answer(r, [(o, Typed(COUNTER32, 1)) for o in rows]))]

    async def run() -> None:
        async with scripted_agent(reply) as (_, port):
            session = await fast_session(client, port)
            rows = await session.next_rows([IF_IN], 10, True)
            assert [row[0][0] for row in rows] == [IF_IN + (1,), IF_IN + (3,), IF_IN + (2,)]
            assert session.anomalies == {"walk_not_increasing": 1}
            await session.next_rows([IF_IN + (5,)], 10, False)
            assert session.anomalies == {"walk_not_increasing": 2}

    loop.run(run())


# ---------------------------------------------------------------------------------------------
# 2. Devices as they really are

NAME = (1, 3, 6, 1, 4, 1, 9, 1)

# (raw value TLV, value net-snmp reads, anomaly counted)
NET_SNMP_READS: list[tuple[str, bytes, Any, str]] = [
    ("counter32 unpadded", b"\x41\x04\xb2\xd0\x5e\x00", 3_000_000_000, "unsigned_unpadded"),
    ("counter32 -1", b"\x41\x04\xff\xff\xff\xff", 2**32 - 1, "unsigned_unpadded"),
    ("gauge32 unpadded", b"\x42\x04\x80\x00\x00\x00", 2**31, "unsigned_unpadded"),
    ("timeticks unpadded", b"\x43\x04\xf0\x00\x00\x01", 0xF0000001, "unsigned_unpadded"),
    ("counter64 unpadded", b"\x46\x08" + b"\xff" * 8, 2**64 - 1, "unsigned_unpadded"),
    ("integer 3e9", b"\x02\x05\x00\xb2\xd0\x5e\x00", 3_000_000_000, "integer_beyond_int32"),
    ("integer 2^32+5", b"\x02\x05\x01\x00\x00\x00\x05", 5, "integer_beyond_int32"),
    ("integer below -2^31", b"\x02\x05\xff\x7f\xff\xff\xff", -(2**31 - 1), "integer_beyond_int32"),
    ("uinteger32", b"\x47\x04\x00\x01\x00\x00", 65536, "uinteger32"),
    ("uinteger32 unpadded", b"\x47\x04\xff\xff\xff\xff", 2**32 - 1, "uinteger32"),
    ("oid padded arc", b"\x06\x04\x2b\x80\x80\x06", OidValue("1.3.6"), "oid_arc_padding"),
]


@pytest.mark.parametrize(
    ("tlv", "value", "kind"),
    [c[1:] for c in NET_SNMP_READS],
    ids=[c[0] for c in NET_SNMP_READS],
)
def test_what_net_snmp_reads_is_read_and_counted(tlv: bytes, value: Any, kind: str):
    anomalies: Counter[str] = Counter()
    vb = encode_tlv(0x30, encode_oid(NAME) + tlv)
    pdu = encode_integer(9) + b"\x02\x01\x00\x02\x01\x00" + encode_tlv(0x30, vb)
    data = encode_tlv(0x30, encode_integer(1) + encode_tlv(0x04, b"c") + encode_tlv(RESPONSE, pdu))
    message = decode_message(data, anomalies)
    assert message.varbinds == [(NAME, value)]
    assert type(message.varbinds[0][1]) is type(value)
    assert anomalies[kind] == 1
    assert set(anomalies) <= set(ANOMALIES)
    assert ERROR_KEY.match(f"anomaly_{kind}")
    # pysnmp refuses every one of them: it would have dropped the whole response
    with pytest.raises(Exception):  # noqa: B017 - pyasn1's errors
        ber_decoder.decode(data, asn1Spec=pv2c.Message())


def test_canonical_encodings_count_no_anomaly():
    anomalies: Counter[str] = Counter()
    data = encode_message(
        1,
        b"c",
        RESPONSE,
        1,
        0,
        0,
        [
            (NAME, Typed(COUNTER32, 2**32 - 1)),
            (NAME, Typed(GAUGE32, 2**31)),
            (NAME, Typed(TIMETICKS, 0)),
            (NAME, Typed(COUNTER64, 2**64 - 1)),
            (NAME, -(2**31)),
            (NAME, OidValue("1.3.6.1.4.1.4294967295")),
            (NAME + (300, 2**40), 5),
        ],
    )
    decode_message(data, anomalies)
    assert anomalies == Counter()


def test_a_device_with_non_canonical_encodings_is_polled_through_the_fast_path(
    runner: tuple[asyncio.Runner, SnmpClient],
):
    """Before: the fast path refused these, pysnmp dropped them, and the device was down with
    reason "timeout" after timeout x (retries + 1). Now read at once, and counted."""
    loop, client = runner
    tlvs = [c[1] for c in NET_SNMP_READS if not c[0].startswith("counter64")]
    oids = [NAME + (i,) for i in range(len(tlvs))]

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        asked = [o for o, _ in r.varbinds]
        return [(0, raw_answer(r, [encode_oid(o) + t for o, t in zip(asked, tlvs, strict=True)]))]

    async def run() -> None:
        async with scripted_agent(reply) as (agent, port):
            for creds in (V2C, V1):
                session = await fast_session(client, port, creds, timeout=0.5, retries=2)
                started = time.monotonic()
                got = await session.get(oids)
                assert time.monotonic() - started < 0.3
                expected = [c[2] for c in NET_SNMP_READS if not c[0].startswith("counter64")]
                assert list(got.values()) == expected
                assert session.fallbacks == {}
                assert session.anomalies == {
                    "unsigned_unpadded": 5,  # the unpadded UInteger32 too
                    "integer_beyond_int32": 3,
                    "uinteger32": 2,
                    "oid_arc_padding": 1,
                }
                counters = session.counters
                assert counters["anomaly_unsigned_unpadded"] == 5
                assert all(ERROR_KEY.match(k) for k in counters)

    loop.run(run())


def test_an_answer_no_path_can_read_fails_at_once_as_unreadable(
    runner: tuple[asyncio.Runner, SnmpClient],
):
    """A Counter32 of 2**32 (out of range) and a message not even a request-id can be read
    from: pysnmp would drop either silently (the device looking silent); the fast session
    fails at once with the reason `unreadable`, without waiting out its retries."""
    loop, client = runner
    bad_counter = b"\x41\x05\x01\x00\x00\x00\x00"

    def reply(r: Message, n: int) -> list[tuple[float, bytes]]:
        if r.varbinds[0][0] == SYS_UPTIME:
            return [(0, raw_answer(r, [encode_oid(SYS_UPTIME) + bad_counter]))]
        return [(0, b"\x30\x03\x02\x01")]  # truncated: no request-id

    async def run() -> None:
        async with scripted_agent(reply) as (agent, port):
            session = await fast_session(client, port, timeout=1.0, retries=2)
            for oid, reason in ((SYS_UPTIME, "decode"), (SYS_DESCR, "unreadable")):
                started = time.monotonic()
                with pytest.raises(SnmpError) as info:
                    await session.get([oid])
                assert info.value.reason == "unreadable"
                assert time.monotonic() - started < 0.9  # not one timeout, let alone three
                assert session.fallbacks[reason] == 1
            assert len(agent.requests) == 2  # nothing sent again through pysnmp
            assert session.counters["fallback_decode"] == 1

    loop.run(run())


# ---------------------------------------------------------------------------------------------
# 3. Decoding is total


def test_an_oid_arc_of_thousands_of_digits_is_a_decode_error():
    arc = b"\xff" * 2100 + b"\x7f"  # an arc of ~4,400 decimal digits
    for tlv in (b"\x06\x82" + (len(arc) + 1).to_bytes(2, "big") + b"\x2b" + arc,):
        # as a value, then as a varbind name too
        for varbind in (encode_oid(NAME) + tlv, tlv + b"\x05\x00"):
            vb = encode_tlv(0x30, varbind)
            data = encode_tlv(
                0x30,
                b"\x02\x01\x01\x04\x01c"
                + encode_tlv(
                    RESPONSE, b"\x02\x01\x01\x02\x01\x00\x02\x01\x00" + encode_tlv(0x30, vb)
                ),
            )
            with pytest.raises(DecodeError, match="arc of more than"):
                decode_message(data)
    with pytest.raises(DecodeError):
        decode_value(0x06, b"\x2b" + arc, 0, len(arc) + 1)


def test_integers_of_thousands_of_digits_are_decode_errors():
    huge = b"\x7f" + b"\xff" * 2000
    for tag in (0x02, 0x41, 0x46, 0x47):
        with pytest.raises(DecodeError):
            decode_value(tag, huge, 0, len(huge))
    # as a request-id or error-status
    big = encode_tlv(0x02, huge)
    for data in (
        encode_tlv(0x30, b"\x02\x01\x01\x04\x01c" + encode_tlv(RESPONSE, big + b"\x02\x01\x00")),
        encode_tlv(
            0x30,
            b"\x02\x01\x01\x04\x01c"
            + encode_tlv(RESPONSE, b"\x02\x01\x01" + big + b"\x02\x01\x00\x30\x00"),
        ),
        encode_tlv(0x30, big + b"\x04\x01c" + encode_tlv(RESPONSE, b"\x02\x01\x01")),
    ):
        with pytest.raises(DecodeError):
            decode_message(data)


def _seeds() -> list[bytes]:
    request = encode_request(1, b"public", GETBULK, 0x12345678, [IF_IN, SYS_DESCR], 20)
    response = encode_message(
        1,
        b"public",
        RESPONSE,
        0x7FFFFFFF,
        0,
        0,
        [
            (SYS_DESCR, b"Linux gw " * 20),
            (IF_IN + (1,), Typed(COUNTER32, 3_000_000_000)),
            (IF_IN + (2,), Typed(COUNTER64, 2**63)),
            ((1, 3, 6, 1, 4, 1, 2**40, 300), OidValue("1.3.6.1.4.1.99999.1")),
            (SYS_UPTIME, Typed(TIMETICKS, 12345)),
            (SYS_NAME, -5),
        ],
    )
    v1 = encode_message(0, b"c", RESPONSE, 1, 2, 1, [(SYS_NAME, None), (SYS_DESCR, b"x" * 300)])
    odd = b"\x30\x82\x00\x20\x02\x01\x01\x04\x00\xa2\x19" + b"\x02\x01\x00" * 3 + b"\x30\x84"
    return [request, response, v1, odd]


def test_fuzz_decode_message_raises_only_decode_error():
    """Seeded: random datagrams, and valid ones mutated (octets changed, inserted, deleted,
    lengths blown up, cut short, spliced): decode_message gives a Message or a DecodeError."""
    rng = random.Random(20261206)
    seeds = _seeds()
    outcomes: Counter[str] = Counter()
    started = time.monotonic()

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(7)
            at = rng.randrange(len(out) + 1)
            if op == 0 and out:
                out[min(at, len(out) - 1)] = rng.randrange(256)
            elif op == 1:
                out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 2:
                del out[at : at + rng.randint(1, 8)]
            elif op == 3 and out:  # a length octet blown up
                out[min(at, len(out) - 1)] = rng.choice([0x80, 0x81, 0x84, 0x85, 0xFF, 0x7F])
            elif op == 4:
                out = out[:at]
            elif op == 5:  # a run of arc-continuation octets (huge arcs)
                out[at:at] = b"\xff" * rng.choice([10, 100, 2500])
            else:  # splice another seed in
                other = rng.choice(seeds)
                cut = rng.randrange(len(other) + 1)
                out[at:] = other[cut:]
        return bytes(out)

    def content() -> bytes:
        kind = rng.randrange(4)
        if kind == 0:  # a long run of one octet: huge numbers, huge OID arcs
            return (
                rng.choice([b"\x2b", b"\x7f", b"\x80", b""])
                + bytes((rng.choice([0xFF, 0x80, 0x00]),)) * rng.choice([3, 9, 40, 2200, 3000])
                + bytes((rng.randrange(128),))
            )
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 5, 8, 9, 20])))

    def structured() -> bytes:
        """Well-formed framing, random value tags and contents: reaches every value decoder."""
        tags = [0x02, 0x04, 0x05, 0x06, 0x40, 0x41, 0x42, 0x43, 0x44, 0x46, 0x47, 0x80, 0x81]
        vbs = b"".join(
            encode_tlv(
                0x30,
                encode_tlv(0x06, content() or b"\x2b")
                + encode_tlv(
                    rng.choice(tags) if rng.random() < 0.9 else rng.randrange(256), content()
                ),
            )
            for _ in range(rng.randint(0, 4))
        )
        ints = [
            encode_tlv(0x02, content() or b"\x00")
            if rng.random() < 0.2
            else encode_integer(rng.randrange(-5, 2**31))
            for _ in range(4)
        ]
        pdu = ints[1] + ints[2] + ints[3] + encode_tlv(0x30, vbs)
        version = ints[0] if rng.random() < 0.1 else encode_integer(rng.choice([0, 1]))
        return encode_tlv(
            0x30, version + encode_tlv(0x04, b"public") + encode_tlv(rng.choice([0xA2, 0xA5]), pdu)
        )

    for i in range(15000):
        if i % 3 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
            if rng.random() < 0.5:  # a plausible start
                data = b"\x30" + data
        elif i % 3 == 1:
            data = structured()
            if rng.random() < 0.3:
                data = mutate(data)
        else:
            data = mutate(rng.choice(seeds))
        try:
            decode_message(data, Counter())
            outcomes["decoded"] += 1
        except DecodeError:
            outcomes["refused"] += 1
    assert outcomes["decoded"] > 100 and outcomes["refused"] > 100, outcomes
    assert time.monotonic() - started < 20


# ---------------------------------------------------------------------------------------------
# 4. Datagrams pysnmp chokes on: one counted line, not a traceback each


def pysnmp_socket_port(client: SnmpClient) -> int:
    """The local port of the socket of the client's (first) pysnmp engine."""
    assert client._engines is not None
    dispatcher = client._engines[0][0].transport_dispatcher
    transports = dispatcher._AbstractTransportDispatcher__transports  # test-only peek
    transport = next(iter(transports.values()))
    return int(transport.transport.get_extra_info("socket").getsockname()[1])


def test_datagrams_pysnmp_chokes_on_are_one_counted_log_line(caplog: pytest.LogCaptureFixture):
    rng = random.Random(4)

    async def run() -> None:
        async with SnmpClient() as client:
            session = await client.session("127.0.0.1", 9, V2C, timeout=0.1, retries=0, fast=False)
            with pytest.raises(SnmpTimeout):  # makes the engine and opens its socket
                await session.get([SYS_UPTIME])
            port = pysnmp_socket_port(client)
            handler = asyncio.get_running_loop().get_exception_handler()
            assert isinstance(handler, PysnmpErrors)
            now = [1000.0]
            handler.clock = lambda: now[0]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                for _ in range(300):
                    size = rng.randrange(1, 60)
                    out.sendto(bytes(rng.randrange(256) for _ in range(size)), ("127.0.0.1", port))
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0.3)
                first = sum(client.pysnmp_errors.values())
                assert first >= 10  # pysnmp 7 chokes on about one in five
                lines = [r for r in caplog.records if r.name == "pantau.agent.snmp"]
                assert len(lines) == len(client.pysnmp_errors) == 1
                assert "count=1" in lines[0].getMessage()
                # a period later, the next one says how many were held back, and the total
                now[0] += PysnmpErrors.PERIOD + 1
                while sum(client.pysnmp_errors.values()) == first:
                    size = rng.randrange(1, 60)
                    out.sendto(bytes(rng.randrange(256) for _ in range(size)), ("127.0.0.1", port))
                    await asyncio.sleep(0.01)
            lines = [r for r in caplog.records if r.name == "pantau.agent.snmp"]
            assert len(lines) == 2
            assert getattr(lines[1], "held_back", 0) == first - 1
            assert f"count={first + 1}" in lines[1].getMessage()
            # anything else still reaches asyncio's handler
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: 1 / 0)
            await asyncio.sleep(0.01)
        assert asyncio.get_running_loop().get_exception_handler() is None  # removed

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    assert not [r for r in caplog.records if "TransportDispatcher" in r.getMessage()]
    assert not any("Traceback" in r.getMessage() for r in caplog.records)
    others = [r for r in caplog.records if r.name == "asyncio"]
    assert len(others) == 1 and others[0].exc_info and others[0].exc_info[0] is ZeroDivisionError
