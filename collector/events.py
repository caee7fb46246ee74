"""Events (SNMP traps and informs the agents received): checks, line protocol and alarm state.

Alarm state follows each event's sequence number, not its arrival: after an outage the agent
sends a device's newest event first and then its backlog, so a linkUp may arrive before the
linkDown it clears. Each alarm remembers the sequence number of the event that last raised or
cleared it, and an older event does not change it. A redelivered event (same device, same
sequence number) is counted once. Everything a sender can make grow is bounded.

Events the agent had to drop (its outbox over budget) arrive as gap records on
pantau/<site>/<device>/event/gap (the Gap of sample sets, its device "<device>/event"): counted
as lost. Alarm state outlives a restart when `alarm_state_file` is set: saved (atomically) within
a second of a change, loaded at start (docs/traps.md).
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from collector.lineproto import _STRING, _tag_value
from collector.validate import (
    FUTURE_SLACK_MS,
    INT64_MAX,
    MIN_TS_MS,
    Rejected,
    _decoded,
    _same_origin,
    check_gap,
)
from pantau.wire import Event, Gap, decode_event
from pantau.wire.model import MAX_EVENT_VARBINDS, MAX_TAG_CHARS
from pantau.wire.topics import IDENTIFIER

log = logging.getLogger("pantau.collector.events")

EVENT_MEASUREMENT = "pantau_event"
SEVERITIES = ("critical", "major", "minor", "warning", "info", "clear")
_TRAP = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_OID = re.compile(r"^[0-2](\.[0-9]{1,10}){1,127}$")
_VARBIND = re.compile(r"^[A-Za-z0-9_.]{1,200}$")
_ALARM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}(:[^\n\r]{1,256})?$")
SOURCE_CHARS = 64

MAX_SEEN = 1024
"""Sequence numbers remembered per device to count a redelivered event once."""
MAX_ALARMS = 1000
"""Alarms (raised or cleared) remembered per device."""
MAX_DEVICES = 20_000
"""Devices (all sites) with event state."""
RECENT_PER_SITE = 20
"""Newest events kept per site for the status page (collector/statusalarms.py)."""

TRAP_DROP_REASONS = (
    "unknown_source",
    "oversize",
    "malformed",
    "suppressed",
    "queue_full",
    "bad_community",
    "unsupported_version",
    "auth_failure",
    "engine_id_limit",
)
"""The agent's trap receiver counters (Status.traps, agent/traps/receiver.py) that count a
datagram dropped, exported as pantau_agent_traps_dropped_total{reason}."""
TRAP_RECEIVER_KINDS = (
    "informs_acknowledged",
    "ack_failed",
    "polls_skipped",
    "engine_discovery",
    "socket_errors",
    "duplicate_inform",
)
"""Its other counters (besides received and stored): pantau_agent_traps_receiver_total{kind}.
`duplicate_inform`: an inform received again (a retry or a replay), acknowledged, not stored."""


def check_event(
    topic_site: str, topic_device: str, payload: bytes, max_bytes: int, now_ms: int | None = None
) -> Event:
    event = _decoded(payload, max_bytes, decode_event)
    _same_origin("event for", event.site, event.device, topic_site, topic_device)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not MIN_TS_MS <= event.ts_ms <= now_ms + FUTURE_SLACK_MS:
        raise Rejected(  # before 2000 is final; "in the future" may be the collector's clock
            "bad_timestamp", f"ts_ms {event.ts_ms} is implausible", final=event.ts_ms < MIN_TS_MS
        )
    for n in (event.seq, event.suppressed, event.malformed):
        if not 0 <= n <= INT64_MAX:
            raise Rejected("bad_value", "seq or a count out of range")
    if not _OID.match(event.trap_oid):
        raise Rejected("bad_value", f"trap_oid {event.trap_oid[:64]!r}")
    if event.trap and not _TRAP.match(event.trap):
        raise Rejected("bad_name", f"trap {event.trap[:64]!r}")
    if event.severity not in SEVERITIES:
        raise Rejected("bad_value", f"severity {event.severity[:64]!r}")
    if len(event.varbinds) > MAX_EVENT_VARBINDS or len(event.clears) > MAX_EVENT_VARBINDS:
        raise Rejected("too_many_points", "too many varbinds or cleared alarms")
    for name, value in event.varbinds.items():
        if not _VARBIND.match(name):
            raise Rejected("bad_name", f"varbind {name[:64]!r}")
        if type(value) is str:
            if len(value) > MAX_TAG_CHARS:
                raise Rejected("bad_value", f"varbind {name} longer than {MAX_TAG_CHARS}")
        elif type(value) is int:
            if not -INT64_MAX <= value <= 2**64 - 1:
                raise Rejected("bad_value", f"varbind {name} out of range")
        elif type(value) is not float or not math.isfinite(value):
            raise Rejected("bad_value", f"varbind {name}: not a finite number or text")
    for alarm in (event.alarm, *event.clears):
        if alarm and not _ALARM.match(alarm):
            raise Rejected("bad_name", f"alarm {alarm[:64]!r}")
    if len(event.source) > SOURCE_CHARS:
        raise Rejected("bad_value", "source address too long")
    return event


EVENT_GAP_DEVICE = "{device}/event"
"""The device of an event gap record: the agent's outbox key of the device's events."""


def check_event_gap(topic_site: str, topic_device: str, payload: bytes, max_bytes: int) -> Gap:
    """A gap record of events (pantau/<site>/<device>/event/gap): checked as a sample sets'
    gap, its device the events' key of the topic's device."""
    return check_gap(topic_site, EVENT_GAP_DEVICE.format(device=topic_device), payload, max_bytes)


def trap_label(event: Event) -> str:
    """The trap's name, or its OID when no definition named it."""
    return event.trap or event.trap_oid


