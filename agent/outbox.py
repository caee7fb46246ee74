"""The durable outbox: every sample set and event is on disk before it is published, until it is
delivered (the broker's PUBACK, or end to end a collector's confirmation: docs/delivery.md).

Site uplinks fail for hours (rain fade, a cut fiber, a BTS shedding load), so pollers never talk
to the network: they `put` into this SQLite database (WAL mode, stdlib, no extra dependency) and
the publisher takes items out with `next()`, deleting each one (`ack`) only after its PUBACK.

- Durability: inserts commit with `synchronous=FULL` (an fsync per poll: at most a few per second,
  so it costs nothing and survives power loss). Acknowledgements commit in batches with
  `synchronous=NORMAL`: an ack lost to a power cut only means a duplicate, which the collector
  writes idempotently.
- Budget: bounded by bytes and by age; when over, the oldest sample sets go first. Every drop is
  counted and turned into a gap record (device, first and last dropped sequence numbers) that is
  itself kept and published first, so the collector knows exactly what was lost.
- Order: gap records first, then the newest sample set of each device (the NOC sees current state
  at once after an outage), then the backlog oldest-first (which the publisher may throttle).
- Sequence numbers per device are stored with the sample sets, so they survive restarts.
- One agent per outbox: `open()` takes an exclusive lock (flock on `<path>.lock`), so a second
  agent pointed at the same file fails at start instead of sending everything twice.
- Health figures (`stats()`: pending items and bytes, each device's lowest pending sequence
  number, the oldest pending poll) are kept in memory, loaded once at `open()` and updated by
  put, ack and drop, so the heartbeat never scans the table on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import heapq
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pantau.logs import RateLimitedLog

log = logging.getLogger("pantau.agent.outbox")

KIND_SAMPLES = 0
KIND_GAP = 1

CONFIRMED_TOPICS = ("/metrics", "/gap")
"""Items on these topics wait for a collector's confirmation (end-to-end mode): sample sets and
their gap records."""
EVENT_TOPICS = ("/event", "/event/gap")
"""Trap events and their gap records wait for one too, unless the collectors said they do not
confirm events (an acknowledgement without `events`, from a collector older than that, which
neither subscribes to event gap records nor acknowledges them: see confirm_events)."""
NO_SUBSCRIBERS = 16
"""MQTT 5 PUBACK reason code "No matching subscribers": the broker accepted the publish and threw
it away, since no session (not even a stopped collector's persistent one) subscribes to it.
Never delivery, whatever the mode: the item is kept and sent again later (see ack())."""
MAX_UNCONFIRMED = 10_000
"""Published items waiting for a collector's confirmation, at most (a window, as TCP's): each
costs ~280 bytes of memory here (measured: 100,000 → +26.9 MiB), so while no collector confirms
(days of a NOC outage with the broker up) the agent stops handing out more and keeps them on
disk instead. Resends of the window go on; confirmations open it again. Also caps what the
broker must hold for an absent collector. At acks every 10 s it still allows ~1,000 items/s."""

CACHE_KIB = 256
"""SQLite page cache of the outbox's one connection, KiB."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    INTEGER NOT NULL,
    device  TEXT NOT NULL,
    seq     INTEGER NOT NULL,  -- for a gap record: the last dropped number
    first   INTEGER NOT NULL,  -- for a gap record: the first dropped number; else = seq
    ts_ms   INTEGER NOT NULL,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_device ON outbox (device, id);
