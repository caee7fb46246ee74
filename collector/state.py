"""What the collector knows now about each site and device: the source of /metrics and /.

Current state follows each device's sequence numbers, not its timestamps: the sample set with the
highest sequence number is the device's newest (a backlog replayed after an outage goes to
InfluxDB with its timestamps, but must not roll current state back), and a timestamp more than
`max_clock_skew` seconds ahead of the collector's clock is not trusted for state at all: it is
counted per site (a site whose clock runs ahead, or a forged message) instead of pinning the
device's state until that time.

Dark is a state, not an absence. A site is dark after its Last Will (`connection_lost`), after
its agent's clean stop (`stopped`), or when nothing arrived from it for `silent_after` seconds
while its status said online (`silent`). A site that ever sent a status stays listed, dark, with
its reason and since when, until an operator decommissions it (`forget_site`: a retained empty
status message, or `decommissioned` sites in the configuration); never by a timer. Sample sets
still in flight do not bring a decommissioned site back; its agent's next status does. Its devices
stay listed as `unknown` (neither up nor down): their last readings are not current state.
On a site that is not dark, a device not heard from for `stale_after` seconds is `unknown` too
while the site's heartbeat still lists it, and is forgotten once the heartbeat no longer does
(it left the agent's configuration). A site that never sent a status (only sample sets) is
forgotten once nothing of it is left, as before. Sequence accounting of a silent device stays
much longer (`forget_after`), across a site's long outage, then goes.

Everything a sender can make grow is bounded (constructor arguments): sites, devices per site,
error kinds per device, holes tracked per device (collector.sequences), the fields whose kinds are
remembered (collector.kinds). What a bound cut off is counted per site in `truncated`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from collector.events import EventState
from collector.kinds import MAX_FIELDS, Kinds
from collector.names import DeviceNames, NameBook
from collector.sequences import MAX_GAP, MAX_HOLES, SeqTracker
from collector.validate import Rejected
from pantau.wire import Gap, Names, SampleSet, Status

MAX_SITES = 10_000
MAX_DEVICES = 1_000
"""Devices per site, by default."""
MAX_ERROR_KINDS = 64
"""SNMP error kinds per device, by default."""
FORGET_AFTER = 7 * 86400.0
"""Seconds, by default, after which the sequence accounting of a silent device is forgotten."""
MAX_CLOCK_SKEW = 300.0
"""Seconds, by default, a sample set may be dated ahead of the collector's clock."""
SILENT_AFTER = 180.0
"""Seconds, by default, without any message from a site whose status says online before it is
dark (`silent`): three of the agent's default 60 s heartbeats, as site_silent_max_seconds."""

# Why a site is dark (SiteState.offline_reason); "" while it is not.
STOPPED = "stopped"  # the agent's clean stop status
CONNECTION_LOST = "connection_lost"  # the Last Will the broker published
SILENT = "silent"  # nothing received for silent_after while the status said online

# Device states (DeviceState.state in a snapshot).
UP, DOWN, UNKNOWN = "up", "down", "unknown"

IF_OPER_UP = 1  # RFC 2863 ifOperStatus up
IF_DORMANT = 5  # standby and dial-on-demand links: not down (as the LinkDown alert)
IF_ADMIN_UP = 1

# Keys of SiteState.truncated: what a bound cut off.
CUT_DEVICES = "devices"  # sample sets (or their accounting) of devices over max_devices
CUT_ERROR_KINDS = "error_kinds"  # error kinds over max_error_kinds, summed over sample sets
CUT_HOLES = "holes"  # holes given up over max_holes
CUT_GAP = "implausible_gaps"  # gap records (or settlements) claiming more than max_gap lost


@dataclass(slots=True)
class DeviceState:
    last: SampleSet
    heard: float  # wall clock of the last message from this device
    errors: dict[str, int] = field(default_factory=dict)  # last.errors, at most max_error_kinds
    down_since: float = 0.0  # poll time of the first failed poll of this outage (0: up)
    links_down: dict[str, float] = field(default_factory=dict)  # link name → down since
    links_up: int = 0  # interface rows whose ifOperStatus is up
    state: str = UP  # in a snapshot: UP, DOWN or UNKNOWN (see the module's docstring)
    names: DeviceNames | None = None  # in a snapshot: its profiles' names (collector.names)


@dataclass(slots=True)
class SiteState:
    online: bool = False
    status: Status | None = None
    heard: float = 0.0  # wall clock of the last message of any kind from this site
    devices: dict[str, DeviceState] = field(default_factory=dict)
    sequences: dict[str, SeqTracker] = field(default_factory=dict)
    future_samples: int = 0  # sample sets dated more than max_clock_skew ahead: not trusted
    clock_skew: float = 0.0  # how far ahead the newest sample set was dated (0: not ahead)
    truncated: dict[str, int] = field(default_factory=dict)  # what bounds cut off (CUT_*)
    offline_reason: str = ""  # why the site is dark (STOPPED, CONNECTION_LOST, SILENT); "": not
    offline_since: float = 0.0  # since when it is dark (wall clock); 0 while it is not
    last_online: Status | None = None  # the newest birth/heartbeat: the agent's health


