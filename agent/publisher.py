"""MQTT publishing: the only module of the agent that imports aiomqtt.

Reconnects forever with capped, jittered backoff (aiomqtt has none of its own); announces the
site with a retained birth message, refreshes it as a heartbeat carrying the outbox's health,
and leaves a retained Last Will that marks the site offline. Keeps a window of QoS 1 publishes in
flight, because one at a time over a 600 ms VSAT hop would cap a site at under two messages per
second; each item is deleted from the outbox only after its PUBACK. The backlog after an outage
is rate-limited (a token bucket in bytes/s) so it never starves live data on a thin link.

MQTT 5 between agent and broker, because under MQTT 3.1.1 a publish the broker's ACL denies
still gets a plain PUBACK (Mosquitto drops it silently): under MQTT 5 the PUBACK carries a
reason code, and a refused item stays in the outbox, is counted (`refused`), makes the publisher
not ready (`refusing`) and is retried with backoff. On stop, the outbox is drained only until
`outbox.shutdown_timeout`; what is left stays on disk for the next start.

`broker.protocol: 3.1.1` is for brokers without MQTT 5 (RabbitMQ 3.10's MQTT plugin closes an
MQTT 5 CONNECT). There a PUBACK carries no reason code, and RabbitMQ answers a publish it does
not authorize by closing the connection (measured: docs/scaling.md). So a connection lost with
publishes in flight is a suspect: what was in flight is released (sent again, never taken as
delivered), the next connection sends one item at a time until `window` items are PUBACKed,
and an item that is alone in flight when the connection drops twice in a row is taken as
refused: counted (`refused`), logged, the publisher `refusing`, the item deferred
(Outbox.defer, a growing delay) and its topic held back: that topic's items are deferred unsent
and one is tried again after the topic's own backoff, so they do not wedge the other topics'.
The test is a real RabbitMQ user without write permission on one topic (docs/scaling.md).

`broker.hosts` lists the addresses of one broker cluster: on a connection failure the agent
goes on with the next; the reconnect backoff grows per round of all of them, not per host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiomqtt

from agent.config import AgentConfig
from agent.outbox import NO_SUBSCRIBERS, Outbox, OutItem
from pantau.backoff import Backoff
from pantau.logs import RateLimitedLog
from pantau.wire import (
    Status,
    WireError,
    ack_gaps,
    ack_ranges,
    ack_topic,
    confirm_topic,
    decode_ack,
    encode_status,
    names_topic,
    status_topic,
)

log = logging.getLogger("pantau.agent.publisher")

REFUSAL_LOG_PERIOD = 60.0
"""Seconds between two log lines about refused publishes with the same reason code."""

CLOSED_ON_PUBLISH = 0x87
"""MQTT 3.1.1 has no reason codes: a publish that makes the broker close the connection (twice,
alone in flight) is reported as 135, "not authorized", the code MQTT 5 would have sent."""


@dataclass(frozen=True, slots=True)
class PubAck:
    """The broker's answer to a QoS 1 publish (MQTT 5 PUBACK)."""

    code: int  # 0 accepted, 16 no subscribers (thrown away); >= 128 refused (135 not authorized)
    reason: str

    @property
    def refused(self) -> bool:
        return self.code >= 0x80


class PublishRefused(Exception):
    """The broker answered a publish with a failure reason code: the message was not taken."""

    def __init__(self, topic: str, ack: PubAck) -> None:
        super().__init__(f"broker refused publish to {topic}: {ack.code} ({ack.reason})")
        self.topic = topic
        self.ack = ack