-- stats(): the lowest pending sequence number per device and the oldest poll time, found in
-- O(log n) when the one in memory leaves, so no per-item copy is kept in memory
CREATE INDEX IF NOT EXISTS outbox_samples_seq ON outbox (device, seq) WHERE kind = 0;
CREATE INDEX IF NOT EXISTS outbox_samples_ts ON outbox (ts_ms) WHERE kind = 0;
CREATE TABLE IF NOT EXISTS sequences (device TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(Exception):
    """The outbox cannot be opened or written (unwritable directory, disk full, corrupt file)."""


@dataclass(frozen=True, slots=True)
class OutItem:
    id: int
    kind: int
    device: str
    seq: int
    topic: str
    payload: bytes
    live: bool = False  # the newest sample set of its device when handed out


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    pending_bytes: int
    oldest_age_s: float
    dropped_total: int
    pending_from: dict[str, int]  # device → lowest sequence number still waiting here
    unconfirmed: int = 0  # published (PUBACKed), not yet confirmed stored by a collector
    forgotten_total: int = 0  # published, unconfirmed items the budget removed (persisted)


@dataclass(frozen=True, slots=True)
class Dropped:
    device: str
    first_seq: int
    last_seq: int
    count: int


GapEncoder = Callable[[Dropped], tuple[str, bytes]]


class Outbox:
    """Use as `with Outbox(path, ...) as box:`; all methods run on the event loop's thread."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_age_s: float,
        gap_encoder: GapEncoder | None = None,
        ack_batch_s: float = 0.5,
        resend_after: float = 120.0,
        resend_max: float = 3600.0,
        max_unconfirmed: int = MAX_UNCONFIRMED,
    ) -> None:
        self.path = path
        # End-to-end confirmation (docs/delivery.md): when on, a PUBACK does not delete an item;
        # it waits, claimed, until a collector confirms it (confirm()) or its resend deadline
        # passes (then it is pending again, handed out again, with the wait doubled up to
        # resend_max). Off: PUBACK deletes, as with collectors that send no acknowledgements.
        self.end_to_end = False
        self.resend_after = resend_after
        self.resend_max = resend_max
        self.max_unconfirmed = max_unconfirmed
        self._unconfirmed: dict[int, float] = {}  # PUBACKed item id → resend deadline
        self._resend: list[tuple[float, int]] = []  # heap of (deadline, id); stale entries skipped
        self._attempts: dict[int, int] = {}  # item id → publishes so far (for the backoff)
        self._done: set[int] = set()  # acked or confirmed, delete not yet committed
        # In flight when a connection broke: perhaps the broker has them (see enforce_budget)
        self._maybe_sent: set[int] = set()
        self.forgotten_total = 0  # published, unconfirmed items the budget made us forget
        self.resent = 0  # items handed out again after their resend deadline
        self.confirmed = 0  # items a collector confirmed
        self.unrouted = 0  # PUBACKs "no matching subscribers": thrown away by the broker, kept
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.gap_encoder = gap_encoder
        self.ack_batch_s = ack_batch_s
        self._db: sqlite3.Connection | None = None
        self._claimed: set[int] = set()  # handed out and not yet acked or released
        # claimed items not yet acked: id → (device, seq, ts_ms) of a sample set, None for a gap
        self._claimed_meta: dict[int, tuple[str, int, int] | None] = {}
        self._acked: list[int] = []  # acked, delete not yet committed
        self._last_ack_flush = time.monotonic()
        self._backlog: deque[int] = deque()
        self._backlog_cursor = 0
        self._bytes = 0
        self._count = 0
        self._seq: dict[str, int] = {}
        self._newest: dict[str, int] = {}  # device → id of its newest pending sample set
        self._gaps = 0
        # stats(): each device's lowest pending sequence number and the oldest pending poll
        # time, kept as minima; when the minimum itself leaves it is marked stale and looked up
        # again through an index at the next stats() (memory stays constant however long the
        # backlog: a copy per item would cost ~80 bytes each, 36 MB at the default budget)
        self._from: dict[str, int] = {}
        self._from_stale: set[str] = set()
        self._oldest: int | None = None
        self._oldest_stale = False
        self._lock_file: BinaryIO | None = None  # holds the flock on lock_path while open
        self._ready = asyncio.Event()
        self._warn = RateLimitedLog(log, period=60.0)
        self.dropped_total = 0
        self.confirm_seen = False  # a collector has acknowledged to this outbox (persisted)
        # Whether the collectors confirm trap events (the last acknowledgement's `events`,
        # persisted); None: not known yet, and events wait like sample sets in end-to-end mode
        self.confirm_events: bool | None = None

    # -- lifetime ---------------------------------------------------------------------------

    def open(self) -> Outbox:
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise OutboxError(
                f"cannot open outbox {self.path}: {self.path.parent} is not a directory"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path.parent, os.W_OK):
                raise OutboxError(
                    f"outbox directory {self.path.parent} is not writable "
                    f"(running as uid {os.getuid()})"
                )
            self._lock()
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Page cache 256 KiB, not SQLite's 2 MiB: the outbox appends at one end and reads
            # at the other, and the OS caches the file anyway. With a backlog (the open scans
            # every row) the default cache would stay full: 2.6 MiB of RSS for a 20 MB outbox,
            # 0.75 MiB with this.
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            db.executescript(_SCHEMA)
            self._db = db
            self._bytes, self._count = db.execute(
                "SELECT coalesce(sum(length(payload)), 0), count(*) FROM outbox"
            ).fetchone()
            self._seq = dict(db.execute("SELECT device, last FROM sequences"))
            self._gaps = db.execute(
                "SELECT count(*) FROM outbox WHERE kind=?", (KIND_GAP,)
            ).fetchone()[0]
            row = db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()
            self.dropped_total = int(row[0]) if row else 0
            row = db.execute("SELECT value FROM counters WHERE name='forgotten'").fetchone()
            self.forgotten_total = int(row[0]) if row else 0
            row = db.execute("SELECT value FROM counters WHERE name='confirm_seen'").fetchone()
            self.confirm_seen = bool(row and row[0])
            row = db.execute("SELECT value FROM counters WHERE name='confirm_events'").fetchone()
            self.confirm_events = bool(row[0]) if row else None
            self._load_samples(db)  # sets _newest and the stats() figures
            # A probe write: a full disk or read-only file system fails here, at start.
            db.execute("INSERT OR REPLACE INTO counters VALUES ('opened', ?)", (int(time.time()),))
        except OutboxError:
            self._abandon_open()
            raise
        except (sqlite3.Error, OSError) as exc:
            self._abandon_open()
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from None
        if self._count:
            log.info(
                "outbox reopened path=%s pending=%d bytes=%d", self.path, self._count, self._bytes
            )
            self._ready.set()
        return self

    def close(self) -> None:
        if self._db is not None:
            self._flush_acks()
            self._db.close()
            self._db = None
        self._unlock()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _lock(self) -> None:
        """Take the outbox for this process (flock, released by close() or by process death)."""
        if self._lock_file is not None:
            return
        # A file object, not a bare descriptor: an Outbox dropped without close() releases the
        # lock when it is garbage-collected, as its SQLite connection is closed then too.
        lock_file = open(self.lock_path, "a+b", buffering=0)
        fd = lock_file.fileno()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            lock_file.close()
            raise OutboxError(
                f"cannot open outbox {self.path}: another agent holds it "
                f"(lock {self.lock_path}{f', pid {holder}' if holder else ''}); "
                "stop that agent or give this one its own outbox.path"
            ) from None
        except OSError:
            lock_file.close()
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_file = lock_file

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the only descriptor releases the flock
            self._lock_file = None

    def _abandon_open(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._unlock()

    def __enter__(self) -> Outbox:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError("outbox is not open")
        return self._db

    # -- sequence numbers -------------------------------------------------------------------

    def next_seq(self, device: str) -> int:
        """The next sequence number of a device. Persisted with the sample set that uses it."""
        value = self._seq.get(device, 0) + 1
        self._seq[device] = value
        return value

    # -- producer side ----------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, *, device: str, seq: int, ts_ms: int) -> None:
        """Commit a sample set to disk (fsync) before anything else happens to it."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute(
                "INSERT INTO outbox (kind, device, seq, first, ts_ms, topic, "
                "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (KIND_SAMPLES, device, seq, seq, ts_ms, topic, payload),
            )
            db.execute(
                "INSERT INTO sequences VALUES (?, ?) ON CONFLICT(device) "
                "DO UPDATE SET last = max(last, excluded.last)",
                (device, seq),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK") if db.in_transaction else None
            raise OutboxError(f"cannot write outbox {self.path}: {exc}") from None
        assert cur.lastrowid is not None
        self._newest[device] = cur.lastrowid
        self._bytes += len(payload)
        self._count += 1
        self._stat_add(device, seq, ts_ms)
        self.enforce_budget()
        self._ready.set()

    def enforce_budget(self, now_ms: int | None = None) -> list[Dropped]:
        """Drop the oldest sample sets beyond the byte and age budgets; record gap items."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        db = self.db
        cutoff = now_ms - int(self.max_age_s * 1000)
        excess = self._bytes - self.max_bytes
        victims: list[tuple[int, str, int, int, int]] = []
        # Oldest first by id (insertion order): stops at the first row within both budgets.
        # Items published in this process (PUBACKed and unconfirmed, or in flight when a
        # connection broke) count in the budget and go in their turn, but they may be stored:
        # they are *forgotten* (forgotten_total), not dropped: no gap record claims them lost,
        # and dropped_total stays exactly what never left the gateway.
        forgotten: list[tuple[int, str, int, int, int]] = []
        for item_id, device, seq, size, ts in db.execute(
            "SELECT id, device, seq, length(payload), ts_ms FROM outbox WHERE kind=? ORDER BY id",
            (KIND_SAMPLES,),
        ):
            if excess <= 0 and ts >= cutoff:
                break
            if item_id in self._claimed and item_id not in self._unconfirmed:
                continue
            victim = (item_id, device, seq, size, ts)
            if (
                item_id in self._unconfirmed
                or item_id in self._attempts
                or (item_id in self._maybe_sent)
            ):
                self._unconfirmed.pop(item_id, None)
                self._claimed.discard(item_id)
                forgotten.append(victim)
            else:
                victims.append(victim)
            excess -= size
        for victim in forgotten:
            self._attempts.pop(victim[0], None)
            self._maybe_sent.discard(victim[0])
        if forgotten:
            self.forgotten_total += len(forgotten)
            self._warn.warning(
                "forgotten",
                "outbox over budget: forgot published, unconfirmed sample sets count=%d "
                "forgotten_total=%d (perhaps stored; not counted as dropped)",
                len(forgotten),
                self.forgotten_total,
            )
        victims += forgotten
        if not victims:
            return []
        drops = _ranges((v[1], v[2]) for v in victims if v not in forgotten)
        gap_bytes = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM outbox WHERE id=?", [(v[0],) for v in victims])
            for drop in drops:
                if self.gap_encoder is not None:
                    gap_bytes += self._record_gap(drop, now_ms)
            self.dropped_total += len(victims) - len(forgotten)
            db.execute(
                "INSERT OR REPLACE INTO counters VALUES ('dropped', ?)", (self.dropped_total,)
            )
            db.execute(
                "INSERT OR REPLACE INTO counters VALUES ('forgotten', ?)", (self.forgotten_total,)
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK") if db.in_transaction else None
            raise OutboxError(f"cannot write outbox {self.path}: {exc}") from None
        self._bytes += gap_bytes - sum(v[3] for v in victims)
        self._count -= len(victims)
        for _, device, seq, _, ts in victims:
            self._stat_remove(device, seq, ts)
        if self.gap_encoder is not None:
            self._ready.set()
        self._backlog.clear()
        self._backlog_cursor = 0
        for drop in drops:
            self._warn.warning(
                drop.device,
                "outbox over budget: dropped device=%s seq=%d..%d count=%d dropped_total=%d",
                drop.device,
                drop.first_seq,
                drop.last_seq,
                drop.count,
                self.dropped_total,
            )
        return drops

    def _record_gap(self, drop: Dropped, now_ms: int) -> int:
        """Store a gap record, extending the device's unsent one when the runs are adjacent
        (a long outage then costs one record, not one per poll). Returns the bytes added."""
        assert self.gap_encoder is not None
        db = self.db
        for item_id, first, last, size in db.execute(
            "SELECT id, first, seq, length(payload) FROM outbox WHERE kind=? AND device=? "
            "ORDER BY id DESC LIMIT 1",
            (KIND_GAP, drop.device),
        ):
            if item_id not in self._claimed and last + 1 == drop.first_seq:
                merged = Dropped(drop.device, first, drop.last_seq, drop.last_seq - first + 1)
                topic, payload = self.gap_encoder(merged)
                db.execute(
                    "UPDATE outbox SET seq=?, ts_ms=?, payload=? WHERE id=?",
                    (merged.last_seq, now_ms, payload, item_id),
                )
                return len(payload) - int(size)
        topic, payload = self.gap_encoder(drop)
        db.execute(
            "INSERT INTO outbox (kind, device, seq, first, ts_ms, topic, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (KIND_GAP, drop.device, drop.last_seq, drop.first_seq, now_ms, topic, payload),
        )
        self._count += 1
        self._gaps += 1
        return len(payload)

    # -- consumer side ----------------------------------------------------------------------

    async def next(self, backlog: bool = True) -> OutItem:
        """The next item to publish: gaps, then each device's newest, then (if `backlog`)
        the rest oldest-first. Waits until there is one."""
        while True:
            item = self.take(backlog)
            if item is not None:
                return item
            self._ready.clear()
            await self._ready.wait()

    def take(self, backlog: bool = True) -> OutItem | None:
        db = self.db
        self._maybe_flush_acks()
        self._expire()
        if self.window_full():
            return None  # a confirmation or a resend deadline opens it again (poke, confirm)
        claimed = self._claimed
        if self._gaps:
            for row in db.execute(
                "SELECT id, kind, device, seq, topic, payload, ts_ms FROM outbox "
                "WHERE kind=? ORDER BY id LIMIT 64",
                (KIND_GAP,),
            ):
                if row[0] not in claimed:
                    return self._claim(row, live=False)
        for device, item_id in sorted(self._newest.items(), key=lambda kv: kv[1]):
            if item_id in claimed:
                continue
            row = db.execute(
                "SELECT id, kind, device, seq, topic, payload, ts_ms FROM outbox WHERE id=?",
                (item_id,),
            ).fetchone()
            if row is None:  # dropped over budget
                del self._newest[device]
                continue
            return self._claim(row, live=True)
        while backlog:
            if not self._backlog:
                ids = [
                    r[0]
                    for r in db.execute(
                        "SELECT id FROM outbox WHERE kind=? AND id>? ORDER BY id LIMIT 256",
                        (KIND_SAMPLES, self._backlog_cursor),
                    )
                ]
                if not ids:
                    return None
                self._backlog.extend(ids)
                self._backlog_cursor = ids[-1]
            item_id = self._backlog.popleft()
            if item_id in claimed:
                continue
            row = db.execute(
                "SELECT id, kind, device, seq, topic, payload, ts_ms FROM outbox WHERE id=?",
                (item_id,),
            ).fetchone()
            if row is not None:
                return self._claim(row, live=False)
        return None

    def _claim(self, row: tuple[int, int, str, int, str, bytes, int], live: bool) -> OutItem:
        self._claimed.add(row[0])
        self._claimed_meta[row[0]] = (row[2], row[3], row[6]) if row[1] == KIND_SAMPLES else None
        return OutItem(row[0], row[1], row[2], row[3], row[4], bytes(row[5]), live)

    def ack(self, item: OutItem, code: int = 0) -> None:
        """The broker's PUBACK (`code`: its MQTT 5 reason code, below 128 = taken) of an item:
        delete it (committed in batches, see the module docstring); with end-to-end
        confirmation, keep it until a collector confirms it (see confirm()). Code 16 (no
        matching subscribers: the broker threw it away) is never delivery: the item waits for
        its resend deadline as an unconfirmed one does, in every mode, counted (`unrouted`)."""
        unrouted = code == NO_SUBSCRIBERS
        if unrouted and item.id in self._claimed_meta:
            self.unrouted += 1
        if (
            item.id in self._claimed
            and item.id in self._claimed_meta
            and (unrouted or self.waits(item.topic))
        ):
            self._hold(item)
            return
        if item.id in self._claimed and item.id in self._claimed_meta:
            meta = self._claimed_meta.pop(item.id)
            if meta is not None:
                self._stat_remove(*meta)
            if self._newest.get(item.device) == item.id:
                del self._newest[item.device]
            if item.kind == KIND_GAP:
                self._gaps -= 1
            self._acked.append(item.id)
            self._done.add(item.id)
            self._attempts.pop(item.id, None)
            self._maybe_sent.discard(item.id)
            self._bytes -= len(item.payload)
            self._count -= 1
            self._maybe_flush_acks()

    def defer(self, item: OutItem) -> None:
        """A claimed item the broker would not take (MQTT 3.1.1: it closed the connection on
        it, agent/publisher.py): not delivered; kept, and held back until a resend deadline
        that grows as an unconfirmed item's does, so the items behind it keep going out."""
        if item.id in self._claimed and item.id in self._claimed_meta:
            self._hold(item)

    def _hold(self, item: OutItem) -> None:
        del self._claimed_meta[item.id]
        attempts = min(self._attempts.get(item.id, 0), 30)
        deadline = time.monotonic() + min(self.resend_max, self.resend_after * 2**attempts)
        self._attempts[item.id] = attempts + 1
        self._unconfirmed[item.id] = deadline
        heapq.heappush(self._resend, (deadline, item.id))
        if self._newest.get(item.device) == item.id:
            del self._newest[item.device]

    def waits(self, topic: str) -> bool:
        """Whether a PUBACKed item of this topic waits for a collector's confirmation."""
        if not self.end_to_end:
            return False
        if topic.endswith(EVENT_TOPICS):
            return self.confirm_events is not False
        return topic.endswith(CONFIRMED_TOPICS)

    def set_confirm_events(self, confirmed: bool) -> bool:
        """An acknowledgement said whether its collector confirms trap events (remembered on
        disk; True when that changed). Events already waiting stay so: when none confirms
        them, they are sent once more at their deadline and then go at PUBACK."""
        if self.confirm_events is confirmed:
            return False
        self.confirm_events = confirmed
        self.db.execute(
            "INSERT OR REPLACE INTO counters VALUES ('confirm_events', ?)", (int(confirmed),)
        )
        return True

    def set_end_to_end(self) -> None:
        """A collector acknowledged: from now on PUBACK is not enough (remembered on disk)."""
        self.end_to_end = True
        if not self.confirm_seen:
            self.confirm_seen = True
            self.db.execute("INSERT OR REPLACE INTO counters VALUES ('confirm_seen', 1)")

    def leave_end_to_end(self) -> int:
        """The collectors say they do not confirm (broker.confirm auto, agent/publisher.py):
        PUBACK is delivery again, remembered on disk. What waits for a confirmation is pending
        again, not deleted: its PUBACK proved nothing (the broker may have thrown it away,
        code 16, or lost it since, unsaved), so it is sent once more and goes at that PUBACK.
        Returns how many."""
        self.end_to_end = False
        if self.confirm_seen:
            self.confirm_seen = False
            self.db.execute("INSERT OR REPLACE INTO counters VALUES ('confirm_seen', 0)")
        waiting = [i for i in self._unconfirmed if i not in self._done]
        self._claimed.difference_update(waiting)
        self._unconfirmed.clear()
        self._resend.clear()
        self._backlog.clear()
        self._backlog_cursor = 0
        if not self.idle():
            self._ready.set()
        return len(waiting)

    def confirm(
        self,
        device: str,
        stored: Sequence[tuple[int, int]],
        gaps: Sequence[tuple[int, int]] = (),
    ) -> int:
        """A collector says these sequence numbers of `device` are stored (and these gap
        records written): delete them, whatever their state (pending, in flight, waiting for
        confirmation). Returns how many items that removed. Several collectors each confirm
        what they wrote: the union is what counts, in any order."""
        db = self.db
        rows: list[tuple[int, int, int, int, int]] = []
        for lo, hi in stored:
            rows += db.execute(
                "SELECT id, kind, seq, ts_ms, length(payload) FROM outbox "
                "WHERE device=? AND kind=0 AND seq BETWEEN ? AND ?",
                (device, lo, hi),
            ).fetchall()
        if self._gaps:
            # Exactly the record written, never others inside its range: a record extended
            # (merged) after it was published, or one the collector never saw, stays.
            for lo, hi in gaps:
                rows += db.execute(
                    "SELECT id, kind, seq, ts_ms, length(payload) FROM outbox "
                    "WHERE device=? AND kind=1 AND first=? AND seq=?",
                    (device, lo, hi),
                ).fetchall()
        removed = 0
        for item_id, kind, seq, ts, size in rows:
            if item_id in self._done:
                continue
            self._unconfirmed.pop(item_id, None)
            self._attempts.pop(item_id, None)
            self._maybe_sent.discard(item_id)
            self._claimed_meta.pop(item_id, None)  # in flight: its PUBACK finds nothing to do
            if kind == KIND_SAMPLES:
                self._stat_remove(device, seq, ts)
            else:
                self._gaps -= 1
            if self._newest.get(device) == item_id:
                del self._newest[device]
            self._claimed.add(item_id)
            self._acked.append(item_id)
            self._done.add(item_id)
            self._bytes -= size
            self._count -= 1
            removed += 1
        self.confirmed += removed
        self._maybe_flush_acks()
        if removed and not self.idle():
            self._ready.set()  # the window may have opened: wake a waiting next()
        return removed

    def _expire(self) -> None:
        """Published items not confirmed by their deadline are pending again (oldest first,
        through the backlog: live data keeps going out ahead of them)."""
        heap = self._resend
        if not heap or heap[0][0] > time.monotonic():
            return
        now = time.monotonic()
        expired = 0
        while heap and heap[0][0] <= now:
            deadline, item_id = heapq.heappop(heap)
            if self._unconfirmed.get(item_id) == deadline:
                del self._unconfirmed[item_id]
                self._claimed.discard(item_id)
                expired += 1
        if expired:
            self.resent += expired
            self._backlog.clear()
            self._backlog_cursor = 0
            log.info("no confirmation in time, sending again items=%d", expired)

    def resend_due_in(self) -> float | None:
        """Seconds until the next unconfirmed item is due again (None: none waits)."""
        while self._resend and self._unconfirmed.get(self._resend[0][1]) != self._resend[0][0]:
            heapq.heappop(self._resend)
        if not self._resend:
            return None
        return max(0.0, self._resend[0][0] - time.monotonic())

    def unconfirmed(self) -> int:
        return len(self._unconfirmed)

    def poke(self) -> None:
        """Hand out what is due to be sent again (wakes a waiting next())."""
        self._expire()
        if not self.idle():
            self._ready.set()

    def release(self) -> None:
        """The connection is gone: every claimed, unacknowledged item is pending again."""
        self._flush_acks()
        # Acknowledged items whose delete has not been committed yet stay claimed: handing
        # them out again would count them twice.
        if self.end_to_end:  # a confirmation may still come for them: see enforce_budget
            self._maybe_sent.update(i for i in self._claimed_meta if i not in self._done)
        self._claimed.intersection_update(self._done | self._unconfirmed.keys())
        self._claimed_meta.clear()
        self._backlog.clear()
        self._backlog_cursor = 0
        if self._count:
            self._ready.set()

    def _maybe_flush_acks(self) -> None:
        if self._acked and (
            len(self._acked) >= 256 or time.monotonic() - self._last_ack_flush >= self.ack_batch_s
        ):
            self._flush_acks()

    def _flush_acks(self) -> None:
        self._last_ack_flush = time.monotonic()
        if not self._acked or self._db is None:
            return
        db = self._db
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in self._acked])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            log.error("cannot delete acknowledged items (they will be sent again): %s", exc)
            return
        finally:
            # Inserts must stay fsynced whatever happened to this batch of deletes.
            try:
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                log.error("cannot restore synchronous=FULL on the outbox: %s", exc)
        self._claimed.difference_update(self._acked)
        self._done.difference_update(self._acked)
        self._acked = []

    # -- introspection ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def empty(self) -> bool:
        return self._count == 0

    def idle(self) -> bool:
        """Nothing to publish: empty, or every item waits for a collector's confirmation, or
        as many wait as the window allows (MAX_UNCONFIRMED): not a stalled publisher."""
        return self._count - len(self._unconfirmed) <= 0 or self.window_full()

    def window_full(self) -> bool:
        """As many wait as the window allows: end to end for a confirmation, or in any mode
        after a PUBACK 16 (only those wait outside end-to-end mode): memory stays bounded."""
        return len(self._unconfirmed) >= self.max_unconfirmed

    def stats(self, now_ms: int | None = None) -> OutboxStats:
        """Health figures from memory, with at most an indexed look-up per device whose lowest
        pending number left since the last call (no table scan): cheap enough for every
        heartbeat."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if self._from_stale or self._oldest_stale:
            self._refresh_minima()
        oldest = self._oldest
        age = max(0.0, (now_ms - oldest) / 1000) if oldest is not None else 0.0
        return OutboxStats(
            self._count,
            self._bytes,
            age,
            self.dropped_total,
            dict(self._from),
            len(self._unconfirmed),
            self.forgotten_total,
        )

    def _refresh_minima(self) -> None:
        """Look the stale minima up again: the first row in index order that is not acked
        (an ack's delete is committed in batches, so acked rows may still be in the table)."""
        db = self.db
        acked = self._done
        for device in self._from_stale:
            self._from.pop(device, None)
            for item_id, seq in db.execute(
                "SELECT id, seq FROM outbox WHERE device=? AND kind=0 ORDER BY seq", (device,)
            ):
                if item_id not in acked:
                    self._from[device] = seq
                    break
        self._from_stale.clear()
        if self._oldest_stale:
            self._oldest = None
            for item_id, ts in db.execute(
                "SELECT id, ts_ms FROM outbox WHERE kind=0 ORDER BY ts_ms"
            ):
                if item_id not in acked:
                    self._oldest = ts
                    break
            self._oldest_stale = False

    def _load_samples(self, db: sqlite3.Connection) -> None:
        """At open(): each device's newest pending sample set, and the minima stats() keeps
        up to date from then on (through the partial indexes, no scan of the table)."""
        self._newest = dict(
            db.execute(
                "SELECT device, max(id) FROM outbox WHERE kind=? GROUP BY device", (KIND_SAMPLES,)
            )
        )
        self._from = dict(
            db.execute("SELECT device, min(seq) FROM outbox WHERE kind=0 GROUP BY device")
        )
        self._from_stale = set()
        (self._oldest,) = db.execute("SELECT min(ts_ms) FROM outbox WHERE kind=0").fetchone()
        self._oldest_stale = False

    def _stat_add(self, device: str, seq: int, ts_ms: int) -> None:
        if device not in self._from_stale:  # a stale device is looked up anyway
            lowest = self._from.get(device)
            self._from[device] = seq if lowest is None else min(lowest, seq)
        if not self._oldest_stale:
            self._oldest = ts_ms if self._oldest is None else min(self._oldest, ts_ms)

    def _stat_remove(self, device: str, seq: int, ts_ms: int) -> None:
        if self._from.get(device) == seq:
            self._from_stale.add(device)
        if self._oldest == ts_ms:
            self._oldest_stale = True


def _ranges(pairs: Iterable[tuple[str, int]]) -> list[Dropped]:
    """Group (device, seq) pairs into contiguous runs per device."""
    by_device: dict[str, list[int]] = {}
    for device, seq in pairs:
        by_device.setdefault(device, []).append(seq)
    out = []
    for device, seqs in by_device.items():
        seqs.sort()
        start = prev = seqs[0]
        for s in seqs[1:]:
            if s != prev + 1:
                out.append(Dropped(device, start, prev, prev - start + 1))
                start = s
            prev = s
        out.append(Dropped(device, start, prev, prev - start + 1))
    return out
