#!/usr/bin/env python3
"""Collector throughput: MQTT → pantau-collector → InfluxDB v2 write API, end to end.

Everything real, on loopback: Mosquitto, VictoriaMetrics (standing in for InfluxDB's v2 write
API), the `pantau-collector run` process exactly as systemd runs it, and publisher processes
(paho-mqtt, QoS 1) that replay realistic sample sets at full speed. Printed, as medians of
several runs:

  * end-to-end samples/s from the first publish until the collector has had every point
    accepted by the write API and acknowledged every message (a sample = one polled value; the
    `pantau_poll` bookkeeping fields of each sample set are not counted);
  * the collector process's CPU over the same window (cores used, and samples per CPU-second:
    the collector's figure "on one core");
  * publish → queryable latency p50/p99: the publish time of a subset of messages (every poll
    of one device per site) against the moment VictoriaMetrics first returns that point, both
    at full speed (dominated by the backlog the publishers build) and paced at a fraction of
    the measured capacity (the operational figure);
  * baselines measured in the same run: influxdb-client writing the same prepared line protocol
    straight to VictoriaMetrics (no MQTT, no checks), and decode + validate + line protocol in
    this process (no MQTT, no HTTP); and the ratios.

Why these broker settings (appended to devstack/servers.py's Mosquitto config):
  * set_tcp_nodelay true: with Nagle on, the small PUBACK/PUBLISH packets of a QoS 1 window
    wait for the peer's delayed ACK (~40 ms on Linux), which caps a window-limited stream at a
    fraction of what either side can do (issue 7 measured 2,100 vs 12,500 messages/s).
  * max_queued_messages 0 (no limit): publishers at full speed run far ahead of the collector;
    Mosquitto DROPS QoS 1 messages beyond a client's queue limit (default 1000) even though the
    publisher got its PUBACK, so a bounded queue would lose data instead of measuring a backlog.
  * max_inflight_messages is left alone: for an MQTT 5 subscriber Mosquitto uses the client's
    Receive Maximum (the collector's `mqtt.receive_maximum`) as the outgoing window.
  * autosave_interval 1800 (Mosquitto's default): the tests save every second, which rewrites
    the whole backlog each second and is not what a production broker does.

Run: `.venv/bin/python bench/collector_throughput.py` (`--help` for sizes; `--quick` for a
smoke run). Needs the Debian mosquitto and victoria-metrics packages (`make test`'s set-up).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pantau.wire import (  # noqa: E402
    Field,
    Group,
    Kind,
    SampleSet,
    encode_sample_set,
    metrics_topic,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROBE_DEVICE = "dev000"  # every poll of this device at every site is a latency probe
MOSQUITTO_CONF = """\
# bench/collector_throughput.py: see the module docstring for why
set_tcp_nodelay true
max_queued_messages 0
autosave_interval 1800
"""


# ---------------------------------------------------------------------------------------------
# realistic sample sets


def make_sample_set(site: str, device: str, seq: int, ts_ms: int, rows: int = 20) -> SampleSet:
    """One poll of a router-like device: system scalars and an IF-MIB table of `rows` rows with
    the built-in if-mib profile's 9 columns. Octet counters are large and move every poll,
    error counters are mostly zero, as on real equipment; 4 + 9 × rows values."""
    rng = random.Random(f"{site}/{device}/{seq}")
    dev_no = int(device[3:]) if device[3:].isdigit() else 0
    groups = [
        Group(
            "system",
            {},
            [
                Field(
                    "uptime_seconds", Kind.GAUGE, 86400.0 * 30 + seq * 60 + rng.randint(0, 99) / 100
                ),
                Field("name", Kind.INFO, f"{device}.{site}.noc.example.net"),
                Field("descr", Kind.INFO, "RouterOS RB750Gr3 7.14.2 (stable)"),
                Field("object_id", Kind.INFO, "1.3.6.1.4.1.14988.1"),
            ],
        )
    ]
    for i in range(1, rows + 1):
        tags = {"ifIndex": str(i), "ifName": f"ether{i}", "ifDescr": f"ether{i}"}
        if i % 3 == 1:
            tags["ifAlias"] = f"uplink-{site}-{i:02d}"
        busy = i % 4 != 0
        octets = (dev_no * 7919 + i) * 10**9 + seq * rng.randint(10**6, 10**8)
        groups.append(
            Group(
                "interface",
                tags,
                [
                    Field("oper_status", Kind.STATE, 1 if busy else 2),
                    Field("admin_status", Kind.STATE, 1),
                    Field("speed_bps", Kind.GAUGE, 1e9 if i % 2 else 1e8),
                    Field("in_octets", Kind.COUNTER, octets if busy else 0),
                    Field("out_octets", Kind.COUNTER, octets // 3 if busy else 0),
                    Field("in_errors", Kind.COUNTER, rng.choice((0, 0, 0, 0, 3, 17))),
                    Field("out_errors", Kind.COUNTER, 0),
                    Field("in_discards", Kind.COUNTER, rng.choice((0, 0, 0, 12))),
                    Field("out_discards", Kind.COUNTER, 0),
                ],
            )
        )
    return SampleSet(
        site=site,
        device=device,
        seq=seq,
        ts_ms=ts_ms,
        duration_ms=380 + seq % 50,
        up=True,
        reason="",
        groups=groups,
    )


def samples_in(ss: SampleSet) -> int:
    return sum(len(g.fields) for g in ss.groups)


@dataclass(frozen=True)
class Plan:
    """Who publishes what: sites are split over the publishers; every device of every site is
    polled `polls` times per run, sequence numbers continue from run to run."""

    publishers: int
    sites: int
    devices: int
    polls: int
    rows: int
    ts_base_ms: int  # poll seq n of any device is stamped ts_base_ms + n * 60 s

    def site_names(self, publisher: int) -> list[str]:
        return [f"bench-{s:03d}" for s in range(self.sites) if s % self.publishers == publisher]

    @property
    def messages(self) -> int:
        return self.sites * self.devices * self.polls

    def messages_for(self, publisher: int, first_seq: int) -> list[tuple[str, bytes, str | None]]:
        """(topic, payload, probe key or None), poll round by poll round as agents would."""
        out = []
        for seq in range(first_seq, first_seq + self.polls):
            for site in self.site_names(publisher):
                for d in range(self.devices):
                    device = f"dev{d:03d}"
                    ss = make_sample_set(
                        site, device, seq, self.ts_base_ms + seq * 60_000, self.rows
                    )
                    probe = f"{site}/{seq}" if device == PROBE_DEVICE else None
                    out.append((metrics_topic(site, device), encode_sample_set(ss), probe))
        return out


# ---------------------------------------------------------------------------------------------
# publisher processes


def publisher_main(
    idx: int, port: int, plan: Plan, first_seq: int, rate: float, ready: Any, go: Any, results: Any
) -> None:
    """Encode this publisher's share, then publish it QoS 1 as fast as the broker takes it (or
    at `rate` messages/s); report publish times of the probes and when the last PUBACK came."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    messages = plan.messages_for(idx, first_seq)
    acked = threading.Semaphore(0)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{idx}", protocol=mqtt.MQTTv311
    )
    client.max_inflight_messages_set(1000)  # a loopback window wide enough not to limit
    client.max_queued_messages_set(0)
    client.on_publish = lambda *_: acked.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.set()
    go.wait()
    probes: dict[str, float] = {}
    start = time.time()
    for i, (topic, payload, probe) in enumerate(messages):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        if probe is not None:
            probes[probe] = time.time()
        client.publish(topic, payload, qos=1)
    published = time.time()
    for _ in messages:
        if not acked.acquire(timeout=300):
            break
    results.put(
        {
            "idx": idx,
            "probes": probes,
            "start": start,
            "published": published,
            "pubacked": time.time(),
            "messages": len(messages),
            "bytes": sum(len(p) for _, p, _ in messages),
        }
    )
    client.loop_stop()
    client.disconnect()


