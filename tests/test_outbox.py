"""The durable outbox on its own: order, budgets, gap records, sequence numbers, crash points.

No servers: every test works on a SQLite file under tmp_path. Acknowledgements are batched
(`ack_batch_s`); unless a test is about the batching, the boxes here use a batch period of an
hour, so an ack is committed only by close() (or a failed flush is retried then), which keeps
the tests independent of the wall clock.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from agent.outbox import KIND_GAP, KIND_SAMPLES, Dropped, Outbox, OutboxError, OutboxStats

HOUR = 3600.0
NEVER = 10**12  # a byte budget nothing here reaches


def gap_payload(drop: Dropped) -> tuple[str, bytes]:
    """A readable gap encoding: topic per device, payload `first-last/count`."""
    return f"gap/{drop.device}", f"{drop.first_seq}-{drop.last_seq}/{drop.count}".encode()


SHM = Path("/dev/shm")


@pytest.fixture
def path(tmp_path):
    """Where the test's outbox lives: on tmpfs when there is one, else under tmp_path.

    Every put is an fsync; on a loaded disk that is 5 to 50 ms each, which would make this
    file slow for `make check`. The tests check logic and crash points of a process (the page
    cache outlives it), not the disk, so tmpfs changes nothing they assert."""
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        base = Path(tempfile.mkdtemp(prefix="pantau-outbox-test-", dir=SHM))
        yield base / "state" / "outbox.sqlite"
        shutil.rmtree(base, ignore_errors=True)
    else:
        yield tmp_path / "state" / "outbox.sqlite"


@pytest.fixture
def now():
    """Poll timestamps close to the wall clock, so put()'s own age check never fires."""
    return int(time.time() * 1000)


@pytest.fixture
def boxes(path):
    """Open outboxes on `path` (each closed at teardown, which releases its lock)."""
    opened: list[Outbox] = []

    def make(
        *,
        max_bytes=NEVER,
        max_age_s=HOUR,
        gap_encoder=None,
        ack_batch_s=HOUR,
    ) -> Outbox:
        box = Outbox(
            path,
            max_bytes=max_bytes,
            max_age_s=max_age_s,
            gap_encoder=gap_encoder,
            ack_batch_s=ack_batch_s,
        ).open()
        opened.append(box)
        return box

    yield make
    for box in opened:
        box.close()


def put(box, device, seq, ts_ms, payload=None):
    box.put(
        f"m/{device}",
        payload if payload is not None else f"{device}{seq}".encode(),
        device=device,
        seq=seq,
        ts_ms=ts_ms,
    )


def drain(box, backlog=True):
    """Take until nothing is left to hand out; the items in the order they came."""
    out = []
    while (item := box.take(backlog)) is not None:
        out.append(item)
    return out


def keys(items):
    return [(i.device, i.seq, i.live) for i in items]


def gaps(items):
    return [(i.device, i.payload.decode()) for i in items if i.kind == KIND_GAP]


# -- put / take / ack -------------------------------------------------------------------------


def test_a_sample_set_comes_out_as_it_went_in(boxes, now):
    box = boxes()
    box.put("pantau/site/r1/metrics", b"\x00\x01payload", device="r1", seq=7, ts_ms=now)
    item = box.take()
    assert item is not None
    assert (item.kind, item.device, item.seq, item.topic, item.payload, item.live) == (
        KIND_SAMPLES,
        "r1",
        7,
        "pantau/site/r1/metrics",
        b"\x00\x01payload",
        True,
    )
    assert box.take() is None  # handed out once: in flight until acked or released
    assert (len(box), box.empty()) == (1, False)
    box.ack(item)
    assert (len(box), box.empty()) == (0, True)
    assert box.take() is None


