"""What the collector knows now about each site and device: the source of /metrics and /.

Only the newest sample set of a device is kept (a backlog replayed after an outage goes to
InfluxDB with its timestamps, but must not roll current state back). Devices not heard from for
`stale_after` seconds are forgotten, so their series disappear from Prometheus.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from collector.sequences import SeqTracker
from pantau.wire import Gap, SampleSet, Status


@dataclass(slots=True)
class DeviceState:
    last: SampleSet
    heard: float  # wall clock of the last message from this device


@dataclass(slots=True)
class SiteState:
    online: bool = False
    status: Status | None = None
    heard: float = 0.0  # wall clock of the last message of any kind from this site
    devices: dict[str, DeviceState] = field(default_factory=dict)
    sequences: dict[str, SeqTracker] = field(default_factory=dict)


class State:
    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self._lock = threading.Lock()
        self._sites: dict[str, SiteState] = {}

    def on_sample_set(self, ss: SampleSet, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            site = self._sites.setdefault(ss.site, SiteState())
            site.heard = max(site.heard, now)
            current = site.devices.get(ss.device)
            if current is None or ss.ts_ms >= current.last.ts_ms:
                site.devices[ss.device] = DeviceState(ss, now)
            else:
                current.heard = now

    def on_status(self, status: Status, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            site = self._sites.setdefault(status.site, SiteState())
            site.online = status.online
            site.status = status
            site.heard = max(site.heard, now)

    def _tracker(self, site: str, device: str) -> SeqTracker:
        return self._sites.setdefault(site, SiteState()).sequences.setdefault(device, SeqTracker())

    def written_sample_set(self, site: str, device: str, seq: int) -> None:
        """A sample set's points are in InfluxDB: account for its sequence number."""
        with self._lock:
            self._tracker(site, device).add(seq)

    def written_gap(self, gap: Gap) -> None:
        with self._lock:
            self._tracker(gap.site, gap.device).dropped(gap.first_seq, gap.last_seq)

    def written_status(self, status: Status) -> None:
        """After everything published before this heartbeat: settle confirmed holes."""
        if not status.online:
            return
        with self._lock:
            site = self._sites.setdefault(status.site, SiteState())
            for device, tracker in site.sequences.items():
                tracker.settle(status.pending_from.get(device))

    def snapshot(self, now: float | None = None) -> dict[str, SiteState]:
        """A consistent copy of live state; forgets what went stale."""
        now = time.time() if now is None else now
        with self._lock:
            out: dict[str, SiteState] = {}
            for name, site in list(self._sites.items()):
                for dev in [d for d, s in site.devices.items() if now - s.heard > self.stale_after]:
                    del site.devices[dev]
                if not site.devices and now - site.heard > self.stale_after and not site.online:
                    del self._sites[name]
                    continue
                out[name] = SiteState(
                    site.online,
                    site.status,
                    site.heard,
                    dict(site.devices),
                    {
                        d: SeqTracker(list(t.ranges), t.received, t.duplicates, t.lost, t.highest)
                        for d, t in site.sequences.items()
                    },
                )
            return out
