"""AMQP intake from a RabbitMQ cluster: the only module of the collector that imports pika.

Past one NOC machine (docs/scaling.md) the agents publish MQTT, unchanged, to the MQTT plugin of
any node of a RabbitMQ cluster; the plugin puts every message on `amq.topic` with the topic as
routing key ('/' and '.' swapped: `pantau.<site>.<device>.metrics`). From there:

    amq.topic ──(pantau.*.*.metrics|gap|event, pantau.*.status|names)──► pantau.route (topic)
    pantau.route ──pantau.<site>.#──► pantau.part.<k>     k = jump_hash(site, partitions)
    pantau.route ──no binding yet (alternate exchange)──► pantau.unrouted

Every queue is a quorum queue (replicated on the cluster's nodes: a message the MQTT plugin
acknowledged with PUBACK is on a majority of them) with a single active consumer: however many
collectors subscribe, one reads a partition at a time, so a site's whole stream (status with its
heartbeat, sample sets, gap records) reaches one collector and sequence accounting stays exact.
When that collector dies, its unacknowledged messages return to the queue and the next subscriber
takes over. A message is acknowledged only after the pipeline says its points are in InfluxDB.
A collector that stops reading a partition (connection or channel closed, consumer cancelled)
hands its sites out of its current state (`on_released`); one that starts reading a partition
takes them back with their sequence accounting restarted (`on_acquired`).

Why sites are bound one by one and not through the consistent-hash exchange: that exchange
hashes the whole routing key, so a device's gap records, its sample sets and its site's status
would land in different queues (different collectors), and a loss would be counted twice (once
from the gap record, once from the heartbeat). RabbitMQ 3.10's MQTT plugin (MQTT 3.1.1) sets no
header to hash on instead. A site seen for the first time goes to `pantau.unrouted`; whoever
reads it binds the site to its partition and re-publishes the message there (with publisher
confirms) before acknowledging it. Bindings are cluster metadata, kept across node restarts.

Why pika (BlockingConnection): the reference AMQP 0-9-1 client, pure Python, no dependencies,
manual acknowledgement and publisher confirms; its blocking adapter runs in one thread of its own
here, and other threads hand it work with `add_callback_threadsafe` (pika is not thread-safe).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import random
import re
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from collector.config import AmqpConfig
from collector.intake import SUBSCRIPTIONS, Inbound
from pantau.wire import TOPIC_PREFIX
from pantau.wire.topics import IDENTIFIER

log = logging.getLogger("pantau.collector.amqp")

ROUTE = "pantau.route"
UNROUTED = "pantau.unrouted"
PARTITION_PREFIX = "pantau.part."
PARTITION = PARTITION_PREFIX + "{}"
SOURCE = "amq.topic"  # where RabbitMQ's MQTT plugin publishes
# What the MQTT intake subscribes to, as AMQP topic patterns: the sites' acknowledgements
# (pantau/<site>/ack), which collectors publish to amq.topic, must not come back to them.
BINDINGS = tuple(t.replace("/", ".").replace("+", "*") for t in SUBSCRIPTIONS)
QUEUE_ARGS = {"x-queue-type": "quorum", "x-single-active-consumer": True}
_SWAP = str.maketrans("./", "/.")
_SITE = re.compile(IDENTIFIER.pattern)


def topic_of(routing_key: str) -> str:
    """The MQTT topic RabbitMQ's MQTT plugin turned into this routing key ('.' ↔ '/')."""
    return routing_key.translate(_SWAP)


def routing_key_of(topic: str) -> str:
    return topic.translate(_SWAP)


def partition_of(site: str, partitions: int) -> int:
    """Jump consistent hash (Lamping & Veach 2014) of the site name: stable across processes,
    and growing `partitions` from n to n+1 moves only 1/(n+1) of the sites."""
    key = int.from_bytes(hashlib.blake2b(site.encode(), digest_size=8).digest(), "big")
    b, j = -1, 0
    while j < partitions:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


