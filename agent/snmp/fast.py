"""The fast path for SNMP v1/v2c: an asyncio UDP client speaking through agent.snmp.ber.

pysnmp stays the engine (SNMPv3, engine discovery, and the reference for everything here), but
decoding a response through pyasn1 costs about ten times what the rest of a poll does. The codec
reads what net-snmp reads (agent.snmp.ber: unpadded counters, INTEGERs beyond 32 bits,
UInteger32, padded OID arcs), counted per device in FastSession.anomalies. A response it still
cannot read is offered to pysnmp: if pysnmp's decoder reads that very datagram, the request is
sent again through pysnmp (counted in FastSession.fallbacks); if not, pysnmp would drop it
silently and the device would look silent, so the request fails at once with the reason
`unreadable`: a device answering garbage is told from one not answering. pysnmp is loaded on
the first such fallback: this module does not need it.

Requests: `timeout` seconds per attempt and `retries` re-sends, as pysnmp's; a new request-id for
each attempt, drawn from the system's CSPRNG (31 bits, never one outstanding), so that an answer
cannot be forged by guessing the next one. A response is taken only when it comes from the very
address and port the request went to, with the request's request-id, SNMP version and
community: net-snmp does the same (it matches a response to the session whose transport address
it came from). A device that answers from another of its addresses (a multi-homed router whose
reply leaves by another interface) therefore times out here as it does with net-snmp's tools;
its answers are counted in `stray["wrong_source"]` of the session they claimed to answer, so
the timeout can be told apart: poll it at the address it answers from. Anything else received
is stray, counted per device where the source address is a device's (FastSession.stray) and in
FastTransport.stray in all cases. One UDP socket serves every fast session of an SnmpClient (one
file descriptor however many devices, as pysnmp's one socket per engine).
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from agent.snmp.ber import (
    GETBULK,
    REPORT,
    RESPONSE,
    VERSION_1,
    VERSION_2C,
    DecodeError,
    Header,
    decode_body,
    decode_header,
    encode_request,
)
from agent.snmp.session import Answer, RequestSession, Session
from agent.snmp.values import Credentials, Oid, SnmpError, SnmpTimeout

Address = tuple[str, int]


class _Pending(NamedTuple):
    future: asyncio.Future[Any]
    version: int
    community: bytes
    address: Address
    stray: Counter[str]  # the requesting session's


class Unreadable(NamedTuple):
    """The answer to a request when a datagram from its device could not even be routed (its
    request-id could not be read)."""

    data: bytes


_TIMED_OUT = object()


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


class RequestIds:
    """Unpredictable request-ids: 31-bit (0 to 2^31-1, positive in any INTEGER reader), from
    the system's CSPRNG, never one that is outstanding."""

    MAX = 0x7FFFFFFF

    def __call__(self, busy: dict[int, Any]) -> int:
        while True:
            value = secrets.randbelow(self.MAX + 1)
            if value not in busy:
                return value


class FastTransport(asyncio.DatagramProtocol):
    """One UDP socket for every fast session of an SnmpClient; requests matched by request-id
    and source address.

    Use `await FastTransport.open()` and close() it when done.
    """

    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = RequestIds()
        self._devices: weakref.WeakValueDictionary[Address, Counter[str]] = (
            weakref.WeakValueDictionary()
        )
        self.stray = 0
        """Datagrams that answered nothing outstanding: late (a timed-out attempt), duplicate,
        from another address than the request went to, with another community or version, not
        a response, or unreadable with nothing outstanding from its source."""
        self.stray_reasons: Counter[str] = Counter()
        """`stray` by reason (the keys of FastSession.stray)."""
        self.unreadable = 0
        """Datagrams whose request-id could not be read."""

    @classmethod
    async def open(cls, host: str = "0.0.0.0") -> FastTransport:
        protocol = cls()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: protocol, local_addr=(host, 0)
        )
        protocol._transport = transport
        return protocol

    @property
    def closed(self) -> bool:
        return self._transport is None

    @property
    def local_address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RuntimeError("FastTransport is closed")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def register(self, address: Address, stray: Counter[str]) -> None:
        """Count stray datagrams from `address` in `stray` (a session's; held weakly, the
        latest session to an address wins)."""
        self._devices[address] = stray

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(SnmpError("snmp_error", "SNMP transport closed"))

    # asyncio.DatagramProtocol
    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable...) surface here on Linux. pysnmp ignores them and the
        # request times out; so does this.
        pass

    def _stray(self, reason: str, source: Address, device: Counter[str] | None = None) -> None:
        self.stray += 1
        self.stray_reasons[reason] += 1
        if device is None:
            device = self._devices.get(source)
        if device is not None:
            device[reason] += 1

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = (str(addr[0]), int(addr[1]))
        try:
            header = decode_header(data)
        except DecodeError:
            self.unreadable += 1
            answered = False
            for waiting in self._pending.values():
                if waiting.address == source and not waiting.future.done():
                    waiting.future.set_result(Unreadable(data))
                    answered = True
            if not answered:
                self._stray("unreadable", source)
            return
        pending = self._pending.get(header.request_id)
        if pending is None:
            self._stray("late", source)
        elif pending.address != source:
            # Not believed, whoever sent it; counted against the request it claimed to answer.
            self._stray("wrong_source", source, pending.stray)
        elif pending.future.done():
            self._stray("duplicate", source, pending.stray)
        elif header.version != pending.version or header.community != pending.community:
            self._stray("community", source, pending.stray)
        elif header.pdu_tag not in (RESPONSE, REPORT):
            self._stray("not_response", source, pending.stray)
        else:
            pending.future.set_result((data, header))

    async def exchange(
        self,
        address: Address,
        version: int,
        community: bytes,
        encode: Callable[[int], bytes],
        timeout: float,
        retries: int,
        stray: Counter[str] | None = None,
    ) -> tuple[bytes, Header] | Unreadable:
        """Send encode(request_id) to `address` until an answer comes from it: (datagram,
        header) of the answer, or Unreadable when a datagram from it could not be read. Raises
        SnmpTimeout. Stray datagrams claiming to answer are counted in `stray`."""
        loop = asyncio.get_running_loop()
        counts: Counter[str] = Counter() if stray is None else stray
        for _ in range(retries + 1):
            if self._transport is None:
                raise SnmpError("snmp_error", "SNMP transport closed")
            request_id = self._ids(self._pending)
            future: asyncio.Future[Any] = loop.create_future()
            self._pending[request_id] = _Pending(future, version, community, address, counts)
            timer = loop.call_later(timeout, _expire, future)
            try:
                self._transport.sendto(encode(request_id), address)
                answer = await future
            finally:
                timer.cancel()
                del self._pending[request_id]
            if answer is not _TIMED_OUT:
                received: tuple[bytes, Header] = answer
                return received
        raise SnmpTimeout()


