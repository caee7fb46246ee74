"""Client-id takeover against a real Mosquitto with the shipped deploy/mosquitto files.

MQTT gives a session to whoever presents its client id: with a free choice, a site's credentials
with the id `pantau-collector` cut the collector off and resumed (or wiped) its persistent
session; 13 takeovers in 40 s lost 31 % of an honest site's sample sets. The shipped pantau.conf
makes the username the client id (use_username_as_clientid), so a site can only ever be itself.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack import procs
from devstack.servers import Mosquitto, free_port
from pantau.wire import SampleSet, encode_sample_set

REPO = Path(__file__).resolve().parent.parent
ENROLL = REPO / "deploy" / "mosquitto" / "enroll.sh"
CONF = REPO / "deploy" / "mosquitto" / "pantau.conf"
ACL = REPO / "deploy" / "mosquitto" / "pantau.acl"


class Pki:
    def __init__(self, base: Path) -> None:
        self.ca_dir = base / "ca"
        self.passwd = base / "pantau.passwd"
        self.out = base / "bundles"
        self.out.mkdir(parents=True, exist_ok=True)

    def enroll(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PANTAU_PKI": str(self.ca_dir),
            "PANTAU_PASSWD": str(self.passwd),
            "PANTAU_OUT": str(self.out),
        }
        result = subprocess.run(
            [str(ENROLL), *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert (result.returncode == 0) == ok, result.stderr + result.stdout
        return result

    def password(self, name: str) -> str:
        bundle = self.out / f"pantau-bundle-{name}"
        file = "collector-mqtt-password" if name.startswith("pantau-collector") else "mqtt-password"
        return (bundle / file).read_text().strip()

    def cert(self, name: str) -> tuple[Path, Path]:
        bundle = self.out / f"pantau-bundle-{name}"
        return bundle / "site.crt", bundle / "site.key"

    @property
    def ca(self) -> Path:
        return self.ca_dir / "ca.pem"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.enroll("ca")
    pki.enroll("broker", "localhost", "127.0.0.1")
    pki.enroll("site", "site-a", "--password")
    pki.enroll("site", "site-b", "--password")
    pki.enroll("site", "site-c", "--cert")
    pki.enroll("collector")
    return pki


class Broker:
    """The shipped pantau.conf and pantau.acl, listeners moved to free ports. Clients here use
    only those two TLS listeners (the fixture's own plain listener is not part of the shipped
    config)."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        self.tls_port = free_port()
        self.cert_port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        acl = workdir / "pantau.acl"
        shutil.copy(ACL, acl)
        conf = (
            CONF.read_text()
            .replace("/etc/mosquitto/pantau-ca", str(pki.ca_dir))
            .replace("/etc/mosquitto/pantau.passwd", str(pki.passwd))
            .replace("/etc/mosquitto/pantau.acl", str(acl))
            .replace("listener 8883", f"listener {self.tls_port} 127.0.0.1")
            .replace("listener 8884", f"listener {self.cert_port} 127.0.0.1")
        )
        assert str(self.tls_port) in conf and str(self.cert_port) in conf
        self.server = Mosquitto(workdir / "mosquitto", extra_conf=conf)


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", pki)
    b.server.start()
    try:
        yield b
    finally:
        b.server.stop()


