"""The fast path for SNMP v1/v2c: an asyncio UDP client speaking through agent.snmp.ber.

pysnmp stays the engine (SNMPv3, engine discovery, and the reference for everything here), but
decoding a response through pyasn1 costs about ten times what the rest of a poll does. A
response the codec cannot read (malformed, truncated, a type or value range it does not handle)
is sent again through pysnmp (counted in FastSession.fallbacks), which either reads it or fails
it the way the pysnmp path always did. Nothing is dropped. pysnmp is loaded on the first such
fallback: this module does not need it.

Requests behave like pysnmp's: a request-id from a sequence that starts at random, a new one for
each re-send, `timeout` seconds per attempt and `retries` re-sends, responses matched by
request-id, SNMP version and community (not by source address: a device may answer from
another of its addresses), anything else ignored. One UDP socket serves every fast session of
an SnmpClient (one file descriptor however many devices, as pysnmp's one socket per engine).
"""

from __future__ import annotations

import asyncio
import random
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


class _Pending(NamedTuple):
    future: asyncio.Future[Any]
    version: int
    community: bytes
    host: str


_TIMED_OUT = object()
_UNREADABLE = object()
"""The future's result when a datagram from the request's host could not even be routed."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


class RequestIds:
    """pysnmp's request-id sequence: from a random start, up by one, 24 bits, wrapping."""

    MAX = 0xFFFFFF

    def __init__(self) -> None:
        self._next = random.randrange(self.MAX - 256)

    def __call__(self, busy: dict[int, Any]) -> int:
        while True:
            value = self._next
            self._next = 0 if value >= self.MAX else value + 1
            if value not in busy:
                return value


class FastTransport(asyncio.DatagramProtocol):
    """One UDP socket for every fast session of an SnmpClient; requests matched by request-id.

    Use `await FastTransport.open()` and close() it when done.
    """

    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = RequestIds()
        self.stray = 0
        """Datagrams that answered nothing outstanding: late (a timed-out attempt), duplicate,
        with another community or version, or not a response."""
        self.unreadable = 0
        """Datagrams whose request-id could not be read (their host's requests fell back)."""

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
        return self._transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

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

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            header = decode_header(data)
        except DecodeError:
            self.unreadable += 1
            for pending in self._pending.values():
                if pending.host == addr[0] and not pending.future.done():
                    pending.future.set_result(_UNREADABLE)
            return
        pending = self._pending.get(header.request_id)
        if (
            pending is None
            or pending.future.done()
            or header.version != pending.version
            or header.community != pending.community
            or header.pdu_tag not in (RESPONSE, REPORT)
        ):
            self.stray += 1
            return
        pending.future.set_result((data, header))

    async def exchange(
        self,
        address: tuple[str, int],
        version: int,
        community: bytes,
        encode: Callable[[int], bytes],
        timeout: float,
        retries: int,
    ) -> tuple[bytes, Header] | None:
        """Send encode(request_id) until an answer comes; (datagram, header) of the answer, or
        None when a datagram from that host could not be read. Raises SnmpTimeout."""
        loop = asyncio.get_running_loop()
        for _ in range(retries + 1):
            if self._transport is None:
                raise SnmpError("snmp_error", "SNMP transport closed")
            request_id = self._ids(self._pending)
            future: asyncio.Future[Any] = loop.create_future()
            self._pending[request_id] = _Pending(future, version, community, address[0])
            timer = loop.call_later(timeout, _expire, future)
            try:
                self._transport.sendto(encode(request_id), address)
                answer = await future
            finally:
                timer.cancel()
                del self._pending[request_id]
            if answer is _UNREADABLE:
                return None
            if answer is not _TIMED_OUT:
                return answer  # type: ignore[no-any-return]
        raise SnmpTimeout()


class FastSession(RequestSession):
    """A session for v1/v2c whose requests go through FastTransport and agent.snmp.ber; a
    request whose response it cannot read is sent again through the `fallback` session (pysnmp)
    and counted in `fallbacks` by reason. The fallback session (and with the first of them
    pysnmp itself) is made on the first fallback: most devices never need one."""

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
        self.fallbacks: Counter[str] = Counter()

    @property
    def version(self) -> str:
        return self._creds.version

    @property
    def requests(self) -> int:
        """Requests sent, through either path (a fallback counts twice: it is sent twice)."""
        return self._requests + (self._slow.requests if self._slow is not None else 0)

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
        )
        if answer is None:
            self.fallbacks["unreadable"] += 1
            return None
        data, header = answer
        if header.pdu_tag != RESPONSE:
            self.fallbacks["report"] += 1
            return None
        try:
            return decode_body(data, header)
        except DecodeError:
            self.fallbacks["decode"] += 1
            return None
