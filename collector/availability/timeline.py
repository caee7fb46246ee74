"""States over time: what one poll, status message or maintenance window says about a period.

A timeline is a sorted list of non-overlapping segments `[start, end)` in epoch milliseconds,
each with a state (up, down, unknown, maintenance) and a cause. Readings become segments by the
coverage rule (`coverage`), status messages by holding their value (`steps`); timelines are
combined by sweeping their boundaries (`combine`), so the cost grows with the number of state
changes, not with the number of polls. Pure: no I/O, no clock (docs/availability.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

UP = "up"
DOWN = "down"
UNKNOWN = "unknown"
MAINTENANCE = "maintenance"

# Causes (docs/availability.md): why a segment is down, unknown or excluded.
DEVICE_DOWN = "device down"
LINK_DOWN = "link down"
SITE_UNREACHABLE = "site unreachable"
NO_DATA = "no data"
IF_UNKNOWN = "interface status unknown"
"""ifOperStatus 4: the agent could not tell whether the port is up (collector/links.py)."""

COVER_FACTOR = 2
"""A reading covers until the next one, at most COVER_FACTOR × the series' median spacing: one
lost poll is bridged, a longer silence becomes unknown time."""
DEFAULT_SPACING_MS = 60_000
"""The spacing assumed for a series with fewer than two readings (the agent's default interval)."""
MAX_COVER_MS = 3_600_000
"""No reading covers more than an hour, whatever the spacing (and the query looks back this far
before a period, so a reading just before the period's start covers into it)."""


class Seg(NamedTuple):
    start: int
    end: int
    state: str
    cause: str = ""


Timeline = list[Seg]


def merged(segs: Sequence[Seg]) -> Timeline:
    """Adjacent segments with the same state and cause joined into one."""
    out: Timeline = []
    for seg in segs:
        if seg.start >= seg.end:
            continue
        if out and out[-1].end == seg.start and out[-1][2:] == seg[2:]:
            out[-1] = out[-1]._replace(end=seg.end)
        else:
            out.append(seg)
    return out


def gap_counts(times: Iterable[int]) -> Counter[int]:
    """How often each distance between distinct consecutive reading times (ms) occurs, a gap
    longer than MAX_COVER_MS counted as MAX_COVER_MS (the cap it gives is the same: see
    `cover_cap`). A month of one series is a few distinct values (60,000 ± jitter), so the
    live refresh keeps these counts instead of the polls (collector/availability/live.py)."""
    out: Counter[int] = Counter()
    prev: int | None = None
    for t in times:
        if prev is not None and t > prev:
            out[min(t - prev, MAX_COVER_MS)] += 1
        prev = t
    return out


def median_of(counts: Counter[int]) -> int:
    """The median of the gaps counted (an even count: the two middle ones' mean, truncated),
    DEFAULT_SPACING_MS when there is none."""
    n = sum(counts.values())
    if n == 0:
        return DEFAULT_SPACING_MS
    lo, hi = (n - 1) // 2, n // 2  # the middle positions (equal when n is odd)
    seen = 0
    low: int | None = None
    for gap in sorted(counts):
        seen += counts[gap]
        if low is None and seen > lo:
            low = gap
        if seen > hi:
            return (low + gap) // 2 if low is not None else gap
    raise AssertionError("unreachable: the counts add up to n")


def median_spacing(times: Sequence[int]) -> int:
    """The median distance between distinct consecutive reading times (ms)."""
    return median_of(gap_counts(times))


def cover_cap(counts: Counter[int], factor: int = COVER_FACTOR) -> int:
    """How long one reading covers at most: `factor` × the median gap, at most MAX_COVER_MS.
    Gaps clipped to MAX_COVER_MS give the same cap: a middle gap above it makes the cap
    MAX_COVER_MS either way (factor ≥ 2)."""
    return min(factor * median_of(counts), MAX_COVER_MS)


def coverage(
    readings: Sequence[tuple[int, str, str]],
    start: int,
    end: int,
    factor: int = COVER_FACTOR,
    cap: int | None = None,
) -> Timeline:
    """Segments of `[start, end)` covered by readings `(time, state, cause)` (sorted by time):
    each holds until the next reading, at most `factor` × the median spacing (and MAX_COVER_MS),
    or `cap` ms when given (the live refresh knows the median of polls it no longer holds).
    Time no reading covers is left out (a gap: unknown to `combine`)."""
    if not readings:
        return []
    if cap is None:
        cap = cover_cap(gap_counts(r[0] for r in readings), factor)
    # Merged on the fly (a month is ~43,000 readings per series, nearly all alike).
    out: list[Seg] = []
    run_start = run_end = 0
    run: tuple[str, str] | None = None
    n = len(readings)
    for i, (t, state, cause) in enumerate(readings):
        until = t + cap
        if i + 1 < n and readings[i + 1][0] < until:
            until = readings[i + 1][0]
        s = t if t > start else start
        e = until if until < end else end
        if s >= e:
            continue
        if run is not None and s == run_end and run == (state, cause):
            run_end = e
            continue
        if run is not None:
            out.append(Seg(run_start, run_end, *run))
        run_start, run_end, run = s, e, (state, cause)
    if run is not None:
        out.append(Seg(run_start, run_end, *run))
    return out


def steps(points: Sequence[tuple[int, str, str]], start: int, end: int) -> Timeline:
    """Segments of `[start, end)` where each point `(time, state, cause)` holds until the next
    one (status messages: online until the will says otherwise). Before the first: a gap."""
    out: list[Seg] = []
    for i, (t, state, cause) in enumerate(points):
        until = points[i + 1][0] if i + 1 < len(points) else end
        s, e = max(t, start), min(until, end)
        if s < e:
            out.append(Seg(s, e, state, cause))
    return merged(out)


def spans(intervals: Sequence[tuple[int, int]], start: int, end: int, state: str) -> Timeline:
    """Possibly overlapping intervals (maintenance windows) as one timeline of `state`."""
    clipped = sorted((max(s, start), min(e, end)) for s, e in intervals)
    out: list[Seg] = []
    for s, e in clipped:
        if s >= e:
            continue
        if out and s <= out[-1].end:
            if e > out[-1].end:
                out[-1] = out[-1]._replace(end=e)
        else:
            out.append(Seg(s, e, state, ""))
    return out


Rule = Callable[[list[Seg | None]], tuple[str, str]]


def combine(timelines: Sequence[Timeline], start: int, end: int, rule: Rule) -> Timeline:
    """One timeline covering all of `[start, end)`: at each moment `rule` gets the segment each
    input holds then (None where it has a gap) and names the (state, cause)."""
    bounds = {start, end}
    for tl in timelines:
        for seg in tl:
            if start < seg.start < end:
                bounds.add(seg.start)
            if start < seg.end < end:
                bounds.add(seg.end)
    cuts = sorted(bounds)
    pos = [0] * len(timelines)
    out: list[Seg] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        now: list[Seg | None] = []
        for k, tl in enumerate(timelines):
            i = pos[k]
            while i < len(tl) and tl[i].end <= a:
                i += 1
            pos[k] = i
            now.append(tl[i] if i < len(tl) and tl[i].start <= a else None)
        state, cause = rule(now)
        out.append(Seg(a, b, state, cause))
    return merged(out)


def state_at(seg: Seg | None) -> str:
    return seg.state if seg is not None else UNKNOWN