class _Client(aiomqtt.Client):
    """aiomqtt.Client with `publish_acked()`, which returns the PUBACK's reason code.

    aiomqtt 2.x completes `publish()` on any PUBACK and drops its reason code, so a publish the
    broker refused would look delivered. This keeps each message id's code from paho's
    on_publish callback. It relies on aiomqtt 2.x internals (`_client`, `_pending_call`,
    `_pending_publishes`, `_wait_for`, `_disconnected`; pyproject pins aiomqtt <3) and is
    tested against a real Mosquitto (tests/test_publisher.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acks: dict[int, PubAck] = {}

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        if mid in self._pending_publishes:
            self._acks[mid] = PubAck(int(getattr(reason_code, "value", 0)), str(reason_code))
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_acked(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout: float | None = None,
    ) -> PubAck:
        """Publish and wait for the broker's acknowledgement; raise MqttError if the
        connection fails, return the PUBACK (check `.refused`) otherwise."""
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != 0:
            cause = self._disconnected.exception() if self._disconnected.done() else None
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message") from cause
        if info.is_published():
            return PubAck(0, "Success")
        confirmation = asyncio.Event()
        try:
            with self._pending_call(info.mid, confirmation, self._pending_publishes):
                await self._wait_for(self._acked_or_gone(confirmation), timeout=timeout)
        finally:
            ack = self._acks.pop(info.mid, None)
        return ack or PubAck(0, "Success")

    async def _acked_or_gone(self, confirmation: asyncio.Event) -> None:
        """The PUBACK, or MqttError as soon as the connection is gone: aiomqtt would wait for
        its timeout (10 s) instead, and a publish lost with its connection is not delivered."""
        waiter = asyncio.ensure_future(confirmation.wait())
        try:
            either: set[asyncio.Future[Any]] = {waiter, self._disconnected}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not confirmation.is_set():
            cause = self._disconnected.exception() if self._disconnected.done() else None
            raise aiomqtt.MqttError("connection lost before the PUBACK") from cause


class _AsError:
    """Hands RateLimitedLog's lines to a logger at ERROR level: a refused publish is data
    that does not get through."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.logger.error(msg, *args, **kwargs)


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
        names: Callable[[], tuple[object, bytes] | None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.status = status
        # The site's names message (agent/names.py): (what it was built from, payload), None
        # while there is nothing to say; published once per connection and whenever the key
        # changes (names_changed is set by whoever may have changed it).
        self.names = names
        self.names_changed = asyncio.Event()
        self.names_sent = 0
        self.names_bytes = 0
        self.window = window
        self.connected = asyncio.Event()
        self.attempted = asyncio.Event()  # the first connection attempt is over, either way
        self.publish_latency_s = 0.0
        self.bucket = TokenBucket(cfg.outbox.backfill_rate)
        self.sent = 0  # items acknowledged by the broker (and so removed from the outbox)
        self.refused = 0  # publishes the broker answered with a failure reason code
        self.refusing = False  # the last answer was a refusal: not ready, data stays queued
        self.last_refusal = ""  # e.g. "pantau/a/radio/metrics: 135 (Not authorized)"
        self._refusal_backoff = Backoff(cfg.broker.reconnect_min, cfg.broker.reconnect_max)
        self._refusal_log = RateLimitedLog(
            cast(logging.Logger, _AsError(log)), period=REFUSAL_LOG_PERIOD
        )
        self._warn = RateLimitedLog(log, period=REFUSAL_LOG_PERIOD)
        # End-to-end confirmation (docs/delivery.md): "on" from the start; "auto" once a
        # collector has acknowledged to this outbox (now or before a restart); "off" never.
        confirm = cfg.broker.confirm
        if confirm == "on" or (confirm == "auto" and outbox.confirm_seen):
            outbox.end_to_end = True
        self.acks_received = 0
        # auto: since when (monotonic) items have waited for a confirmation, connected, with
        # no acknowledgement arriving (None: not so); see check_silence()
        self._silent_since: float | None = None
        self.fallbacks = 0  # times auto went back to PUBACK for lack of acknowledgements
        # What the collectors say of themselves on the retained pantau/confirm (collector/acks.py):
        # True "on", False "off" (acks.enabled: false), None nothing (yet, or an older one). Only
        # False lets auto go back to PUBACK: silence alone may be a stopped collector or InfluxDB.
        self.collectors_confirm: bool | None = None
        self._events_noted = float("-inf")  # when a change of Ack.events was last logged
        self.host = ""  # host:port of the broker connected to now ("" while none)
        # Publishes sent and not answered on this connection: (topic, outbox item or None);
        # what is left in it when the connection is lost was in flight then (see _lost()).
        self._flying: dict[int, tuple[str, OutItem | None]] = {}
        self._fly_token = 0
        self._single_file = 0  # 3.1.1: PUBACKs still to get one publish at a time
        self._suspect: object = None  # 3.1.1: what was alone in flight at the last loss
        # 3.1.1: topics whose publish closed the connection → (their backoff, when to try one
        # again); until then their items are deferred unsent (see _held_back()).
        self._refused_topics: dict[str, tuple[Backoff, float]] = {}

    @property
    def confirm_mode(self) -> str:
        """For the status: "end-to-end", "broker" (PUBACK is delivery) or "waiting" (auto,
        no acknowledgement from a collector yet, or gone back to PUBACK after the collectors
        said "off": see check_silence)."""
        if self.outbox.end_to_end:
            return "end-to-end"
        return "broker" if self.cfg.broker.confirm == "off" else "waiting"

    def on_ack(self, payload: bytes) -> None:
        """An acknowledgement from a collector: what InfluxDB stored of this site."""
        try:
            ack = decode_ack(payload)
        except WireError as exc:
            self._warn.warning("bad-ack", "bad acknowledgement ignored: %s", exc)
            return
        self.acks_received += 1
        self._silent_since = None
        if not self.outbox.end_to_end:
            log.info(
                "the collector confirms what it stored: delivery is confirmed end to end "
                "from now on (broker.confirm=%s)",
                self.cfg.broker.confirm,
            )
            self.outbox.set_end_to_end()
        now = time.monotonic()
        # logged at most once a minute: a shared group of old and new collectors flips it
        if self.outbox.set_confirm_events(ack.events) and now - self._events_noted >= 60.0:
            self._events_noted = now
            if ack.events:
                log.info(
                    "the collector confirms trap events too: they wait for it like sample sets"
                )
            else:
                log.warning(
                    "the collector does not confirm trap events (older than that): events are "
                    "delivered at the broker's PUBACK, and a broker crash may lose them"
                )
        for entry in ack.devices:
            self.outbox.confirm(entry.device, ack_ranges(entry), ack_gaps(entry))

    def on_confirm_flag(self, payload: bytes) -> None:
        """The retained pantau/confirm: whether the collectors acknowledge ("on"/"off");
        empty (cleared) or unknown: nothing said."""
        said = {b"on": True, b"off": False}.get(payload.strip())
        if said is None and payload.strip():
            self._warn.warning("bad-flag", "unknown pantau/confirm %r ignored", payload[:32])
        if said != self.collectors_confirm:
            log.info(
                "the collectors say acknowledgements are %s (pantau/confirm)",
                {True: "on", False: "off", None: "unknown"}[said],
            )
        self.collectors_confirm = said

    def check_silence(self, now: float | None = None) -> bool:
        """`broker.confirm: auto` in end-to-end mode: connected, with published items waiting
        for a confirmation, no acknowledgement for `broker.confirm_timeout` seconds, and the
        collectors saying they do not acknowledge (retained pantau/confirm "off": restarted
        with `acks.enabled: false`): PUBACK is delivery again, as before the first
        acknowledgement, until the next one arrives (then on_ack switches back). Without this,
        such an agent would resend everything until its budget forgot it, and its window of
        unconfirmed items would hold back live data. Silence without that "off" is a collector
        (or its InfluxDB) that is down, with the broker queueing for it unsaved: nothing
        changes then (a warning each confirm_timeout), and neither does it while the broker
        answers "no matching subscribers" (_publish resets the clock). The clock starts again
        with every connection. True when it switched."""
        now = time.monotonic() if now is None else now
        if (
            self.cfg.broker.confirm != "auto"
            or not self.outbox.end_to_end
            or not self.outbox.unconfirmed()
        ):
            self._silent_since = None
            return False
        if self._silent_since is None:
            self._silent_since = now
        if now - self._silent_since < self.cfg.broker.confirm_timeout:
            return False
        if self.collectors_confirm is not False:
            self._silent_since = now  # warned once per confirm_timeout
            log.warning(
                "no acknowledgement from a collector for %.0fs (broker.confirm_timeout) while "
                "%d items wait for one; the collectors do not say acknowledgements are off "
                "(pantau/confirm: %s), so this is taken as a collector or InfluxDB outage and "
                "everything is kept and sent again (if the collectors were replaced by ones "
                "without acknowledgements, set broker.confirm: off)",
                self.cfg.broker.confirm_timeout,
                self.outbox.unconfirmed(),
                {True: "on", None: "nothing"}[self.collectors_confirm],
            )
            return False
        pending = self.outbox.leave_end_to_end()
        self._silent_since = None
        self.fallbacks += 1
        log.warning(
            "no acknowledgement from a collector for %.0fs (broker.confirm_timeout) while "
            "items waited for one, and the collectors say acknowledgements are off "
            "(pantau/confirm): the broker's PUBACK is delivery again until the next "
            "acknowledgement (broker.confirm=auto); %d waiting items are sent once more",
            self.cfg.broker.confirm_timeout,
            pending,
        )
        return True

    async def _acks(self, client: _Client) -> None:
        """Receive acknowledgements and the collectors' pantau/confirm; wake the pump when
        waiting items are due again (also with `off`: "no matching subscribers" items)."""
        topic = ack_topic(self.cfg.site)
        flag = confirm_topic()

        async def receive() -> None:
            if self.cfg.broker.confirm == "off":
                await asyncio.Event().wait()  # nothing to receive; resends still need pokes
            async for message in client.messages:
                if not isinstance(message.payload, bytes | bytearray):
                    continue
                if message.topic.matches(flag):
                    self.on_confirm_flag(bytes(message.payload))
                else:
                    self.on_ack(bytes(message.payload))

        if self.cfg.broker.confirm != "off":
            try:
                # QoS 0 on 3.1.1 (RabbitMQ): the plugin keeps a QoS 1 subscription in a
                # queue on one node, and refuses the client id's subscription elsewhere while
                # that node is down; acknowledgements are resent every acks.interval and
                # idempotent, so one lost costs nothing (docs/scaling.md).
                qos = 0 if self.cfg.broker.protocol == "3.1.1" else 1
                granted = await client.subscribe([(topic, qos), (flag, qos)])
            except aiomqtt.MqttError:
                return  # the pump sees the same failure and reconnects
            codes = granted if isinstance(granted, list | tuple) else [granted]
            if any(int(getattr(c, "value", 0) or 0) >= 0x80 for c in codes):
                log.error(
                    "the broker refuses the subscription to %s or %s (%s): no end-to-end "
                    "confirmation; check the broker ACL (pattern read pantau/%%u/ack, "
                    "pattern read pantau/confirm)",
                    topic,
                    flag,
                    codes,
                )

        receiver = asyncio.create_task(receive())
        self._silent_since = None  # a new connection: the silence is counted afresh
        try:
            while not receiver.done():
                due = self.outbox.resend_due_in()
                await asyncio.wait({receiver}, timeout=1.0 if due is None else min(1.0, due))
                self.check_silence()
                self.outbox.poke()
            receiver.result()
        except aiomqtt.MqttError:
            return
        finally:
            receiver.cancel()

    @property
    def ready(self) -> bool:
        """Connected and the broker takes what is published."""
        return self.connected.is_set() and not self.refusing

    def describe(self) -> str:
        """The broker side of the service's status line (systemd STATUS)."""
        if not self.connected.is_set():
            return "broker unreachable, keeping sample sets in the outbox"
        if self.refusing:
            return (
                f"broker REFUSES publishes ({self.last_refusal}; check that the MQTT username "
                f"is the site name {self.cfg.site!r} and the broker ACL), keeping sample sets "
                "in the outbox"
            )
        return f"broker connected ({self.host})"

    def _will(self) -> aiomqtt.Will:
        status = Status(v=1, site=self.cfg.site, online=False, ts_ms=0, reason="connection lost")
        return aiomqtt.Will(status_topic(self.cfg.site), encode_status(status), qos=1, retain=True)

    def _client(self, host: str, port: int) -> _Client:
        b = self.cfg.broker
        client = _Client(
            hostname=host,
            port=port,
            identifier=self.cfg.client_id,
            username=b.username,
            password=b.password,
            keepalive=b.keepalive,
            will=self._will(),
            tls_context=tls_context(self.cfg),
            # MQTT 5 for PUBACK reason codes; 3.1.1 where the broker has no 5 (see the docstring)
            protocol=aiomqtt.ProtocolVersion.V311
            if b.protocol == "3.1.1"
            else aiomqtt.ProtocolVersion.V5,
            timeout=10,
            max_inflight_messages=self.window,
        )
        # A full window of publishes in flight is the design, not a problem to warn about.
        client.pending_calls_threshold = self.window + 1
        return client

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(self.cfg.broker.reconnect_min, self.cfg.broker.reconnect_max)
        addresses = self.cfg.broker.addresses
        index = 0
        failed = 0  # attempts failed since the last good connection: a round is len(addresses)
        while not stop.is_set():
            host, port = addresses[index % len(addresses)]
            try:
                async with self._client(host, port) as client:
                    self._flying.clear()
                    self.host = f"{host}:{port}"
                    log.info(
                        "connected to broker host=%s port=%s pending=%d",
                        host,
                        port,
                        len(self.outbox),
                    )
                    await self._publish_status(client)
                    backoff.reset()  # after the status: a broker refusing it is no good one
                    failed = 0
                    self.connected.set()
                    self.attempted.set()
                    heartbeat = asyncio.create_task(self._heartbeat(client))
                    acks = asyncio.create_task(self._acks(client))
                    names = asyncio.create_task(self._publish_names(client))
                    try:
                        inflight = await self._serve(client, stop)
                        await self._shutdown(client, inflight)
                    finally:
                        heartbeat.cancel()
                        acks.cancel()
                        names.cancel()
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.host = ""
                self.attempted.set()
                self._lost()
                self.outbox.release()
                failed += 1
                index += 1
                if failed % len(addresses):  # the rest of the round first, without waiting
                    nxt = addresses[index % len(addresses)]
                    log.warning(
                        "broker unavailable host=%s port=%s error=%r next_host=%s:%s pending=%d",
                        host,
                        port,
                        str(exc),
                        *nxt,
                        len(self.outbox),
                    )
                    continue
                delay = backoff.next()
                log.warning(
                    "broker unavailable host=%s port=%s error=%r retry_in=%.1fs pending=%d",
                    host,
                    port,
                    str(exc),
                    delay,
                    len(self.outbox),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        self.connected.clear()
        self.host = ""
        self.outbox.release()

    async def _send(
        self,
        client: _Client,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        item: OutItem | None = None,
        timeout: float | None = None,
    ) -> PubAck:
        """publish_acked, remembering what is in flight: an entry is left behind when the
        connection fails (MqttError) or the publish is cancelled with it (see _lost())."""
        self._fly_token += 1
        token = self._fly_token
        self._flying[token] = (topic, item)
        ack = await client.publish_acked(topic, payload, qos=1, retain=retain, timeout=timeout)
        del self._flying[token]
        if not ack.refused:
            if self._single_file:
                self._single_file -= 1
            if self._suspect in (topic, None if item is None else item.id):
                self._suspect = None
            if self._refused_topics.pop(topic, None) is not None:
                log.info("the broker takes publishes to %s again", topic)
        return ack

    def _held_back(self, item: OutItem) -> bool:
        """3.1.1: an item of a topic the broker refused is deferred unsent until that topic's
        next try (one item then), so the other topics' items keep going out."""
        refused = self._refused_topics.get(item.topic)
        if refused is None:
            return False
        backoff, retry_at = refused
        now = time.monotonic()
        if now >= retry_at:
            self._refused_topics[item.topic] = (backoff, now + backoff.next())
            return False  # this one is the try
        self.outbox.defer(item)
        return True

    def _lost(self) -> None:
        """The connection is gone (called before the outbox's release()). MQTT 3.1.1 only: the
        broker may have closed it on a publish it refuses (RabbitMQ does), with no reason code
        to say so. Several publishes in flight: send one at a time for a while, to find out
        which; one alone in flight twice in a row: refused (see the module docstring)."""
        flying = list(self._flying.values())
        self._flying.clear()
        if self.cfg.broker.protocol != "3.1.1" or not flying:
            return
        if len(flying) > 1:
            self._single_file = self.window
            log.warning(
                "connection lost with %d publishes in flight (MQTT 3.1.1: a broker closes the "
                "connection on a publish it refuses); they are sent again, one at a time for a "
                "while",
                len(flying),
            )
            return
        topic, item = flying[0]
        key: object = topic if item is None else item.id
        if key != self._suspect and topic not in self._refused_topics:
            self._suspect = key
            self._single_file = self.window
            return
        self._suspect = None
        if topic not in self._refused_topics:
            backoff = Backoff(self.cfg.broker.reconnect_min, self.cfg.broker.reconnect_max)
            self._refused_topics[topic] = (backoff, time.monotonic() + backoff.next())
        self._note_refusal(
            topic, PubAck(CLOSED_ON_PUBLISH, "connection closed on this publish (MQTT 3.1.1)")
        )
        if item is not None:
            self.outbox.defer(item)  # kept, not delivered; the items behind it go on

    async def _shutdown(self, client: _Client, inflight: set[asyncio.Future[None]]) -> None:
        """Stop within `outbox.shutdown_timeout`: drain what fits (the rest stays on disk),
        then say "agent stopped" in the retained status."""
        timeout = self.cfg.outbox.shutdown_timeout
        t0 = time.monotonic()
        end = t0 + timeout
        reserve = min(1.0, timeout / 4)  # kept for the offline status
        sent_before = self.sent
        complete = await self._drain(client, inflight, end - reserve)
        sent = self.sent - sent_before
        if complete:
            log.info("outbox drained before stopping sent=%d", sent)
        else:
            log.warning(
                "stopping before the outbox is drained: shutdown_timeout=%.1fs sent=%d; "
                "pending=%d stay in the outbox on disk for the next start",
                timeout,
                sent,
                len(self.outbox),
            )
        offline = Status(
            v=1,
            site=self.cfg.site,
            online=False,
            ts_ms=int(time.time() * 1000),
            reason="agent stopped",
        )
        topic = status_topic(self.cfg.site)
        try:
            ack = await self._send(
                client,
                topic,
                encode_status(offline),
                retain=True,
                timeout=max(0.1, end - time.monotonic()),
            )
        except aiomqtt.MqttError as exc:
            log.warning("could not publish the offline status: %s", exc)
            return
        if ack.refused:
            self._note_refusal(topic, ack)

    async def _publish_status(self, client: _Client) -> None:
        status = self.status(self.outbox, self.publish_latency_s)
        topic = status_topic(self.cfg.site)
        ack = await self._send(client, topic, encode_status(status), retain=True)
        if ack.refused:
            self._note_refusal(topic, ack)  # the data items will be held back and retried
        else:
            self._note_accepted()

    async def _publish_names(self, client: _Client) -> None:
        """The retained names message: once per connection (a broker that crashed may have lost
        its retained copy), then whenever it changes; never per poll (VSAT bytes cost)."""
        if self.names is None:
            return
        published: object = None
        topic = names_topic(self.cfg.site)
        while True:
            self.names_changed.clear()
            current = self.names()
            if current is not None and current[0] != published:
                key, payload = current
                try:
                    ack = await self._send(client, topic, payload, retain=True)
                except aiomqtt.MqttError:
                    return  # the pump sees the same failure and reconnects
                if ack.refused:
                    self._note_refusal(topic, ack)
                    return  # retried on the next connection
                published = key
                self.names_sent += 1
                self.names_bytes += len(payload)
                log.info("names published bytes=%d", len(payload))
            await self.names_changed.wait()

    async def _heartbeat(self, client: _Client) -> None:
        while True:
            await asyncio.sleep(self.cfg.outbox.heartbeat)
            try:
                await self._publish_status(client)
            except aiomqtt.MqttError:
                return  # the pump sees the same failure and reconnects

    def _note_refusal(self, topic: str, ack: PubAck) -> None:
        self.refused += 1
        self.refusing = True
        self.last_refusal = f"{topic}: {ack.code} ({ack.reason})"
        self._refusal_log.warning(
            f"refused-{ack.code}",
            "broker refused a publish topic=%s reason_code=%d reason=%r refused_total=%d: "
            "kept in the outbox and retried; is the MQTT username the site name %r, and does "
            "the broker ACL let it write pantau/%s/#?",
            topic,
            ack.code,
            ack.reason,
            self.refused,
            self.cfg.site,
            self.cfg.site,
        )

    def _note_accepted(self) -> None:
        if self.refusing and not self._refused_topics:  # 3.1.1: until every topic is taken
            log.info("broker accepts publishes again refused_total=%d", self.refused)
            self.refusing = False
        self._refusal_backoff.reset()

    async def _publish(self, client: _Client, item: OutItem) -> None:
        t0 = time.monotonic()
        ack = await self._send(client, item.topic, item.payload, item=item)
        if ack.refused:  # not taken: the item stays in the outbox (released, not acked)
            self._note_refusal(item.topic, ack)
            raise PublishRefused(item.topic, ack)
        self.publish_latency_s = time.monotonic() - t0
        self._note_accepted()
        self.outbox.ack(item, ack.code)
        if ack.code == NO_SUBSCRIBERS:
            # Thrown away: no collector session exists to queue it (not even a stopped one's),
            # so this is no "acknowledgements off" silence either: the fallback clock restarts.
            self._silent_since = None
            self._warn.warning(
                "no-subscribers",
                "the broker has no subscriber for %s (PUBACK 16, no matching subscribers: "
                "thrown away); kept in the outbox and sent again later unrouted_total=%d; "
                "is the collector's session gone (its session_expiry, a broker without "
                "persistence)?",
                item.topic,
                self.outbox.unrouted,
            )
            return
        self.sent += 1

    async def _serve(self, client: _Client, stop: asyncio.Event) -> set[asyncio.Future[None]]:
        """Pump until stop is set; after a refused publish, wait (with backoff, not a hot loop)
        and try again. Returns the publishes still in flight when stop was set."""
        while True:
            try:
                return await self._pump(client, stop)
            except PublishRefused:
                self.outbox.release()  # everything claimed is pending again
                delay = self._refusal_backoff.next()
                log.debug("publishing again in %.1fs after a refusal", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return set()

    async def _pump(self, client: _Client, stop: asyncio.Event) -> set[asyncio.Future[None]]:
        """Publish until stop is set, then hand back the publishes still in flight; raise
        MqttError when the connection fails, PublishRefused when the broker refuses one."""
        inflight: set[asyncio.Future[None]] = set()
        stopping = asyncio.ensure_future(stop.wait())
        handed_over = False
        getter: asyncio.Future[OutItem] | None = None
        try:
            while not stop.is_set():
                waits: set[asyncio.Future[Any]] = {stopping, *inflight}
                getter = None
                refill: asyncio.Future[None] | None = None
                if len(inflight) < (1 if self._single_file else self.window):
                    backlog_ok = self.bucket.ready()
                    getter = asyncio.ensure_future(self.outbox.next(backlog=backlog_ok))
                    waits.add(getter)
                    if not backlog_ok:
                        refill = asyncio.ensure_future(asyncio.sleep(self.bucket.wait_time()))
                        waits.add(refill)
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if refill is not None:
                    refill.cancel()
                for task in done & inflight:
                    inflight.discard(task)
                    task.result()  # re-raise a failed or refused publish
                if getter is None:
                    continue
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                if getter.done() and not getter.cancelled():
                    item = getter.result()  # claimed: publish it even when stopping
                    if self._held_back(item):
                        continue
                    if not item.live and item.kind == 0:
                        self.bucket.spend(len(item.payload))
                    inflight.add(asyncio.ensure_future(self._publish(client, item)))
            handed_over = True
            return inflight
        finally:
            stopping.cancel()
            if getter is not None and not getter.done():
                # A failed publish ended the pump while it waited for the next item: left
                # running, the getter would claim an item after release() that nobody publishes.
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
            if not handed_over:
                for task in inflight:
                    task.cancel()
                # Wait for them: a publish whose PUBACK is already in may still finish (and
                # ack) despite the cancel; that must happen before the caller's release().
                await asyncio.gather(*inflight, return_exceptions=True)

    async def _drain(
        self, client: _Client, inflight: set[asyncio.Future[None]], deadline: float
    ) -> bool:
        """On shutdown: keep the window full until the outbox is empty or `deadline`
        (time.monotonic()) passes; what is not acknowledged by then stays on disk. Returns
        whether everything was sent."""
        pending = set(inflight)
        complete = False
        try:
            while True:
                # 3.1.1 refuses per topic (held back in _held_back), MQTT 5 the whole site
                while len(pending) < self.window and (not self.refusing or self._refused_topics):
                    item = self.outbox.take()
                    if item is None:
                        break
                    if self._held_back(item):
                        continue
                    pending.add(asyncio.ensure_future(self._publish(client, item)))
                remaining = deadline - time.monotonic()
                if not pending:
                    complete = self.outbox.empty()
                    if complete or remaining <= 0 or not self.outbox.end_to_end:
                        break
                    # Published, waiting for the collector's confirmation (or a resend).
                    await asyncio.sleep(min(0.1, remaining))
                    continue
                if remaining <= 0:
                    break
                done, pending = await asyncio.wait(
                    pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    exc = task.exception()
                    if isinstance(exc, PublishRefused):
                        continue  # counted and logged; the item stays for the next start
                    if exc is not None:
                        raise exc
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.outbox.release()
        return complete
