"""Nothing lost: real agent, broker, collector and VictoriaMetrics through failures.

Each scenario polls snmpsim devices, breaks something, repairs it, stops the agent cleanly and
then checks VictoriaMetrics: every sequence number of every device that was not deliberately
dropped is present exactly once. VictoriaMetrics runs here *without* deduplication (the `victoria`
fixture below, also used by tests/test_end_to_end_acks.py), so every point written is counted: a
sequence number stored twice is allowed only as a rewrite of the identical point (same series,
timestamp and value, which InfluxDB overwrites), and such rewrites are counted (`Stack.rewrites`).
Outages last PANTAU_TEST_OUTAGE seconds (default 5; set it to 60 to run the scenarios as the issue
states them).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.netcut import NetCut
from devstack.servers import VictoriaMetrics, free_port
from pantau.wire import decode_sample_set

OUTAGE = float(os.environ.get("PANTAU_TEST_OUTAGE", "5"))
SITE = "vsat-07"
DEVICES = {"radio": "ceraos", "lte": "rutos-rutx_rut955", "gw": "routeros_rb750gr3"}
INTERVAL = 1.0


def _victoria_raw(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics keeping every point written (no -dedup.minScrapeInterval): the delivery
    checks count each sequence number as often as it was stored."""
    with VictoriaMetrics(tmp_path / "victoria") as vm:
        yield vm


victoria_raw = pytest.fixture(_victoria_raw, name="victoria")
"""Overrides conftest's `victoria` in this module, and in those that import it."""


class Stack:
    def __init__(self, tmp_path: Path, mosquitto, victoria, snmpsim) -> None:
        self.tmp = tmp_path
        self.mosquitto = mosquitto
        self.victoria = victoria
        self.snmpsim = snmpsim
        self.http = free_port()
        self.ccfg = procs.collector_config(
            tmp_path / "collector.yaml",
            broker_port=mosquitto.port,
            influx_url=victoria.url,
            http_port=self.http,
        )
        self.collector = procs.collector(self.ccfg, tmp_path / "collector.log")
        self.outbox_path = tmp_path / f"{SITE}-outbox.sqlite"
        self.agent: procs.Proc | None = None
        self.rewrites: dict[str, int] = {}  # device → points stored again, identical

    def __enter__(self) -> Stack:
        self.collector.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.collector.stop()

    def start_agent(
        self,
        broker_port: int | None = None,
        broker: dict[str, object] | None = None,
        **outbox: object,
    ) -> procs.Proc:
        devices = [procs.snmpsim_device(n, c, self.snmpsim.port) for n, c in DEVICES.items()]
        cfg = procs.agent_config(
            self.tmp / "agent.yaml",
            site=SITE,
            broker_port=broker_port or self.mosquitto.port,
            devices=devices,
            interval=INTERVAL,
            broker=broker or {},
            outbox={"shutdown_timeout": 15.0, "heartbeat": 1.0, **outbox},
        )
        self.agent = procs.agent(cfg, self.tmp / "agent.log").start()
        return self.agent

    def outbox(self) -> tuple[dict[str, int], int, int]:
        """(last sequence number per device, items pending, dropped total) from the agent's
        own database, read as SQLite allows while the agent may be running."""
        db = sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True)
        try:
            seqs = dict(db.execute("SELECT device, last FROM sequences"))
            pending = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            row = db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()
        finally:
            db.close()
        return seqs, pending, int(row[0]) if row else 0

    def wait_polls(self, n: int) -> None:
        procs.wait_until(
            lambda: self.outbox_path.exists() and min(self.outbox()[0].values(), default=0) >= n,
            30,
            f"{n} polls of every device",
        )

    def seqs_in_influx(self, device: str) -> list[float]:
        """Every stored sequence number of the device, as often as it was stored."""
        return [seq for seq, _ in self.points_in_influx(device)]

    def points_in_influx(self, device: str) -> list[tuple[float, int]]:
        """(sequence number, timestamp) of every point of the device's pantau_poll_seq."""
        series = self.victoria.export(f'pantau_poll_seq{{site="{SITE}",device="{device}"}}')
        return [p for s in series for p in zip(s["values"], s["timestamps"], strict=True)]

    def stop_agent_and_check(self, dropped: dict[str, set[int]] | None = None) -> None:
        assert self.agent is not None
        if self.agent.running:
            # A reconnect attempt that began during the outage may take its full timeout
            # (10 s); then the backlog drains. Only in-flight live items may remain.
            procs.wait_until(lambda: self.outbox()[1] <= len(DEVICES), 60, "the backlog to drain")
        assert self.agent.stop(30) == 0, self.agent.log()[-2000:]
        seqs, pending, _ = self.outbox()
        assert pending == 0, f"{pending} items left in the outbox after a clean stop"
        dropped = dropped or {}
        for device in DEVICES:
            expected = sorted(set(range(1, seqs[device] + 1)) - dropped.get(device, set()))
            try:
                procs.wait_until(
                    lambda d=device, e=expected: sorted(set(self.seqs_in_influx(d))) == e,
                    30,
                    f"every sequence number of {device} in VictoriaMetrics",
                )
            finally:
                got = self.seqs_in_influx(device)
                missing = sorted(set(expected) - set(got))
                print(device, "expected", len(expected), "got", len(got), "missing", missing[:20])
            points = self.points_in_influx(device)
            # Each number is one sample set, stored at one timestamp: a number stored twice
            # must be the identical point written again (what InfluxDB overwrites) ...
            stamps: dict[float, set[int]] = {}
            for seq, ts in points:
                stamps.setdefault(seq, set()).add(ts)
            twice = {seq: ts for seq, ts in stamps.items() if len(ts) > 1}
            assert not twice, f"{device}: a sequence number stored at two timestamps: {twice}"
            # ... counted: at least every duplicate the collector received was written again.
            self.rewrites[device] = len(points) - len(stamps)
            dupes = self.scrape_device(device, "pantau_samples_duplicate_total")
            print(device, "rewrites", self.rewrites[device], "collector duplicates", dupes)
            assert self.rewrites[device] >= dupes, (device, self.rewrites[device], dupes)

    def scrape_device(self, device: str, name: str) -> float:
        """A per-device series of the collector (0 if it is not running or has none)."""
        try:
            metrics = procs.scrape(self.http)
        except OSError:
            return 0.0
        return metrics.get((name, (("device", device), ("site", SITE))), 0.0)

    def scrape_sum(self, name: str) -> float:
        return sum(
            v
            for (n, labels), v in procs.scrape(self.http).items()
            if n == name and dict(labels).get("site") == SITE
        )


