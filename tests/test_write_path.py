"""The collector's write path when something goes wrong: a thread that dies, a token InfluxDB
refuses, a batch InfluxDB refuses because of one message in it.

The collector runs in process (collector.service.Collector) against a real mosquitto, so its
acknowledgements can be recorded; InfluxDB is a tiny HTTP server (`FakeInflux`) speaking the
v2 write API, because what is tested is InfluxDB's answers, which the stand-in used elsewhere
cannot give: VictoriaMetrics cannot be given a token here (its -httpAuth.* flags want HTTP Basic
auth, and influxdb-client sends `Authorization: Token …`, so it could only ever answer 401), and
it skips a bad line silently where InfluxDB answers 400 ("partial write") after keeping the good
lines."""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorFile, HttpConfig, InfluxConfig, MqttConfig
from collector.intake import Inbound
from collector.pipeline import Batch, Pipeline, RejectedStore
from collector.service import Collector
from collector.sink import InfluxSink
from collector.state import State
from devstack import procs
from devstack.servers import Mosquitto, free_port
from pantau.wire import Field, Group, Kind, SampleSet, encode_sample_set, metrics_topic
from tests.support.recording import RecordingMetrics

# ------------------------------------------------------------------------------------------
# a stand-in for InfluxDB's write API


class FakeInflux:
    """POST /api/v2/write answered by `answer(lines)` → (status, body); lines kept when the
    answer is 204, and the good lines of a 400 "partial write" (as InfluxDB keeps them).
    GET /ping answers 204 without a token, as InfluxDB does."""

    POISON = "poison"  # a line holding this is "refused" (think: a field type conflict)

    def __init__(self) -> None:
        self.mode = "ok"  # "ok", "unauthorized", "forbidden"
        self.stored: list[str] = []
        self.requests: list[tuple[int, int]] = []  # (status, lines) of every write
        self.tokens: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(204 if self.path.startswith("/ping") else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, text = fake.answer(
                    body.decode().splitlines(), self.headers.get("Authorization", "")
                )
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, lines: list[str], token: str) -> tuple[int, str]:
        with self._lock:
            self.tokens.append(token)
            if self.mode == "unauthorized":
                status, text = 401, '{"code":"unauthorized","message":"unauthorized access"}'
            elif self.mode == "forbidden":
                status, text = 403, '{"code":"forbidden","message":"insufficient permissions"}'
            elif self.mode == "not_found":
                status, text = 404, '{"code":"not found","message":"bucket \\"pantau\\" not found"}'
            else:
                bad = [line for line in lines if self.POISON in line]
                self.stored += [line for line in lines if self.POISON not in line]
                status, text = 204, ""
                if bad:
                    status = 400
                    text = (
                        '{"code":"invalid","message":"partial write: field type conflict: '
                        f'{len(bad)} points dropped"}}'
                    )
            self.requests.append((status, len(lines)))
            return status, text

    def seqs(self, site: str) -> list[int]:
        """The sequence numbers of `site` whose pantau_poll line was stored (sorted)."""
        pattern = re.compile(rf"^pantau_poll,device=\S+,site={site} .*,seq=(\d+)i,")
        with self._lock:
            return sorted(int(m.group(1)) for line in self.stored if (m := pattern.match(line)))

    def __enter__(self) -> FakeInflux:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------
# the collector, in process


def sample_set(site: str, seq: int, device: str = "radio", poison: bool = False) -> SampleSet:
    measurement = FakeInflux.POISON if poison else "modem"
    return SampleSet(
        site=site,
        device=device,
        seq=seq,
        ts_ms=int(time.time() * 1000) - 60_000 + seq,
        duration_ms=10,
        up=True,
        reason="",
        groups=[Group(measurement, {}, [Field("snr_db", Kind.GAUGE, 10.0 + seq)])],
    )


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tester-{uuid.uuid4().hex[:8]}")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for info in [pub.publish(topic, payload, qos=1) for topic, payload in messages]:
            info.wait_for_publish(10)
    finally:
        pub.loop_stop()
        pub.disconnect()