# ---------------------------------------------------------------------------------------------
# observing the collector and VictoriaMetrics


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / CLK_TCK, sum(ticks) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with _NO_PROXY.open(url, timeout=timeout) as resp:
        return bytes(resp.read())


def collector_counters(http_port: int) -> dict[str, float]:
    """The collector's own counters, asking /metrics for just these families (prometheus_client
    `name[]`), so polling does not make it render every device's series each time."""
    names = [
        "pantau_collector_messages_received_total",
        "pantau_collector_points_written_total",
        "pantau_collector_pending_points",
        "pantau_collector_messages_rejected_total",
    ]
    query = urllib.parse.urlencode([("name[]", n) for n in names])
    text = http_get(f"http://127.0.0.1:{http_port}/metrics?{query}").decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, value = line.rsplit(" ", 1)
        name = key.split("{", 1)[0]
        if name == "pantau_collector_messages_received_total" and 'type="metrics"' not in key:
            continue
        out[name] = out.get(name, 0.0) + float(value)
    return out


class LatencyWatch(threading.Thread):
    """Polls VictoriaMetrics for the probe device's `pantau_poll_seq` and notes when each
    (site, seq) is first returned. A point is queryable when export returns it."""

    def __init__(self, vm_url: str, start_ms: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True, name="latency-watch")
        self.url = f"{vm_url}/api/v1/export?" + urllib.parse.urlencode(
            [
                ("match[]", f'pantau_poll_seq{{device="{PROBE_DEVICE}"}}'),
                ("start", f"{start_ms / 1000:.3f}"),
            ]
        )
        self.interval = interval
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                body = http_get(self.url)
            except OSError:
                body = b""
            now = time.time()
            for line in body.splitlines():
                row = json.loads(line)
                site = row["metric"]["site"]
                for v in row["values"]:
                    self.seen.setdefault(f"{site}/{int(v)}", now)
            self.stop.wait(self.interval)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------------------
