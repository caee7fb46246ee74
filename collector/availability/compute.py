"""Availability figures of every device, site, uplink and link over a period (pure).

What each state means and why is docs/availability.md; in short: a device is what its own site
polled (backfill included, by the poll's own timestamp); a site is down when one of its devices
is, up when one is up and none down; an uplink is the site's reachability from the NOC (its
status messages); a link is its ends' interfaces, and down while the sites behind it are
unreachable unless the end toward the NOC saw it up. Time with no reading is unknown and
maintenance is excluded: availability = up / (up + down).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from collector.availability.timeline import (
    DEVICE_DOWN,
    DOWN,
    IF_UNKNOWN,
    LINK_DOWN,
    MAINTENANCE,
    NO_DATA,
    SITE_UNREACHABLE,
    UNKNOWN,
    UP,
    Rule,
    Seg,
    Timeline,
    combine,
    coverage,
    spans,
    steps,
)
from collector.inventory import Inventory, LinkEnd
from collector.links import IF_OPER_UNKNOWN
from collector.state import IF_DORMANT, IF_OPER_UP

Point = tuple[int, int]  # (epoch ms, value)

UNLISTED = "(not in the inventory)"


@dataclass(frozen=True)
class Window:
    """A maintenance window as D's `pantau_maintenance` points carry it (cancelled ones are
    dropped by the query)."""

    id: str
    scope: str  # site | device | link
    start_ms: int
    end_ms: int
    site: str = ""
    device: str = ""
    link: str = ""
    reason: str = ""


@dataclass
class History:
    """What InfluxDB holds for a period, as `query.fetch_history` reads it. Polls and port
    readings start up to MAX_COVER_MS before `start_ms`; `online` holds the last status before
    `start_ms` too."""

    start_ms: int
    end_ms: int
    polls: dict[tuple[str, str], list[Point]] = field(default_factory=dict)  # (site, device)
    ports: dict[tuple[str, str, str], list[Point]] = field(default_factory=dict)  # + interface
    online: dict[str, list[Point]] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)


@dataclass
class Covered:
    """A period's readings turned into coverage timelines (`cover`): what `compute` needs of
    the polls. The live refresh builds it from the timelines it keeps instead of the polls."""

    start_ms: int
    end_ms: int
    devices: dict[tuple[str, str], Timeline] = field(default_factory=dict)
    ports: dict[tuple[str, str, str], Timeline] = field(default_factory=dict)
    online: dict[str, list[Point]] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)


def poll_reading(t: int, up: int) -> tuple[int, str, str]:
    """A `pantau_poll.up` value as a reading: 1 up, else down (the poll failed)."""
    return (t, UP, "") if up else (t, DOWN, DEVICE_DOWN)


def port_reading(t: int, oper: int) -> tuple[int, str, str]:
    """An `interface.oper_status` as a reading, as the live link state reads it
    (collector/links.py): up (1) and dormant (5, a standby link) are up, unknown (4: the
    agent cannot tell) is unknown, anything else is down."""
    if oper in (IF_OPER_UP, IF_DORMANT):
        return (t, UP, "")
    if oper == IF_OPER_UNKNOWN:
        return (t, UNKNOWN, IF_UNKNOWN)
    return (t, DOWN, LINK_DOWN)


def cover(history: History) -> Covered:
    """Each poll and port series as the segments its readings cover (the coverage rule)."""
    start, end = history.start_ms, history.end_ms
    return Covered(
        start,
        end,
        devices={
            key: coverage([poll_reading(t, v) for t, v in polls], start, end)
            for key, polls in history.polls.items()
        },
        ports={
            key: coverage([port_reading(t, v) for t, v in points], start, end)
            for key, points in history.ports.items()
        },
        online=history.online,
        windows=history.windows,
    )


def cut_off(window: Window, inventory: Inventory) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the links the window's work takes down, the sites cut off behind them), from the
    inventory as collector/maintenance/window.py derives a window's `cuts` (its link; the
    links its device is an end of) — but every site whose upstream chain runs through a cut
    link, not only the nearest (those have no path to the NOC either). The InfluxDB point
    carries only the window's own target, so this is derived here, when reading."""
    if window.scope == "link":
        cuts: tuple[str, ...] = (window.link,) if inventory.link(window.link) else ()
    elif window.scope == "device":
        cuts = inventory.links_ending_at(window.site, window.device)
    else:
        cuts = ()
    if not cuts:
        return (), ()
    behind = tuple(
        s.name for s in inventory.sites if any(c in inventory.upstream_chain(s.name) for c in cuts)
    )
    return cuts, behind


def with_cut_off_sites(windows: Sequence[Window], inventory: Inventory | None) -> list[Window]:
    """The windows, plus one site window for every site a window's work cuts off (`cut_off`):
    planned work on a site's uplink counts against neither the link nor the sites behind it."""
    out = list(windows)
    if inventory is None:
        return out
    for w in windows:
        cuts, behind = cut_off(w, inventory)
        for site in behind:
            reason = f"{w.reason} (via {', '.join(cuts)})" if w.reason else f"via {cuts[0]}"
            out.append(Window(w.id, "site", w.start_ms, w.end_ms, site=site, reason=reason))
    return out


