"""The collector's hot path: check each message, batch its points, write, then acknowledge.

A message is acknowledged to the broker only after InfluxDB accepted its points, or after it
was rejected and set aside; so a collector killed at any moment loses nothing, the broker
redelivers. While InfluxDB is down the pipeline retries with backoff and holds its batch; the
broker's Receive Maximum stops the flow, and the persistent session keeps the rest.

Two threads share the work so that checking never waits for the network: the pipeline thread
decodes, checks and turns messages into line protocol, while a writer thread sends the previous
batch and then acknowledges its messages. At most one batch waits between them (and one is being
written), so memory stays bounded; batches are written and acknowledged in the order they were
filled. A batch goes to the writer when it holds `batch_size` points, when `flush_interval` has
passed since its first message, or at once when the writer is idle and no message is waiting:
a light load is written with little delay, and a heavy one in large batches.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from collector.intake import Inbound
from collector.lineproto import gap_line, sample_set_lines, status_line
from collector.sink import InfluxSink, WriteFailed
from collector.state import State
from collector.validate import Rejected, check_gap, check_sample_set, check_status, parse_topic
from pantau.backoff import Backoff
from pantau.logs import RateLimitedLog

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
        record = json.dumps(
            {
                "ts": time.time(),
                "topic": msg.topic,
                "reason": reason,
                "detail": detail[:500],
                "payload_b64": base64.b64encode(msg.payload[:65536]).decode(),
            }
        )
        try:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(record) > self.max_bytes:
                self.dropped += 1
                return
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(record + "\n")
        except OSError as exc:
            log.error("cannot set rejected message aside path=%s error=%s", self.path, exc)


def _nothing() -> None:
    pass


class PipelineMetrics(Protocol):
    """What the pipeline reports (collector.exposition.SelfMetrics exposes it)."""

    def received(self, kind: str) -> None: ...

    def rejected(self, reason: str) -> None: ...

    def pending(self, points: int) -> None: ...

    def write_failed(self, reason: str) -> None: ...

    def written(self, points: int, seconds: float) -> None: ...


@dataclass(slots=True)
class Batch:
    lines: list[str] = field(default_factory=list)
    msgs: list[Inbound] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)  # accounting, once written
    first: float = 0.0  # monotonic time of its first message


class Pipeline:
    def __init__(
        self,
        *,
        sink: InfluxSink,
        state: State,
        metrics: PipelineMetrics,
        ack: Callable[[Inbound], None],
        rejected: RejectedStore,
        max_message_bytes: int,
        batch_size: int,
        flush_interval: float,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        settle_holes: bool = True,
    ) -> None:
        """`settle_holes=False` when this collector sees only part of each device's stream
        (a member of a shared-subscription group): a heartbeat then cannot tell a hole that
        is lost from a sample set a sibling wrote, so only gap records count as losses."""
        self.sink = sink
        self.settle_holes = settle_holes
        self.state = state
        self.metrics = metrics
        self.ack = ack
        self.rejected = rejected
        self.max_message_bytes = max_message_bytes
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.backoff = Backoff(retry_min, retry_max)
        self._batch = Batch()
        self._handoff: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._writer_idle = threading.Event()
        self._handed = 0  # points handed to the writer and not yet written or given up
        self._handed_lock = threading.Lock()
        self._warn = RateLimitedLog(log)
        self.influx_ok = threading.Event()

    # -- the pipeline thread ---------------------------------------------------------------

    def run(self, inbox: queue.Queue[Inbound], stop: threading.Event) -> None:
        writer = threading.Thread(
            target=self._write_loop, args=(stop,), name="pipeline-writer", daemon=True
        )
        writer.start()
        try:
            while not stop.is_set():
                batch = self._batch
                timeout = 0.5
                if batch.msgs:
                    timeout = min(timeout, batch.first + self.flush_interval - time.monotonic())
                try:
                    msg = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
                except queue.Empty:
                    msg = None
                if msg is not None:
                    self.handle(msg)
                batch = self._batch
                if batch.msgs and (
                    len(batch.lines) >= self.batch_size
                    or (self._writer_idle.is_set() and inbox.empty())
                    or time.monotonic() - batch.first >= self.flush_interval
                ):
                    self._hand_over(writer)
        finally:
            if self._batch.msgs and writer.is_alive():
                self._hand_over(writer)  # one attempt: what fails stays with the broker
            while writer.is_alive():  # the writer finishes what it holds, then ends
                try:
                    self._handoff.put(None, timeout=1.0)
                    break
                except queue.Full:
                    continue
            writer.join()

    def handle(self, msg: Inbound) -> None:
        try:
            kind, site, device = parse_topic(msg.topic)
            self.metrics.received(kind)
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
                after = (
                    functools.partial(self.state.written_status, status)
                    if self.settle_holes
                    else _nothing
                )
        except Rejected as exc:
            self.metrics.rejected(exc.reason)
            self._warn.warning(
                exc.reason,
                "message rejected reason=%s topic=%s detail=%s",
                exc.reason,
                msg.topic[:200],
                exc.detail,
            )
            self.rejected.add(msg, exc.reason, exc.detail)
            self.ack(msg)
            return
        batch = self._batch
        if not batch.msgs:
            batch.first = time.monotonic()
        batch.lines.extend(lines)
        batch.msgs.append(msg)
        batch.after.append(after)
        self.metrics.pending(len(batch.lines) + self._handed)

    def _hand_over(self, writer: threading.Thread) -> None:
        """Give the current batch to the writer, waiting while it still holds the one before."""
        batch, self._batch = self._batch, Batch()
        self._writer_idle.clear()  # busy from now on, as far as this thread is concerned
        with self._handed_lock:
            self._handed += len(batch.lines)
        while True:
            try:
                self._handoff.put(batch, timeout=1.0)
                return
            except queue.Full:
                if not writer.is_alive():
                    raise RuntimeError("the InfluxDB writer thread died") from None

    # -- the writer thread -----------------------------------------------------------------

    def _write_loop(self, stop: threading.Event) -> None:
        while True:
            try:
                batch = self._handoff.get_nowait()
            except queue.Empty:
                self._writer_idle.set()
                batch = self._handoff.get()
                self._writer_idle.clear()
            if batch is None:
                return
            try:
                # Once stopping, one attempt per batch: what fails stays with the broker.
                self.flush(batch, stop, attempts=1 if stop.is_set() else None)
            finally:
                with self._handed_lock:
                    self._handed -= len(batch.lines)
                self.metrics.pending(len(self._batch.lines) + self._handed)

    def flush(self, batch: Batch, stop: threading.Event, attempts: int | None = None) -> bool:
        """Write the batch, retrying while InfluxDB is unavailable; ack only what was written."""
        tries = 0
        while True:
            tries += 1
            t0 = time.monotonic()
            try:
                self.sink.write(batch.lines)
            except WriteFailed as exc:
                self.metrics.write_failed(exc.reason)
                if not exc.retry:
                    # InfluxDB refuses the data itself: retrying cannot help. Set it aside.
                    log.error(
                        "influx refused batch reason=%s detail=%s points=%d",
                        exc.reason,
                        exc.detail,
                        len(batch.lines),
                    )
                    for msg in batch.msgs:
                        self.metrics.rejected("influx_refused")
                        self.rejected.add(msg, "influx_refused", exc.detail)
                    break
                self.influx_ok.clear()
                delay = self.backoff.next()
                self._warn.warning(
                    "write",
                    "influx write failed reason=%s detail=%s retry_in=%.1fs points=%d",
                    exc.reason,
                    exc.detail,
                    delay,
                    len(batch.lines),
                )
                if (attempts is not None and tries >= attempts) or stop.wait(delay):
                    return False
                continue
            self.metrics.written(len(batch.lines), time.monotonic() - t0)
            self.influx_ok.set()
            self.backoff.reset()
            for account in batch.after:
                account()
            break
        for msg in batch.msgs:
            self.ack(msg)
        return True