@pytest.fixture
def stack(tmp_path, mosquitto, victoria, snmpsim):
    with Stack(tmp_path, mosquitto, victoria, snmpsim) as s:
        yield s


def test_broker_outage(stack):
    stack.start_agent()
    stack.wait_polls(3)
    stack.mosquitto.stop()
    time.sleep(OUTAGE)
    assert stack.outbox()[1] >= len(DEVICES) * int(OUTAGE * 0.5)  # kept on disk meanwhile
    stack.mosquitto.restart()
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    stack.stop_agent_and_check()


def test_collector_killed_mid_stream(stack):
    stack.start_agent()
    stack.wait_polls(3)
    stack.collector.kill()
    time.sleep(OUTAGE)  # the broker holds the collector's persistent session meanwhile
    stack.collector.start()
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    stack.stop_agent_and_check()


def test_influx_outage(stack):
    stack.start_agent()
    stack.wait_polls(3)
    stack.victoria.stop()
    time.sleep(OUTAGE)
    ready, why = procs.http_get(f"http://127.0.0.1:{stack.http}/readyz")
    stack.victoria.restart()
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    stack.stop_agent_and_check()
    assert (ready, why.strip()) == (503, "InfluxDB API unreachable")
    assert (
        sum(
            v
            for (n, _), v in procs.scrape(stack.http).items()
            if n == "pantau_collector_write_errors_total"
        )
        >= 1
    )


def test_agent_killed_and_restarted_replays_its_outbox(stack):
    cut = NetCut(stack.mosquitto.port)
    with cut:
        stack.start_agent(broker_port=cut.port)
        stack.wait_polls(3)
        cut.cut()  # build up a backlog on disk, then kill the agent with it
        stack.wait_polls(stack.outbox()[0]["radio"] + 3)
        before, pending, _ = stack.outbox()
        assert pending >= 3
        stack.agent.kill()
        cut.restore()
        stack.start_agent(broker_port=cut.port)
        stack.wait_polls(before["radio"] + 3)
        stack.stop_agent_and_check()
    # Sequence numbers went on from where they were: none reused after the restart.
    assert stack.scrape_sum("pantau_samples_lost_total") == 0


def test_outbox_budget_too_small_drops_oldest_and_says_so(stack):
    cut = NetCut(stack.mosquitto.port)
    with cut:
        stack.start_agent(broker_port=cut.port, max_bytes=16 * 1024)
        stack.wait_polls(2)
        cut.cut()
        procs.wait_until(lambda: stack.outbox()[2] >= 10, 60, "the agent to drop over budget")
        cut.restore()
        procs.wait_until(lambda: stack.outbox()[1] <= len(DEVICES), 60, "the backlog to drain")
        assert stack.agent is not None
        assert stack.agent.stop(30) == 0
    _, pending, dropped_total = stack.outbox()
    assert pending == 0 and dropped_total >= 10

    def gap_ranges() -> dict[str, set[int]]:
        firsts = stack.victoria.export(f'pantau_gap_first_seq{{site="{SITE}"}}')
        lasts = {
            s["metric"]["device"]: s
            for s in stack.victoria.export(f'pantau_gap_last_seq{{site="{SITE}"}}')
        }
        out: dict[str, set[int]] = {}
        for first in firsts:
            device = first["metric"]["device"]
            for lo, hi in zip(first["values"], lasts[device]["values"], strict=True):
                out.setdefault(device, set()).update(range(int(lo), int(hi) + 1))
        return out

    # Every drop reached the collector as a gap record ...
    dropped = procs.wait_until(
        lambda: (g := gap_ranges()) and sum(map(len, g.values())) == dropped_total and g,
        30,
        f"gap records covering all {dropped_total} drops",
    )
    # ... the oldest went first (each device's drops start right after what was delivered) ...
    for device, seqs in dropped.items():
        assert seqs == set(range(min(seqs), max(seqs) + 1)), f"{device}: drops not contiguous"
    # ... the collector counts exactly those as lost ...
    procs.wait_until(
        lambda: stack.scrape_sum("pantau_samples_lost_total") == dropped_total,
        20,
        "collector's lost count to equal the agent's drops",
    )
    # ... and everything else arrived exactly once.
    stack.stop_agent_and_check(dropped)
    assert "outbox over budget: dropped device=" in stack.agent.log()