# one end-to-end run


@dataclass
class RunResult:
    messages: int
    samples: int
    seconds: float
    collector_cpu: float
    broker_cpu: float
    vm_cpu: float
    machine_busy: float  # fraction of all CPUs busy during the run
    latencies: list[float] = field(default_factory=list)
    wire_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.samples / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.samples / self.collector_cpu if self.collector_cpu else float("nan")


class Stack:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        from devstack import procs
        from devstack.servers import Mosquitto, VictoriaMetrics, free_port

        self.workdir = workdir
        self.mosquitto = Mosquitto(workdir / "mosquitto", extra_conf=MOSQUITTO_CONF).start()
        # dedup on, as in the tests: InfluxDB keeps one point per series and timestamp
        self.vm = VictoriaMetrics(
            workdir / "vm", extra_args=("-dedup.minScrapeInterval=1ms",)
        ).start()
        self.http_port = free_port()
        cfg = procs.collector_config(
            workdir / "collector.yaml",
            broker_port=self.mosquitto.port,
            influx_url=self.vm.url,
            http_port=self.http_port,
            mqtt={"client_id": "bench-collector", "receive_maximum": args.receive_maximum},
            influx={"batch_size": args.batch_size, "flush_interval": args.flush_interval},
        )
        self.collector = procs.collector(cfg, workdir / "collector.log").start()
        procs.wait_until(
            lambda: procs.http_get(f"http://127.0.0.1:{self.http_port}/readyz")[0] == 200,
            30,
            "collector ready",
        )
        assert self.collector.popen is not None
        self.collector_pid = self.collector.popen.pid

    def close(self) -> None:
        self.collector.stop()
        self.vm.stop()
        self.mosquitto.stop()

    def run(self, plan: Plan, first_seq: int, rate: float = 0.0) -> RunResult:
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        go = ctx.Event()
        procs_, readies = [], []
        for idx in range(plan.publishers):
            ready = ctx.Event()
            p = ctx.Process(
                target=publisher_main,
                name=f"publisher-{idx}",
                args=(
                    idx,
                    self.mosquitto.port,
                    plan,
                    first_seq,
                    rate / plan.publishers,
                    ready,
                    go,
                    results,
                ),
            )
            p.start()
            procs_.append(p)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(300):
                raise RuntimeError("a publisher did not get ready")
        watch = LatencyWatch(self.vm.url, plan.ts_base_ms + first_seq * 60_000)
        watch.start()
        before = collector_counters(self.http_port)
        cpu0 = (
            cpu_seconds(self.collector_pid),
            cpu_seconds(self.mosquitto.pid or 0),
            cpu_seconds(self.vm.pid or 0),
        )
        busy0 = machine_busy()
        samples_per_msg = samples_in(make_sample_set("x", "dev000", 1, 0, plan.rows))
        points_per_msg = 1 + 1 + plan.rows  # pantau_poll, system, one per interface row
        t0 = time.time()
        go.set()
        deadline = t0 + 600
        while True:
            now = collector_counters(self.http_port)
            received = now.get("pantau_collector_messages_received_total", 0) - before.get(
                "pantau_collector_messages_received_total", 0
            )
            points = now.get("pantau_collector_points_written_total", 0) - before.get(
                "pantau_collector_points_written_total", 0
            )
            if (
                received >= plan.messages
                and points >= plan.messages * points_per_msg
                and now.get("pantau_collector_pending_points", 1) == 0
            ):
                break
            if time.time() > deadline:
                raise RuntimeError(
                    f"collector stuck: received {received}, points {points}; "
                    f"log:\n{self.collector.log()[-3000:]}"
                )
            time.sleep(0.1)
        t1 = time.time()
        cpu1 = (
            cpu_seconds(self.collector_pid),
            cpu_seconds(self.mosquitto.pid or 0),
            cpu_seconds(self.vm.pid or 0),
        )
        busy1 = machine_busy()
        if now.get("pantau_collector_messages_rejected_total", 0) != before.get(
            "pantau_collector_messages_rejected_total", 0
        ):
            raise RuntimeError("the collector rejected bench messages: see its log")
        reports = [results.get(timeout=120) for _ in procs_]
        for p in procs_:
            p.join(30)
        probes = {k: v for r in reports for k, v in r["probes"].items()}
        wait_until = time.time() + 10
        while len(watch.seen.keys() & probes.keys()) < len(probes) and time.time() < wait_until:
            time.sleep(0.05)
        watch.stop.set()
        watch.join()
        latencies = [watch.seen[k] - t for k, t in probes.items() if k in watch.seen]
        return RunResult(
            messages=plan.messages,
            samples=plan.messages * samples_per_msg,
            seconds=t1 - t0,
            collector_cpu=cpu1[0] - cpu0[0],
            broker_cpu=cpu1[1] - cpu0[1],
            vm_cpu=cpu1[2] - cpu0[2],
            machine_busy=(busy1[0] - busy0[0]) / (busy1[1] - busy0[1]),
            latencies=latencies,
            wire_bytes=sum(r["bytes"] for r in reports),
        )

    def count_points(self, plan: Plan, seqs: range) -> int:
        """pantau_poll_seq points of the given sequence numbers now stored (dedup on)."""
        self.vm.flush()
        rows = self.vm.export('{__name__="pantau_poll_seq",site=~"bench-.*"}', flush=False)
        return sum(1 for r in rows for v in r["values"] if int(v) in seqs)