def _string(value: str) -> str:
    return '"' + value.translate(_STRING) + '"'


def event_line(event: Event) -> str:
    """One point per event. Its timestamp is the agent's, unique per device (the agent makes
    it so), so a redelivered event writes the same point again."""
    varbinds = json.dumps(event.varbinds, separators=(",", ":"), sort_keys=True)
    return (
        f"{EVENT_MEASUREMENT},device={_tag_value(event.device)},"
        f"severity={_tag_value(event.severity)},site={_tag_value(event.site)},"
        f"trap={_tag_value(trap_label(event))} "
        f"seq={event.seq}i,trap_oid={_string(event.trap_oid)},alarm={_string(event.alarm)},"
        f"clears={_string(','.join(event.clears))},inform={str(event.inform).lower()},"
        f"source={_string(event.source)},varbinds={_string(varbinds)},"
        f"suppressed={event.suppressed}i,malformed={event.malformed}i {event.ts_ms}"
    )


@dataclass(slots=True)
class Alarm:
    seq: int  # of the event that last raised or cleared it
    raised: bool
    severity: str
    since_ms: int = 0  # the agent's time of that event (0: from a state file without it)
    trap: str = ""  # the trap (name, else OID) of the event that raised it
    seq_ms: int = 0  # the agent's time of event `seq` (0: unknown, from an older state file)


@dataclass(frozen=True, slots=True)
class RaisedAlarm:
    """A raised alarm as the status page shows it."""

    site: str
    device: str
    alarm: str
    severity: str
    since_ms: int
    trap: str


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """One of a site's newest events, for the status page."""

    device: str
    seq: int
    ts_ms: int
    trap: str
    severity: str
    alarm: str
    clears: tuple[str, ...]


