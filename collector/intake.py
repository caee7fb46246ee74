"""MQTT intake: the only module of the collector that imports paho-mqtt.

aiomqtt acknowledges QoS 1 messages as soon as they arrive, before anyone has stored them, so the
collector uses paho-mqtt's manual acknowledgements instead: a message is acknowledged only when
the pipeline says its points are in InfluxDB (or it was rejected and set aside). The session is
persistent (fixed client id, MQTT 5 session expiry), so whatever is not acknowledged when the
collector dies is redelivered to it, or to a sibling in the same shared-subscription group.
MQTT 5 Receive Maximum bounds how many unacknowledged messages the broker sends us at once.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collector.config import MqttConfig
from pantau.wire import TOPIC_PREFIX

log = logging.getLogger("pantau.collector.mqtt")

SUBSCRIPTIONS = (
    f"{TOPIC_PREFIX}/+/+/metrics",
    f"{TOPIC_PREFIX}/+/+/gap",
    f"{TOPIC_PREFIX}/+/+/event",
    f"{TOPIC_PREFIX}/+/+/event/gap",  # events the agent dropped (collector.events)
    f"{TOPIC_PREFIX}/+/status",
    f"{TOPIC_PREFIX}/+/names",  # after status: a site's names are checked against its status
)

EVERY_MEMBER = (f"{TOPIC_PREFIX}/+/status", f"{TOPIC_PREFIX}/+/names")
"""Subscribed outside a shared-subscription group: every member gets every site's status and
names. A shared subscription gets no retained messages (MQTT 5 §4.8.2), and a site's names are
checked against its status, so in the group they would reach a member that never saw that
site's status (`unknown_site`) or nobody at all after a restart. Births and heartbeats carry
their own timestamp, so each member writes the identical point (InfluxDB keeps one); only a
will, stamped when received, is written once per member."""


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    epoch: int  # which connection delivered it: acks never cross a reconnect


class Intake:
    """Subscribes and feeds `inbox`; `ack(msg)` releases a message once it is durable."""

    def __init__(self, cfg: MqttConfig, inbox: queue.Queue[Inbound]) -> None:
        self.cfg = cfg
        self.inbox = inbox
        self.epoch = 0
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self._pending_sub: int | None = None
        # Called (on paho's thread) after each connection's subscription: what must be said
        # again to a broker that may have lost it (the retained pantau/confirm, service.py).
        self.on_subscribed: Callable[[], None] | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 30)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            ctx = ssl.create_default_context(
                cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None
            )
            if cfg.tls.cert_file and cfg.tls.key_file:
                ctx.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
            client.tls_set_context(ctx)
        self._client = client

    def topics(self) -> list[str]:
        if self.cfg.shared_group:
            return [
                t if t in EVERY_MEMBER else f"$share/{self.cfg.shared_group}/{t}"
                for t in SUBSCRIPTIONS
            ]
        return list(SUBSCRIPTIONS)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: no annotations
        props.SessionExpiryInterval = int(self.cfg.session_expiry)
        props.ReceiveMaximum = self.cfg.receive_maximum
        self._client.connect_async(
            self.cfg.host, self.cfg.port, self.cfg.keepalive, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def alive(self) -> bool:
        """The MQTT network thread runs (an exception in a callback would end it)."""
        thread = self._client._thread  # paho keeps no public handle on it
        return thread is not None and thread.is_alive()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """QoS 1 publish (acknowledgements to the sites); False when not connected."""
        if not self.subscribed.is_set():
            return False
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def ack(self, msg: Inbound) -> None:
        if msg.qos == 0:
            return
        with self._lock:
            if msg.epoch != self.epoch:
                return  # the broker redelivers it on the new connection
            self._client.ack(msg.mid, msg.qos)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: object,
        properties: object,
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning(
                "broker refused connection host=%s port=%s reason=%s",
                self.cfg.host,
                self.cfg.port,
                reason,
            )
            return
        with self._lock:
            self.epoch += 1
        log.info(
            "connected to broker host=%s port=%s session_present=%s",
            self.cfg.host,
            self.cfg.port,
            flags.session_present,
        )
        result, mid = client.subscribe([(t, 1) for t in self.topics()])
        self._pending_sub = mid

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties,
    ) -> None:
        failed = [r for r in reason_codes if getattr(r, "is_failure", False)]
        if failed:
            log.error("subscription refused by broker: %s", failed)
            return
        if mid == self._pending_sub:
            self.subscribed.set()
            log.info("subscribed topics=%s", ",".join(self.topics()))
            if self.on_subscribed is not None:
                self.on_subscribed()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        self.subscribed.clear()
        log.warning("disconnected from broker reason=%s", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.inbox.put(
            Inbound(message.topic, bytes(message.payload), message.mid, message.qos, self.epoch)
        )