@pytest.mark.parametrize(
    ("backlog", "expected"),
    [
        (
            True,
            [("a", 3, True), ("b", 2, True), ("c", 1, True)]
            + [("a", 1, False), ("a", 2, False), ("b", 1, False)],
        ),
        (False, [("a", 3, True), ("b", 2, True), ("c", 1, True)]),
    ],
    ids=["with-backlog", "live-only"],
)
def test_each_devices_newest_first_then_the_backlog_oldest_first(boxes, now, backlog, expected):
    box = boxes()
    for device, seq in [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2), ("c", 1)]:
        put(box, device, seq, now)
    assert keys(drain(box, backlog)) == expected


def test_a_live_only_take_leaves_the_backlog_for_later(boxes, now):
    box = boxes()
    for seq in (1, 2, 3):
        put(box, "a", seq, now)
    assert keys(drain(box, backlog=False)) == [("a", 3, True)]
    assert keys(drain(box)) == [("a", 1, False), ("a", 2, False)]


def test_new_polls_overtake_the_backlog(boxes, now):
    box = boxes()
    for device, seq in [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]:
        put(box, device, seq, now)
    first = [box.take() for _ in range(3)]
    assert keys(first) == [("a", 3, True), ("b", 2, True), ("a", 1, False)]
    put(box, "b", 3, now)
    put(box, "a", 4, now)
    assert keys(drain(box)) == [
        ("b", 3, True),
        ("a", 4, True),
        ("a", 2, False),
        ("b", 1, False),
    ]


def test_once_the_newest_is_acked_the_rest_is_backlog_oldest_first(boxes, now):
    box = boxes()
    for seq in (1, 2, 3):
        put(box, "a", seq, now)
    newest = box.take()
    assert keys([newest]) == [("a", 3, True)]
    box.ack(newest)
    assert keys(drain(box)) == [("a", 1, False), ("a", 2, False)]


def test_release_hands_every_unacked_item_out_again_in_the_same_order(boxes, now):
    box = boxes()
    for device, seq in [("a", 1), ("a", 2), ("b", 1), ("a", 3)]:
        put(box, device, seq, now)
    items = drain(box)
    assert keys(items) == [("b", 1, True), ("a", 3, True), ("a", 1, False), ("a", 2, False)]
    box.ack(items[2])  # a1 got its PUBACK before the connection died
    box.release()
    assert keys(drain(box)) == [("b", 1, True), ("a", 3, True), ("a", 2, False)]
    assert len(box) == 3


def test_a_second_ack_of_the_same_item_counts_once(boxes, now):
    box = boxes()
    put(box, "a", 1, now, b"x" * 10)
    put(box, "a", 2, now, b"y" * 20)
    item = box.take()
    box.ack(item)
    box.ack(item)
    assert (len(box), box.stats(now).pending_bytes) == (1, 10)


def test_an_ack_after_release_is_ignored_so_the_item_is_sent_again_not_lost(boxes, now):
    box = boxes()
    put(box, "a", 1, now)
    item = box.take()
    box.release()  # connection lost; the PUBACK turns up late
    box.ack(item)
    assert len(box) == 1
    again = box.take()
    assert (again.id, again.seq) == (item.id, 1)


def test_next_waits_for_a_put_and_hands_out_what_is_pending_at_once(boxes, now):
    box = boxes()

    async def scenario():
        waiting = asyncio.ensure_future(box.next())
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing to publish: next() waits
        put(box, "a", 1, now)
        first = await asyncio.wait_for(waiting, 1)
        put(box, "a", 2, now)
        put(box, "a", 3, now)
        second = await asyncio.wait_for(box.next(backlog=False), 1)
        third = await asyncio.wait_for(box.next(), 1)
        return [first, second, third]

    assert keys(asyncio.run(scenario())) == [("a", 1, True), ("a", 3, True), ("a", 2, False)]


