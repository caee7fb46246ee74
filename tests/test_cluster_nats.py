"""The facts docs/scaling.md's comparison rests on, for NATS: a real three-node nats-server
cluster (JetStream, MQTT) on loopback.

A collector-like MQTT client with a persistent session subscribes on node 2 and goes away; a
site publishes 500 QoS 1 messages to node 1 and gets every PUBACK; node 1 is killed with
SIGKILL; the collector resumes its session on node 3 and receives every message. So NATS
replicates MQTT sessions and QoS 1 messages (JetStream, 3 replicas) across the cluster: a
persistent session is not tied to one node.
"""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.nats import NatsCluster

COUNT = 500


def test_pubacked_messages_and_sessions_survive_a_node_kill(tmp_path: Path):
    got: set[int] = set()
    lock = threading.Lock()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            got.add(int(msg.payload))

    def session(port: int, subscribe: bool) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="noc-collector",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        client.on_message = on_message
        subscribed = threading.Event()
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", port, keepalive=10)
        client.loop_start()
        if subscribe:
            client.subscribe("pantau/#", qos=1)
            assert subscribed.wait(20), "no SUBACK"
        # else: the session holds the subscription; a CONNECT refused while the cluster
        # elects new stream leaders is retried by paho's loop
        return client

    with NatsCluster(tmp_path / "nats") as cluster:
        collector = session(cluster.mqtt_ports[1], subscribe=True)
        collector.loop_stop()
        collector.disconnect()

        site = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="site", protocol=mqtt.MQTTv311)
        site.connect("127.0.0.1", cluster.mqtt_ports[0])
        site.loop_start()
        infos = [site.publish(f"pantau/s{i % 5}/d/metrics", b"%d" % i, qos=1) for i in range(COUNT)]
        for info in infos:
            info.wait_for_publish(30)
        assert all(info.is_published() for info in infos)
        site.loop_stop()

        cluster.nodes[0].kill()
        collector = session(cluster.mqtt_ports[2], subscribe=False)
        try:
            procs.wait_until(lambda: len(got) == COUNT, 60, "every message after the kill")
        finally:
            collector.loop_stop()
            collector.disconnect()
    assert got == set(range(COUNT))
