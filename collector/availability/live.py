"""Month-to-date availability for /metrics, so the SLA alerts see what the report will say.

A thread refreshes the current UTC calendar month up to now every `refresh_seconds`, with the
report's rules and queries (docs/availability.md), and keeps the last good result. A failing
query is logged (at most once every ten minutes) and counted
(`pantau_availability_refresh_errors_total`); the previous figures stay exported, with their
age in `pantau_availability_refreshed_timestamp_seconds`, and the collector runs on.

Incremental, because a month of polls is millions of rows (docs/availability.md, "Month to
date"): time older than `reread_hours` is *closed*: each poll and port series keeps only what
its closed readings add up to (`Series`: their coverage segments, the last reading, and how
often each gap between readings occurred — the coverage rule's median), and every refresh
reads only the open part, from the closed edge to now. Backfill can land after its time was
closed (an outbox drained days later): the cache is therefore rebuilt from the month's start
every `rebuild_hours`, a day at a time, so what the report would count shows up within a day.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector.availability.compute import (
    Covered,
    Report,
    compute_covered,
    poll_reading,
    port_reading,
)
from collector.availability.config import AvailabilityConfig
from collector.availability.query import (
    DAY_MS,
    InfluxQLClient,
    QueryError,
    fetch_online,
    fetch_polls,
    fetch_port,
    fetch_windows,
    port_keys,
)
from collector.availability.timeline import (
    MAX_COVER_MS,
    Timeline,
    cover_cap,
    coverage,
    gap_counts,
    merged,
)
from collector.inventory import Inventory
from pantau.logs import RateLimitedLog

log = logging.getLogger("pantau.collector.availability")

HOUR_MS = 3_600_000
Reading = tuple[int, str, str]
Key = tuple[str, ...]  # (site, device) of a poll series, (site, device, interface) of a port


def month_of(now_ms: int) -> tuple[int, int]:
    """[start, end) of the UTC calendar month holding `now_ms`, in epoch ms."""
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


@dataclass(frozen=True)
class MonthToDate:
    """One refresh: the month's bounds, how far it was computed (`now_ms`) and the figures."""

    month_start_ms: int
    month_end_ms: int
    now_ms: int
    report: Report
    refreshed_at: float  # unix seconds


@dataclass
class Series:
    """What one series' closed readings add up to. `segs` is the coverage of every closed
    reading but the last (`carry`, whose coverage depends on the reading after it), made with
    `cap`; `gaps` counts the gaps between consecutive closed readings. The coverage rule's cap
    comes from the median gap of *all* the period's readings, so when later readings move it
    the segments no longer hold (`stale`) and the series is read again
    (`LiveAvailability._reread`)."""

    segs: Timeline = field(default_factory=list)
    carry: Reading | None = None
    gaps: Counter[int] = field(default_factory=Counter)
    cap: int | None = None
    stale: bool = False


@dataclass
class MonthCache:
    start_ms: int
    closed_ms: int  # readings before this are folded into the series
    built_at: float  # unix seconds: when it was started (rebuilt every `rebuild_hours`)
    polls: dict[Key, Series] = field(default_factory=dict)
    ports: dict[Key, Series] = field(default_factory=dict)


def _readings(points: list[tuple[int, int]], port: bool) -> list[Reading]:
    to = port_reading if port else poll_reading
    return [to(t, v) for t, v in points]