# -- budget -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_bytes", "sizes", "kept", "dropped"),
    [
        (30, [10, 10, 10], [1, 2, 3], 0),  # exactly at the budget: nothing goes
        (30, [10, 10, 10, 10], [2, 3, 4], 1),
        (25, [10, 10, 10, 10], [3, 4], 2),  # each put over: the oldest goes, one at a time
        (100, [60, 10, 50], [2, 3], 1),  # one big old item frees enough
        (50, [10, 10, 10, 45], [4], 3),  # a big new item pushes out several old ones
        (40, [50], [], 1),  # a single item over the whole budget does not stay either
    ],
)
def test_byte_budget_drops_the_oldest(boxes, now, max_bytes, sizes, kept, dropped):
    box = boxes(max_bytes=max_bytes)
    for seq, size in enumerate(sizes, start=1):
        put(box, "a", seq, now, b"p" * size)
    stats = box.stats(now)
    assert sorted(i.seq for i in drain(box)) == kept
    assert (stats.pending, stats.pending_bytes, stats.dropped_total) == (
        len(kept),
        sum(sizes[s - 1] for s in kept),
        dropped,
    )
    assert box.dropped_total == dropped


def test_the_oldest_go_first_whatever_the_device_and_each_run_is_reported(boxes, now):
    box = boxes()
    for device, seq in [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]:
        put(box, device, seq, now, b"p" * 10)
    box.max_bytes = 20
    assert box.enforce_budget(now) == [Dropped("a", 1, 2, 2), Dropped("b", 1, 1, 1)]
    assert sorted((i.device, i.seq) for i in drain(box)) == [("a", 3), ("b", 2)]
    assert box.stats(now).dropped_total == 3


@pytest.mark.parametrize(
    ("late_ms", "dropped"),
    [
        (0, None),  # poll 1 is exactly max_age old: kept
        (1, Dropped("a", 1, 1, 1)),
        (2000, Dropped("a", 1, 2, 2)),  # poll 3 at the cutoff stays
        (2001, Dropped("a", 1, 3, 3)),
        (3001, Dropped("a", 1, 4, 4)),
    ],
)
def test_age_budget_drops_what_is_older_than_max_age(boxes, now, late_ms, dropped):
    box = boxes(max_age_s=60)
    for seq in (1, 2, 3, 4):
        put(box, "a", seq, now + (seq - 1) * 1000)
    drops = box.enforce_budget(now_ms=now + 60_000 + late_ms)
    assert drops == ([dropped] if dropped else [])
    gone = dropped.count if dropped else 0
    assert sorted(i.seq for i in drain(box)) == list(range(gone + 1, 5))
    assert box.dropped_total == gone


def test_items_in_flight_are_never_dropped(boxes, now):
    box = boxes(max_age_s=60)
    for seq in (1, 2, 3, 4):
        put(box, "a", seq, now)
    in_flight = [box.take(), box.take()]
    assert [i.seq for i in in_flight] == [4, 1]
    assert box.enforce_budget(now_ms=now + 3_600_000) == [Dropped("a", 2, 3, 2)]
    for item in in_flight:
        box.ack(item)
    assert (len(box), box.dropped_total) == (0, 2)


def test_dropped_total_survives_a_restart(boxes, now):
    box = boxes(max_bytes=20)
    for seq in (1, 2, 3, 4, 5):
        put(box, "a", seq, now, b"p" * 10)
    assert box.dropped_total == 3
    box.close()
    again = boxes(max_bytes=20)
    assert (again.dropped_total, again.stats(now).dropped_total) == (3, 3)
    put(again, "a", 6, now, b"p" * 10)
    assert again.dropped_total == 4


# -- gap records ------------------------------------------------------------------------------


def test_gap_records_go_out_first_with_the_encoders_topic_and_payload(boxes, now):
    box = boxes(max_age_s=60, gap_encoder=gap_payload)
    for seq in (1, 2, 3, 4):
        put(box, "a", seq, now + (seq - 1) * 1000)
    put(box, "b", 1, now + 5000)
    box.enforce_budget(now_ms=now + 60_000 + 2000)  # drops a1 and a2
    items = drain(box)
    assert [(i.kind, i.device, i.seq, i.live) for i in items] == [
        (KIND_GAP, "a", 2, False),  # a gap record's seq is the last dropped number
        (KIND_SAMPLES, "a", 4, True),
        (KIND_SAMPLES, "b", 1, True),
        (KIND_SAMPLES, "a", 3, False),
    ]
    assert (items[0].topic, items[0].payload) == ("gap/a", b"1-2/2")