@dataclass(slots=True)
class DeviceEvents:
    traps: dict[str, int] = field(default_factory=dict)  # trap label → events counted
    alarms: dict[str, Alarm] = field(default_factory=dict)
    suppressed: int = 0  # the agent's running counts, the highest seen
    malformed: int = 0
    seen: dict[int, int] = field(default_factory=dict)  # seq → the event's time
    order: deque[int] = field(default_factory=deque)
    lost: int = 0  # events the agent dropped (its gap records), counted once per record
    lost_gaps: set[tuple[int, int]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class EventsSnapshot:
    traps: dict[tuple[str, str, str], int]  # (site, device, trap) → count
    alarms: dict[tuple[str, str, str], str]  # (site, device, alarm) → severity, raised only
    suppressed: dict[tuple[str, str], int]
    malformed: dict[tuple[str, str], int]
    duplicates: int
    cut: int
    lost: dict[tuple[str, str], int] = field(default_factory=dict)
    save_errors: int = 0
    raised: tuple[RaisedAlarm, ...] = ()  # by site, device, alarm
    recent: dict[str, tuple[RecentEvent, ...]] = field(default_factory=dict)  # newest first
    renumbered: dict[str, int] = field(default_factory=dict)  # site → restarts seen, absent: 0


class EventState:
    """Counts and alarms by device; written by the pipeline's writer, read by /metrics."""

    def __init__(self, max_devices: int = MAX_DEVICES, max_alarms: int = MAX_ALARMS) -> None:
        self.max_devices = max_devices
        self.max_alarms = max_alarms
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceEvents] = {}
        self.duplicates = 0
        self.cut = 0  # events (or alarms) left out of state by a bound
        self.path: Path | None = None  # alarm_state_file
        self.save_errors = 0
        self.renumbered = 0  # events that showed a device's numbering restarted (logged)
        self._renumbered_sites: dict[str, int] = {}  # the same by site, for /metrics
        self._save_lock = threading.Lock()  # the service's loop and the pipeline's writer save
        self._changed = False  # alarms changed since the last save
        self._recent: dict[str, list[RecentEvent]] = {}  # site → its newest events, oldest first

    def _device(self, key: tuple[str, str]) -> DeviceEvents | None:
        dev = self._devices.get(key)
        if dev is None:
            if len(self._devices) >= self.max_devices:
                self.cut += 1
                return None
            dev = self._devices[key] = DeviceEvents()
        return dev

    def on_event_gap(self, site: str, device: str, gap: Gap) -> None:
        """Account an event gap record once it is handled: `gap.count` events lost for good
        (a redelivered record counts once)."""
        with self._lock:
            dev = self._device((site, device))
            if dev is None:
                return
            run = (gap.first_seq, gap.last_seq)
            if run in dev.lost_gaps:
                return
            if len(dev.lost_gaps) >= MAX_SEEN:
                dev.lost_gaps.clear()  # bounded: only a redelivery after 1024 records recounts
            dev.lost_gaps.add(run)
            dev.lost += gap.count

    def on_event(self, event: Event) -> None:
        """Account an event once it is written."""
        key = (event.site, event.device)
        with self._lock:
            dev = self._device(key)
            if dev is None:
                return
            seen_ms = dev.seen.get(event.seq)
            if seen_ms == event.ts_ms:  # a redelivery carries the event's own time
                self.duplicates += 1
                return
            restarted = seen_ms is not None  # the number again, another event
            if restarted:
                dev.seen.clear()
                dev.order.clear()
            dev.seen[event.seq] = event.ts_ms
            dev.order.append(event.seq)
            if len(dev.order) > MAX_SEEN:
                dev.seen.pop(dev.order.popleft(), None)
            label = trap_label(event)
            if label in dev.traps or len(dev.traps) < self.max_alarms:
                dev.traps[label] = dev.traps.get(label, 0) + 1
            else:
                self.cut += 1
            dev.suppressed = max(dev.suppressed, event.suppressed)
            dev.malformed = max(dev.malformed, event.malformed)
            label_ts = (label, event.ts_ms)
            if event.alarm:
                restarted |= self._set(dev, event.alarm, event.seq, True, event.severity, label_ts)
            for alarm in event.clears:
                restarted |= self._set(dev, alarm, event.seq, False, "", label_ts)
            if restarted:
                self._renumbered(event)
            # The newest by the agent's time, not by arrival: a drained backlog comes newest first.
            recent = self._recent.get(event.site)
            if recent is None:
                if len(self._recent) >= self.max_devices:
                    return
                recent = self._recent[event.site] = []
            bisect.insort(
                recent,
                RecentEvent(
                    event.device,
                    event.seq,
                    event.ts_ms,
                    label,
                    event.severity,
                    event.alarm,
                    tuple(event.clears),
                ),
                key=lambda e: (e.ts_ms, e.device, e.seq),
            )
            if len(recent) > RECENT_PER_SITE:
                del recent[0]

    def _set(
        self,
        dev: DeviceEvents,
        name: str,
        seq: int,
        raised: bool,
        severity: str,
        by: tuple[str, int] = ("", 0),
    ) -> bool:
        """`by`: (trap label, time) of the event, kept as what raised the alarm and since when.

        An event with a lower (or the same) number than the alarm's but a later time than the
        alarm's event is no late backlog (within one outbox numbers and times rise together):
        the agent's numbering restarted (its outbox was recreated). It changes the alarm, and
        True says so; otherwise no later event of that device would change it again."""
        alarm = dev.alarms.get(name)
        if alarm is None:
            # A clear is remembered too: the event it clears may still be on its way (older
            # events come after the newest one when an outbox drains).
            if len(dev.alarms) >= self.max_alarms:
                self.cut += 1
                return False
            dev.alarms[name] = Alarm(seq, raised, severity, by[1], by[0] if raised else "", by[1])
            self._changed = True
            return False
        restarted = seq <= alarm.seq and 0 < alarm.seq_ms < by[1]
        if seq > alarm.seq or restarted:
            if raised and not alarm.raised:  # raised again: since this event
                alarm.since_ms, alarm.trap = by[1], by[0]
            elif not raised:
                alarm.since_ms, alarm.trap = by[1], ""
            alarm.seq, alarm.raised, alarm.seq_ms = seq, raised, by[1]
            alarm.severity = severity or alarm.severity
            self._changed = True
        return restarted

    def _renumbered(self, event: Event) -> None:
        self.renumbered += 1
        by_site = self._renumbered_sites
        if event.site in by_site or len(by_site) < self.max_devices:
            by_site[event.site] = by_site.get(event.site, 0) + 1
        log.warning(
            "event numbers of a device restarted (its agent's outbox recreated?): its newer "
            "events count, not the old numbers site=%s device=%s seq=%d",
            event.site,
            event.device,
            event.seq,
        )

    def forget_site(self, site: str) -> None:
        with self._lock:
            for key in [k for k in self._devices if k[0] == site]:
                del self._devices[key]
                self._changed = True
            self._recent.pop(site, None)
            self._renumbered_sites.pop(site, None)

    # -- alarm_state_file -------------------------------------------------------------------

    def load(self, path: Path) -> None:
        """Alarms as the last run saved them (and save there from now on). A file that cannot
        be read is logged, moved aside (`.bad`) and the state starts empty: alarms then come
        back with their devices' next traps; refusing to start would lose more."""
        self.path = path
        try:
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict):  # valid JSON all the same: null, [], a number
                raise ValueError(f"a JSON {type(doc).__name__}, not an object")
            if doc.get("version") != 1:
                raise ValueError(f"version {doc.get('version')!r}")
            devices: dict[tuple[str, str], DeviceEvents] = {}
            for entry in doc["devices"][: self.max_devices]:
                dev = DeviceEvents()
                for item in entry["alarms"][: self.max_alarms]:
                    # [name, seq, raised, severity] (+ [since_ms, trap] since the status page,
                    # + [seq_ms] since numbering restarts are recognised)
                    name, seq, raised, severity = item[:4]
                    extra = list(item[4:7])  # 4 to 7 elements
                    since_ms = extra[0] if extra else 0
                    trap = extra[1] if len(extra) > 1 else ""
                    seq_ms = extra[2] if len(extra) > 2 else 0
                    if not (isinstance(name, str) and _ALARM.match(name)):
                        raise ValueError(f"alarm {str(name)[:64]!r}")
                    if not isinstance(seq, int) or not isinstance(raised, bool):
                        raise ValueError("alarm seq or state of the wrong type")
                    if severity not in ("", *SEVERITIES):
                        raise ValueError(f"severity {str(severity)[:64]!r}")
                    if not isinstance(since_ms, int) or not isinstance(trap, str):
                        raise ValueError("alarm time or trap of the wrong type")
                    if not isinstance(seq_ms, int):
                        raise ValueError("alarm event time of the wrong type")
                    dev.alarms[name] = Alarm(seq, raised, severity, since_ms, trap[:200], seq_ms)
                site, device = entry["site"], entry["device"]
                for what in (site, device):  # they become metric labels and page text
                    if not (isinstance(what, str) and IDENTIFIER.match(what)):
                        raise ValueError(f"site or device {str(what)[:64]!r}")
                devices[(site, device)] = dev
        except FileNotFoundError:
            log.info("no alarm state yet file=%s", path)
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_name(path.name + ".bad")
            log.error(
                "alarm state unreadable, starting without it file=%s error=%s moved_to=%s",
                path,
                exc,
                aside,
            )
            try:
                os.replace(path, aside)
            except OSError as move:
                log.error("cannot move the alarm state aside file=%s error=%s", path, move)
            return
        with self._lock:
            self._devices.update(devices)
        raised = sum(a.raised for d in devices.values() for a in d.alarms.values())
        log.info("alarm state loaded file=%s devices=%d raised=%d", path, len(devices), raised)

    def save(self) -> bool:
        """Write the alarms if they changed since the last save (atomically: a temporary file,
        fsync, rename, fsync of the directory). False when it failed (logged, counted, tried
        again next time)."""
        with self._save_lock:
            return self._save()

    def _save(self) -> bool:
        if self.path is None or not self._changed:
            return True
        with self._lock:
            self._changed = False
            doc = {
                "version": 1,
                "devices": [
                    {
                        "site": site,
                        "device": device,
                        "alarms": [
                            [n, a.seq, a.raised, a.severity, a.since_ms, a.trap, a.seq_ms]
                            for n, a in d.alarms.items()
                        ],
                    }
                    for (site, device), d in self._devices.items()
                    if d.alarms
                ],
            }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            # The rename survives a power cut only once the directory is on disk.
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._changed = True
            self.save_errors += 1
            log.error("cannot save the alarm state file=%s error=%s", self.path, exc)
            return False
        return True

    def snapshot(self) -> EventsSnapshot:
        with self._lock:
            items = list(self._devices.items())
            return EventsSnapshot(
                traps={(s, d, t): n for (s, d), dev in items for t, n in dev.traps.items()},
                alarms={
                    (s, d, a): alarm.severity
                    for (s, d), dev in items
                    for a, alarm in dev.alarms.items()
                    if alarm.raised
                },
                suppressed={k: dev.suppressed for k, dev in items},
                malformed={k: dev.malformed for k, dev in items},
                duplicates=self.duplicates,
                cut=self.cut,
                lost={k: dev.lost for k, dev in items if dev.lost},
                save_errors=self.save_errors,
                raised=tuple(
                    RaisedAlarm(s, d, a, alarm.severity, alarm.since_ms, alarm.trap)
                    for (s, d), dev in sorted(items)
                    for a, alarm in sorted(dev.alarms.items())
                    if alarm.raised
                ),
                recent={site: tuple(reversed(q)) for site, q in self._recent.items()},
                renumbered=dict(self._renumbered_sites),
            )
