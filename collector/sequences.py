"""Per-device sequence accounting: which sample sets arrived, twice, or never will.

Every sample set carries its device's sequence number. A number seen again is a duplicate (the
broker or the agent redelivered it; the write is idempotent, the count tells the NOC). A number
is lost only when that is certain: the agent reported it dropped (a gap record), or the agent's
heartbeat says nothing older than it is still waiting in its outbox, so a hole below that mark
will never be filled. Holes above it are a backlog still on its way, not a loss.

Everything here is bounded, whatever a sender claims: at most `max_holes` holes are tracked
(the lowest is given up beyond that, and counted in `holes_cut`), and one gap record or one
settled heartbeat adds at most `max_gap` to `lost` (the rest is counted in `implausible`).
Adding a number costs O(log n) in the holes tracked (bisect on the sorted ranges).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from operator import itemgetter

MAX_HOLES = 10_000
"""Holes tracked per device by default; beyond that the lowest (oldest) one is given up."""

MAX_GAP = 7 * 86400
"""Sample sets one gap record (or one heartbeat's settlement) may declare lost, by default: a
week of one-second polls, more than an agent's outbox (7 days at most) could ever have held."""

SEQ_MAX = 2**63 - 1
"""Sequence numbers are non-negative signed 64-bit integers."""

_lo = itemgetter(0)
_hi = itemgetter(1)


@dataclass(slots=True)
class SeqTracker:
    # Sorted, disjoint, non-adjacent [lo, hi] ranges of numbers accounted for
    # (received, reported dropped, or confirmed lost).
    ranges: list[list[int]] = field(default_factory=list)
    received: int = 0
    duplicates: int = 0
    lost: int = 0
    highest: int = 0
    max_holes: int = MAX_HOLES
    max_gap: int = MAX_GAP
    holes_cut: int = 0  # holes given up to stay within max_holes: their fate is unknown
    implausible: int = 0  # numbers claimed lost beyond max_gap, not counted in `lost`
    heard: float = 0.0  # wall clock of the last sample set or gap record of this device

    def counts(self) -> SeqTracker:
        """A copy of the counters, without the ranges (what /metrics shows)."""
        return SeqTracker(
            [],
            self.received,
            self.duplicates,
            self.lost,
            self.highest,
            self.max_holes,
            self.max_gap,
            self.holes_cut,
            self.implausible,
            self.heard,
        )

    def _contains(self, seq: int) -> bool:
        i = bisect.bisect_right(self.ranges, seq, key=_lo) - 1
        return i >= 0 and self.ranges[i][1] >= seq

    def _add_range(self, lo: int, hi: int) -> int:
        """Mark [lo, hi] accounted; return how many numbers were new. O(log n) to find the
        ranges it touches (plus the ranges it swallows, each of them only once)."""
        ranges = self.ranges
        i = bisect.bisect_left(ranges, lo - 1, key=_hi)  # first range ending at or after lo - 1
        j = bisect.bisect_right(ranges, hi + 1, key=_lo, lo=i)  # first starting after hi + 1
        new = hi - lo + 1
        merged_lo, merged_hi = lo, hi
        if i < j:
            for r in ranges[i:j]:
                overlap = min(r[1], hi) - max(r[0], lo) + 1
                if overlap > 0:
                    new -= overlap
            merged_lo, merged_hi = min(lo, ranges[i][0]), max(hi, ranges[j - 1][1])
        ranges[i:j] = [[merged_lo, merged_hi]]
        if len(ranges) > self.max_holes + 1:
            # Too many holes: give up the lowest one (the oldest; its numbers' fate stays
            # unknown, they are neither lost nor received).
            first, second = ranges[0], ranges[1]
            ranges[0:2] = [[first[0], second[1]]]
            self.holes_cut += 1
        return new

    def add(self, seq: int) -> bool:
        """A sample set arrived; False if it is a duplicate."""
        if self._contains(seq):
            self.duplicates += 1
            return False
        self._add_range(seq, seq)
        self.received += 1
        self.highest = max(self.highest, seq)
        return True

    def restart(self) -> None:
        """This collector reads the device's stream again after another one read it (a RabbitMQ
        partition taken back, collector/amqp_intake.py): what it saw before says nothing of
        the numbers the other one got, so the ranges start afresh (as after a restart of the
        collector) and those numbers are not taken for holes; the counters stay."""
        self.ranges.clear()

    def _count_lost(self, numbers: int) -> None:
        counted = min(numbers, self.max_gap)
        self.lost += counted
        self.implausible += numbers - counted

    def dropped(self, first: int, last: int) -> None:
        """The agent dropped [first, last] over its budget: lost for good. A record claiming
        more than `max_gap` sample sets counts as `max_gap` (the rest is `implausible`)."""
        first, last = max(first, 0), min(last, SEQ_MAX)
        if first > last:
            return
        self._count_lost(self._add_range(first, last))
        self.highest = max(self.highest, last)

    def settle(self, pending_from: int | None) -> None:
        """Heartbeat: nothing below `pending_from` (None: nothing at all) is still on its way,
        so holes below it, above the first number this collector saw, are lost."""
        if not self.ranges:
            return
        limit = self.highest if pending_from is None else min(pending_from - 1, self.highest)
        start = self.ranges[0][0]
        if limit <= start:
            return
        # Only the ranges up to the first one past the limit are visited, and all but that
        # last one are merged into one below: each range is visited a bounded number of times.
        end = bisect.bisect_right(self.ranges, limit, key=_lo) + 1
        holes = 0
        prev_hi = None
        for lo, hi in self.ranges[:end]:
            if prev_hi is not None:
                holes_hi = min(lo - 1, limit)
                if holes_hi > prev_hi:
                    holes += holes_hi - prev_hi
            prev_hi = hi
        if holes:
            self._count_lost(holes)
            self._add_range(start, limit)
