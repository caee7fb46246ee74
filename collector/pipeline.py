"""The collector's hot path: check each message, batch its points, write, then acknowledge.

A message is acknowledged to the broker only after InfluxDB accepted its points, or after it
was rejected and set aside; so a collector killed at any moment loses nothing, the broker
redelivers. While InfluxDB is down the pipeline retries with backoff and holds its batch; the
broker's Receive Maximum stops the flow, and the persistent session keeps the rest.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.backoff import Backoff
from agent.logs import RateLimitedLog
from collector.exposition import SelfMetrics
from collector.intake import Inbound
from collector.lineproto import gap_line, sample_set_lines, status_line
from collector.sink import InfluxSink, WriteFailed
from collector.state import State
from collector.validate import Rejected, check_gap, check_sample_set, check_status, parse_topic

log = logging.getLogger("pantau.collector.pipeline")


class RejectedStore:
    """Sets rejected messages aside in a JSON-lines file, bounded in size, for later study."""

    def __init__(self, path: Path | None, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.dropped = 0

    def add(self, msg: Inbound, reason: str, detail: str) -> None:
        if self.path is None:
            return
        record = json.dumps({"ts": time.time(), "topic": msg.topic, "reason": reason,
                             "detail": detail[:500],
                             "payload_b64": base64.b64encode(msg.payload[:65536]).decode()})
        try:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(record) > self.max_bytes:
                self.dropped += 1
                return
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(record + "\n")
        except OSError as exc:
            log.error("cannot set rejected message aside path=%s error=%s", self.path, exc)


class Pipeline:
    def __init__(self, *, sink: InfluxSink, state: State, metrics: SelfMetrics,
                 ack: Callable[[Inbound], None], rejected: RejectedStore,
                 max_message_bytes: int, batch_size: int, flush_interval: float,
                 retry_min: float = 0.5, retry_max: float = 30.0) -> None:
        self.sink = sink
        self.state = state
        self.metrics = metrics
        self.ack = ack
        self.rejected = rejected
        self.max_message_bytes = max_message_bytes
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.backoff = Backoff(retry_min, retry_max)
        self._lines: list[str] = []
        self._msgs: list[Inbound] = []
        self._after: list[Callable[[], None]] = []  # accounting, once the batch is written
        self._first = 0.0
        self._warn = RateLimitedLog(log)
        self.influx_ok = threading.Event()

    def run(self, inbox: queue.Queue[Inbound], stop: threading.Event) -> None:
        while not stop.is_set():
            timeout = self.flush_interval
            if self._msgs:
                timeout = max(0.0, self._first + self.flush_interval - time.monotonic())
            try:
                msg = inbox.get(timeout=min(timeout, 0.5))
            except queue.Empty:
                msg = None
            if msg is not None:
                self.handle(msg)
            if self._msgs and (len(self._lines) >= self.batch_size
                               or time.monotonic() - self._first >= self.flush_interval):
                self.flush(stop)
        if self._msgs:
            self.flush(stop, attempts=1)  # last chance; what fails stays with the broker

    def handle(self, msg: Inbound) -> None:
        try:
            kind, site, device = parse_topic(msg.topic)
            self.metrics.received.labels(kind).inc()
            after: Callable[[], None]
            if kind == "metrics":
                assert device is not None
                ss = check_sample_set(site, device, msg.payload, self.max_message_bytes)
                self.state.on_sample_set(ss)
                lines = sample_set_lines(ss)
                after = functools.partial(self.state.written_sample_set, site, device, ss.seq)
            elif kind == "gap":
                assert device is not None
                gap = check_gap(site, device, msg.payload, self.max_message_bytes)
                lines = [gap_line(gap)]
                after = functools.partial(self.state.written_gap, gap)
            else:
                status = check_status(site, msg.payload, self.max_message_bytes)
                self.state.on_status(status)
                lines = [status_line(status, int(time.time() * 1000))]
                after = functools.partial(self.state.written_status, status)
        except Rejected as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            self._warn.warning(exc.reason, "message rejected reason=%s topic=%s detail=%s",
                               exc.reason, msg.topic[:200], exc.detail)
            self.rejected.add(msg, exc.reason, exc.detail)
            self.ack(msg)
            return
        if not self._msgs:
            self._first = time.monotonic()
        self._lines.extend(lines)
        self._msgs.append(msg)
        self._after.append(after)
        self.metrics.pending.set(len(self._lines))

    def flush(self, stop: threading.Event, attempts: int | None = None) -> bool:
        """Write the batch, retrying while InfluxDB is unavailable; ack only what was written."""
        tries = 0
        while True:
            tries += 1
            t0 = time.monotonic()
            try:
                self.sink.write(self._lines)
            except WriteFailed as exc:
                self.metrics.write_errors.labels(exc.reason).inc()
                if not exc.retry:
                    # InfluxDB refuses the data itself: retrying cannot help. Set it aside.
                    log.error("influx refused batch reason=%s detail=%s points=%d",
                              exc.reason, exc.detail, len(self._lines))
                    for msg in self._msgs:
                        self.metrics.rejected.labels("influx_refused").inc()
                        self.rejected.add(msg, "influx_refused", exc.detail)
                    break
                self.influx_ok.clear()
                delay = self.backoff.next()
                self._warn.warning("write", "influx write failed reason=%s detail=%s "
                                   "retry_in=%.1fs points=%d", exc.reason, exc.detail, delay,
                                   len(self._lines))
                if (attempts is not None and tries >= attempts) or stop.wait(delay):
                    return False
                continue
            self.metrics.write_latency.observe(time.monotonic() - t0)
            self.metrics.points.inc(len(self._lines))
            self.influx_ok.set()
            self.backoff.reset()
            for account in self._after:
                account()
            break
        for msg in self._msgs:
            self.ack(msg)
        self._lines = []
        self._msgs = []
        self._after = []
        self.metrics.pending.set(0)
        return True
