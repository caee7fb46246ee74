"""A hostile device through the real agent: every poll ends, nothing raises, and what is sent
passes the collector's own checks.

A UDP responder on 127.0.0.1 answers the real DevicePoller (real SnmpClient: fast path, with
pysnmp behind it) with seeded random answers: right and wrong OIDs, values of every type and
absurd size, error statuses, truncated and garbled datagrams, wrong request ids, silence. The
profiles are the shipped ones a site uses (system, if-mib, entity-sensor and a microwave
radio's), so every conversion and transform meets garbage. A bounded run (a few hundred polls,
seconds): the field will run it for months.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_agent_config
from agent.limits import encode_within
from agent.poller import DevicePoller
from agent.snmp import SnmpClient
from agent.snmp.ber import (
    COUNTER32,
    COUNTER64,
    GAUGE32,
    OPAQUE,
    TIMETICKS,
    UINTEGER32,
    Typed,
    decode_message,
    encode_message,
)
from agent.snmp.values import END_OF_MIB, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, IpValue, OidValue
from collector.validate import Rejected, check_sample_set
from pantau.wire.model import MAX_MESSAGE_BYTES

POLLS = 240
SEED = 20261206


def random_value(rng: random.Random) -> Any:
    pick = rng.randrange(16)
    if pick == 0:
        return rng.choice([0, -1, 2**31 - 1, -(2**31), rng.randrange(-(2**31), 2**31)])
    if pick == 1:
        return Typed(rng.choice([COUNTER32, GAUGE32, TIMETICKS, UINTEGER32]), rng.randrange(2**32))
    if pick == 2:
        return Typed(COUNTER64, rng.choice([0, 2**64 - 1, rng.randrange(2**64)]))
    if pick == 3:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 8, 64, 300])))
    if pick == 4:  # numbers as text, as some firmware sends them
        return rng.choice(
            [b"1e400", b"inf", b"nan", b"-0", b"9" * 500, b"12.5 dBm", b"0x1F", b"\xff\xfe", b""]
        )
    if pick == 5:
        return b"x" * rng.choice([1000, 5000, 20000])
    if pick == 6:
        arcs = (str(rng.randrange(2**32)) for _ in range(rng.randrange(0, 40)))
        return OidValue(".".join(("1", "3", "6", *arcs)))
    if pick == 7:
        return IpValue(".".join(str(rng.randrange(256)) for _ in range(4)))
    if pick == 8:
        return rng.choice([NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB, None])
    if pick == 9:
        return Typed(OPAQUE, bytes(rng.randrange(256) for _ in range(rng.randrange(12))))
    if pick == 10:  # ENTITY-SENSOR's type, scale and precision columns out of range
        return rng.choice([0, 1, 6, 14, 17, 200, -5, 2**31 - 1])
    return rng.randrange(-1000, 100000)


def random_oid(rng: random.Random, asked: tuple[int, ...]) -> tuple[int, ...]:
    pick = rng.randrange(6)
    if pick == 0:
        return asked
    if pick == 1:
        return (*asked, rng.randrange(1, 5))
    if pick == 2:
        return (*asked[:-1], asked[-1] + rng.randrange(1, 3))
    if pick == 3:
        return (1, 3, 6, 1, 2, 1, 1, rng.randrange(1, 9), 0)
    if pick == 4:
        return asked[: rng.randrange(2, len(asked) + 1)]
    return (*asked, *(rng.randrange(2**31) for _ in range(rng.randrange(1, 6))))


class Hostile(asyncio.DatagramProtocol):
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        rng = self.rng
        request = decode_message(data)
        # Most answers are well framed and full of odd values; a few break the protocol, which
        # fails the whole poll (every poll asks ~20 requests), so they stay rare.
        fate = rng.randrange(120)
        if fate == 0:
            return  # silence
        varbinds = []
        for oid, _ in request.varbinds:
            if rng.random() < 0.1:
                continue  # a varbind left out
            repetitions = 1 if request.pdu_tag != 0xA5 else rng.randrange(1, 6)
            for _ in range(repetitions):
                varbinds.append((random_oid(rng, oid), random_value(rng)))
        if rng.random() < 0.05:
            varbinds += [(random_oid(rng, (1, 3, 6)), random_value(rng))] * rng.randrange(1, 30)
        status = rng.choice([0] * 100 + [1, 2, 5, 18, 99])
        out = encode_message(
            request.version,
            request.community,
            0xA2,
            request.request_id if fate != 1 else rng.randrange(2**31),
            status,
            rng.randrange(len(varbinds) + 2) if status else 0,
            varbinds,
        )
        if fate == 2:
            out = out[: rng.randrange(1, len(out))]  # truncated
        elif fate == 3:
            raw = bytearray(out)
            for _ in range(rng.randrange(1, 6)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            out = bytes(raw)  # garbled
        assert self.transport is not None
        self.transport.sendto(out, addr)
        self.answered += 1


@pytest.mark.parametrize("seed", [SEED, SEED + 1])
def test_a_hostile_device_never_breaks_a_poll(tmp_path: Path, seed: int) -> None:
    async def run() -> list[Any]:
        loop = asyncio.get_running_loop()
        hostile = Hostile(seed)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: hostile, local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        (tmp_path / "agent.yaml").write_text(
            "site: s1\ndevices:\n  - name: evil\n    host: 127.0.0.1\n"
            f"    port: {port}\n    ping: false\n    timeout: 0.2\n    retries: 0\n"
            "    deadline: 5\n    max_repetitions: 5\n"
            "    profiles: [system, if-mib, entity-sensor, ceragon-ceraos, ups-mib]\n"
            "    snmp: {version: 2c, community: public}\n"
        )
        device = load_agent_config(tmp_path / "agent.yaml").devices[0]
        results = []
        try:
            async with SnmpClient() as client:
                seqs = itertools.count(1)
                poller = DevicePoller("s1", device, client, lambda _device: next(seqs))
                for _ in range(POLLS // 2):
                    ss = await poller.poll()
                    results.append(encode_within(ss, poller.message_capped))
        finally:
            transport.close()
        assert hostile.answered > POLLS  # the device did answer, most of the time
        return results

    results = asyncio.run(run())
    reasons = {ss.reason for ss, _ in results}
    assert "internal_error" not in reasons, "a conversion raised: see the log"
    assert reasons <= {"", "timeout", "unreadable", "snmp_error", "deadline", "wrong_type"}
    assert "" in reasons  # some polls got through with values
    for ss, payload in results:
        assert len(payload) <= MAX_MESSAGE_BYTES
        try:
            check_sample_set("s1", "evil", payload, MAX_MESSAGE_BYTES)
        except Rejected as exc:  # pragma: no cover - the assertion explains
            pytest.fail(f"the collector refuses what the agent sent: {exc} (poll {ss.seq})")
