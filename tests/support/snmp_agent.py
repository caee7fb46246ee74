"""A scripted SNMP agent on a UDP socket, and the SnmpClient to talk to it, for the client tests
(tests/test_snmp_fast.py, tests/test_snmp_hostile.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from agent.snmp import SnmpClient
from agent.snmp.ber import RESPONSE, Message, decode_message, encode_message

Reply = Callable[[Message, int], list[tuple[float, bytes]]]


class ScriptedAgent(asyncio.DatagramProtocol):
    """A UDP "agent": reply(request, n) gives (delay, datagram) pairs to send back for the n-th
    request (1-based); every request and the address it came from are kept. `via`, if set, is
    the transport the answers leave from (another port or address)."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[Message] = []
        self.clients: list[Any] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.via: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        request = decode_message(data)
        self.requests.append(request)
        self.clients.append(addr)
        out_transport = self.via or self.transport
        assert out_transport is not None
        loop = asyncio.get_running_loop()
        for delay, out in self.reply(request, len(self.requests)):
            loop.call_later(delay, out_transport.sendto, out, addr)


@asynccontextmanager
async def scripted_agent(
    reply: Reply, host: str = "127.0.0.1", answer_from: str | None = None
) -> AsyncIterator[tuple[ScriptedAgent, int]]:
    """A ScriptedAgent listening on host:<free port>; with `answer_from`, it answers from
    another socket bound to that address (and another port)."""
    loop = asyncio.get_running_loop()
    agent = ScriptedAgent(reply)
    transport, _ = await loop.create_datagram_endpoint(lambda: agent, local_addr=(host, 0))
    via = None
    if answer_from is not None:
        via, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(answer_from, 0)
        )
        agent.via = via
    try:
        yield agent, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()
        if via is not None:
            via.close()


def answer(
    request: Message,
    varbinds: list[tuple[Any, Any]] | None = None,
    *,
    request_id: int | None = None,
    community: bytes | None = None,
    version: int | None = None,
    pdu_tag: int = RESPONSE,
    status: int = 0,
    index: int = 0,
) -> bytes:
    """The response to `request` (by default: each OID with the value 7)."""
    if varbinds is None:
        varbinds = [(o, 7) for o, _ in request.varbinds]
    return encode_message(
        request.version if version is None else version,
        request.community if community is None else community,
        pdu_tag,
        request.request_id if request_id is None else request_id,
        status,
        index,
        varbinds,
    )


@contextmanager
def client_loop() -> Iterator[tuple[asyncio.Runner, SnmpClient]]:
    """One event loop and a started SnmpClient (an SnmpClient costs ~1 s to start): for a
    module-scoped `runner` fixture."""
    with asyncio.Runner() as loop:
        client = SnmpClient()
        loop.run(client.__aenter__())
        try:
            yield loop, client
        finally:
            loop.run(client.__aexit__(None, None, None))
