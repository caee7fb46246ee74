#!/usr/bin/env python3
"""Collectors on a RabbitMQ cluster against one collector on Mosquitto, in the same run.

Everything real, on loopback: a three-node RabbitMQ 3.10 cluster (devstack/rabbitmq.py: MQTT
plugin, quorum queues), Mosquitto, VictoriaMetrics standing in for InfluxDB's v2 write API,
`pantau-collector run` processes (`broker: amqp` on the cluster, `mqtt` on Mosquitto) and
publisher processes replaying bench/collector_throughput.py's router-like sample sets (184
values) over MQTT QoS 1 at full speed. For each setup: end-to-end samples/s, from the first
publish until the collectors had every point accepted by the write API (and acknowledged),
and the CPU the broker(s) and the collectors used meanwhile.

On the cluster the publishers spread over the three nodes' MQTT listeners, like sites would,
and every site is bound to its partition before the clock starts (a site's first message takes
the slower `pantau.unrouted` path once, see collector/amqp_intake.py). Six partitions: 1, 2 or
3 collectors each start with an equal share of them.

All of it shares this machine's cores: with 3 broker nodes, VictoriaMetrics, the publishers
and up to 3 collectors on 2 cores, the figures show where the bottleneck is on one machine, not
what 3 machines would carry. Run: `.venv/bin/python bench/cluster.py` (`--quick`: small).
Per setup it prints the broker nodes' CPU together, the busiest node's, and the cluster's CPU
per sample set (the figures docs/scaling.md sizes the broker machines with).

Why test publishers and not real agents: the bench looks for the collectors' and the broker's
ceiling (~1,000 sample sets/s and more). A real agent sends at its polling rate (each sample set
an SNMP walk of a device, here of snmpsim on the same two cores) and one agent process with 50
devices takes ~33 MiB: reaching the ceiling would take hundreds of agents on this machine, whose
SNMP polling would measure snmpsim, not the path under test. The publishers send exactly the
agent's messages (pantau.wire encoding, MQTT QoS 1, the agent's topics); what real agents add
(outbox, broker.hosts failover, end-to-end acknowledgements) is what tests/test_cluster_agents.py
checks on the same cluster, where rates do not matter.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from collector_throughput import (  # noqa: E402
    MOSQUITTO_CONF,
    Plan,
    collector_counters,
    cpu_seconds,
    machine_busy,
    make_sample_set,
    publisher_main,
    samples_in,
)

from devstack import procs  # noqa: E402
from devstack.rabbitmq import RabbitCluster  # noqa: E402
from devstack.servers import Mosquitto, VictoriaMetrics, free_port  # noqa: E402

PARTITIONS = 6


def group_cpu(pid: int) -> float:
    """CPU-seconds of a process and its direct children (a RabbitMQ node is script + beam)."""
    total = 0.0
    for child in [pid, *_children(pid)]:
        try:
            total += cpu_seconds(child)
        except (OSError, IndexError):
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(x) for x in text.split()]
    return kids + [g for k in kids for g in _children(k)]


def publish(plan: Plan, ports: list[int], first_seq: int) -> list[Any]:
    """Start the publishers (each on one of `ports`), return (processes, go, results)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    go = ctx.Event()
    started, readies = [], []
    for idx in range(plan.publishers):
        ready = ctx.Event()
        port = ports[idx % len(ports)]
        p = ctx.Process(
            target=publisher_main,
            args=(idx, port, plan, first_seq, 0.0, ready, go, results),
        )
        p.start()
        started.append(p)
        readies.append(ready)
    for ready in readies:
        if not ready.wait(300):
            raise RuntimeError("a publisher did not get ready")
    return [started, go, results]


def run(
    label: str,
    plan: Plan,
    ports: list[int],
    collectors: list[tuple[procs.Proc, int]],
    broker_pids: list[int],
    first_seq: int,
) -> dict[str, Any]:
    started, go, results = publish(plan, ports, first_seq)
    points_per_msg = 1 + 1 + plan.rows
    before = [collector_counters(port) for _, port in collectors]
    pids = [c.popen.pid for c, _ in collectors if c.popen is not None]
    cpu0 = [group_cpu(p) for p in pids], [group_cpu(p) for p in broker_pids]
    busy0 = machine_busy()
    t0 = time.time()
    go.set()
    while True:
        now = [collector_counters(port) for _, port in collectors]
        received = sum(
            n.get("pantau_collector_messages_received_total", 0)
            - b.get("pantau_collector_messages_received_total", 0)
            for n, b in zip(now, before, strict=True)
        )
        points = sum(
            n.get("pantau_collector_points_written_total", 0)
            - b.get("pantau_collector_points_written_total", 0)
            for n, b in zip(now, before, strict=True)
        )
        pending = sum(n.get("pantau_collector_pending_points", 0) for n in now)
        if received >= plan.messages and points >= plan.messages * points_per_msg and not pending:
            break
        if time.time() - t0 > 900:
            raise RuntimeError(f"{label}: stuck at {received}/{plan.messages} messages")
        time.sleep(0.1)
    seconds = time.time() - t0
    cpu1 = [group_cpu(p) for p in pids], [group_cpu(p) for p in broker_pids]
    busy1 = machine_busy()
    for _ in started:
        results.get(timeout=120)
    for p in started:
        p.join(30)
    samples = plan.messages * samples_in(make_sample_set("x", "dev000", 1, 0, plan.rows))
    return {
        "setup": label,
        "samples_per_s": samples / seconds,
        "messages_per_s": plan.messages / seconds,
        "collector_cores": sum(cpu1[0]) / seconds - sum(cpu0[0]) / seconds,
        "broker_cores": sum(cpu1[1]) / seconds - sum(cpu0[1]) / seconds,
        # the busiest node (a quorum queue's leader works more than its followers): what one
        # broker machine must carry
        "node_cores_max": max(b - a for a, b in zip(cpu0[1], cpu1[1], strict=True)) / seconds,
        "broker_ms_per_msg": (sum(cpu1[1]) - sum(cpu0[1])) * 1000 / plan.messages,
        "machine_busy": (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]),
    }


