"""Outbox hardening: one agent per outbox file (lock), inserts stay fsynced after a failed ack
flush, and stats() comes from memory yet always equals a full scan of the table."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.outbox import KIND_SAMPLES, Dropped, Outbox, OutboxError, OutboxStats

REPO = Path(__file__).resolve().parent.parent
SYNCHRONOUS_FULL = 2
NOW = int(time.time() * 1000)


def gap(drop: Dropped) -> tuple[str, bytes]:
    return f"pantau/s/{drop.device}/gap", f"{drop.first_seq}-{drop.last_seq}".encode()


def new_box(path: Path, **kw: object) -> Outbox:
    args: dict[str, object] = {"max_bytes": 1 << 30, "max_age_s": 86400.0, "gap_encoder": gap}
    args.update(kw)
    return Outbox(path, **args)  # type: ignore[arg-type]


# -- (a) one agent per outbox ------------------------------------------------------------------


def test_a_second_opener_is_refused_while_the_first_holds_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    first = new_box(path).open()
    try:
        with pytest.raises(OutboxError) as err:
            new_box(path).open()
        message = str(err.value)
        assert str(path) in message and "another agent holds it" in message
        # another process (a second agent) is refused too, with the same message
        code = (
            "import sys; from pathlib import Path; from agent.outbox import Outbox, OutboxError\n"
            "try:\n"
            f"    Outbox(Path({str(path)!r}), max_bytes=4096, max_age_s=60).open()\n"
            "except OutboxError as exc:\n"
            "    print(exc); sys.exit(3)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30
        )
        assert other.returncode == 3, other.stdout + other.stderr
        assert "another agent holds it" in other.stdout and str(path) in other.stdout
    finally:
        first.close()
    # closed: the next agent may open it (and the failed openers left nothing behind)
    with new_box(path) as again:
        assert len(again) == 0


# -- (b) a failed ack flush does not leave inserts without fsync ----------------------------------


def test_failed_ack_flush_restores_synchronous_full(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with new_box(path, ack_batch_s=3600.0) as box:
        for seq in range(1, 4):
            box.put("pantau/s/radio/metrics", b"x" * 10, device="radio", seq=seq, ts_ms=NOW + seq)
        items = [box.take() for _ in range(3)]
        for item in items:
            assert item is not None
            box.ack(item)
        assert box.db.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
        # Someone else holds the write lock: the batched delete fails at once.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        box.db.execute("PRAGMA busy_timeout=0")
        try:
            box._flush_acks()
            assert box.db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 3  # failed
            assert box.db.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
        finally:
            other.execute("ROLLBACK")
            other.close()
        # the next flush succeeds: the acks were kept, not lost
        box._flush_acks()
        assert box.db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        assert box.db.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
        assert len(box) == 0 and box.stats().pending == 0


# -- (c) stats() from memory ------------------------------------------------------------------


def full_scan(box: Outbox, now_ms: int) -> OutboxStats:
    """stats() computed the slow way: every row, minus acks whose delete is not committed."""
    acked = set(box._acked)
    count = size = 0
    pending_from: dict[str, int] = {}
    oldest: int | None = None
    for item_id, kind, device, seq, ts, length in box.db.execute(
        "SELECT id, kind, device, seq, ts_ms, length(payload) FROM outbox"
    ):
        if item_id in acked:
            continue
        count += 1
        size += length
        if kind == KIND_SAMPLES:
            pending_from[device] = min(seq, pending_from.get(device, seq))
            oldest = ts if oldest is None else min(oldest, ts)
    age = max(0.0, (now_ms - oldest) / 1000) if oldest is not None else 0.0
    return OutboxStats(count, size, age, box.dropped_total, pending_from)


def test_stats_reads_no_table(tmp_path: Path) -> None:
    with new_box(tmp_path / "outbox.sqlite") as box:
        for seq in range(1, 50):
            box.put("pantau/s/radio/metrics", b"x" * 10, device="radio", seq=seq, ts_ms=NOW + seq)
        statements: list[str] = []
        box.db.set_trace_callback(statements.append)
        stats = box.stats(now_ms=NOW + 1000)
        box.db.set_trace_callback(None)
        assert statements == [], f"stats() ran SQL: {statements}"
        assert (stats.pending, stats.pending_from, stats.oldest_age_s) == (49, {"radio": 1}, 0.999)


@pytest.mark.parametrize("ack_batch_s", [0.0, 3600.0])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_stats_equals_a_full_scan_after_random_operations(
    tmp_path: Path, seed: int, ack_batch_s: float
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "outbox.sqlite"
    devices = ["radio", "lte", "gw"]
    now_ms = NOW
    box = new_box(path, ack_batch_s=ack_batch_s).open()
    claimed = []
    try:
        for step in range(600):
            op = rng.random()
            now_ms += rng.randrange(0, 2000)
            if op < 0.45:
                device = rng.choice(devices)
                seq = box.next_seq(device)
                # poll times are not in insertion order across (or even within) devices
                ts = now_ms - rng.randrange(0, 60_000)
                payload = bytes(rng.randrange(1, 300))
                box.put(f"pantau/s/{device}/metrics", payload, device=device, seq=seq, ts_ms=ts)
            elif op < 0.70:
                item = box.take(backlog=rng.random() < 0.8)
                if item is not None:
                    claimed.append(item)
            elif op < 0.85 and claimed:
                box.ack(claimed.pop(rng.randrange(len(claimed))))
            elif op < 0.90:
                box.release()
                claimed.clear()
            elif op < 0.95:
                box.max_bytes = rng.randrange(500, 20_000)
                box.max_age_s = rng.choice([30.0, 3600.0, 86400.0])
                box.enforce_budget(now_ms)
                box.max_bytes, box.max_age_s = 1 << 30, 86400.0
            elif op < 0.97:
                box._flush_acks()
            else:  # restart
                box.close()
                claimed.clear()
                box = new_box(path, ack_batch_s=ack_batch_s).open()
            assert box.stats(now_ms) == full_scan(box, now_ms), f"seed {seed} step {step}"
        assert box.dropped_total > 0, "the sequence was meant to drop some items"
    finally:
        box.close()
    with new_box(path) as again:
        assert again.stats(now_ms) == full_scan(again, now_ms)
        assert again.stats(now_ms).pending > 0
