"""Outbox backfill after an outage (issue 7): a 24-hour outbox of a 20-device site must drain
≥ 20× faster than real time unthrottled, and at the configured rate when throttled, while live
sample sets keep flowing.

Fills a real agent outbox with 24 h of sample sets (20 devices, 60 s interval: 28,800, built
from a real poll of recordings), then starts the real agent against Mosquitto and snmpsim (20
live devices polled every 5 s) and watches the broker with a subscriber: how long until the
whole backlog arrived, the backlog's byte rate, and how late live sample sets arrive meanwhile.
Run: .venv/bin/python bench/backfill.py   (loopback: the figure is CPU-bound, see below)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.outbox import Outbox  # noqa: E402
from devstack import procs  # noqa: E402
from devstack.polling import poll_recording  # noqa: E402
from devstack.servers import Mosquitto, SnmpSim  # noqa: E402
from pantau.wire import decode_sample_set, encode_sample_set, metrics_topic  # noqa: E402

SITE = "vsat-bench"
DEVICES = 20
COMMUNITIES = ["ceraos", "rutos-rutx_rut955", "routeros_rb750gr3", "uhp", "linux_powermon"]
RECORDINGS = [REPO / "tests" / "data" / "devices" / f"{c}.snmprec" for c in COMMUNITIES]


def fill(path: Path, templates: list, hours: float, interval: float = 60.0) -> tuple[int, int]:
    """Write `hours` of backlog straight into the outbox schema (one transaction: set-up only)."""
    box = Outbox(path, max_bytes=1 << 40, max_age_s=30 * 86400).open()
    now_ms = int(time.time() * 1000)
    polls = int(hours * 3600 / interval)
    rows, size = [], 0
    for p in range(polls):
        ts = now_ms - int((polls - p) * interval * 1000)
        for d in range(DEVICES):
            t = templates[d % len(templates)]
            ss = type(t)(
                site=SITE,
                device=f"d{d:02d}",
                seq=p + 1,
                ts_ms=ts,
                duration_ms=t.duration_ms,
                up=True,
                reason="",
                groups=t.groups,
                errors=t.errors,
            )
            payload = encode_sample_set(ss)
            rows.append(
                (0, f"d{d:02d}", p + 1, p + 1, ts, metrics_topic(SITE, f"d{d:02d}"), payload)
            )
            size += len(payload)
    db = box.db
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO outbox (kind, device, seq, first, ts_ms, topic, payload) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.executemany(
        "INSERT OR REPLACE INTO sequences VALUES (?, ?)",
        [(f"d{d:02d}", polls) for d in range(DEVICES)],
    )
    db.execute("COMMIT")
    box.close()
    return len(rows), size


class Watcher:
    """Counts what reaches the broker: backlog (older than the agent's start) and live."""

    def __init__(self, port: int, started_ms: int) -> None:
        self.started_ms = started_ms
        self.backlog = 0
        self.backlog_bytes = 0
        self.first_backlog_at = 0.0
        self.last_backlog_at = 0.0
        self.live_delay: list[float] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-watcher")
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"pantau/{SITE}/+/metrics", qos=0)
        self.client.loop_start()

    def on_message(self, client, userdata, msg) -> None:
        _, site, device, _ = msg.topic.split("/")
        ss = decode_sample_set(msg.payload, site=site, device=device)
        now = time.time()
        with self.lock:
            if ss.ts_ms < self.started_ms:
                self.backlog += 1
                self.backlog_bytes += len(msg.payload)
                self.first_backlog_at = self.first_backlog_at or now
                self.last_backlog_at = now
            else:
                self.live_delay.append(now - (ss.ts_ms + ss.duration_ms) / 1000)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(
    tmp: Path, sim: SnmpSim, broker: Mosquitto, templates: list, hours: float, rate: int
) -> dict[str, float]:
    outbox = tmp / f"{SITE}-outbox.sqlite"
    for f in tmp.glob(f"{SITE}-outbox.sqlite*"):
        f.unlink()
    count, size = fill(outbox, templates, hours)
    devices = [
        procs.snmpsim_device(f"d{d:02d}", COMMUNITIES[d % len(COMMUNITIES)], sim.port)
        for d in range(DEVICES)
    ]
    cfg = procs.agent_config(
        tmp / "agent.yaml",
        site=SITE,
        broker_port=broker.port,
        devices=devices,
        interval=5.0,
        timeout=2.0,
        retries=1,
        defaults={"ping": False},
        outbox={"path": str(outbox), "backfill_rate": rate, "max_bytes": 1 << 30},
    )
    started_ms = int(time.time() * 1000)
    watcher = Watcher(broker.port, started_ms)
    t0 = time.monotonic()
    with procs.agent(cfg, tmp / "agent.log"):
        while watcher.backlog < count and time.monotonic() - t0 < 900:
            time.sleep(0.2)
    watcher.stop()
    drain = watcher.last_backlog_at - watcher.first_backlog_at
    return {
        "count": count,
        "bytes": size,
        "drain_s": drain,
        "speedup": hours * 3600 / drain if drain else float("inf"),
        "rate": watcher.backlog_bytes / drain if drain else 0.0,
        "live_p50": statistics.median(watcher.live_delay) if watcher.live_delay else -1,
        "live_max": max(watcher.live_delay) if watcher.live_delay else -1,
        "live_n": len(watcher.live_delay),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with SnmpSim(tmp / "sim", RECORDINGS) as sim, Mosquitto(tmp / "mqtt") as broker:
            templates = [poll_recording(tmp, sim.port, c)[0] for c in COMMUNITIES]
            full = [run(tmp, sim, broker, templates, 24, 0) for _ in range(3)]
            rate = 100_000
            throttled = [run(tmp, sim, broker, templates, 2, rate) for _ in range(3)]
    med = {k: statistics.median(r[k] for r in full) for k in full[0]}
    print(
        f"24 h backlog, {DEVICES} devices: {int(med['count'])} sample sets, "
        f"{med['bytes'] / 1e6:.1f} MB"
    )
    print(
        f"  unthrottled: drained in {med['drain_s']:.1f} s = {med['speedup']:.0f}x real time "
        f"(target >= 20x: {'met' if med['speedup'] >= 20 else 'NOT met'}), "
        f"{med['rate'] / 1e6:.2f} MB/s; live sample sets during it: "
        f"{int(med['live_n'])}, delay p50 {med['live_p50']:.2f} s, max {med['live_max']:.2f} s"
    )
    tmed = {k: statistics.median(r[k] for r in throttled) for k in throttled[0]}
    print(
        f"2 h backlog throttled to {rate / 1000:.0f} kB/s: measured {tmed['rate'] / 1000:.1f} "
        f"kB/s ({tmed['rate'] / rate:.2f}x the configured rate); live delay p50 "
        f"{tmed['live_p50']:.2f} s, max {tmed['live_max']:.2f} s ({int(tmed['live_n'])} live)"
    )


if __name__ == "__main__":
    main()