class FastSession(RequestSession):
    """A session for v1/v2c whose requests go through FastTransport and agent.snmp.ber; a
    request whose response it cannot read is sent again through the `fallback` session (pysnmp)
    when pysnmp can read that response, and fails with the reason `unreadable` when it cannot;
    either way counted in `fallbacks` by reason. The fallback session (and with the first of
    them pysnmp itself) is made on the first fallback: most devices never need one.

    Per-device counts (see RequestSession): `fallbacks`, `stray`, `anomalies`, and all of them
    together, with the fallback session's, in `counters`."""

    def __init__(
        self,
        address: tuple[str, int],
        creds: Credentials,
        transport: FastTransport,
        fallback: Callable[[], Awaitable[Session]],
        *,
        timeout: float,
        retries: int,
    ) -> None:
        if creds.version not in ("1", "2c"):
            raise ValueError("the fast path is for SNMP v1 and v2c")
        super().__init__()
        self._creds = creds
        self._fast = transport
        self._address = address
        self._mp = VERSION_1 if creds.version == "1" else VERSION_2C
        self._community = creds.community.encode("latin-1")  # as pyasn1's OctetString does
        self._timeout = timeout
        self._retries = retries
        self._make_fallback = fallback
        self._slow: Session | None = None
        self._requests = 0
        transport.register(address, self.stray)

    @property
    def version(self) -> str:
        return self._creds.version

    @property
    def requests(self) -> int:
        """Requests sent, through either path (a fallback counts twice: it is sent twice)."""
        return self._requests + (self._slow.requests if self._slow is not None else 0)

    @property
    def counters(self) -> Counter[str]:
        """This session's counts and its fallback session's (see RequestSession.counters)."""
        out = super().counters
        if self._slow is not None:
            out.update(getattr(self._slow, "counters", {}))
        return out

    def forget_engine(self) -> bool:
        return False  # v1/v2c have no engine ID

    async def _fallback(self) -> Session:
        """The pysnmp session to this device, made on the first fallback."""
        if self._slow is None:
            slow = await self._make_fallback()
            if self._slow is None:  # unless a concurrent fallback made one meanwhile
                self._slow = slow
        return self._slow

    async def _request(self, pdu: int, oids: Sequence[Oid], max_repetitions: int) -> Answer | None:
        self._requests += 1
        version, community = self._mp, self._community
        repetitions = max_repetitions if pdu == GETBULK else 0
        answer = await self._fast.exchange(
            self._address,
            version,
            community,
            lambda rid: encode_request(version, community, pdu, rid, oids, repetitions),
            self._timeout,
            self._retries,
            self.stray,
        )
        if isinstance(answer, Unreadable):
            await self._unreadable("unreadable", answer.data, "no request-id")
            return None
        data, header = answer
        if header.pdu_tag != RESPONSE:
            self.fallbacks["report"] += 1
            return None
        anomalies: Counter[str] = Counter()
        try:
            body = decode_body(data, header, anomalies)
        except DecodeError as exc:
            await self._unreadable("decode", data, str(exc))
            return None
        self.anomalies.update(anomalies)
        return body

    async def _unreadable(self, reason: str, data: bytes, detail: str) -> None:
        """A response the codec cannot read: returns (the request goes to the fallback session)
        if pysnmp reads this datagram, else raises SnmpError("unreadable"): pysnmp would drop it
        without a word and the device would time out, as if it were silent."""
        self.fallbacks[reason] += 1
        reads = getattr(await self._fallback(), "reads", None)
        if reads is not None and not reads(data):
            raise SnmpError(
                "unreadable", f"response neither the fast path nor pysnmp can read: {detail}"
            )
