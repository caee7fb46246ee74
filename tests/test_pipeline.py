"""The collector pipeline on its own: batching, acknowledgement order and every refusal path.

In process, no servers: the InfluxDB sink is a scripted stand-in (a list of outcomes per write),
because these tests are about what the pipeline does with each outcome, not about HTTP; the
real write API is exercised by tests/test_write_path.py and the end-to-end tests.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.intake import Inbound
from collector.pipeline import Batch, Pipeline, RejectedStore
from collector.sink import WriteFailed
from collector.state import State
from pantau.wire import Field, Group, Kind, SampleSet, encode_sample_set, metrics_topic
from tests.support.recording import RecordingMetrics

NOW_MS = int(time.time() * 1000)


class ScriptedSink:
    """Answers each write with the next scripted outcome (None = accepted), then accepts."""

    def __init__(self, outcomes: list[WriteFailed | None] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.writes: list[list[str]] = []
        self.stored: list[str] = []

    def write(self, lines: list[str]) -> None:
        self.writes.append(list(lines))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.stored += lines


def sample_set(site: str, seq: int, device: str = "radio") -> SampleSet:
    return SampleSet(
        site,
        device,
        seq,
        NOW_MS - 1000 + seq,
        12,
        True,
        "",
        [Group("signal", {"index": "1"}, [Field("rsl_dbm", Kind.GAUGE, -50.5 - seq)])],
    )


def message(site: str, seq: int, mid: int, device: str = "radio") -> Inbound:
    payload = encode_sample_set(sample_set(site, seq, device))
    return Inbound(metrics_topic(site, device), payload, mid, 1, 1)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[object]:
    made: list[Pipeline] = []

    def build(sink: ScriptedSink, batch_size: int = 1000, flush_interval: float = 60.0):
        acked: list[int] = []
        counts = RecordingMetrics()
        pipe = Pipeline(
            sink=sink,  # type: ignore[arg-type]  # the scripted stand-in above
            state=State(900),
            metrics=counts,
            ack=lambda m: acked.append(m.mid),
            rejected=RejectedStore(tmp_path / "rejected.jsonl", 1 << 20),
            max_message_bytes=65536,
            batch_size=batch_size,
            flush_interval=flush_interval,
            retry_min=0.001,
            retry_max=0.005,
        )
        made.append(pipe)
        return pipe, acked, counts

    yield build


def take_batch(pipe: Pipeline) -> Batch:
    batch, pipe._batch = pipe._batch, Batch()
    return batch


def test_a_batch_is_written_once_and_acked_in_arrival_order(make):
    sink = ScriptedSink()
    pipe, acked, counts = make(sink)
    mids = [7, 3, 9, 1]  # broker message ids need not be ordered
    for seq, mid in enumerate(mids, 1):
        pipe.handle(message("s1", seq, mid))
    batch = take_batch(pipe)
    assert len(batch.msgs) == 4 and acked == []  # nothing acked before the write
    assert pipe.flush(batch, threading.Event())
    assert acked == mids
    assert len(sink.writes) == 1 and sink.writes[0] == batch.lines
    assert counts.points == len(batch.lines) == 8  # a poll line and a signal line each
    assert pipe.state.snapshot()["s1"].sequences["radio"].received == 4


def test_retryable_failures_hold_the_acks_until_influx_accepts(make):
    down = WriteFailed("connection", "refused", retry=True)
    sink = ScriptedSink([down, down, down])
    pipe, acked, counts = make(sink)
    pipe.handle(message("s1", 1, 11))
    pipe.handle(message("s1", 2, 12))
    assert pipe.flush(take_batch(pipe), threading.Event())
    assert counts.failures == ["connection"] * 3
    assert len(sink.writes) == 4 and sink.writes[0] == sink.writes[3]  # the same batch again
    assert acked == [11, 12] and pipe.influx_ok.is_set()


def test_stopping_while_influx_fails_acks_nothing(make):
    sink = ScriptedSink([WriteFailed("http_503", "busy", retry=True)] * 100)
    pipe, acked, _ = make(sink)
    pipe.handle(message("s1", 1, 21))
    stop = threading.Event()
    stop.set()
    assert pipe.flush(take_batch(pipe), stop) is False
    assert acked == []  # the broker keeps it and redelivers it to the next collector run
    assert "radio" not in pipe.state.snapshot()["s1"].sequences  # nothing counted as stored


def test_an_auth_failure_is_retried_and_reported_until_it_heals(make):
    sink = ScriptedSink([WriteFailed("unauthorized", "HTTP 401", retry=True, auth=True)] * 2)
    pipe, acked, counts = make(sink)
    pipe.handle(message("s1", 1, 31))
    seen: list[str | None] = []
    original = sink.write

    def watching(lines: list[str]) -> None:
        seen.append(pipe.auth_failure)
        original(lines)

    sink.write = watching  # type: ignore[method-assign]
    assert pipe.flush(take_batch(pipe), threading.Event())
    assert seen[1] is not None and "refuses the token (unauthorized)" in seen[1]
    assert pipe.auth_failure is None and acked == [31]
    assert counts.rejections == []


def test_a_refused_single_message_is_set_aside_and_acked(make, tmp_path: Path):
    sink = ScriptedSink([WriteFailed("http_400", "field type conflict", retry=False)])
    pipe, acked, counts = make(sink)
    pipe.handle(message("s9", 1, 41))
    assert pipe.flush(take_batch(pipe), threading.Event())
    assert acked == [41] and counts.rejections == ["influx_refused"]
    (record,) = [
        json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()
    ]
    assert record["reason"] == "influx_refused" and record["topic"] == "pantau/s9/radio/metrics"
    assert "radio" not in pipe.state.snapshot()["s9"].sequences  # not counted as stored


def test_a_refused_batch_is_split_until_only_the_refused_message_is_left(make):
    refused = WriteFailed("http_400", "bad point", retry=False)
    # 4 messages: the whole batch, then its first half are refused; the first half splits
    # into two singles, of which the first is refused again
    sink = ScriptedSink([refused, refused, refused])
    pipe, acked, counts = make(sink)
    for seq, mid in enumerate([51, 52, 53, 54], 1):
        pipe.handle(message("s1", seq, mid))
    assert pipe.flush(take_batch(pipe), threading.Event())
    assert [len(w) for w in sink.writes] == [8, 4, 2, 2, 4]
    assert acked == [51, 52, 53, 54]  # in order, the set-aside one included
    assert counts.rejections == ["influx_refused"]
    assert pipe.state.snapshot()["s1"].sequences["radio"].received == 3


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("pantau/s1/radio/metrics", b"\x02garbage", "unknown_dictionary"),
        ("pantau/s1/radio/metrics", b"\x02\x00" + bytes(4) + b"\xc1", "site_mismatch"),
        ("pantau/s1/radio/other", b"x", "bad_topic"),
        ("pantau/s1/status", b"{not json", "malformed"),
        ("pantau/s1/radio/metrics", b"\x09" + bytes(20), "unknown_version"),
    ],
)
def test_a_bad_message_is_acked_set_aside_and_never_written(make, topic, payload, reason):
    sink = ScriptedSink()
    pipe, acked, counts = make(sink)
    pipe.handle(Inbound(topic, payload, 61, 1, 1))
    pipe.handle(message("s1", 1, 62))
    assert acked == [61]  # at once: nothing to wait for
    assert counts.rejections == [reason]
    assert pipe.flush(take_batch(pipe), threading.Event())
    assert acked == [61, 62] and all("garbage" not in line for line in sink.stored)


def test_the_thread_flushes_a_partial_batch_and_acks_everything(make):
    sink = ScriptedSink()
    pipe, acked, _ = make(sink, batch_size=5, flush_interval=0.2)
    inbox: queue.Queue[Inbound] = queue.Queue()
    stop = threading.Event()
    worker = threading.Thread(target=pipe.run, args=(inbox, stop))
    worker.start()
    try:
        for seq in range(1, 13):  # two full batches of 5 points... and a partial one
            inbox.put(message("s1", seq, 100 + seq))
        deadline = time.monotonic() + 10
        while len(acked) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    assert acked == [100 + s for s in range(1, 13)]
    assert sorted(line for w in sink.writes for line in w) == sorted(sink.stored)
    assert len(sink.stored) == 24


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_is_reported(make):
    class Exploding(ScriptedSink):
        def write(self, lines: list[str]) -> None:
            raise RuntimeError("bug in the sink")

    pipe, acked, _ = make(Exploding())
    inbox: queue.Queue[Inbound] = queue.Queue()
    stop = threading.Event()
    worker = threading.Thread(target=pipe.run, args=(inbox, stop), daemon=True)
    worker.start()
    inbox.put(message("s1", 1, 201))
    deadline = time.monotonic() + 10
    while not pipe.writer_dead() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pipe.writer_dead() and acked == []
    stop.set()
    worker.join(10)


def test_a_full_rejected_file_says_so(tmp_path: Path, caplog):
    """The rejected file is bounded; once full, the messages are still counted as rejected
    (pantau_collector_messages_rejected_total) but no longer kept: that is logged, not silent."""
    store = RejectedStore(tmp_path / "rejected.jsonl", 600)
    with caplog.at_level("WARNING", logger="pantau.collector.pipeline"):
        for mid in range(5):
            store.add(message("s1", mid + 1, mid), "bad_value", "x")
    kept = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert len(kept) + store.dropped == 5 and store.dropped >= 1
    (record,) = [r for r in caplog.records if "rejected file full" in r.getMessage()]
    assert "not_kept_total=1" in record.getMessage()  # once, with the count so far
