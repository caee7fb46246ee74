"""A real Mosquitto with the shipped deploy/mosquitto files, a PKI made by the shipped enroll.sh,
and a bare MQTT 5 client over TLS: what tests/test_tls_acl.py and tests/test_takeover.py share."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack import procs
from devstack.servers import Mosquitto, free_port, tcp_port_open, wait_for
from pantau.wire import SampleSet, encode_sample_set

REPO = Path(__file__).resolve().parent.parent.parent
ENROLL = REPO / "deploy" / "mosquitto" / "enroll.sh"
CONF = REPO / "deploy" / "mosquitto" / "pantau.conf"
ACL = REPO / "deploy" / "mosquitto" / "pantau.acl"


class Pki:
    """The broker-side identities, made with enroll.sh exactly as docs/deploy.md says."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ca_dir = base / "ca"
        self.passwd = base / "pantau.passwd"
        self.out = base / "bundles"
        self.out.mkdir(parents=True, exist_ok=True)

    def enroll(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """Run enroll.sh; assert that it succeeded (or, with ok=False, that it failed)."""
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

    def bundle(self, name: str) -> Path:
        return self.out / f"pantau-bundle-{name}"

    def password(self, name: str) -> str:
        """The MQTT password in the bundle of a site or of the collector."""
        file = "collector-mqtt-password" if name.startswith("pantau-collector") else "mqtt-password"
        return (self.bundle(name) / file).read_text().strip()

    def cert(self, name: str) -> tuple[Path, Path]:
        bundle = self.bundle(name)
        return bundle / "site.crt", bundle / "site.key"

    @property
    def ca(self) -> Path:
        return self.ca_dir / "ca.pem"


def enrolled_pki(base: Path, cert_sites: tuple[str, ...] = ("site-c",)) -> Pki:
    """A CA, the broker (localhost, 127.0.0.1), site-a and site-b by password, `cert_sites` by
    client certificate, and the collector."""
    pki = Pki(base)
    pki.enroll("ca")
    pki.enroll("broker", "localhost", "127.0.0.1")
    pki.enroll("site", "site-a", "--password")
    pki.enroll("site", "site-b", "--password")
    for site in cert_sites:
        pki.enroll("site", site, "--cert")
    pki.enroll("collector")
    return pki


class SecureBroker:
    """Mosquitto with the shipped pantau.conf and pantau.acl: ports 8883/8884 moved to free
    ports, paths to the test's PKI. (The fixture's own plain listener stays, but anonymous access
    is off; clients use only the two TLS listeners.)"""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        self.tls_port = free_port()
        self.cert_port = free_port()
        acl = workdir / "pantau.acl"
        workdir.mkdir(parents=True, exist_ok=True)
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

    def __enter__(self) -> SecureBroker:
        self.server.start()
        # Mosquitto is "ready" when its plain listener answers; the TLS listeners (loading
        # certificates and the CRL) may be bound a moment later on a loaded machine.
        for port in (self.tls_port, self.cert_port):
            wait_for(lambda p=port: tcp_port_open(p), 10, f"mosquitto TLS listener {port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


class Client:
    """A bare paho client over TLS that records what happens to it, to do what an agent would
    never do on its own. With `session_expiry`, it asks for a persistent session (MQTT 5)."""

    def __init__(
        self,
        ca: Path,
        port: int,
        user: str | None = None,
        password: str | None = None,
        *,
        client_id: str = "",
        protocol: int = mqtt.MQTTv5,
        cert: tuple[Path, Path] | None = None,
        clean_start: bool | int = mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        session_expiry: int | None = None,
        keepalive: int = 60,
        settle: float = 0.2,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        ctx = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.client.tls_set_context(ctx)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.settle = settle
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
        props = None
        if session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry
        self.client.connect(
            "127.0.0.1", port, keepalive=keepalive, clean_start=clean_start, properties=props
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
        time.sleep(self.settle)

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        procs.wait_until(lambda: info.mid in self.acks, 5, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sample_set(site: str, device: str = "radio", seq: int = 1) -> bytes:
    """An encoded sample set of a device that did not answer (up=0: data too)."""
    return encode_sample_set(
        SampleSet(
            site=site,
            device=device,
            seq=seq,
            ts_ms=int(time.time() * 1000),
            duration_ms=1,
            up=False,
            reason="timeout",
        )
    )