class Client:
    """A bare MQTT 5 client over TLS that records what happens to it."""

    def __init__(
        self,
        pki: Pki,
        port: int,
        client_id: str,
        user: str | None = None,
        password: str | None = None,
        *,
        cert: tuple[Path, Path] | None = None,
        clean_start: bool = False,
        session_expiry: int = 3600,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.client.tls_set_context(ctx)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.received: list[tuple[str, bytes]] = []
        self.disconnects: list[Any] = []
        self.connects: list[tuple[Any, bool]] = []
        self.acks: dict[int, Any] = {}
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self.client.on_connect = lambda c, u, f, rc, p: self.connects.append(
            (rc, f.session_present)
        )
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnects.append(rc)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry
        self.client.connect(
            "127.0.0.1", port, keepalive=30, clean_start=clean_start, properties=props
        )
        self.client.loop_start()
        procs.wait_until(lambda: self.connects, 5, "CONNACK")
        assert not self.connects[0][0].is_failure, self.connects[0][0]

    @property
    def session_present(self) -> bool:
        return self.connects[0][1]

    def subscribe(self, topic: str) -> None:
        result = self.client.subscribe(topic, qos=1)
        assert result[0] == mqtt.MQTT_ERR_SUCCESS
        time.sleep(0.3)

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        procs.wait_until(lambda: info.mid in self.acks, 5, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sample_set(site: str, seq: int) -> bytes:
    return encode_sample_set(
        SampleSet(site, "radio", seq, int(time.time() * 1000), 1, False, "timeout")
    )


def test_a_site_presenting_the_collectors_client_id_cannot_take_its_session(
    pki: Pki, broker: Broker
) -> None:
    collector = Client(
        pki,
        broker.tls_port,
        "pantau-collector",
        "pantau-collector",
        pki.password("pantau-collector"),
    )
    collector.subscribe("pantau/#")
    honest = Client(pki, broker.tls_port, "pantau-agent-site-b", "site-b", pki.password("site-b"))
    thieves: list[Client] = []
    try:
        # site-a's credentials, the collector's client id, over and over: resume (clean_start
        # false) and wipe (clean_start true), by password and by client certificate.
        for i in range(6):
            if i % 3 == 2:
                thief = Client(
                    pki,
                    broker.cert_port,
                    "pantau-collector",
                    cert=pki.cert("site-c"),
                    clean_start=True,
                )
            else:
                thief = Client(
                    pki,
                    broker.tls_port,
                    "pantau-collector",
                    "site-a",
                    pki.password("site-a"),
                    clean_start=i % 2 == 1,
                )
            thieves.append(thief)
            if i == 0:
                assert not thief.session_present  # not the collector's session
            thief.client.subscribe("pantau/#", qos=1)
            ack = honest.publish("pantau/site-b/radio/metrics", sample_set("site-b", i + 1))
            assert not ack.is_failure
            time.sleep(0.2)
            thief.close()
        procs.wait_until(lambda: len(collector.received) >= 6, 5, "the honest site's messages")
        time.sleep(0.5)
        assert collector.disconnects == [], "the collector was cut off"
        assert collector.client.is_connected()
        assert [t for t, _ in collector.received] == ["pantau/site-b/radio/metrics"] * 6
        assert all(t.received == [] for t in thieves), "a site got the collector's messages"
        log = broker.server.log_path.read_text()
        assert log.count(" as pantau-collector (") == 1  # the collector itself, once
        assert log.count(" as site-a (") == 4 and log.count(" as site-c (") == 2
    finally:
        for c in (*thieves, honest, collector):
            c.close()


def test_the_collectors_queued_messages_survive_a_takeover_attempt_while_it_is_away(
    pki: Pki, broker: Broker
) -> None:
    password = pki.password("pantau-collector")
    collector = Client(pki, broker.tls_port, "pantau-collector", "pantau-collector", password)
    collector.subscribe("pantau/#")
    collector.close()  # away: the persistent session queues for it
    honest = Client(pki, broker.tls_port, "pantau-agent-site-b", "site-b", pki.password("site-b"))
    try:
        for seq in range(1, 6):
            honest.publish("pantau/site-b/radio/metrics", sample_set("site-b", seq))
        # site-a tries to resume the collector's session, then to wipe it
        for clean in (False, True):
            thief = Client(
                pki,
                broker.tls_port,
                "pantau-collector",
                "site-a",
                pki.password("site-a"),
                clean_start=clean,
            )
            time.sleep(0.5)
            assert not thief.session_present and thief.received == []
            thief.close()
        back = Client(pki, broker.tls_port, "pantau-collector", "pantau-collector", password)
        try:
            assert back.session_present
            procs.wait_until(lambda: len(back.received) >= 5, 5, "the queued messages")
            assert len(back.received) == 5
        finally:
            back.close()
    finally:
        honest.close()


def test_the_collectors_client_id_is_its_username(pki: Pki, broker: Broker) -> None:
    """Whatever id the collector sends, its session is its username's: a collector restarted
    with another mqtt.client_id still finds what was queued for it."""
    password = pki.password("pantau-collector")
    first = Client(pki, broker.tls_port, "pantau-collector-1", "pantau-collector", password)
    first.subscribe("pantau/#")
    first.close()
    honest = Client(pki, broker.tls_port, "x", "site-b", pki.password("site-b"))
    try:
        honest.publish("pantau/site-b/radio/metrics", sample_set("site-b", 1))
    finally:
        honest.close()
    again = Client(pki, broker.tls_port, "something-else", "pantau-collector", password)
    try:
        assert again.session_present
        procs.wait_until(lambda: len(again.received) == 1, 5, "the queued message")
    finally:
        again.close()
    log = broker.server.log_path.read_text()
    assert "as pantau-collector" in log and "as pantau-collector-1" not in log


def test_no_site_may_be_enrolled_under_a_collector_name(pki: Pki) -> None:
    for name in ("pantau-collector", "pantau-collector-2"):
        result = pki.enroll("site", name, ok=False)
        assert "collector" in result.stderr


def test_collector_config_defaults_its_client_id_to_its_username() -> None:
    from collector.config import MqttConfig

    assert MqttConfig().client_id == "pantau-collector"
    assert MqttConfig(username="pantau-collector-2").client_id == "pantau-collector-2"
    assert MqttConfig(username="pantau-collector", client_id="c1").client_id == "c1"