# ---------------------------------------------------------------------------------------------
# baselines in this process


def baseline_inprocess(plan: Plan, seq: int, repeats: int) -> list[float]:
    """decode + validate + line protocol, one core, samples per CPU-second."""
    from collector.lineproto import sample_set_lines
    from collector.validate import check_sample_set, parse_topic

    messages = plan.messages_for(0, seq)
    samples = len(messages) * samples_in(make_sample_set("x", "dev000", 1, 0, plan.rows))
    out = []
    for _ in range(repeats):
        c0 = time.process_time()
        for topic, payload, _ in messages:
            _, site, device = parse_topic(topic)
            assert device is not None
            sample_set_lines(check_sample_set(site, device, payload, 256 * 1024))
        out.append(samples / (time.process_time() - c0))
    return out


def baseline_direct_write(
    vm_url: str, plan: Plan, seq: int, repeats: int, batch_size: int
) -> list[float]:
    """influxdb-client (SYNCHRONOUS write API, list of line-protocol strings) posting the same
    prepared lines straight to VictoriaMetrics: samples per second of wall time."""
    from influxdb_client import InfluxDBClient, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    from collector.lineproto import sample_set_lines
    from collector.validate import check_sample_set, parse_topic

    per_msg = samples_in(make_sample_set("x", "dev000", 1, 0, plan.rows))
    out = []
    with InfluxDBClient(url=vm_url, token="", org="pantau", enable_gzip=False) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        for r in range(repeats + 1):  # the first pass creates the series: not counted
            lines: list[str] = []
            messages = plan.messages_for(0, seq + r * plan.polls)
            for topic, payload, _ in messages:
                _, site, device = parse_topic(topic)
                assert device is not None
                ss = check_sample_set(site, device, payload, 256 * 1024)
                lines.extend(sample_set_lines(ss))
            batches = [lines[i : i + batch_size] for i in range(0, len(lines), batch_size)]
            t0 = time.perf_counter()
            for batch in batches:
                api.write(
                    bucket="pantau", org="pantau", record=batch, write_precision=WritePrecision.MS
                )
            elapsed = time.perf_counter() - t0
            if r:
                out.append(len(messages) * per_msg / elapsed)
    return out


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=5, help="measured end-to-end runs (median)")
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes")
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--devices", type=int, default=20, help="devices per site")
    ap.add_argument("--polls", type=int, default=15, help="polls of every device per run")
    ap.add_argument("--rows", type=int, default=20, help="interface rows per sample set")
    ap.add_argument("--batch-size", type=int, default=5000, help="collector influx.batch_size")
    ap.add_argument("--flush-interval", type=float, default=1.0)
    ap.add_argument("--receive-maximum", type=int, default=1000)
    ap.add_argument(
        "--paced",
        type=float,
        default=0.5,
        help="latency run at this fraction of the measured throughput (0: skip)",
    )
    ap.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="profile the collector with py-spy (on PATH) during the measured runs "
        "and write collapsed stacks (one line per stack: flamegraph.pl input)",
    )
    args = ap.parse_args(argv)
    # stopped by timeout or Ctrl-C: unwind, so that the servers and the collector are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.runs, args.sites, args.polls = 2, 6, 5

    total_polls = (args.runs + 3) * args.polls + 1
    plan = Plan(
        publishers=args.publishers,
        sites=args.sites,
        devices=args.devices,
        polls=args.polls,
        rows=args.rows,
        ts_base_ms=int(time.time() * 1000) - total_polls * 60_000 - 3_600_000,
    )
    per_msg = samples_in(make_sample_set("x", "dev000", 1, 0, plan.rows))
    print(
        f"collector throughput bench, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} "
        f"CPUs; {plan.sites} sites x {plan.devices} devices x {plan.polls} polls = "
        f"{plan.messages} messages/run of {per_msg} samples ({plan.messages * per_msg:,} "
        f"samples), {plan.publishers} publishers",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="pantau-bench-") as tmp:
        stack = Stack(Path(tmp), args)
        try:
            seq = 1
            warm = stack.run(plan, seq)  # creates every series: not counted
            seq += plan.polls
            print(
                f"  warm-up: {warm.rate:,.0f} samples/s (series creation; not counted); "
                f"{warm.wire_bytes / warm.messages:.0f} B per sample set on the wire",
                flush=True,
            )
            runs: list[RunResult] = []
            spy = None
            if args.py_spy:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(stack.collector_pid),
                        "--format",
                        "raw",
                        "--threads",
                        "--rate",
                        "200",
                        "--output",
                        str(args.py_spy),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            for i in range(args.runs):
                r = stack.run(plan, seq)
                seq += plan.polls
                runs.append(r)
                print(
                    f"  run {i + 1}: {r.rate:,.0f} samples/s in {r.seconds:.2f} s; collector "
                    f"{r.collector_cpu / r.seconds:.2f} cores ({r.per_cpu_second:,.0f} "
                    f"samples per CPU-second); broker {r.broker_cpu / r.seconds:.2f}, "
                    f"VictoriaMetrics {r.vm_cpu / r.seconds:.2f} cores, machine "
                    f"{r.machine_busy:.0%} busy; latency p50 "
                    f"{percentile(r.latencies, 0.5):.2f} s p99 "
                    f"{percentile(r.latencies, 0.99):.2f} s ({len(r.latencies)} probes)",
                    flush=True,
                )
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                spy.wait(60)
            e2e = statistics.median(r.rate for r in runs)
            paced = None
            if args.paced > 0:
                rate = args.paced * e2e / per_msg  # messages/s
                paced_plan = Plan(**{**plan.__dict__, "polls": max(plan.polls, 5)})
                paced = stack.run(paced_plan, seq, rate=rate)
                seq += paced_plan.polls
                print(
                    f"  paced at {rate:,.0f} messages/s ({args.paced:.0%} of capacity): "
                    f"latency p50 {percentile(paced.latencies, 0.5):.2f} s p99 "
                    f"{percentile(paced.latencies, 0.99):.2f} s ({len(paced.latencies)} "
                    f"probes); collector {paced.collector_cpu / paced.seconds:.2f} cores",
                    flush=True,
                )
            stored = stack.count_points(plan, range(1, seq))
            expected = plan.sites * plan.devices * (seq - 1)
            if stored != expected:
                raise SystemExit(
                    f"VictoriaMetrics holds {stored} sample sets, expected "
                    f"{expected}: something was lost"
                )
            print(f"  check: all {expected:,} sample sets are in VictoriaMetrics", flush=True)
            direct = baseline_direct_write(
                stack.vm.url, plan, seq + 1000, args.runs, args.batch_size
            )
        finally:
            stack.close()
    raw = baseline_inprocess(plan, 1, args.runs)

    med = {
        "e2e_samples_per_s": e2e,
        "collector_cores": statistics.median(r.collector_cpu / r.seconds for r in runs),
        "collector_samples_per_cpu_s": statistics.median(r.per_cpu_second for r in runs),
        "latency_p50_s_full_speed": statistics.median(percentile(r.latencies, 0.5) for r in runs),
        "latency_p99_s_full_speed": statistics.median(percentile(r.latencies, 0.99) for r in runs),
        "direct_influxdb_client_samples_per_s": statistics.median(direct),
        "inprocess_samples_per_cpu_s": statistics.median(raw),
        "bytes_per_sample_set": warm.wire_bytes / warm.messages,
    }
    if paced is not None:
        med["latency_p50_s_paced"] = percentile(paced.latencies, 0.5)
        med["latency_p99_s_paced"] = percentile(paced.latencies, 0.99)
    print()
    print(f"end to end (MQTT -> collector -> write API), median of {len(runs)} runs:")
    print(
        f"  {med['e2e_samples_per_s']:>12,.0f} samples/s   "
        f"({med['e2e_samples_per_s'] / per_msg:,.0f} sample sets/s)   target >= 100,000"
    )
    print(
        f"  {med['collector_cores']:>12.2f} collector cores; "
        f"{med['collector_samples_per_cpu_s']:,.0f} samples per collector CPU-second"
    )
    print(
        f"  latency publish -> queryable, full speed: p50 {med['latency_p50_s_full_speed']:.2f}"
        f" s, p99 {med['latency_p99_s_full_speed']:.2f} s"
    )
    if paced is not None:
        print(
            f"  latency publish -> queryable, paced at {args.paced:.0%}: p50 "
            f"{med['latency_p50_s_paced']:.2f} s, p99 {med['latency_p99_s_paced']:.2f} s"
        )
    print("baselines, same run:")
    print(
        f"  {med['direct_influxdb_client_samples_per_s']:>12,.0f} samples/s  influxdb-client "
        f"writing the prepared line protocol directly (no MQTT)"
    )
    print(
        f"  {med['inprocess_samples_per_cpu_s']:>12,.0f} samples/CPU-s  decode + validate + "
        f"line protocol in-process"
    )
    print("ratios:")
    print(
        f"  end to end / direct write       {e2e / med['direct_influxdb_client_samples_per_s']:.2f}"
    )
    print(
        f"  collector per CPU-s / in-process "
        f"{med['collector_samples_per_cpu_s'] / med['inprocess_samples_per_cpu_s']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(med, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