def test_without_a_gap_encoder_drops_are_counted_but_not_recorded(boxes, now):
    box = boxes(max_age_s=60)
    for seq in (1, 2, 3):
        put(box, "a", seq, now + (seq - 1) * 1000)
    assert box.enforce_budget(now_ms=now + 60_000 + 1500) == [Dropped("a", 1, 2, 2)]
    assert [(i.kind, i.seq) for i in drain(box)] == [(KIND_SAMPLES, 3)]
    assert box.dropped_total == 2


@pytest.mark.parametrize(
    ("between", "expected"),
    [
        ("nothing", [("a", "1-4/4")]),  # adjacent runs, first record unsent: one record
        ("gap in flight", [("a", "1-2/2"), ("a", "3-4/2")]),  # never rewrite what is in flight
        ("gap delivered", [("a", "3-4/2")]),
        ("a3 delivered", [("a", "1-2/2"), ("a", "4-4/1")]),  # runs not adjacent
    ],
)
def test_adjacent_drops_of_a_device_merge_into_its_unsent_gap_record(boxes, now, between, expected):
    box = boxes(max_age_s=60, gap_encoder=gap_payload)
    for seq in range(1, 7):
        put(box, "a", seq, now + (seq - 1) * 1000)
    assert box.enforce_budget(now_ms=now + 62_000) == [Dropped("a", 1, 2, 2)]
    if between == "gap in flight":
        assert box.take().kind == KIND_GAP
    elif between == "gap delivered":
        box.ack(box.take())
    elif between == "a3 delivered":
        items = drain(box)
        assert keys(items) == [("a", 2, False), ("a", 6, True), ("a", 3, False)] + [
            ("a", 4, False),
            ("a", 5, False),
        ]
        box.ack(items[2])
        box.release()
    box.enforce_budget(now_ms=now + 64_000)  # a3 (unless delivered) and a4 are too old now
    box.release()
    assert gaps(drain(box)) == expected