def test_first_message_after_outage_is_the_newest(stack):
    seen: list[tuple[str, int]] = []
    watching = False

    def on_message(client, userdata, msg):
        if watching:
            _, site, device, _ = msg.topic.split("/")
            ss = decode_sample_set(msg.payload, site=site, device=device)
            seen.append((ss.device, ss.seq))

    observer = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="observer")
    observer.on_message = on_message
    observer.connect("127.0.0.1", stack.mosquitto.port)
    observer.subscribe(f"pantau/{SITE}/+/metrics", qos=1)
    observer.loop_start()
    cut = NetCut(stack.mosquitto.port)
    try:
        with cut:
            stack.start_agent(broker_port=cut.port)
            stack.wait_polls(2)
            cut.cut()
            before = stack.outbox()[0]
            stack.wait_polls(before["radio"] + int(OUTAGE))
            watching = True
            newest_at_restore = stack.outbox()[0]
            cut.restore()
            procs.wait_until(
                lambda: stack.outbox()[1] <= len(DEVICES) and len(seen) > 3 * len(DEVICES),
                60,
                "the backlog to drain",
            )
    finally:
        observer.loop_stop()
        observer.disconnect()
    for device in DEVICES:
        mine = [seq for d, seq in seen if d == device]
        assert mine[0] >= newest_at_restore[device], (device, mine[:10])
        backlog = [s for s in mine[1:] if s < mine[0]]
        assert backlog == sorted(backlog), f"{device}: backlog not oldest-first: {backlog}"
        assert len(backlog) >= int(OUTAGE) - 1
    # The newest of every device went out before any backlog item.
    first_backlog = next(
        i for i, (d, s) in enumerate(seen) if s < max(q for dd, q in seen[: i + 1] if dd == d)
    )
    assert {d for d, _ in seen[:first_backlog]} == set(DEVICES)


@pytest.mark.parametrize("where", ["not-a-directory", "disk-full"])
def test_unusable_state_directory_is_a_clear_error(tmp_path, where, mosquitto):
    if where == "not-a-directory":
        blocker = tmp_path / "state"
        blocker.write_text("a file where the state directory should be")
        outbox_path = blocker / "outbox.sqlite"
        expected = "is not a directory"
    else:
        outbox_path = Path("/dev/full")
        if not outbox_path.exists() or not stat.S_ISCHR(outbox_path.stat().st_mode):
            pytest.skip("/dev/full is not available here")
        expected = "cannot open outbox /dev/full"
    cfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=[procs.snmpsim_device("radio", "ceraos", 9)],
        outbox={"path": str(outbox_path)},
    )
    result = subprocess.run(
        [str(procs.BIN / "pantau-agent"), "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "cannot start" in result.stderr and expected in result.stderr, result.stderr


def test_heartbeat_reports_outbox_health(stack):
    cut = NetCut(stack.mosquitto.port)
    with cut:
        stack.start_agent(broker_port=cut.port)
        stack.wait_polls(2)
        cut.cut()
        stack.wait_polls(stack.outbox()[0]["radio"] + 3)
        cut.restore()
        restored = time.time()
        site = (("site", SITE),)

        def drained_and_reported() -> bool:
            # the collector keeps a dark site's last heartbeat figures: wait for a heartbeat
            # sent after the uplink came back, saying the backlog is gone
            m = procs.scrape(stack.http)
            return (
                m.get(("pantau_agent_heartbeat_timestamp_seconds", site), 0) > restored
                and m.get(("pantau_agent_outbox_pending", site)) == 0
            )

        procs.wait_until(drained_and_reported, 60, "backlog drained and reported")
        m = procs.scrape(stack.http)
    assert m[("pantau_agent_outbox_dropped_total", (("site", SITE),))] == 0
    assert m[("pantau_agent_publish_latency_seconds", (("site", SITE),))] < 5
    # The birth message on reconnect reported the backlog; later heartbeats report it gone.
    (pending,) = stack.victoria.export(f'pantau_site_outbox_pending{{site="{SITE}"}}')
    assert max(pending["values"]) >= 3 * len(DEVICES) and pending["values"][-1] == 0
    (age,) = stack.victoria.export(f'pantau_site_outbox_oldest_age_seconds{{site="{SITE}"}}')
    assert max(age["values"]) >= 2.0