class AmqpIntake:
    """Same surface as collector.intake.Intake: `subscribed`, start/stop, ack, publish."""

    def __init__(self, cfg: AmqpConfig, inbox: queue.Queue[Inbound]) -> None:
        self.cfg = cfg
        self.inbox = inbox
        self.epoch = 0
        self.subscribed = threading.Event()
        self.consuming: set[str] = set()  # queues this collector subscribed to (active or not)
        self.reading: set[str] = set()  # of those, the ones that delivered (it is their reader)
        self._queues: dict[str, str] = {}  # consumer tag → queue, on the current channel
        self._bound: set[str] = set()  # sites this collector bound to their partition
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._confirm: BlockingChannel | None = None
        self._next_host = 0
        self._connected = False  # the current attempt got as far as subscribing
        # Called (AMQP thread) when this collector starts reading a partition on a connection,
        # with which sites are in it: their sequence accounting restarts (State), because
        # another collector may have read them meanwhile.
        self.on_acquired: Callable[[int, Callable[[str], bool]], object] | None = None
        # Called (AMQP thread) when this collector stops reading a partition (its connection
        # or channel closed, or the broker cancelled its consumer): the next subscriber reads
        # it now, so its sites leave this collector's current state (State.release_sites,
        # which returns them).
        self.on_released: Callable[[int, Callable[[str], bool]], list[str]] | None = None

    # -- the surface the service uses ------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="amqp", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def shares(self) -> tuple[list[int], list[int]]:
        """The partitions this collector reads now (it is their active consumer: it had a
        delivery from them on this connection) and those it waits on (subscribed behind
        another collector, or active on a partition that has been silent since)."""
        consuming, reading = set(self.consuming), set(self.reading)  # the AMQP thread's sets
        parts = [p for p in range(self.cfg.partitions) if PARTITION.format(p) in consuming]
        return (
            [p for p in parts if PARTITION.format(p) in reading],
            [p for p in parts if PARTITION.format(p) not in reading],
        )

    def ack(self, msg: Inbound) -> None:
        conn = self._conn
        if conn is None or msg.epoch != self.epoch:
            return  # that channel is gone: the broker gives the message to a consumer again
        with _closed_ok():
            conn.add_callback_threadsafe(functools.partial(self._ack_now, msg.mid, msg.epoch))

    def publish(self, topic: str, payload: bytes) -> bool:
        """To the sites (acknowledgements): amq.topic, which the MQTT plugin delivers from."""
        conn = self._conn
        if conn is None or not self.subscribed.is_set():
            return False
        try:
            conn.add_callback_threadsafe(
                functools.partial(self._publish_now, routing_key_of(topic), payload)
            )
        except pika.exceptions.AMQPError:
            return False
        return True

    # -- the connection thread -------------------------------------------------------------
    def _params(self) -> list[pika.ConnectionParameters]:
        creds = (
            pika.PlainCredentials(self.cfg.username, self.cfg.password or "")
            if self.cfg.username is not None
            else pika.ConnectionParameters.DEFAULT_CREDENTIALS
        )
        addrs = self.cfg.addresses
        start = self._next_host % len(addrs)
        self._next_host += 1
        return [
            pika.ConnectionParameters(
                host=host,
                port=port,
                virtual_host=self.cfg.vhost,
                credentials=creds,
                heartbeat=self.cfg.heartbeat,
                connection_attempts=1,
                socket_timeout=5,
                blocked_connection_timeout=60,
                client_properties={"connection_name": "pantau-collector"},
            )
            for host, port in addrs[start:] + addrs[:start]
        ]

    def _run(self) -> None:
        delay = self.cfg.reconnect_min
        while not self._stop.is_set():
            self._connected = False
            try:
                self._session()
            except pika.exceptions.AMQPError as exc:
                log.warning("AMQP connection lost or refused: %s: %s", type(exc).__name__, exc)
            except OSError as exc:
                log.warning("AMQP connection failed: %s", exc)
            finally:
                self.subscribed.clear()
                for name in sorted(self.reading):
                    self._release(name, "connection closed")
                self.consuming.clear()
                self.reading.clear()
                self._queues.clear()
                self._channel = self._confirm = None
                conn, self._conn = self._conn, None
                if conn is not None and conn.is_open:
                    with _closed_ok():
                        conn.close()
            if self._connected:  # a connection that worked: retry soon, then back off
                delay = self.cfg.reconnect_min
            if self._stop.wait(delay * random.uniform(0.5, 1.0)):
                break
            delay = min(delay * 2, self.cfg.reconnect_max)

    def _session(self) -> None:
        conn = pika.BlockingConnection(self._params())
        host = conn._impl.params.host, conn._impl.params.port  # pika: no public accessor
        ch = conn.channel()
        self._declare(ch)
        ch.basic_qos(prefetch_count=self.cfg.prefetch)
        ch.add_on_cancel_callback(self._on_cancel)
        confirm = conn.channel()
        confirm.confirm_delivery()
        self.epoch += 1
        self._conn, self._channel, self._confirm = conn, ch, confirm
        log.info("connected to AMQP node %s:%d epoch=%d", *host, self.epoch)
        home = [PARTITION.format(p) for p in self.cfg.home]
        rest = [PARTITION.format(p) for p in range(self.cfg.partitions) if p not in self.cfg.home]
        for name in [*home, UNROUTED]:
            self._consume(ch, name)
        if home:
            conn.call_later(self.cfg.standby_delay, functools.partial(self._consume_all, ch, rest))
        else:
            self._consume_all(ch, rest)
        self.subscribed.set()
        self._connected = True
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.5)
        self.subscribed.clear()
        conn.process_data_events(time_limit=0)  # acknowledgements handed over before stop()
        ch.close()  # unacknowledged messages go back to their queues now, not at a timeout

    def _declare(self, ch: BlockingChannel) -> None:
        """The topology, idempotent: every collector declares it on every connection."""
        ch.exchange_declare(UNROUTED, exchange_type="fanout", durable=True)
        ch.queue_declare(UNROUTED, durable=True, arguments=QUEUE_ARGS)
        ch.queue_bind(UNROUTED, UNROUTED)
        ch.exchange_declare(
            ROUTE, exchange_type="topic", durable=True, arguments={"alternate-exchange": UNROUTED}
        )
        for pattern in BINDINGS:
            ch.exchange_bind(destination=ROUTE, source=SOURCE, routing_key=pattern)
        for p in range(self.cfg.partitions):
            ch.queue_declare(PARTITION.format(p), durable=True, arguments=QUEUE_ARGS)

    def _consume_all(self, ch: BlockingChannel, names: list[str]) -> None:
        if ch.is_open:
            for name in names:
                self._consume(ch, name)

    def _consume(self, ch: BlockingChannel, name: str) -> None:
        handler = self._on_unrouted if name == UNROUTED else self._on_message
        tag = ch.basic_consume(name, functools.partial(handler, self.epoch), auto_ack=False)
        self._queues[tag] = name
        self.consuming.add(name)
        log.info("subscribed queue=%s (active, or waiting behind another collector)", name)

    def _on_message(
        self,
        epoch: int,
        ch: BlockingChannel,
        method: Any,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        queue_name = self._queues.get(method.consumer_tag)
        if queue_name is not None and queue_name not in self.reading:
            # AMQP 0-9-1 does not tell a waiting consumer it became the active one: its first
            # delivery does. (An active consumer of a silent partition is not seen.)
            self.reading.add(queue_name)
            log.info("reading queue=%s (this collector is its active consumer)", queue_name)
            if self.on_acquired is not None and queue_name.startswith(PARTITION_PREFIX):
                part = int(queue_name.removeprefix(PARTITION_PREFIX))
                self.on_acquired(part, self._sites_of(part))
        self.inbox.put(Inbound(topic_of(method.routing_key), body, method.delivery_tag, 1, epoch))

    def _sites_of(self, part: int) -> Callable[[str], bool]:
        n = self.cfg.partitions
        return lambda site: partition_of(site, n) == part

    def _on_cancel(self, frame: Any) -> None:
        """The broker cancelled a consumer (its queue deleted or unavailable): not ours now."""
        name = self._queues.pop(frame.method.consumer_tag, None)
        log.warning("consumer cancelled by the broker queue=%s", name or "?")
        if name is not None:
            self._release(name, "consumer cancelled by the broker")
            self.consuming.discard(name)

    def _release(self, name: str, why: str) -> None:
        """This collector no longer reads queue `name`: its sites leave current state."""
        if name not in self.reading:
            return
        self.reading.discard(name)
        if self.on_released is None or not name.startswith(PARTITION_PREFIX):
            return
        part = int(name.removeprefix(PARTITION_PREFIX))
        gone = self.on_released(part, self._sites_of(part))
        log.info(
            "stopped reading queue=%s (%s): %d sites left this collector's current state: %s",
            name,
            why,
            len(gone),
            " ".join(gone[:20]) + (" …" if len(gone) > 20 else ""),
        )

    def _on_unrouted(
        self,
        epoch: int,
        ch: BlockingChannel,
        method: Any,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        """A site's first message: bind the site to its partition, then put the message there."""
        parts = method.routing_key.split(".")
        site = topic_of(parts[1]) if len(parts) >= 3 and parts[0] == TOPIC_PREFIX else ""
        confirm = self._confirm
        if not _SITE.fullmatch(site) or confirm is None:
            # Not a site's topic: the pipeline rejects it loudly (counted, set aside), then acks.
            self._on_message(epoch, ch, method, properties, body)
            return
        if site not in self._bound:  # messages queued before the binding existed: bind once
            part = partition_of(site, self.cfg.partitions)
            ch.queue_bind(PARTITION.format(part), ROUTE, routing_key=f"{TOPIC_PREFIX}.{parts[1]}.#")
            self._bound.add(site)
            log.info("site bound to partition site=%s partition=%d", site, part)
        # With confirms: the broker has it in the partition's queue (raises if unroutable)
        # before the copy in pantau.unrouted is acknowledged.
        confirm.basic_publish(ROUTE, method.routing_key, body, properties, mandatory=True)
        ch.basic_ack(method.delivery_tag)

    def _ack_now(self, tag: int, epoch: int) -> None:
        ch = self._channel
        if ch is not None and ch.is_open and epoch == self.epoch:
            ch.basic_ack(tag)

    def _publish_now(self, routing_key: str, payload: bytes) -> None:
        ch = self._channel
        if ch is not None and ch.is_open:
            ch.basic_publish(SOURCE, routing_key, payload, pika.BasicProperties(delivery_mode=2))


class _closed_ok:
    """Suppress pika's errors for a connection or channel that closed meanwhile."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        return exc_type is not None and issubclass(exc_type, (pika.exceptions.AMQPError, OSError))