def test_each_device_gets_its_own_gap_record(boxes, now):
    box = boxes(max_age_s=60, gap_encoder=gap_payload)
    for i, (device, seq) in enumerate([("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]):
        put(box, device, seq, now + i * 1000)
    box.enforce_budget(now_ms=now + 63_000)  # a1 b1 a2
    box.enforce_budget(now_ms=now + 64_000)  # b2: adjacent to b's record
    assert gaps(drain(box)) == [("a", "1-2/2"), ("b", "1-2/2")]


def test_gap_records_count_in_the_outbox_and_survive_a_restart(boxes, now):
    box = boxes(max_age_s=60, gap_encoder=gap_payload)
    for seq in (1, 2, 3):
        put(box, "a", seq, now + (seq - 1) * 1000, b"p" * 10)
    box.enforce_budget(now_ms=now + 62_000)  # a1, a2
    figures = box.stats(now + 62_000)
    assert (figures.pending, figures.pending_bytes, figures.dropped_total) == (2, 10 + 5, 2)
    box.close()
    again = boxes(max_age_s=60, gap_encoder=gap_payload)
    assert again.stats(now + 62_000) == figures
    items = drain(again)
    assert [(i.kind, i.seq, i.payload) for i in items] == [
        (KIND_GAP, 2, b"1-2/2"),
        (KIND_SAMPLES, 3, b"p" * 10),
    ]


def test_an_acked_gap_record_leaves_the_outbox(boxes, now):
    box = boxes(max_age_s=60, gap_encoder=gap_payload)
    for seq in (1, 2):
        put(box, "a", seq, now + (seq - 1) * 1000)
    box.enforce_budget(now_ms=now + 60_500)
    gap = box.take()
    assert gap.kind == KIND_GAP
    box.ack(gap)
    box.release()
    assert [(i.kind, i.seq) for i in drain(box)] == [(KIND_SAMPLES, 2)]


# -- sequence numbers -------------------------------------------------------------------------


def test_sequence_numbers_count_per_device_from_one(boxes):
    box = boxes()
    assert [box.next_seq(d) for d in ["a", "a", "b", "a", "b", "c"]] == [1, 2, 1, 3, 2, 1]


@pytest.mark.parametrize("before_restart", ["pending", "acked", "dropped"])
def test_sequence_numbers_continue_after_a_restart(boxes, now, before_restart):
    box = boxes(max_bytes=NEVER if before_restart != "dropped" else 0)
    for device in ["a", "a", "a", "b"]:
        put(box, device, box.next_seq(device), now)
    if before_restart == "acked":
        for item in drain(box):
            box.ack(item)
    assert len(box) == (4 if before_restart == "pending" else 0)
    box.close()
    again = boxes()
    assert [again.next_seq(d) for d in ["a", "b", "c"]] == [4, 2, 1]


def test_a_number_never_stored_with_a_sample_set_is_given_again_after_a_restart(boxes, now):
    box = boxes()
    put(box, "a", box.next_seq("a"), now)
    assert box.next_seq("a") == 2  # the poll failed: nothing was put with it
    box.close()
    assert boxes().next_seq("a") == 2  # no number was published, so none is skipped


def test_a_stored_sequence_number_never_goes_back(boxes, now):
    box = boxes()
    put(box, "a", 5, now)
    put(box, "a", 3, now)
    box.close()
    assert boxes().next_seq("a") == 6


# -- crash points -----------------------------------------------------------------------------


def test_items_taken_but_not_acked_come_back_after_close_and_reopen(boxes, now):
    box = boxes()
    for _ in range(3):
        put(box, "a", box.next_seq("a"), now)
    assert [i.seq for i in drain(box)] == [3, 1, 2]
    box.close()
    again = boxes()
    assert (len(again), sorted(i.seq for i in drain(again))) == (3, [1, 2, 3])


def test_acks_are_committed_by_close(boxes, now):
    box = boxes()
    for seq in (1, 2, 3):
        put(box, "a", seq, now)
    items = drain(box)
    box.ack(items[0])  # a3
    box.ack(items[1])  # a1
    box.close()
    again = boxes()
    assert [(i.seq, i.payload) for i in drain(again)] == [(2, b"a2")]


CRASH = """
import os, sys, time
from pathlib import Path
from agent.outbox import Outbox
box = Outbox(Path(sys.argv[1]), max_bytes=10**12, max_age_s=3600, ack_batch_s=float(sys.argv[2]))
box.open()
now = int(time.time() * 1000)
for _ in range(3):
    box.put("m/a", b"sample", device="a", seq=box.next_seq("a"), ts_ms=now)
box.ack(box.take())  # a3: PUBACK received
box.take()  # a1: in flight, no PUBACK
os._exit(9)  # SIGKILL or power cut: no close(), no flush
"""


@pytest.mark.parametrize(
    ("ack_batch_s", "after_restart"),
    [
        (HOUR, [1, 2, 3]),  # the ack was still in its batch: a3 is sent again (a duplicate)
        (0.0, [1, 2]),  # the ack was committed at once: a3 is gone
    ],
    ids=["ack-lost", "ack-committed"],
)
def test_a_crash_loses_no_sample_set_at_worst_an_ack(path, boxes, ack_batch_s, after_restart):
    path.parent.mkdir(parents=True)
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), str(path), str(ack_batch_s)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert child.returncode == 9, child.stderr
    box = boxes()  # the dead process's lock went with it
    assert sorted(i.seq for i in drain(box)) == after_restart
    assert box.next_seq("a") == 4


@pytest.mark.parametrize(("ack_batch_s", "committed"), [(0.0, True), (HOUR, False)])
def test_acks_are_committed_in_batches(path, boxes, now, ack_batch_s, committed):
    box = boxes(ack_batch_s=ack_batch_s)
    put(box, "a", 1, now)
    box.ack(box.take())
    with sqlite3.connect(path) as other:  # what a crash right now would leave on disk
        rows = other.execute("SELECT count(*) FROM outbox").fetchone()[0]
    other.close()
    assert rows == (0 if committed else 1)
    assert len(box) == 0


def test_a_failed_ack_flush_keeps_inserts_fsynced_and_counts_nothing_twice(path, boxes, now):
    box = boxes()
    put(box, "a", 1, now, b"x" * 10)
    put(box, "a", 2, now, b"y" * 20)
    acked = box.take()  # a2
    box.ack(acked)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the delete cannot get the write lock
    box.db.execute("PRAGMA busy_timeout=0")
    box.release()  # flushes the acks: fails, logged, kept for later
    writer.execute("ROLLBACK")
    writer.close()
    assert box.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert [i.seq for i in drain(box)] == [1]  # a2 is acked: not handed out again
    assert (len(box), box.stats(now).pending_bytes, box.stats(now).pending_from) == (
        1,
        10,
        {"a": 1},
    )
    box.close()  # the retried flush commits the delete
    assert [i.seq for i in drain(boxes())] == [1]


# -- stats ------------------------------------------------------------------------------------


def test_stats_of_an_empty_outbox(boxes, now):
    assert boxes().stats(now) == OutboxStats(0, 0, 0.0, 0, {})


def test_stats_follow_puts_and_acks(boxes, now):
    box = boxes()
    put(box, "a", 1, now, b"p" * 10)
    put(box, "b", 5, now + 500, b"p" * 20)
    put(box, "a", 2, now + 1000, b"p" * 30)
    at = now + 10_000
    assert box.stats(at) == OutboxStats(3, 60, 10.0, 0, {"a": 1, "b": 5})
    b5, a2, a1 = box.take(), box.take(), box.take()
    assert [(i.device, i.seq) for i in (b5, a2, a1)] == [("b", 5), ("a", 2), ("a", 1)]
    assert box.stats(at) == OutboxStats(3, 60, 10.0, 0, {"a": 1, "b": 5})  # in flight: pending
    steps = [
        (a1, OutboxStats(2, 50, 9.5, 0, {"a": 2, "b": 5})),
        (b5, OutboxStats(1, 30, 9.0, 0, {"a": 2})),
        (a2, OutboxStats(0, 0, 0.0, 0, {})),
    ]
    for item, expected in steps:
        box.ack(item)
        assert box.stats(at) == expected


def test_stats_skip_what_was_acked_out_of_order(boxes, now):
    box = boxes()
    for seq in (1, 2, 3, 4):
        put(box, "a", seq, now + seq * 1000, b"p")
    items = {i.seq: i for i in drain(box)}  # order a4, a1, a2, a3
    at = now + 10_000
    steps = [
        (3, OutboxStats(3, 3, 9.0, 0, {"a": 1})),
        (1, OutboxStats(2, 2, 8.0, 0, {"a": 2})),
        (2, OutboxStats(1, 1, 6.0, 0, {"a": 4})),  # 3 is gone already: 4 is the lowest
        (4, OutboxStats(0, 0, 0.0, 0, {})),
    ]
    for seq, expected in steps:
        box.ack(items[seq])
        assert box.stats(at) == expected


def test_stats_count_an_item_delivered_twice_once(boxes, now):
    box = boxes()
    put(box, "a", 1, now, b"p" * 10)
    put(box, "a", 2, now + 1000, b"p" * 20)
    first = box.take()
    box.release()
    again = box.take()
    assert (first.id, first.seq) == (again.id, 2)
    box.ack(again)
    box.ack(first)  # the same item's PUBACK from the old connection: no second removal
    assert box.stats(now + 2000) == OutboxStats(1, 10, 2.0, 0, {"a": 1})


def test_stats_are_the_same_after_a_restart(boxes, now):
    box = boxes()
    for device, seq, ts in [("a", 3, now), ("b", 1, now + 100), ("a", 4, now + 200)]:
        put(box, device, seq, ts, b"p" * seq)
    box.ack(box.take())  # b1 (oldest newest), committed by close
    before = box.stats(now + 1000)
    assert before == OutboxStats(2, 7, 1.0, 0, {"a": 3})
    box.close()
    assert boxes().stats(now + 1000) == before


def test_stats_age_is_never_negative(boxes, now):
    box = boxes()
    put(box, "a", 1, now + 5000)
    assert box.stats(now).oldest_age_s == 0.0


def test_stats_count_drops(boxes, now):
    box = boxes(max_age_s=60)
    for seq in (1, 2, 3):
        put(box, "a", seq, now + (seq - 1) * 1000, b"p" * 10)
    box.enforce_budget(now_ms=now + 62_000)  # older than now + 2000: a1, a2
    assert box.stats(now + 62_000) == OutboxStats(1, 10, 60.0, 2, {"a": 3})


# -- errors -----------------------------------------------------------------------------------


def _is_a_directory(path):
    path.mkdir(parents=True)
    return path, "unable to open database file"


def _not_a_database(path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not SQLite " * 100)
    return path, "file is not a database"


def _parent_is_a_file(path):
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.write_text("oops")
    return path, f"{path.parent} is not a directory"


def _grandparent_is_a_file(path):
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.write_text("oops")
    return path.parent / "deeper" / "outbox.sqlite", "Not a directory"


@pytest.mark.parametrize(
    "spoil", [_is_a_directory, _not_a_database, _parent_is_a_file, _grandparent_is_a_file]
)
def test_an_unusable_path_is_a_clear_error(path, spoil):
    target, reason = spoil(path)
    with pytest.raises(OutboxError) as err:
        Outbox(target, max_bytes=NEVER, max_age_s=HOUR).open()
    message = str(err.value)
    assert message.startswith(f"cannot open outbox {target}: ")
    assert reason in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: os.access says yes")
def test_an_unwritable_directory_is_a_clear_error(path):
    path.parent.mkdir(parents=True)
    path.parent.chmod(0o500)
    try:
        with pytest.raises(OutboxError, match="is not writable"):
            Outbox(path, max_bytes=NEVER, max_age_s=HOUR).open()
    finally:
        path.parent.chmod(0o700)


def test_a_failed_open_can_be_retried_once_the_path_is_fixed(path, boxes, now):
    _not_a_database(path)
    with pytest.raises(OutboxError):
        Outbox(path, max_bytes=NEVER, max_age_s=HOUR).open()
    path.unlink()
    box = boxes()  # nothing of the failed attempt (connection, lock) is left in the way
    put(box, "a", 1, now)
    assert len(box) == 1


def test_a_second_outbox_on_the_same_file_is_refused(boxes, path):
    boxes()
    with pytest.raises(OutboxError, match="another agent holds it") as err:
        Outbox(path, max_bytes=NEVER, max_age_s=HOUR).open()
    assert str(err.value).startswith(f"cannot open outbox {path}: ")


def test_a_full_disk_while_running_raises_and_keeps_what_is_stored(boxes, path, now):
    box = boxes()
    put(box, "a", 1, now, b"p" * 100)
    before = box.stats(now)
    pages = box.db.execute("PRAGMA page_count").fetchone()[0]
    box.db.execute(f"PRAGMA max_page_count={pages}")  # the file may not grow any more
    with pytest.raises(OutboxError) as err:
        put(box, "a", 2, now, b"q" * 10_000)
    assert str(err.value) == f"cannot write outbox {path}: database or disk is full"
    assert box.stats(now) == before
    assert [(i.seq, i.payload) for i in drain(box)] == [(1, b"p" * 100)]


def test_a_closed_outbox_says_so(boxes, now):
    box = boxes()
    box.close()
    with pytest.raises(OutboxError, match="outbox is not open"):
        put(box, "a", 1, now)
    with pytest.raises(OutboxError, match="outbox is not open"):
        box.take()