@dataclass(frozen=True)
class Period:
    """A stretch of one state: an outage (down), a maintenance window or unknown time."""

    start_ms: int
    end_ms: int
    cause: str

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass(frozen=True)
class Figures:
    scope: str  # device | site | uplink | link
    name: str  # a device is "<site>/<device>", an uplink is named by its site
    district: str
    sla: float | None  # percent
    timeline: Timeline
    outages: tuple[Period, ...]
    maintenance: tuple[Period, ...]
    unknown: tuple[Period, ...]
    up_ms: int
    down_ms: int
    unknown_ms: int
    maintenance_ms: int

    @property
    def ratio(self) -> float | None:
        """up / (up + down); None when nothing is known (all unknown or maintenance)."""
        known = self.up_ms + self.down_ms
        return self.up_ms / known if known else None

    @property
    def count(self) -> int:
        return len(self.outages)

    @property
    def mttr_s(self) -> float | None:
        return self.down_ms / 1000 / len(self.outages) if self.outages else None


@dataclass(frozen=True)
class Report:
    start_ms: int
    end_ms: int
    devices: tuple[Figures, ...]
    sites: tuple[Figures, ...]
    uplinks: tuple[Figures, ...]
    links: tuple[Figures, ...]

    def all(self) -> tuple[Figures, ...]:
        return self.devices + self.sites + self.uplinks + self.links


def periods(tl: Timeline, state: str) -> tuple[Period, ...]:
    """Contiguous stretches of `state`, their causes joined in order of appearance."""
    out: list[Period] = []
    causes: list[str] = []
    for seg in tl:
        if seg.state != state:
            continue
        if out and out[-1].end_ms == seg.start:
            if seg.cause and seg.cause not in causes:
                causes.append(seg.cause)
            out[-1] = Period(out[-1].start_ms, seg.end, ", ".join(causes))
        else:
            causes = [seg.cause] if seg.cause else []
            out.append(Period(seg.start, seg.end, seg.cause))
    return tuple(out)


def figures(scope: str, name: str, district: str, sla: float | None, tl: Timeline) -> Figures:
    total = {UP: 0, DOWN: 0, UNKNOWN: 0, MAINTENANCE: 0}
    for seg in tl:
        total[seg.state] += seg.end - seg.start
    return Figures(
        scope=scope,
        name=name,
        district=district,
        sla=sla,
        timeline=tl,
        outages=periods(tl, DOWN),
        maintenance=periods(tl, MAINTENANCE),
        unknown=periods(tl, UNKNOWN),
        up_ms=total[UP],
        down_ms=total[DOWN],
        unknown_ms=total[UNKNOWN],
        maintenance_ms=total[MAINTENANCE],
    )


def _is(seg: Seg | None, state: str) -> bool:
    return seg is not None and seg.state == state


def _device_rule(now: list[Seg | None]) -> tuple[str, str]:
    poll, maint, reach = now
    if maint is not None:
        return MAINTENANCE, maint.cause
    if poll is not None:
        return poll.state, poll.cause
    return UNKNOWN, SITE_UNREACHABLE if _is(reach, DOWN) else NO_DATA


def _uplink_rule(now: list[Seg | None]) -> tuple[str, str]:
    online, maint = now
    if maint is not None:
        return MAINTENANCE, maint.cause
    if online is not None:
        return online.state, online.cause
    return UNKNOWN, NO_DATA


def _site_rule(now: list[Seg | None]) -> tuple[str, str]:
    *devices, maint, reach = now
    if maint is not None:
        return MAINTENANCE, maint.cause
    states = {d.state for d in devices if d is not None}
    if DOWN in states:
        return DOWN, DEVICE_DOWN
    if UP in states:
        return UP, ""
    if MAINTENANCE in states:
        return MAINTENANCE, ""
    return UNKNOWN, SITE_UNREACHABLE if _is(reach, DOWN) else NO_DATA


def _end_rule(now: list[Seg | None]) -> tuple[str, str]:
    device, port = now
    if device is not None and device.state in (MAINTENANCE, DOWN):
        return device.state, device.cause
    if port is not None:
        return port.state, port.cause
    return UNKNOWN, NO_DATA


def _device_end_rule(now: list[Seg | None]) -> tuple[str, str]:
    (device,) = now
    if device is None:
        return UNKNOWN, NO_DATA
    return device.state, device.cause


