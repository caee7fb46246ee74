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
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
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


# -- real agents on the three-node cluster --------------------------------------------------

CLUSTER_SITES = ["cl-1", "cl-2", "cl-3"]  # partitions 3, 0, 2 of 4: each collector reads one
PARTITIONS_WITH_SITES = {0, 2, 3}


class OnlineWatch(threading.Thread):
    """Scrapes every collector's pantau_site_online twice a second while the test runs: the
    alerting view *throughout*, not only at the end."""

    def __init__(self, collectors: list) -> None:
        super().__init__(name="online-watch", daemon=True)
        self.collectors = collectors
        self.halt = threading.Event()
        self.samples: list[tuple[float, dict[str, list[float]]]] = []  # (t, site → values)

    def run(self) -> None:
        while not self.halt.wait(0.5):
            seen: dict[str, list[float]] = {}
            for c in self.collectors:
                try:
                    metrics = procs.scrape(c.http)
                except OSError:
                    continue  # a killed collector: no view
                for (name, labels), value in metrics.items():
                    if name == "pantau_site_online":
                        seen.setdefault(dict(labels)["site"], []).append(value)
            self.samples.append((time.monotonic(), seen))

    def false_offline(self, since: float, until: float) -> list[tuple[float, str]]:
        """Sites some collector said offline between the two times (agents all running)."""
        return [
            (t, site)
            for t, seen in self.samples
            if since <= t <= until
            for site, values in seen.items()
            if site in CLUSTER_SITES and 0.0 in values
        ]

    def longest_unseen(self, since: float, until: float) -> float:
        """The longest time any site was online on no collector (absent or not 1)."""
        worst = 0.0
        for site in CLUSTER_SITES:
            start: float | None = None
            for t, seen in self.samples:
                if not since <= t <= until:
                    continue
                if 1.0 in seen.get(site, []):
                    if start is not None:
                        worst = max(worst, t - start)
                    start = None
                elif start is None:
                    start = t
            if start is not None:
                worst = max(worst, until - start)
        return worst


