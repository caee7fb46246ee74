"""MQTT publishing: the only module of the agent that imports aiomqtt.

Reconnects forever with capped, jittered backoff (aiomqtt has none of its own); announces the
site with a retained birth message and leaves a retained Last Will that marks it offline. Keeps
a window of QoS 1 publishes in flight, because one-at-a-time over a 600 ms VSAT hop would cap a
site at under two messages per second; each item is acknowledged to the outbox only after its
PUBACK.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

import aiomqtt

from agent.backoff import Backoff
from agent.config import AgentConfig
from agent.outbox import MemoryOutbox, OutItem
from agent.wire import Status, encode_status, status_topic

log = logging.getLogger("pantau.agent.publisher")


def tls_context(cfg: AgentConfig) -> ssl.SSLContext | None:
    tls = cfg.broker.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


class Publisher:
    """Drains an outbox to the broker. `await run(stop)` until `stop` is set."""

    def __init__(self, cfg: AgentConfig, outbox: MemoryOutbox,
                 birth: Callable[[], Status], *, window: int = 32) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.birth = birth
        self.window = window
        self.connected = asyncio.Event()
        self.publish_latency_s = 0.0

    def _will(self) -> aiomqtt.Will:
        status = Status(v=1, site=self.cfg.site, online=False, ts_ms=0, reason="connection lost")
        return aiomqtt.Will(status_topic(self.cfg.site), encode_status(status), qos=1, retain=True)

    def _client(self) -> aiomqtt.Client:
        b = self.cfg.broker
        return aiomqtt.Client(
            hostname=b.host,
            port=b.port,
            identifier=self.cfg.client_id,
            username=b.username,
            password=b.password,
            keepalive=b.keepalive,
            will=self._will(),
            tls_context=tls_context(self.cfg),
            timeout=10,
            max_inflight_messages=self.window,
        )

    async def run(self, stop: asyncio.Event, drain_timeout: float = 5.0) -> None:
        backoff = Backoff(self.cfg.broker.reconnect_min, self.cfg.broker.reconnect_max)
        b = self.cfg.broker
        while not stop.is_set():
            try:
                async with self._client() as client:
                    log.info("connected to broker host=%s port=%s", b.host, b.port)
                    backoff.reset()
                    await client.publish(status_topic(self.cfg.site),
                                         encode_status(self.birth()), qos=1, retain=True)
                    self.connected.set()
                    await self._pump(client, stop)
                    await self._drain(client, drain_timeout)
                    offline = Status(v=1, site=self.cfg.site, online=False,
                                     ts_ms=int(time.time() * 1000), reason="agent stopped")
                    await client.publish(status_topic(self.cfg.site), encode_status(offline),
                                         qos=1, retain=True, timeout=drain_timeout)
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.outbox.release()
                delay = backoff.next()
                log.warning("broker unavailable host=%s port=%s error=%r retry_in=%.1fs",
                            b.host, b.port, str(exc), delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
        self.connected.clear()

    async def _publish(self, client: aiomqtt.Client, item: OutItem) -> None:
        t0 = time.monotonic()
        await client.publish(item.topic, item.payload, qos=1, retain=item.retain)
        self.publish_latency_s = time.monotonic() - t0
        self.outbox.ack(item)

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Publish until stop is set; raise MqttError when the connection fails."""
        inflight: set[asyncio.Task[None]] = set()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                if len(inflight) >= self.window:
                    done, inflight = await asyncio.wait(inflight,
                                                        return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # re-raise a failed publish
                    continue
                getter = asyncio.ensure_future(self.outbox.next())
                waits: set[asyncio.Future[object]] = {getter, stopping, *inflight}
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in done & inflight:
                    inflight.discard(task)
                    task.result()
                if getter in done:
                    inflight.add(asyncio.ensure_future(self._publish(client, getter.result())))
                else:
                    getter.cancel()
                    if stopping in done:
                        break
            if inflight:
                await asyncio.gather(*inflight)
        finally:
            stopping.cancel()
            for task in inflight:
                task.cancel()

    async def _drain(self, client: aiomqtt.Client, timeout: float) -> None:
        """On shutdown: publish what is queued within `timeout`; the rest stays in the outbox."""
        deadline = time.monotonic() + timeout
        while not self.outbox.empty():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self.outbox.next(), remaining)
                await asyncio.wait_for(self._publish(client, item), remaining)
            except TimeoutError:
                break
        self.outbox.release()