def _link_rule(n_dependents: int) -> Rule:
    def rule(now: list[Seg | None]) -> tuple[str, str]:
        a, b, maint, a_reach = now[:4]
        dependents = now[4 : 4 + n_dependents]
        for m in (maint, a if _is(a, MAINTENANCE) else None, b if _is(b, MAINTENANCE) else None):
            if m is not None:
                return MAINTENANCE, m.cause  # the window's reason
        for end in (a, b):
            if end is not None and end.state == DOWN:
                return DOWN, end.cause
        if any(_is(d, DOWN) for d in dependents):
            if _is(a, UP):  # the NOC's end saw the hop up: the site is dark for another reason
                return UP, ""
            if _is(a_reach, DOWN):  # the whole branch is cut off further up: cannot tell
                return UNKNOWN, SITE_UNREACHABLE
            return DOWN, SITE_UNREACHABLE
        if _is(a, UP) or _is(b, UP):
            return UP, ""
        for end in (a, b):
            if end is not None and end.cause not in ("", NO_DATA):  # e.g. the interface
                return UNKNOWN, end.cause  # status is unknown: say so, not "no data"
        return UNKNOWN, NO_DATA

    return rule


def _union(intervals: Iterable[tuple[int, int, str]], start: int, end: int) -> Timeline:
    """Maintenance windows as one timeline; each segment's cause is the window's reason."""
    items = sorted(intervals)
    tl = spans([(s, e) for s, e, _ in items], start, end, MAINTENANCE)
    out: Timeline = []
    for seg in tl:
        reasons = [r for s, e, r in items if s < seg.end and e > seg.start and r]
        out.append(seg._replace(cause=", ".join(dict.fromkeys(reasons))))
    return out


def compute(history: History, inventory: Inventory | None = None) -> Report:
    """The report for what `query.fetch_history` read."""
    return compute_covered(cover(history), inventory)


def compute_covered(history: Covered, inventory: Inventory | None = None) -> Report:
    start, end = history.start_ms, history.end_ms
    inv_sites = {s.name: s for s in inventory.sites} if inventory else {}
    windows = with_cut_off_sites(history.windows, inventory)

    def district(site: str) -> str:
        entry = inv_sites.get(site)
        return entry.district if entry else UNLISTED

    def maint(pred: Sequence[tuple[str, str]]) -> Timeline:
        keep = [
            (w.start_ms, w.end_ms, w.reason)
            for w in windows
            if any(
                w.scope == scope and (w.site if scope != "link" else w.link) == name
                for scope, name in pred
            )
        ]
        return _union(keep, start, end)

    def device_maint(site: str, device: str) -> Timeline:
        keep = [
            (w.start_ms, w.end_ms, w.reason)
            for w in windows
            if (w.scope == "site" and w.site == site)
            or (w.scope == "device" and w.site == site and w.device == device)
        ]
        return _union(keep, start, end)

    site_names = sorted(set(inv_sites) | {s for s, _ in history.devices} | set(history.online))
    # Reachability as the status messages say it, and the uplink figure with maintenance.
    reach_raw: dict[str, Timeline] = {}
    uplinks: list[Figures] = []
    for site in site_names:
        points = [
            (t, UP if v else DOWN, "" if v else SITE_UNREACHABLE)
            for t, v in history.online.get(site, [])
        ]
        reach_raw[site] = steps(points, start, end)
        # a window on the site, or on a link it is cut off behind (`with_cut_off_sites`)
        tl = combine([reach_raw[site], maint([("site", site)])], start, end, _uplink_rule)
        # No target of its own: a paid-for uplink is an inventory link (with its `sla`).
        uplinks.append(figures("uplink", site, district(site), None, tl))

    device_tl: dict[tuple[str, str], Timeline] = {}
    devices: list[Figures] = []
    for (site, device), covered in sorted(history.devices.items()):
        tl = combine(
            [
                covered,
                device_maint(site, device),
                reach_raw.get(site, []),
            ],
            start,
            end,
            _device_rule,
        )
        device_tl[(site, device)] = tl
        devices.append(figures("device", f"{site}/{device}", district(site), None, tl))

    sites: list[Figures] = []
    for site in site_names:
        own = [tl for (s, _), tl in device_tl.items() if s == site]
        tl = combine([*own, maint([("site", site)]), reach_raw[site]], start, end, _site_rule)
        sla = inventory.site_sla(site) if inventory and site in inv_sites else None
        sites.append(figures("site", site, district(site), sla, tl))

    links: list[Figures] = []
    for link in inventory.links if inventory else ():

        def end_timeline(e: LinkEnd) -> Timeline:
            if e.site is None or e.device is None:
                return []  # a named far end: nothing read there
            dev = device_tl.get((e.site, e.device), [])
            if e.interface is None:
                return combine([dev], start, end, _device_end_rule)
            port = history.ports.get((e.site, e.device, e.interface), [])
            return combine([dev, port], start, end, _end_rule)

        dependents = (
            [s.name for s in inventory.sites if s.upstream == link.name] if inventory else []
        )
        a_site = link.a.site
        tl = combine(
            [
                end_timeline(link.a),
                end_timeline(link.b),
                maint([("link", link.name)]),
                reach_raw.get(a_site, []) if a_site else [],
                *(reach_raw.get(d, []) for d in dependents),
            ],
            start,
            end,
            _link_rule(len(dependents)),
        )
        where = link.b.site or link.a.site or ""
        sla = inventory.link_sla(link.name) if inventory else None
        links.append(figures("link", link.name, district(where), sla, tl))

    return Report(start, end, tuple(devices), tuple(sites), tuple(uplinks), tuple(links))
