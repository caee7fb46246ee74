"""Real agents on RabbitMQ's MQTT plugin (MQTT 3.1.1): refused publishes, several broker addresses.

RabbitMQ 3.10's MQTT plugin closes an MQTT 5 CONNECT, so agents on the cluster run with
`broker.protocol: 3.1.1`. There a PUBACK has no reason code, and the plugin answers a publish
its user may not write by closing the connection (measured here: the client sees "unspecified
error", RabbitMQ logs the access refusal). agent/publisher.py takes an item that is alone in
flight when the connection drops twice in a row as refused: counted, logged, deferred, and the
items behind it keep going out. The first test gives a real RabbitMQ user no write permission on
one device's topic and checks exactly that; the second moves real agents between the nodes of
a three-node cluster while one of them is killed (see tests/test_cluster_rabbitmq.py for the
collectors' side with test publishers).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.rabbitmq import RabbitCluster
from pantau.wire import decode_sample_set

pytestmark = pytest.mark.servers

SITE = "rq-1"
DEVICES = {"radio": "ceraos", "lte": "rutos-rutx_rut955", "gw": "routeros_rb750gr3"}


class Listener:
    """Every sample set the broker routes for a site, per device (MQTT 3.1.1, QoS 0, guest)."""

    def __init__(self, port: int, site: str) -> None:
        self.seqs: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"listener-{site}", protocol=mqtt.MQTTv311
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.subscribe(f"pantau/{site}/+/metrics", qos=0)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        _, site, device, _ = msg.topic.split("/")
        sample = decode_sample_set(msg.payload, site=site, device=device)
        with self._lock:
            self.seqs.setdefault(sample.device, []).append(sample.seq)

    def count(self, device: str) -> int:
        with self._lock:
            return len(self.seqs.get(device, []))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def last_seqs(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT device, last FROM sequences"))
    finally:
        db.close()


def outbox_items(path: Path) -> dict[str, list[int]]:
    """device → sequence numbers still in the agent's outbox (read-only, agent running)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT device, seq FROM outbox WHERE kind=0").fetchall()
    finally:
        db.close()
    out: dict[str, list[int]] = {}
    for device, seq in rows:
        out.setdefault(device, []).append(seq)
    return out


def test_a_topic_the_broker_refuses_is_counted_deferred_and_does_not_wedge_the_outbox(
    tmp_path: Path, snmpsim
):
    with RabbitCluster(tmp_path / "rabbit", size=1) as cluster:
        node = cluster.nodes[0]
        node.ctl("add_user", SITE, "site-password")
        node.ctl("set_permissions", "-p", "/", SITE, ".*", ".*", ".*")
        # write: the site's topics except the gw device's (MQTT / is . in routing keys)
        node.ctl(
            "set_topic_permissions",
            "-p",
            "/",
            SITE,
            "amq.topic",
            rf"^pantau\.{SITE}\.(?!gw\.)",
            ".*",
        )
        (tmp_path / "pw").write_text("site-password\n")
        (tmp_path / "pw").chmod(0o600)
        listener = Listener(node.mqtt_port, SITE)
        cfg = procs.agent_config(
            tmp_path / "agent.yaml",
            site=SITE,
            broker_port=node.mqtt_port,
            devices=[procs.snmpsim_device(n, c, snmpsim.port) for n, c in DEVICES.items()],
            interval=0.5,
            broker={
                "protocol": "3.1.1",
                "confirm": "off",
                "username": SITE,
                "password_file": str(tmp_path / "pw"),
            },
            outbox={"shutdown_timeout": 10.0, "resend_after": 2.0, "resend_max": 4.0},
        )
        agent = procs.agent(cfg, tmp_path / "agent.log").start()
        try:
            refused = f"broker refused a publish topic=pantau/{SITE}/gw/metrics reason_code=135"
            procs.wait_until(lambda: refused in agent.log(), 60, "the refusal detected")
            # the refused device's items stay in the outbox; the others keep going out
            before = {d: listener.count(d) for d in ("radio", "lte")}
            procs.wait_until(
                lambda: all(listener.count(d) >= before[d] + 10 for d in before),
                60,
                "the other devices delivered after the refusal",
            )
            assert listener.count("gw") == 0
            held = outbox_items(tmp_path / f"{SITE}-outbox.sqlite")
            assert len(held.get("gw", [])) >= 3, held

            # tried again later (deferred, not dropped), the connection closed again, and the
            # other devices still go on; the publisher says it is refused (not ready)
            def closed() -> int:  # RabbitMQ's own account of the connections it closed
                return node.log_tail(100_000).count("is closing due to an authorization failure")

            drops = closed()
            procs.wait_until(lambda: closed() > drops + 1, 60, "the refused topic tried again")
            assert "the broker takes publishes to" not in agent.log()
            before = {d: listener.count(d) for d in ("radio", "lte")}
            procs.wait_until(
                lambda: all(listener.count(d) >= before[d] + 5 for d in before),
                30,
                "the other devices still delivered",
            )
            assert agent.running
        finally:
            code = agent.stop(30)
            listener.close()
        assert code == 0, agent.log()[-2000:]
        log = agent.log()
        outbox = tmp_path / f"{SITE}-outbox.sqlite"
        left, last = outbox_items(outbox), last_seqs(outbox)
        # nothing of gw was delivered and all of it is kept; every other sample set was
        # delivered or is still in the outbox (the shutdown drains what fits)
        assert sorted(left["gw"]) == list(range(1, last["gw"] + 1))
        for device in ("radio", "lte"):
            got = set(listener.seqs[device]) | set(left.get(device, []))
            assert got == set(range(1, last[device] + 1)), f"{device}: a sample set missing"
        assert "gw" not in listener.seqs
        assert "refused_total=1" in log  # logged once a minute, counted each time