class LiveAvailability:
    def __init__(
        self,
        client: InfluxQLClient,
        inventory: Inventory | None,
        refresh_seconds: float,
        clock: Callable[[], float] = time.time,
        reread_hours: float = 24.0,
        rebuild_hours: float = 24.0,
    ) -> None:
        self.client = client
        self.inventory = inventory
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.reread_ms = int(reread_hours * HOUR_MS)
        self.rebuild_s = rebuild_hours * 3600
        self.errors: dict[str, int] = {}  # reason → failed refreshes
        self.rereads = 0  # series read again because their cap moved (for tests and bench)
        self._cache: MonthCache | None = None
        self._latest: MonthToDate | None = None
        self._lock = threading.Lock()
        self._warn = RateLimitedLog(log, period=600.0)

    def latest(self) -> MonthToDate | None:
        with self._lock:
            return self._latest

    def error_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.errors)

    def refresh(self) -> bool:
        """Bring month to date up to now; False (logged, counted) when InfluxDB failed."""
        now = self.clock()
        now_ms = int(now * 1000)
        start, end = month_of(now_ms)
        try:
            report = self._compute(start, now_ms, now)
        except QueryError as exc:  # the cache holds only what was read whole: kept
            self._count(exc.reason)
            self._warn.warning(
                exc.reason,
                "availability refresh failed reason=%s detail=%s",
                exc.reason,
                exc.detail,
            )
            return False
        except Exception:  # a bug must not end the thread: count it, log the traceback
            self._cache = None
            self._count("internal_error")
            log.exception("availability refresh failed reason=internal_error")
            return False
        with self._lock:
            self._latest = MonthToDate(start, end, now_ms, report, now)
        return True

    def _compute(self, start: int, now_ms: int, now: float) -> Report:
        cache = self._cache
        if (
            cache is None
            or cache.start_ms != start
            or now - cache.built_at >= self.rebuild_s
            or now_ms < cache.closed_ms  # the clock went back
        ):
            cache = MonthCache(start, start - MAX_COVER_MS, now)
            self._cache = cache
        # Close whole hours older than the re-read window, a day of polls at a time.
        target = max((now_ms - self.reread_ms) // HOUR_MS * HOUR_MS, cache.closed_ms)
        while cache.closed_ms < target:
            upto = min(cache.closed_ms + DAY_MS, target)
            self._advance(cache, upto)
        # The open part: read each refresh, so late rows in it are counted.
        polls, ports = self._read(cache.closed_ms, now_ms)
        covered = Covered(start, now_ms)
        for key in sorted(set(cache.polls) | set(polls)):
            series = cache.polls.setdefault(key, Series())
            opened = _readings(polls.get(key, []), port=False)
            covered.devices[(key[0], key[1])] = self._timeline(
                cache, key, series, opened, now_ms, port=False
            )
        for key in sorted(set(cache.ports) | set(ports)):
            series = cache.ports.setdefault(key, Series())
            opened = _readings(ports.get(key, []), port=True)
            covered.ports[(key[0], key[1], key[2])] = self._timeline(
                cache, key, series, opened, now_ms, port=True
            )
        covered.online = fetch_online(self.client, start, now_ms)
        covered.windows = fetch_windows(self.client, start, now_ms)
        return compute_covered(covered, self.inventory)

    def _read(
        self, start_ms: int, end_ms: int
    ) -> tuple[dict[Key, list[tuple[int, int]]], dict[Key, list[tuple[int, int]]]]:
        polls: dict[Key, list[tuple[int, int]]] = {
            key: points for key, points in fetch_polls(self.client, start_ms, end_ms).items()
        }
        ports: dict[Key, list[tuple[int, int]]] = {}
        for key in port_keys(self.inventory):
            points = fetch_port(self.client, key, start_ms, end_ms)
            if points:
                ports[key] = points
        return polls, ports

    def _advance(self, cache: MonthCache, upto: int) -> None:
        """Fold the readings of `[cache.closed_ms, upto)` into the series."""
        polls, ports = self._read(cache.closed_ms, upto)
        for table, got, port in ((cache.polls, polls, False), (cache.ports, ports, True)):
            for key, points in got.items():
                series = table.setdefault(key, Series())
                readings = ([series.carry] if series.carry else []) + _readings(points, port)
                gaps = series.gaps + gap_counts(r[0] for r in readings)
                cap = cover_cap(gaps)
                if series.cap is not None and cap != series.cap:
                    series.stale = True  # read again once, when the month so far is known
                if not series.stale:
                    segs = coverage(readings, cache.start_ms, readings[-1][0], cap=cap)
                    series.segs = merged(series.segs + segs)
                    series.cap = cap
                series.carry, series.gaps = readings[-1], gaps
        cache.closed_ms = upto

    def _timeline(
        self,
        cache: MonthCache,
        key: Key,
        series: Series,
        opened: list[Reading],
        now_ms: int,
        port: bool,
    ) -> Timeline:
        """The series' coverage over the month so far: the closed segments, then the carried
        reading and the open ones with the cap of every reading's gaps."""
        readings = ([series.carry] if series.carry else []) + opened
        cap = cover_cap(series.gaps + gap_counts(r[0] for r in readings))
        if series.stale or (series.cap is not None and cap != series.cap):
            self._reread(cache, key, series, port, opened)
            readings = ([series.carry] if series.carry else []) + opened
            cap = cover_cap(series.gaps + gap_counts(r[0] for r in readings))
        tail = coverage(readings, cache.start_ms, now_ms, cap=cap)
        return merged(series.segs + tail)

    def _reread(
        self, cache: MonthCache, key: Key, series: Series, port: bool, opened: list[Reading]
    ) -> None:
        """Rebuild one series' closed part from InfluxDB (its cap moved: the segments made
        with the old one are wrong), with the cap of all its readings, open ones included."""
        self.rereads += 1
        since, upto = cache.start_ms - MAX_COVER_MS, cache.closed_ms
        if port:
            points = fetch_port(self.client, (key[0], key[1], key[2]), since, upto)
        else:
            points = fetch_polls(self.client, since, upto, only=(key[0], key[1])).get(
                (key[0], key[1]), []
            )
        readings = _readings(points, port)
        series.gaps = gap_counts(r[0] for r in readings)
        series.cap = cover_cap(gap_counts(r[0] for r in readings + opened))
        series.carry = readings[-1] if readings else None
        series.stale = False
        series.segs = (
            coverage(readings, cache.start_ms, readings[-1][0], cap=series.cap) if readings else []
        )

    def _count(self, reason: str) -> None:
        with self._lock:
            self.errors[reason] = self.errors.get(reason, 0) + 1

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.refresh()
            stop.wait(self.refresh_seconds)


def from_config(av: AvailabilityConfig, inventory: Inventory | None) -> LiveAvailability:
    client = InfluxQLClient(str(av.influxql_url), av.database, av.token, av.timeout)
    return LiveAvailability(
        client,
        inventory,
        av.refresh_seconds,
        reread_hours=av.reread_hours,
        rebuild_hours=av.rebuild_hours,
    )