def stored_points(victoria) -> dict[str, list[tuple[int, int]]]:
    """site/device → (sequence number, timestamp) of every point stored (no dedup)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for row in victoria.export('pantau_poll_seq{site=~"cl-.*"}'):
        key = f"{row['metric']['site']}/{row['metric']['device']}"
        pairs = zip(row["values"], row["timestamps"], strict=True)
        out.setdefault(key, []).extend((int(v), int(t)) for v, t in pairs)
    return out


def test_real_agents_lose_nothing_when_a_node_and_a_collector_die(tmp_path: Path, snmpsim):
    from devstack.servers import VictoriaMetrics
    from tests.test_cluster_rabbitmq import Collector, lost, reader

    with (
        RabbitCluster(tmp_path / "rabbit") as cluster,
        VictoriaMetrics(tmp_path / "vm") as victoria,  # no dedup: every write is counted
    ):
        n1, n2, n3 = cluster.nodes
        # the 2–3 collectors: three, each with one site's partition at home (cl-2,
        # cl-3, cl-1); collector-1 on node 3, the node killed below
        amqp = [n.amqp_port for n in (n3, n1, n2, n3, n1)]
        c1 = Collector(tmp_path, 1, amqp[0:3], victoria.url, home=[0, 1])
        c2 = Collector(tmp_path, 2, amqp[1:4], victoria.url, home=[2])
        c3 = Collector(tmp_path, 3, amqp[2:5], victoria.url, home=[3])
        collectors = [c1, c2, c3]
        ports = cluster.mqtt_ports
        agents = []
        for i, site in enumerate(CLUSTER_SITES):  # site i connects to node i first
            order = ports[i:] + ports[:i]
            cfg = procs.agent_config(
                tmp_path / f"{site}.yaml",
                site=site,
                broker_port=1,
                devices=[procs.snmpsim_device(n, c, snmpsim.port) for n, c in DEVICES.items()],
                interval=1.0,
                broker={
                    "hosts": [f"127.0.0.1:{p}" for p in order],
                    "protocol": "3.1.1",
                    "confirm": "on",
                    "reconnect_max": 1.0,
                },
                outbox={
                    "heartbeat": 1.0,
                    "shutdown_timeout": 20.0,
                    "resend_after": 2.0,
                    "resend_max": 4.0,
                },
            )
            doc = yaml.safe_load(cfg.read_text())
            del doc["broker"]["host"], doc["broker"]["port"]  # hosts instead
            cfg.write_text(yaml.safe_dump(doc))
            agents.append(procs.agent(cfg, tmp_path / f"{site}.log"))
        watch = OnlineWatch(collectors)
        try:
            for c in collectors:
                c.start(wait=False)
            for c in collectors:
                procs.wait_until(c.ready, 60, f"{c.name} ready")
            for a in agents:
                a.start()
            procs.wait_until(
                lambda: all(
                    any(
                        k.startswith(f"{s}/")
                        for c in collectors
                        for k in c.counter("pantau_samples_received_total")
                    )
                    for s in CLUSTER_SITES
                ),
                60,
                "every site's sample sets at a collector",
            )
            time.sleep(3)
            watch.start()
            t_start = time.monotonic()
            # each collector reads its home partition with a site, waiting on the others
            assert [reading(c) for c in collectors] == [{0}, {2}, {3}], [
                readyz(c) for c in collectors
            ]
            procs.wait_until(lambda: "cl-2" in site_online_of(c1), 10, "cl-2 on collector-1")

            n3.kill()  # cl-3's node, collector-1's node
            # collector-1 loses its connection, so partition 0: cl-2 leaves its current state
            # at once (another collector reads it now; no stale "online" until silent_after)
            released = (
                "stopped reading queue=pantau.part.0 (connection closed): 1 sites left this "
                "collector's current state: cl-2"
            )
            procs.wait_until(lambda: released in c1.proc.log(), 20, "collector-1 released cl-2")
            assert "cl-2" not in site_online_of(c1)
            procs.wait_until(
                lambda: any("cl-2" in site_online_of(c) for c in (c2, c3)), 20, "cl-2 read again"
            )
            t_node = time.monotonic()
            procs.wait_until(
                lambda: agents[2].log().count("connected to broker") >= 2,
                30,
                "cl-3 on another node",
            )
            time.sleep(3)
            n3.start()
            cluster.wait_clustered()
            time.sleep(3)

            victim = reader(collectors)
            victim.proc.kill()
            t_collector = time.monotonic()
            survivors = [c for c in collectors if c is not victim]
            # they say which partitions they hold: between them every one with a site, each
            # read by one (partition 1 has no site: waiting everywhere)
            procs.wait_until(
                lambda: set().union(*map(reading, survivors)) == PARTITIONS_WITH_SITES,
                20,
                "the survivors reading every partition with a site",
            )
            held = [partition_gauge(c) for c in survivors]
            for p in "0123":
                assert sum(h[p] for h in held) == (p != "1"), held
            time.sleep(2)
            victim.start()
            time.sleep(8)
            assert "partitions reading: none; waiting: 0 1 2 3)" in readyz(victim)
            assert partition_gauge(victim) == {p: 0.0 for p in "0123"}
            t_end = time.monotonic()
            watch.halt.set()
            watch.join(5)
            for a in agents:
                assert a.running, a.log()[-2000:]
                assert a.stop(40) == 0, a.log()[-2000:]
        except BaseException:
            for c in collectors:
                c.proc.kill()
            for a in agents:
                a.kill()
            raise
        try:
            for site, a in zip(CLUSTER_SITES, agents, strict=True):
                outbox = tmp_path / f"{site}-outbox.sqlite"
                left = outbox_items(outbox)
                # every agent stopped with an empty outbox: everything confirmed end to end
                # (cl-3 too, whose node died: its QoS 0 acknowledgement subscription moved)
                assert left == {}, (site, {d: len(s) for d, s in left.items()})
                assert "refuses the subscription" not in a.log()
            want = {
                f"{site}/{d}": list(range(1, last_seqs(tmp_path / f"{site}-outbox.sqlite")[d] + 1))
                for site in CLUSTER_SITES
                for d in DEVICES
            }

            def seqs() -> dict[str, list[int]]:
                return {k: sorted({s for s, _ in v}) for k, v in stored_points(victoria).items()}

            try:
                procs.wait_until(lambda: seqs() == want, 30, "every sample set stored")
            except TimeoutError:
                assert seqs() == want
            for key, points in stored_points(victoria).items():
                stamps: dict[int, set[int]] = {}
                for seq, ts in points:
                    stamps.setdefault(seq, set()).add(ts)
                twice = {s: t for s, t in stamps.items() if len(t) > 1}
                assert not twice, f"{key}: stored twice (two timestamps): {twice}"
                print(key, "points", len(points), "sample sets", len(stamps))
            assert lost(collectors) == {}
            # alerting view throughout: no collector said a running site offline, and the
            # longest time a site was online on no collector is printed (and bounded)
            assert watch.false_offline(t_start, t_end) == []
            unseen = watch.longest_unseen(t_start, t_end)
            print(
                f"longest a site was online on no collector: {unseen:.1f}s "
                f"(node kill at +{t_node - t_start:.1f}s, collector kill at "
                f"+{t_collector - t_start:.1f}s)"
            )
            assert unseen < 10.0, unseen
            # the agents say goodbye on stop: offline on the collector that reads them, and
            # on that one only (the others released the site when they lost its partition)
            procs.wait_until(
                lambda: all(
                    [site_online_of(c).get(s) for c in collectors].count(0.0) == 1
                    for s in CLUSTER_SITES
                ),
                20,
                "every stopped site offline",
            )
            shown = {
                s: [c.name for c in collectors if s in site_online_of(c)] for s in CLUSTER_SITES
            }
            assert all(len(names) == 1 for names in shown.values()), shown
            assert sum("next_host=" in a.log() for a in agents) >= 1  # someone moved on
        finally:
            for c in collectors:
                c.proc.stop()


def site_online_of(c) -> dict[str, float]:
    return {
        dict(labels)["site"]: value
        for (name, labels), value in procs.scrape(c.http).items()
        if name == "pantau_site_online"
    }


def readyz(c) -> str:
    return procs.http_get(f"http://127.0.0.1:{c.http}/readyz", 2)[1]


def reading(c) -> set[int]:
    """The partitions /readyz says the collector reads ("partitions reading: 0 2; …")."""
    _, found, rest = readyz(c).partition("partitions reading: ")
    text = rest.split(";", 1)[0]
    return set() if not found or text == "none" else {int(p) for p in text.split()}


def partition_gauge(c) -> dict[str, float]:
    return {
        dict(labels)["partition"]: value
        for (name, labels), value in procs.scrape(c.http).items()
        if name == "pantau_collector_partition_reading"
    }


# -- several addresses: the next at once, the backoff per round -----------------------------


def hosts_cfg(tmp_path: Path, ports: list[int], snmp_port: int):
    from agent.config import load_agent_config

    cfg = procs.agent_config(
        tmp_path / "hosts.yaml",
        site="hs-1",
        broker_port=1,
        devices=[procs.snmpsim_device("radio", "public", snmp_port)],
        broker={"reconnect_min": 0.3, "reconnect_max": 0.6},
    )
    doc = yaml.safe_load(cfg.read_text())
    del doc["broker"]["host"], doc["broker"]["port"]
    doc["broker"]["hosts"] = [f"127.0.0.1:{p}" for p in ports]
    cfg.write_text(yaml.safe_dump(doc))
    return load_agent_config(cfg)


def test_the_agent_tries_the_next_address_at_once_and_backs_off_per_round(
    tmp_path: Path, mosquitto, caplog: pytest.LogCaptureFixture
):
    import asyncio
    import logging

    from agent.outbox import Outbox
    from agent.publisher import Publisher
    from devstack.servers import free_port
    from tests.test_publisher import Subscriber, prefill, status_fn

    caplog.set_level(logging.INFO, logger="pantau.agent")
    dead1, dead2 = free_port(), free_port()  # nothing listens there
    cfg = hosts_cfg(tmp_path, [dead1, dead2, mosquitto.port], free_port("udp"))
    prefill(cfg.outbox.path, "hs-1", 20)
    box = Outbox(cfg.outbox.path, max_bytes=1 << 30, max_age_s=86400).open()
    publisher = Publisher(cfg, box, status_fn("hs-1"))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        await asyncio.wait_for(publisher.connected.wait(), 10)
        assert publisher.host == f"127.0.0.1:{mosquitto.port}"
        assert publisher.describe() == f"broker connected (127.0.0.1:{mosquitto.port})"
        for _ in range(100):
            if box.empty():
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)

    sub = Subscriber(mosquitto.port, "pantau/hs-1/+/metrics")  # someone to route them to
    try:
        asyncio.run(main())
    finally:
        box.close()
        sub.close()
    assert publisher.sent == 20
    assert len(sub.topics("/metrics")) == 20
    lines = [r.getMessage() for r in caplog.records if r.name == "pantau.agent.publisher"]
    failures = [line for line in lines if line.startswith("broker unavailable")]
    # one round: the two dead addresses, each followed by the next one at once, no backoff
    assert len(failures) == 2, failures
    assert f"next_host=127.0.0.1:{dead2}" in failures[0]
    assert f"next_host=127.0.0.1:{mosquitto.port}" in failures[1]
    assert not any("retry_in" in line for line in failures)
    assert f"connected to broker host=127.0.0.1 port={mosquitto.port}" in "\n".join(lines)

    # nothing listens anywhere: the backoff comes once per round of both addresses
    caplog.clear()
    cfg = hosts_cfg(tmp_path, [dead1, dead2], free_port("udp"))
    box = Outbox(cfg.outbox.path, max_bytes=1 << 30, max_age_s=86400).open()
    publisher = Publisher(cfg, box, status_fn("hs-1"))

    async def dark() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(dark())
    finally:
        box.close()
    failures = [
        r.getMessage()
        for r in caplog.records
        if r.name == "pantau.agent.publisher" and r.getMessage().startswith("broker unavailable")
    ]
    assert len(failures) >= 4, failures
    kinds = ["next" if "next_host=" in f else "wait" for f in failures]
    assert kinds[:4] == ["next", "wait", "next", "wait"], failures
    assert f"host=127.0.0.1 port={dead1}" in failures[0]
    assert f"host=127.0.0.1 port={dead2}" in failures[1]
