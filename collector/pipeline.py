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

A batch InfluxDB refuses (a 4xx other than 401, 403 and 429: the data itself) is split in two by
message and each half written again, down to the messages it really refuses: only those are set
aside as `influx_refused`; the rest is written, accounted and acknowledged as usual (InfluxDB
answers 400 to a partial write too, after keeping the good lines: writing them again stores the
same points). A refused token (401/403) is no property of the data: it is retried with backoff
like an outage, nothing is acknowledged, and readiness fails until a write succeeds.
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

from collector.acks import events_key
from collector.events import check_event, check_event_gap, event_line
from collector.intake import Inbound
from collector.lineproto import gap_line, sample_set_lines, status_line
from collector.names import check_names
from collector.sink import InfluxSink, WriteFailed
from collector.state import State
from collector.validate import Rejected, check_gap, check_sample_set, check_status, parse_topic
from pantau.backoff import Backoff
from pantau.logs import RateLimitedLog
from pantau.wire.codec import peek_event_seq, peek_gap, peek_seq
from pantau.wire.model import MAX_DECODED_BYTES, MAX_POINTS_PER_MESSAGE, MAX_VALUES_PER_MESSAGE

log = logging.getLogger("pantau.collector.pipeline")


class RejectedStore:
    """Sets rejected messages aside in a JSON-lines file, bounded in size, for later study."""

    def __init__(self, path: Path | None, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.dropped = 0  # rejected (and counted) but not kept: the file is full
        self._full_log = RateLimitedLog(log, period=3600.0)

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
                self._full_log.warning(
                    "full",
                    "rejected file full, rejected messages no longer kept path=%s max_bytes=%d "
                    "not_kept_total=%d",
                    self.path,
                    self.max_bytes,
                    self.dropped,
                )
                return
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(record + "\n")
        except OSError as exc:
            log.error("cannot set rejected message aside path=%s error=%s", self.path, exc)


def _nothing() -> None:
    pass


class AckSink(Protocol):
    """Told what was written, to acknowledge it to the site (collector.acks.Acker)."""

    def stored(self, site: str, device: str, seq: int) -> None: ...

    def gap(self, site: str, device: str, first: int, last: int) -> None: ...


def _both(first: Callable[[], None], then: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        first()
        then()

    return run


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
    sizes: list[int] = field(default_factory=list)  # lines of each message, in order

    def split(self) -> tuple[Batch, Batch]:
        """The first and second half of the batch's messages, each with its lines."""
        half = len(self.msgs) // 2
        cut = sum(self.sizes[:half])
        return (
            Batch(
                self.lines[:cut], self.msgs[:half], self.after[:half], self.first, self.sizes[:half]
            ),
            Batch(
                self.lines[cut:], self.msgs[half:], self.after[half:], self.first, self.sizes[half:]
            ),
        )


class _GaveUp(Exception):
    """Stopping, and the write still fails: what is not written stays with the broker."""


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
        max_points: int = MAX_POINTS_PER_MESSAGE,
        max_values: int = MAX_VALUES_PER_MESSAGE,
        acks: AckSink | None = None,
    ) -> None:
        """`acks` is told each sample set, event and gap record once written (end-to-end
        acknowledgements to the sites, collector/acks.py). `settle_holes=False` when this collector sees only part of each device's stream
        (a member of a shared-subscription group): a heartbeat then cannot tell a hole that
        is lost from a sample set a sibling wrote, so only gap records count as losses.
        `max_points`/`max_values` bound the rows and values one sample set may decode to
        (beyond them it is rejected as `too_many_points`, before its groups are built)."""
        self.sink = sink
        self.acks = acks
        self._event_acks: list[Callable[[], None]] = []  # the writer's, until the state is saved
        self.settle_holes = settle_holes
        self.state = state
        self.metrics = metrics
        self.ack = ack
        self.rejected = rejected
        self.max_message_bytes = max_message_bytes
        self.max_points = max_points
        self.max_values = max_values
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
        self.auth_failure: str | None = None  # why InfluxDB refuses the token, while it does
        self._writer: threading.Thread | None = None
        self._stopping = False

    def writer_dead(self) -> bool:
        """The writer thread ended while the pipeline still runs (an unexpected exception)."""
        writer = self._writer
        return writer is not None and not writer.is_alive() and not self._stopping

    # -- the pipeline thread ---------------------------------------------------------------

    def run(self, inbox: queue.Queue[Inbound], stop: threading.Event) -> None:
        writer = threading.Thread(
            target=self._write_loop, args=(stop,), name="pipeline-writer", daemon=True
        )
        self._writer = writer
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
            self._stopping = True
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
                ss = check_sample_set(
                    site,
                    device,
                    msg.payload,
                    self.max_message_bytes,
                    max_points=self.max_points,
                    max_values=self.max_values,
                )
                self.state.on_sample_set(ss)
                lines = sample_set_lines(ss)
                after = functools.partial(self.state.written_sample_set, site, device, ss.seq)
                if self.acks is not None:
                    after = _both(after, functools.partial(self.acks.stored, site, device, ss.seq))
            elif kind == "gap":
                assert device is not None
                gap = check_gap(site, device, msg.payload, self.max_message_bytes)
                lines = [gap_line(gap)]
                after = functools.partial(self.state.written_gap, gap)
                if self.acks is not None:
                    acked = functools.partial(
                        self.acks.gap, site, device, gap.first_seq, gap.last_seq
                    )
                    after = _both(after, acked)
            elif kind == "event":
                assert device is not None
                event = check_event(site, device, msg.payload, self.max_message_bytes)
                lines = [event_line(event)]
                after = functools.partial(self.state.events.on_event, event)
                if self.acks is not None:  # under the events' own key and numbers
                    acked = functools.partial(self.acks.stored, site, events_key(device), event.seq)
                    after = _both(after, functools.partial(self._event_acks.append, acked))
            elif kind == "event_gap":
                # Events the agent dropped: counted (collector.events), nothing to write; the
                # record is acknowledged like a sample sets' gap, under its "<device>/event".
                assert device is not None
                gap = check_event_gap(site, device, msg.payload, self.max_message_bytes)
                lines = []
                after = functools.partial(self.state.events.on_event_gap, site, device, gap)
                if self.acks is not None:
                    acked = functools.partial(
                        self.acks.gap, site, gap.device, gap.first_seq, gap.last_seq
                    )
                    after = _both(after, acked)
            elif kind == "names":
                # Enumeration names and help texts (collector/names.py): state, nothing to
                # write. An empty retained message withdraws them.
                if msg.payload:
                    self.state.on_names(site, check_names(site, msg.payload))
                else:
                    self.state.names.forget_site(site)
                lines, after = [], _nothing
            elif not msg.payload:
                # A retained empty status message (the MQTT way to delete a retained one):
                # the operator decommissioned the site (docs/deploy.md). Nothing to write.
                self.state.forget_site(site)
                lines, after = [], _nothing
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
            if exc.final:
                self._confirm_set_aside(msg)
            return
        batch = self._batch
        if not batch.msgs:
            batch.first = time.monotonic()
        batch.lines.extend(lines)
        batch.msgs.append(msg)
        batch.after.append(after)
        batch.sizes.append(len(lines))
        self.metrics.pending(len(batch.lines) + self._handed)

    def _confirm_set_aside(self, msg: Inbound) -> None:
        """A sample set, event or gap record set aside because its payload is at fault
        (Rejected.final: counted, logged, in the rejected file) is accounted for: acknowledge
        it to its site as if stored, so the agent stops sending it again (it would be refused
        again, at the cost of VSAT bytes, until its budget forgot it). Its number still counts
        as lost in the sequence accounting once the agent's heartbeat shows it gone.

        Only then: a refusal that depends on this collector (a kind another site sent first,
        a full registry, InfluxDB's field types, an unknown version) is not acknowledged, or one
        site could make another site's agent delete good data. Read leniently (the message
        failed its checks), but only a number the payload gives for the topic's own site and
        device (pantau.wire.codec.peek_seq): another device's payload confirms nothing."""
        if self.acks is None:
            return
        try:
            kind, site, device = parse_topic(msg.topic)
        except Rejected:
            return  # not a site's topic: nobody to tell
        if device is None:
            return
        if kind == "metrics":
            seq = peek_seq(
                msg.payload,
                min(self.max_message_bytes * 16, MAX_DECODED_BYTES),
                site=site,
                device=device,
            )
            if seq is not None:
                self.acks.stored(site, device, seq)
                return
        elif kind in ("gap", "event_gap"):
            key = events_key(device) if kind == "event_gap" else device
            run = peek_gap(msg.payload, site=site, device=key)
            if run is not None:
                self.acks.gap(site, key, *run)
                return
        elif kind == "event":
            seq = peek_event_seq(msg.payload, site=site, device=device)
            if seq is not None:
                self.acks.stored(site, events_key(device), seq)
                return
        else:
            return
        self._warn.warning(
            "unconfirmable",
            "set aside without a readable sequence number topic=%s: not acknowledged to the "
            "site, whose agent may send it again",
            msg.topic[:200],
        )

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
        try:
            self._write_batches(stop)
        except BaseException:
            # Readiness and the systemd watchdog report it (collector/service.py).
            log.critical("the InfluxDB writer thread died", exc_info=True)
            raise

    def _write_batches(self, stop: threading.Event) -> None:
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
        """Write the batch, retrying while InfluxDB is unavailable; ack only what was written
        or set aside. False when stopping interrupted it (the rest stays with the broker).

        A refused batch is split by message, each half written again, down to single messages:
        a refused message is set aside, the others are written and accounted."""
        todo = [batch]
        while todo:
            part = todo.pop()
            try:
                refused = self._write(part, stop, attempts)
            except _GaveUp:
                return False
            if refused is None:
                for account in part.after:
                    account()
                self._acknowledge_saved_events()
            elif len(part.msgs) > 1:
                first, second = part.split()
                todo += (second, first)  # first half first: acks stay in order
                log.info(
                    "influx refused batch, splitting it reason=%s messages=%d points=%d",
                    refused.reason,
                    len(part.msgs),
                    len(part.lines),
                )
                continue
            else:
                (msg,) = part.msgs
                log.error(
                    "influx refused message reason=%s topic=%s detail=%s points=%d",
                    refused.reason,
                    msg.topic[:200],
                    refused.detail,
                    len(part.lines),
                )
                self.metrics.rejected("influx_refused")
                self.rejected.add(msg, "influx_refused", refused.detail)
                # Not acknowledged to the site: a field type InfluxDB refuses depends on what
                # its shard holds already (another site's data, or a shard that expires).
            for msg in part.msgs:
                self.ack(msg)
        return True

    def _acknowledge_saved_events(self) -> None:
        """Events' acknowledgements once the alarm state they changed is saved (when
        `alarm_state_file` is set): the agent deletes an acknowledged event, so a crash between
        the two must not lose its raise or clear. A failed save (logged, counted) holds them
        back: the agent sends those events again (counted once) and they are acknowledged
        after a save that succeeds."""
        if not self._event_acks:
            return
        acks, self._event_acks = self._event_acks, []
        if self.state.events.save():
            for ack in acks:
                ack()

    def _write(
        self, batch: Batch, stop: threading.Event, attempts: int | None
    ) -> WriteFailed | None:
        """Write, retrying what may succeed later; None once written, or why InfluxDB refuses
        the data. Raises _GaveUp when stopping (or after `attempts`) while it still fails."""
        if not batch.lines:
            return None
        tries = 0
        while True:
            tries += 1
            t0 = time.monotonic()
            try:
                self.sink.write(batch.lines)
            except WriteFailed as exc:
                self.metrics.write_failed(exc.reason)
                if not exc.retry:
                    return exc  # the data itself: retrying it unchanged cannot help
                self.influx_ok.clear()
                if exc.auth:
                    what = "org or bucket" if exc.reason == "not_found" else "token"
                    self.auth_failure = f"InfluxDB refuses the {what} ({exc.reason}): {exc.detail}"
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
                    raise _GaveUp from None
                continue
            self.metrics.written(len(batch.lines), time.monotonic() - t0)
            self.auth_failure = None
            self.influx_ok.set()
            self.backoff.reset()
            return None
