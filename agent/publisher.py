"""MQTT publishing: the only module of the agent that imports aiomqtt.

Reconnects forever with capped, jittered backoff (aiomqtt has none of its own); announces the
site with a retained birth message, refreshes it as a heartbeat carrying the outbox's health,
and leaves a retained Last Will that marks the site offline. Keeps a window of QoS 1 publishes in
flight, because one at a time over a 600 ms VSAT hop would cap a site at under two messages per
second; each item is deleted from the outbox only after its PUBACK. The backlog after an outage
is rate-limited (a token bucket in bytes/s) so it never starves live data on a thin link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable

import aiomqtt

from agent.config import AgentConfig
from agent.outbox import Outbox, OutItem
from pantau.backoff import Backoff
from pantau.wire import Status, encode_status, status_topic

log = logging.getLogger("pantau.agent.publisher")


def tls_context(cfg: AgentConfig) -> ssl.SSLContext | None:
    tls = cfg.broker.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


class TokenBucket:
    """Bytes per second with a one-second burst; `rate` 0 means unlimited."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.rate), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def ready(self) -> bool:
        if not self.rate:
            return True
        self._refill()
        return self._tokens >= 0

    def wait_time(self) -> float:
        self._refill()
        return max(0.0, -self._tokens / self.rate) if self.rate else 0.0

    def spend(self, size: int) -> None:
        if self.rate:
            self._refill()
            self._tokens -= size


class Publisher:
    """Drains an outbox to the broker. `await run(stop)` until `stop` is set."""

    def __init__(
        self,
        cfg: AgentConfig,
        outbox: Outbox,
        status: Callable[[Outbox, float], Status],
        *,
        window: int = 32,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.status = status
        self.window = window
        self.connected = asyncio.Event()
        self.attempted = asyncio.Event()  # the first connection attempt is over, either way
        self.publish_latency_s = 0.0
        self.bucket = TokenBucket(cfg.outbox.backfill_rate)

    def _will(self) -> aiomqtt.Will:
        status = Status(v=1, site=self.cfg.site, online=False, ts_ms=0, reason="connection lost")
        return aiomqtt.Will(status_topic(self.cfg.site), encode_status(status), qos=1, retain=True)

    def _client(self) -> aiomqtt.Client:
        b = self.cfg.broker
        client = aiomqtt.Client(
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
        # A full window of publishes in flight is the design, not a problem to warn about.
        client.pending_calls_threshold = self.window + 1
        return client

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(self.cfg.broker.reconnect_min, self.cfg.broker.reconnect_max)
        b = self.cfg.broker
        while not stop.is_set():
            try:
                async with self._client() as client:
                    log.info(
                        "connected to broker host=%s port=%s pending=%d",
                        b.host,
                        b.port,
                        len(self.outbox),
                    )
                    backoff.reset()
                    await self._publish_status(client)
                    self.connected.set()
                    self.attempted.set()
                    heartbeat = asyncio.create_task(self._heartbeat(client))
                    try:
                        await self._pump(client, stop)
                    finally:
                        heartbeat.cancel()
                    await self._drain(client, self.cfg.outbox.shutdown_timeout)
                    offline = Status(
                        v=1,
                        site=self.cfg.site,
                        online=False,
                        ts_ms=int(time.time() * 1000),
                        reason="agent stopped",
                    )
                    await client.publish(
                        status_topic(self.cfg.site),
                        encode_status(offline),
                        qos=1,
                        retain=True,
                        timeout=self.cfg.outbox.shutdown_timeout,
                    )
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.attempted.set()
                self.outbox.release()
                delay = backoff.next()
                log.warning(
                    "broker unavailable host=%s port=%s error=%r retry_in=%.1fs pending=%d",
                    b.host,
                    b.port,
                    str(exc),
                    delay,
                    len(self.outbox),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        self.connected.clear()
        self.outbox.release()

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        status = self.status(self.outbox, self.publish_latency_s)
        await client.publish(status_topic(self.cfg.site), encode_status(status), qos=1, retain=True)

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.cfg.outbox.heartbeat)
            try:
                await self._publish_status(client)
            except aiomqtt.MqttError:
                return  # the pump sees the same failure and reconnects

    async def _publish(self, client: aiomqtt.Client, item: OutItem) -> None:
        t0 = time.monotonic()
        await client.publish(item.topic, item.payload, qos=1)
        self.publish_latency_s = time.monotonic() - t0
        self.outbox.ack(item)

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Publish until stop is set; raise MqttError when the connection fails."""
        inflight: set[asyncio.Future[None]] = set()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                if len(inflight) >= self.window:
                    done, inflight = await asyncio.wait(
                        inflight, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        task.result()  # re-raise a failed publish
                    continue
                backlog_ok = self.bucket.ready()
                getter = asyncio.ensure_future(self.outbox.next(backlog=backlog_ok))
                waits: set[asyncio.Future[object]] = {getter, stopping, *inflight}  # type: ignore[arg-type]
                refill = None
                if not backlog_ok:
                    refill = asyncio.ensure_future(asyncio.sleep(self.bucket.wait_time()))
                    waits.add(refill)
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if refill is not None:
                    refill.cancel()
                for task in done & inflight:  # type: ignore[operator]
                    inflight.discard(task)  # type: ignore[arg-type]
                    task.result()
                if getter in done:
                    item = getter.result()
                    if not item.live and item.kind == 0:
                        self.bucket.spend(len(item.payload))
                    inflight.add(asyncio.ensure_future(self._publish(client, item)))
                else:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if stopping in done:
                        break
            if inflight:
                await asyncio.gather(*inflight)
        finally:
            stopping.cancel()
            for task in inflight:
                task.cancel()

    async def _drain(self, client: aiomqtt.Client, timeout: float) -> None:
        """On shutdown: publish what is queued within `timeout`; the rest stays on disk."""
        deadline = time.monotonic() + timeout
        while not self.outbox.empty():
            remaining = deadline - time.monotonic()
            item = self.outbox.take()
            if remaining <= 0 or item is None:
                break
            try:
                await asyncio.wait_for(self._publish(client, item), remaining)
            except TimeoutError:
                break
        self.outbox.release()