class Running:
    def __init__(self, coll: Collector, http_port: int) -> None:
        self.coll = coll
        self.http_port = http_port
        self.acked: list[Inbound] = []

    def readyz(self) -> tuple[int, str]:
        return procs.http_get(f"http://127.0.0.1:{self.http_port}/readyz")

    def metric(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return procs.scrape(self.http_port).get(key, 0.0)


@contextmanager
def collector(
    broker: Mosquitto, influx_url: str, prepare: Callable[[Collector], None] = lambda c: None
) -> Iterator[Running]:
    http_port = free_port()
    cfg = CollectorFile(
        mqtt=MqttConfig(port=broker.port, client_id=f"coll-{uuid.uuid4().hex[:8]}"),
        influx=InfluxConfig(
            url=influx_url, flush_interval=0.1, retry_min=0.05, retry_max=0.2, timeout=5
        ),
        http=HttpConfig(listen=f"127.0.0.1:{http_port}"),
    )
    coll = Collector(cfg)
    running = Running(coll, http_port)
    ack = coll.pipeline.ack

    def recording_ack(msg: Inbound) -> None:
        running.acked.append(msg)
        ack(msg)

    coll.pipeline.ack = recording_ack
    prepare(coll)
    stop = threading.Event()
    thread = threading.Thread(target=coll.run, args=(stop,), name="collector-under-test")
    thread.start()
    try:
        procs.wait_until(lambda: coll.intake.subscribed.is_set(), 20, "collector subscribed")
        yield running
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the collector did not stop"


class Notify:
    """A stand-in for systemd's notification socket (datagrams of VAR=VALUE lines)."""

    def __init__(self) -> None:
        self.name = f"pantau-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def collect(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.messages.append((time.monotonic(), fields))

    def since(self, t0: float) -> list[dict[str, str]]:
        return [m for t, m in self.messages if t >= t0]


# ------------------------------------------------------------------------------------------
# 1. dead threads are loud


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # on purpose
def test_a_dead_writer_fails_readiness_and_starves_the_watchdog(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = Notify()
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + notify.name)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a tick every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    def writer_bug(lines: list[str]) -> None:
        raise KeyError("a bug in the writer")

    with FakeInflux() as influx, collector(mosquitto, influx.url) as run:
        publish(
            mosquitto.port, [(metrics_topic("s1", "radio"), encode_sample_set(sample_set("s1", 1)))]
        )
        procs.wait_until(lambda: len(run.acked) == 1, 20, "the first message written")
        assert run.readyz() == (200, "ready\n")
        notify.collect(0.6)
        assert any("WATCHDOG" in m for _, m in notify.messages), notify.messages

        run.coll.sink.write = writer_bug  # type: ignore[method-assign]
        publish(
            mosquitto.port, [(metrics_topic("s1", "radio"), encode_sample_set(sample_set("s1", 2)))]
        )
        procs.wait_until(lambda: run.readyz()[0] == 503, 20, "readiness to fail")
        status, why = run.readyz()
        assert "thread died: pipeline-writer" in why, why
        assert run.coll.dead_threads() == ["pipeline-writer"]
        assert len(run.acked) == 1  # the second message stays with the broker

        t0 = time.monotonic() + 0.3  # a ping already in flight may still arrive
        notify.collect(1.5)
        later = notify.since(t0)
        assert not [m for m in later if "WATCHDOG" in m], later
        stuck = [m["STATUS"] for _, m in notify.messages if "STATUS" in m]
        assert "stuck: no progress from pipeline-writer" in stuck, stuck


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # on purpose
def test_a_dead_intake_fails_readiness(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """An exception in a paho callback ends paho's network thread; the collector is then deaf,
    although the subscription flag still says subscribed."""

    class BrokenInbox(queue.Queue[Inbound]):
        def put(self, item: Inbound, block: bool = True, timeout: float | None = None) -> None:
            raise MemoryError("cannot take a message")

    with FakeInflux() as influx, collector(mosquitto, influx.url) as run:
        assert run.readyz() == (200, "ready\n")
        run.coll.intake.inbox = BrokenInbox()
        publish(
            mosquitto.port, [(metrics_topic("s1", "radio"), encode_sample_set(sample_set("s1", 1)))]
        )
        procs.wait_until(lambda: not run.coll.intake.alive(), 20, "the MQTT thread to die")
        status, why = run.readyz()
        assert status == 503 and "thread died: mqtt" in why, why
        assert run.coll.dead_threads() == ["mqtt"]


# ------------------------------------------------------------------------------------------
# 2. a refused token loses nothing


@pytest.mark.parametrize(
    ("mode", "reason", "what"),
    [
        ("unauthorized", "unauthorized", "token"),
        ("forbidden", "forbidden", "token"),
        ("not_found", "not_found", "org or bucket"),
    ],
)
def test_a_refused_token_is_retried_and_nothing_is_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto, mode: str, reason: str, what: str
) -> None:
    """401 (expired or wrong token), 403 (no write permission) and 404 (no such org or bucket)
    are not a property of the data: an operator fixes the configuration and everything held
    arrives. Until then nothing is acked, the
    failures are counted by reason, and /readyz says why."""
    with FakeInflux() as influx, collector(mosquitto, influx.url) as run:
        influx.mode = mode
        seqs = list(range(1, 7))
        publish(
            mosquitto.port,
            [(metrics_topic("s1", "radio"), encode_sample_set(sample_set("s1", s))) for s in seqs],
        )
        procs.wait_until(
            lambda: run.metric("pantau_collector_write_errors_total", reason=reason) >= 3,
            20,
            f"{reason} write errors counted",
        )
        assert run.acked == []
        assert influx.seqs("s1") == []
        status, why = run.readyz()
        assert status == 503 and f"InfluxDB refuses the {what} ({reason})" in why, why
        assert run.metric("pantau_collector_messages_rejected_total", reason="influx_refused") == 0

        influx.mode = "ok"  # the operator installed a valid token
        procs.wait_until(lambda: len(run.acked) == len(seqs), 20, "every message written")
        assert influx.seqs("s1") == seqs
        procs.wait_until(lambda: run.readyz()[0] == 200, 10, "ready again")
        assert run.metric("pantau_collector_messages_rejected_total", reason="influx_refused") == 0


# ------------------------------------------------------------------------------------------
# 3. one bad point poisons nothing but itself


def test_a_refused_batch_is_split_to_set_aside_only_what_is_refused(tmp_path: Path) -> None:
    sites = ["s1", "s2", "s3"]
    metrics = RecordingMetrics()
    state = State(900)
    acked: list[int] = []
    rejected_file = tmp_path / "rejected.jsonl"
    with FakeInflux() as influx:
        pipe = Pipeline(
            sink=InfluxSink(InfluxConfig(url=influx.url, timeout=5)),  # type: ignore[arg-type]
            state=state,
            metrics=metrics,
            ack=lambda m: acked.append(m.mid),
            rejected=RejectedStore(rejected_file, 1 << 20),
            max_message_bytes=65536,
            batch_size=10_000,
            flush_interval=60,
        )
        mids = iter(range(1, 1000))
        sent: list[tuple[int, str, int, bool]] = []  # (mid, site, seq, poisoned)
        for seq in range(1, 8):
            for site in sites:
                poisoned = site == "s2" and seq == 5
                ss = sample_set(site, seq, poison=poisoned)
                mid = next(mids)
                pipe.handle(Inbound(metrics_topic(site, "radio"), encode_sample_set(ss), mid, 1, 1))
                sent.append((mid, site, seq, poisoned))
        batch, pipe._batch = pipe._batch, Batch()
        assert len(batch.msgs) == 21
        assert pipe.flush(batch, threading.Event())

    assert acked == [mid for mid, *_ in sent]  # every message acknowledged, in order
    assert metrics.rejections == ["influx_refused"]  # ... and only one set aside
    assert rejected_file.read_text().count('"reason": "influx_refused"') == 1
    assert "pantau/s2/radio/metrics" in rejected_file.read_text()
    assert set(metrics.failures) == {"http_400"}
    assert len(metrics.failures) <= 2 * 5  # a bisection, not a write per message
    for site in sites:
        written = [seq for _, s, seq, poisoned in sent if s == site and not poisoned]
        # every message written (its poll line stored; a partial write keeps the good lines
        # of a refused batch too, so some were stored more than once, which is harmless)
        assert set(written) <= set(influx.seqs(site))
        tracker = state.snapshot()[site].sequences["radio"]
        assert tracker.received == len(written), site  # accounting kept for what was written
