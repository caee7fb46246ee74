"""Per-device sequence accounting: which sample sets arrived, twice, or never will.

Every sample set carries its device's sequence number. A number seen again is a duplicate (the
broker or the agent redelivered it; the write is idempotent, the count tells the NOC). A number
is lost only when that is certain: the agent reported it dropped (a gap record), or the agent's
heartbeat says nothing older than it is still waiting in its outbox, so a hole below that mark
will never be filled. Holes above it are a backlog still on its way, not a loss.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(slots=True)
class SeqTracker:
    # Sorted, disjoint, non-adjacent [lo, hi] ranges of numbers accounted for
    # (received, reported dropped, or confirmed lost).
    ranges: list[list[int]] = field(default_factory=list)
    received: int = 0
    duplicates: int = 0
    lost: int = 0
    highest: int = 0

    def _contains(self, seq: int) -> bool:
        i = bisect.bisect_right(self.ranges, [seq, float("inf")]) - 1
        return i >= 0 and self.ranges[i][0] <= seq <= self.ranges[i][1]

    def _add_range(self, lo: int, hi: int) -> int:
        """Mark [lo, hi] accounted; return how many numbers were new."""
        new = hi - lo + 1
        merged_lo, merged_hi = lo, hi
        keep: list[list[int]] = []
        for r in self.ranges:
            if r[1] < lo - 1 or r[0] > hi + 1:
                keep.append(r)
                continue
            overlap = min(r[1], hi) - max(r[0], lo) + 1
            if overlap > 0:
                new -= overlap
            merged_lo, merged_hi = min(merged_lo, r[0]), max(merged_hi, r[1])
        bisect.insort(keep, [merged_lo, merged_hi])
        self.ranges = keep
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

    def dropped(self, first: int, last: int) -> None:
        """The agent dropped [first, last] over its budget: lost for good."""
        if first > last:
            return
        self.lost += self._add_range(first, last)
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
        holes = 0
        prev_hi = None
        for lo, hi in self.ranges:
            if prev_hi is not None and lo > prev_hi + 1:
                holes_hi = min(lo - 1, limit)
                if holes_hi > prev_hi:
                    holes += holes_hi - prev_hi
            prev_hi = hi
            if hi >= limit:
                break
        if holes:
            self.lost += holes
            self._add_range(start, limit)