def start_collectors(
    workdir: Path, n: int, vm: VictoriaMetrics, **cfg: Any
) -> list[tuple[procs.Proc, int]]:
    out = []
    mqtt_port = cfg.pop("mqtt_port", 1)  # 1: unused (broker: amqp)
    for i in range(n):
        http = free_port()
        path = procs.collector_config(
            workdir / f"collector-{n}-{i}.yaml",
            broker_port=mqtt_port,
            influx_url=vm.url,
            http_port=http,
            acks={"enabled": False},
            **{k: (v(i) if callable(v) else v) for k, v in cfg.items()},
        )
        out.append((procs.collector(path, workdir / f"collector-{n}-{i}.log").start(), http))
    for _proc, http in out:
        procs.wait_until(
            lambda http=http: procs.http_get(f"http://127.0.0.1:{http}/readyz", 1)[0] == 200,
            60,
            "collector ready",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sites", type=int, default=24)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--polls", type=int, default=10, help="sample sets per device per run")
    ap.add_argument("--publishers", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.sites, args.devices, args.polls, args.repeats = 6, 5, 4, 1
    plan = Plan(args.publishers, args.sites, args.devices, args.polls, 20, 1_700_000_000_000)
    rows: list[dict[str, Any]] = []
    seq = 1
    with tempfile.TemporaryDirectory(prefix="pantau-bench-cluster-") as tmp:
        work = Path(tmp)
        vm = VictoriaMetrics(work / "vm", extra_args=("-dedup.minScrapeInterval=1ms",)).start()
        try:
            mosq = Mosquitto(work / "mosquitto", extra_conf=MOSQUITTO_CONF).start()
            try:
                cols = start_collectors(
                    work,
                    1,
                    vm,
                    mqtt_port=mosq.port,
                    mqtt={"client_id": "bench-collector"},
                )
                for _ in range(args.repeats):
                    rows.append(
                        run("Mosquitto, 1 collector", plan, [mosq.port], cols, [mosq.pid or 0], seq)
                    )
                    seq += args.polls
                for c, _ in cols:
                    c.stop()
            finally:
                mosq.stop()
            cluster = RabbitCluster(work / "rabbit").start()
            try:
                amqp_hosts = [f"127.0.0.1:{p}" for p in cluster.amqp_ports]
                pids = [n.pid or 0 for n in cluster.nodes]
                # every site bound to its partition before any clock starts
                warm = Plan(args.publishers, args.sites, args.devices, 1, 20, plan.ts_base_ms)
                for n in (1, 2, 3):
                    share = PARTITIONS // n
                    cols = start_collectors(
                        work,
                        n,
                        vm,
                        broker="amqp",
                        amqp=lambda i, share=share: {
                            "hosts": amqp_hosts[i % 3 :] + amqp_hosts[: i % 3],
                            "partitions": PARTITIONS,
                            "home": list(range(i * share, (i + 1) * share)),
                            "standby_delay": 2,
                        },
                    )
                    time.sleep(3)  # standby subscriptions in place
                    if n == 1:
                        run("warm-up", warm, cluster.mqtt_ports, cols, pids, seq)
                        seq += 1
                    for _ in range(args.repeats):
                        rows.append(
                            run(
                                f"RabbitMQ 3 nodes, {n} collector(s)",
                                plan,
                                cluster.mqtt_ports,
                                cols,
                                pids,
                                seq,
                            )
                        )
                        seq += args.polls
                    for c, _ in cols:
                        c.stop()
            finally:
                cluster.close()
        finally:
            vm.stop()
    print(
        f"{plan.messages} sample sets of {samples_in(make_sample_set('x', 'dev000', 1, 0, 20))} "
        f"values per run, {args.publishers} publishers, medians of {args.repeats} run(s)"
    )
    print(
        f"{'setup':34} {'samples/s':>10} {'msgs/s':>8} {'collector cores':>16} "
        f"{'broker cores':>13} {'machine busy':>13} {'busiest node':>15} {'broker ms/msg':>12}"
    )
    for label in dict.fromkeys(r["setup"] for r in rows):
        mine = [r for r in rows if r["setup"] == label]
        med = {k: statistics.median(r[k] for r in mine) for k in mine[0] if k != "setup"}
        print(
            f"{label:34} {med['samples_per_s']:10.0f} {med['messages_per_s']:8.0f} "
            f"{med['collector_cores']:16.2f} {med['broker_cores']:13.2f} "
            f"{med['machine_busy']:13.0%} {med['node_cores_max']:15.2f} "
            f"{med['broker_ms_per_msg']:12.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
