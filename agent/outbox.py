"""The seam between polling and publishing: sample sets wait here until the broker has them.

Pollers `put`; the publisher takes items with `next`, and `ack`s each one only after the
broker's PUBACK; on a lost connection `release` hands every unacknowledged item back. This
in-memory outbox is bounded and drops the oldest when full, counting every drop; the durable
on-disk outbox implements the same interface.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OutItem:
    id: int
    topic: str
    payload: bytes
    device: str = ""
    seq: int = 0
    retain: bool = False


@dataclass(slots=True)
class OutboxStats:
    pending: int = 0
    pending_bytes: int = 0
    dropped: int = 0
    acked: int = 0


class MemoryOutbox:
    """Bounded FIFO with in-flight tracking."""

    def __init__(self, max_items: int = 10_000) -> None:
        self._max = max_items
        self._ids = itertools.count(1)
        self._pending: dict[int, OutItem] = {}
        self._inflight: dict[int, OutItem] = {}
        self._ready = asyncio.Event()
        self.stats = OutboxStats()

    def __len__(self) -> int:
        return len(self._pending) + len(self._inflight)

    async def put(self, topic: str, payload: bytes, *, device: str = "", seq: int = 0) -> None:
        item = OutItem(next(self._ids), topic, payload, device, seq)
        self._pending[item.id] = item
        self.stats.pending_bytes += len(payload)
        while len(self) > self._max and self._pending:
            oldest = next(iter(self._pending))
            self.stats.pending_bytes -= len(self._pending.pop(oldest).payload)
            self.stats.dropped += 1
        self.stats.pending = len(self)
        self._ready.set()

    async def next(self) -> OutItem:
        """The oldest item not yet handed out; waits until there is one."""
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        item_id = next(iter(self._pending))
        item = self._pending.pop(item_id)
        self._inflight[item_id] = item
        return item

    def ack(self, item: OutItem) -> None:
        if self._inflight.pop(item.id, None) is not None:
            self.stats.pending_bytes -= len(item.payload)
            self.stats.acked += 1
            self.stats.pending = len(self)

    def release(self) -> None:
        """Hand every in-flight item back, oldest first, for the next connection."""
        if self._inflight:
            merged = dict(sorted({**self._inflight, **self._pending}.items()))
            self._pending = merged
            self._inflight = {}
            self._ready.set()

    def empty(self) -> bool:
        return not self._pending and not self._inflight


@dataclass(slots=True)
class Sequences:
    """Per-device sequence numbers (in memory; the durable outbox persists them)."""

    last: dict[str, int] = field(default_factory=dict)

    def next(self, device: str) -> int:
        value = self.last.get(device, 0) + 1
        self.last[device] = value
        return value
