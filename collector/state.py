"""What the collector knows now about each site and device: the source of /metrics and /.

Current state follows each device's sequence numbers, not its timestamps: the sample set with the
highest sequence number is the device's newest (a backlog replayed after an outage goes to
InfluxDB with its timestamps, but must not roll current state back), and a timestamp more than
`max_clock_skew` seconds ahead of the collector's clock is not trusted for state at all: it is
counted per site (a site whose clock runs ahead, or a forged message) instead of pinning the
device's state until that time. Devices not heard from for `stale_after` seconds leave current
state, so their series disappear from Prometheus; their sequence accounting stays much longer
(`forget_after`), across a site's long outage.

Everything a sender can make grow is bounded (constructor arguments): sites, devices per site,
error kinds per device, holes tracked per device (collector.sequences), the fields whose kinds are
remembered (collector.kinds). What a bound cut off is counted per site in `truncated`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from collector.kinds import MAX_FIELDS, Kinds
from collector.sequences import MAX_GAP, MAX_HOLES, SeqTracker
from pantau.wire import Gap, SampleSet, Status

MAX_SITES = 10_000
MAX_DEVICES = 1_000
"""Devices per site, by default."""
MAX_ERROR_KINDS = 64
"""SNMP error kinds per device, by default."""
FORGET_AFTER = 7 * 86400.0
"""Seconds, by default, after which the sequence accounting of a silent device is forgotten."""
MAX_CLOCK_SKEW = 300.0
"""Seconds, by default, a sample set may be dated ahead of the collector's clock."""

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


class State:
    def __init__(
        self,
        stale_after: float,
        *,
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
        self.forget_after = max(forget_after, stale_after)
        self.max_clock_skew = max_clock_skew
        self.max_sites = max_sites
        self.max_devices = max_devices
        self.max_error_kinds = max_error_kinds
        self.max_holes = max_holes
        self.max_gap = max_gap
        self.kinds = Kinds(max_fields, self.forget_after)
        self.sites_cut = 0  # messages of sites over max_sites, left out of state
        self._lock = threading.Lock()
        self._sites: dict[str, SiteState] = {}

    def _site(self, name: str) -> SiteState | None:
        site = self._sites.get(name)
        if site is None:
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
            site.devices[ss.device] = DeviceState(ss, now, errors)

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
            site = self._site(status.site)
            if site is None:
                return
            site.online = status.online
            site.status = status
            site.heard = max(site.heard, now)

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
        """A consistent copy of live state (sequence counters without their ranges); forgets
        what went stale: devices after stale_after, their sequence accounting after
        forget_after, a site once nothing of it is left and it is offline."""
        now = time.time() if now is None else now
        with self._lock:
            self.kinds.prune(now)
            out: dict[str, SiteState] = {}
            for name, site in list(self._sites.items()):
                for dev in [d for d, s in site.devices.items() if now - s.heard > self.stale_after]:
                    del site.devices[dev]
                for dev in [
                    d for d, t in site.sequences.items() if now - t.heard > self.forget_after
                ]:
                    del site.sequences[dev]
                if (
                    not site.devices
                    and not site.sequences
                    and now - site.heard > self.stale_after
                    and not site.online
                ):
                    del self._sites[name]
                    continue
                out[name] = SiteState(
                    site.online,
                    site.status,
                    site.heard,
                    dict(site.devices),
                    {d: t.counts() for d, t in site.sequences.items()},
                    site.future_samples,
                    site.clock_skew,
                    dict(site.truncated),
                )
            return out