def link_name(tags: dict[str, str]) -> str:
    """How a link is named to people: ifName, else ifDescr, else its ifIndex."""
    for key in ("ifName", "ifDescr"):
        if tags.get(key):
            return tags[key]
    return f"ifIndex {tags.get('ifIndex', '?')}"


def _links(ss: SampleSet, before: dict[str, float], now: float) -> tuple[dict[str, float], int]:
    """The device's down links (admin up, oper neither up nor dormant, as the LinkDown alert)
    with since when, carried over from `before`, and how many are up."""
    down: dict[str, float] = {}
    up = 0
    for group in ss.groups:
        if group.measurement != "interface":
            continue
        fields = {f.name: f.value for f in group.fields}
        oper = fields.get("oper_status")
        if not isinstance(oper, int | float):
            continue
        admin = fields.get("admin_status", IF_ADMIN_UP)
        if oper == IF_OPER_UP:
            up += 1
        elif oper != IF_DORMANT and admin == IF_ADMIN_UP:
            name = link_name(group.tags)
            down[name] = before.get(name, min(ss.ts_ms / 1000, now))
    return down, up


class State:
    def __init__(
        self,
        stale_after: float,
        *,
        silent_after: float = SILENT_AFTER,
        decommissioned: Iterable[str] = (),
        forget_after: float = FORGET_AFTER,
        max_clock_skew: float = MAX_CLOCK_SKEW,
        max_sites: int = MAX_SITES,
        max_devices: int = MAX_DEVICES,
        max_error_kinds: int = MAX_ERROR_KINDS,
        max_holes: int = MAX_HOLES,
        max_gap: int = MAX_GAP,
        max_fields: int = MAX_FIELDS,
    ) -> None:
        self.stale_after = stale_after
        self.silent_after = silent_after
        self.decommissioned = frozenset(decommissioned)
        self.forget_after = max(forget_after, stale_after)
        self.max_clock_skew = max_clock_skew
        self.max_sites = max_sites
        self.max_devices = max_devices
        self.max_error_kinds = max_error_kinds
        self.max_holes = max_holes
        self.max_gap = max_gap
        self.kinds = Kinds(max_fields, self.forget_after)
        self.events = EventState()  # traps and informs: counts and alarms (collector.events)
        self.names = NameBook(max_sites)  # enumeration names and help texts (collector.names)
        self.sites_cut = 0  # messages of sites over max_sites, left out of state
        self._lock = threading.Lock()
        self._sites: dict[str, SiteState] = {}
        # Decommissioned by forget_site, newest last (at most max_sites): sample sets and gap
        # records still in flight do not bring such a site back; its next status does.
        self._forgotten: dict[str, None] = {}
        # Shares of the sites another collector reads now (broker: amqp, release_sites): their
        # messages still in this collector's pipeline do not bring them back.
        self._released: dict[object, Callable[[str], bool]] = {}

    def _site(self, name: str) -> SiteState | None:
        site = self._sites.get(name)
        if site is None:
            if name in self.decommissioned or name in self._forgotten:
                return None  # decommissioned: left out of current state
            if any(released(name) for released in self._released.values()):
                return None  # another collector's now
            if len(self._sites) >= self.max_sites:
                self.sites_cut += 1
                return None
            site = self._sites[name] = SiteState()
        return site

    @staticmethod
    def _cut(site: SiteState, what: str, n: int = 1) -> None:
        site.truncated[what] = site.truncated.get(what, 0) + n

    def on_sample_set(self, ss: SampleSet, now: float | None = None) -> None:
        """A checked sample set, before it is written. Raises collector.validate.Rejected
        (`kind_conflict`, `field_limit`) when a field's kind differs from the first one seen:
        the caller rejects that message only."""
        now = time.time() if now is None else now
        with self._lock:
            self.kinds.check(ss, now)
            site = self._site(ss.site)
            if site is None:
                return
            site.heard = max(site.heard, now)
            current = site.devices.get(ss.device)
            ahead = ss.ts_ms / 1000 - now
            site.clock_skew = max(ahead, 0.0)
            if ahead > self.max_clock_skew:
                site.future_samples += 1
                if current is not None:
                    current.heard = now
                return
            if current is not None and not (
                ss.seq > current.last.seq
                # The agent's sequence started again (its outbox database was lost): lower
                # numbers, but a newer poll. A backlog has lower numbers and older polls.
                or (ss.seq < current.last.seq and ss.ts_ms > current.last.ts_ms)
            ):
                current.heard = now
                return
            if current is None and len(site.devices) >= self.max_devices:
                self._cut(site, CUT_DEVICES)
                return
            errors = ss.errors
            if len(errors) > self.max_error_kinds:
                errors = self._bounded_errors(errors, current)
                self._cut(site, CUT_ERROR_KINDS, len(ss.errors) - len(errors))
            down_since = 0.0
            if not ss.up:
                down_since = (
                    current.down_since
                    if current is not None and current.down_since
                    else min(ss.ts_ms / 1000, now)
                )
            links_down, links_up = _links(ss, current.links_down if current else {}, now)
            site.devices[ss.device] = DeviceState(ss, now, errors, down_since, links_down, links_up)

    def _bounded_errors(
        self, errors: dict[str, int], current: DeviceState | None
    ) -> dict[str, int]:
        """At most max_error_kinds kinds: those already shown first (their series stay), then
        the others by name."""
        keep: dict[str, int] = {}
        if current is not None:
            for kind in current.errors:
                if kind in errors:
                    keep[kind] = errors[kind]
        for kind in sorted(errors):
            if len(keep) >= self.max_error_kinds:
                break
            keep.setdefault(kind, errors[kind])
        return keep

    def on_status(self, status: Status, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._forgotten.pop(status.site, None)
            site = self._site(status.site)
            if site is None:
                return
            if not status.online:
                was = self._dark(site, now)
                if not was[0]:
                    # A clean stop carries the agent's time; the will none (ts_ms 0): then it
                    # is when the collector learned it.
                    ts = status.ts_ms / 1000
                    site.offline_since = ts if 0 < ts <= now else now
                elif was[0] == SILENT:
                    site.offline_since = was[1]
                site.offline_reason = _offline_reason(status)
            else:
                site.offline_reason, site.offline_since = "", 0.0
                site.last_online = status
            site.online = status.online
            site.status = status
            site.heard = max(site.heard, now)

    def on_names(self, site_name: str, names: Names) -> None:
        """A site's names message (collector.names). Raises collector.validate.Rejected for
        a site that never sent a birth or heartbeat (`unknown_site`: its agent publishes its
        status before its names) or names of devices the site does not have."""
        with self._lock:
            site = self._sites.get(site_name)
            hb = site.last_online if site is not None else None
            if hb is None and any(released(site_name) for released in self._released.values()):
                return  # in flight when its share went to another collector, which reads it
            if hb is None:
                raise Rejected("unknown_site", f"names from {site_name!r} before its status")
            devices = hb.devices
        self.names.put(site_name, names, devices)

    def forget_site(self, name: str) -> bool:
        """Decommission: the site and everything about it leave current state (an operator
        published a retained empty status message for it). True if it was known."""
        with self._lock:
            self._forgotten.pop(name, None)
            self._forgotten[name] = None
            while len(self._forgotten) > self.max_sites:
                del self._forgotten[next(iter(self._forgotten))]
            self.events.forget_site(name)
            self.names.forget_site(name)
            return self._sites.pop(name, None) is not None

    def _dark(self, site: SiteState, now: float) -> tuple[str, float]:
        """(why the site is dark, since when), ("", 0.0) when it is not."""
        if site.offline_reason:
            return site.offline_reason, site.offline_since
        if (
            site.heard
            and now - site.heard > self.silent_after
            and (site.status is None or site.status.online)
        ):
            return SILENT, site.heard
        return "", 0.0

    def release_sites(self, share: object, sites: Callable[[str], bool]) -> list[str]:
        """Another collector reads the sites `sites` picks now (this one lost their partition,
        `share`, with its broker connection): they leave this collector's current state, which
        would otherwise show them online, as last seen, until `silent_after`. Their messages
        still in this collector's pipeline are ignored by state (they are written, and the
        broker delivers them again to the new reader) until `acquire_sites(share, …)`. Their
        loss counters go with them: the new reader counts from there. Returns the sites."""
        with self._lock:
            self._released[share] = sites
            gone = [name for name in self._sites if sites(name)]
            for name in gone:
                del self._sites[name]
        return gone

    def acquire_sites(self, share: object, sites: Callable[[str], bool]) -> int:
        """This collector reads the share `share` (the sites `sites` picks) again, or for the
        first time: state follows them again, their sequence accounting restarted
        (restart_sequences). Returns how many devices restarted."""
        with self._lock:
            self._released.pop(share, None)
        return self.restart_sequences(sites)

    def restart_sequences(self, sites: Callable[[str], bool]) -> int:
        """The sites `sites` picks are read by this collector again after another collector
        read them: their sequence accounting starts afresh (SeqTracker.restart). Returns how
        many devices."""
        n = 0
        with self._lock:
            for name, site in self._sites.items():
                if sites(name):
                    for tracker in site.sequences.values():
                        tracker.restart()
                        n += 1
        return n

    def _tracker(self, site_name: str, device: str, now: float) -> SeqTracker | None:
        site = self._site(site_name)
        if site is None:
            return None
        tracker = site.sequences.get(device)
        if tracker is None:
            if len(site.sequences) >= self.max_devices:
                self._cut(site, CUT_DEVICES)
                return None
            tracker = site.sequences[device] = SeqTracker(
                max_holes=self.max_holes, max_gap=self.max_gap
            )
        tracker.heard = now
        return tracker

    def _account(self, site_name: str, tracker: SeqTracker, cut: int, implausible: int) -> None:
        site = self._sites[site_name]
        if tracker.holes_cut != cut:
            self._cut(site, CUT_HOLES, tracker.holes_cut - cut)
        if tracker.implausible != implausible:
            self._cut(site, CUT_GAP)

    def written_sample_set(
        self, site: str, device: str, seq: int, now: float | None = None
    ) -> None:
        """A sample set's points are in InfluxDB: account for its sequence number."""
        now = time.time() if now is None else now
        with self._lock:
            tracker = self._tracker(site, device, now)
            if tracker is not None:
                cut = tracker.holes_cut
                tracker.add(seq)
                self._account(site, tracker, cut, tracker.implausible)

    def written_gap(self, gap: Gap, now: float | None = None) -> None:
        """A gap record is in InfluxDB. It counts no more than the numbers it names
        (last_seq - first_seq + 1, within the sequence range) and at most max_gap of them."""
        now = time.time() if now is None else now
        with self._lock:
            tracker = self._tracker(gap.site, gap.device, now)
            if tracker is None:
                return
            cut, implausible = tracker.holes_cut, tracker.implausible
            last = min(gap.last_seq, gap.first_seq + max(gap.count, 0) - 1)
            tracker.dropped(gap.first_seq, last)
            self._account(gap.site, tracker, cut, implausible)

    def written_status(self, status: Status) -> None:
        """After everything published before this heartbeat: settle confirmed holes."""
        if not status.online:
            return
        with self._lock:
            site = self._sites.get(status.site)
            if site is None:
                return
            for device, tracker in site.sequences.items():
                cut, implausible = tracker.holes_cut, tracker.implausible
                tracker.settle(status.pending_from.get(device))
                self._account(status.site, tracker, cut, implausible)

    def snapshot(self, now: float | None = None) -> dict[str, SiteState]:
        """A consistent copy of live state (sequence counters without their ranges), each
        site with its offline reason and each device with its state (UP, DOWN, UNKNOWN).

        Forgets only what the module's docstring says: a device that left its live site's
        configuration (stale and no longer in its heartbeat), sequence accounting after
        forget_after, a site that never sent a status once nothing of it is left. A site
        that sent one stays until `forget_site`, however long it is dark."""
        now = time.time() if now is None else now
        with self._lock:
            self.kinds.prune(now)
            out: dict[str, SiteState] = {}
            for name, site in list(self._sites.items()):
                if name in self.decommissioned:
                    del self._sites[name]
                    continue
                reason, since = self._dark(site, now)
                announced = site.status is not None
                listed = set(site.status.devices) if announced and site.status else set()
                devices: dict[str, DeviceState] = {}
                for dev_name, dev in list(site.devices.items()):
                    stale = now - dev.heard > self.stale_after
                    if stale and (not announced or (not reason and dev_name not in listed)):
                        del site.devices[dev_name]  # left the agent's configuration
                        continue
                    state = UNKNOWN if reason or stale else UP if dev.last.up else DOWN
                    names = self.names.device(name, dev_name)
                    devices[dev_name] = replace(dev, state=state, names=names)
                for gone in [
                    d for d, t in site.sequences.items() if now - t.heard > self.forget_after
                ]:
                    del site.sequences[gone]
                if (
                    not announced
                    and not site.devices
                    and not site.sequences
                    and now - site.heard > self.stale_after
                ):
                    del self._sites[name]
                    continue
                out[name] = SiteState(
                    # the agent's connection as its birth/will say: silence alone does not
                    # clear it (the SiteOffline rule pages on silence by per-site thresholds)
                    reason in ("", SILENT),
                    site.status,
                    site.heard,
                    devices,
                    {d: t.counts() for d, t in site.sequences.items()},
                    site.future_samples,
                    site.clock_skew,
                    dict(site.truncated),
                    reason,
                    since,
                    site.last_online,
                )
            return out


def _offline_reason(status: Status) -> str:
    """The agent's will is the only offline status without a time (agent/publisher.py)."""
    if status.ts_ms == 0 or status.reason == "connection lost":
        return CONNECTION_LOST
    return STOPPED
