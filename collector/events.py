"""Events (SNMP traps and informs the agents received): checks, line protocol and alarm state.

Alarm state follows each event's sequence number, not its arrival: after an outage the agent
sends a device's newest event first and then its backlog, so a linkUp may arrive before the
linkDown it clears. Each alarm remembers the sequence number of the event that last raised or
cleared it, and an older event does not change it. A redelivered event (same device, same
sequence number) is counted once. Everything a sender can make grow is bounded.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from collector.lineproto import _STRING, _tag_value
from collector.validate import (
    FUTURE_SLACK_MS,
    INT64_MAX,
    MIN_TS_MS,
    Rejected,
    _decoded,
    _same_origin,
)
from pantau.wire import Event, decode_event
from pantau.wire.model import MAX_EVENT_VARBINDS, MAX_TAG_CHARS

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


def check_event(
    topic_site: str, topic_device: str, payload: bytes, max_bytes: int, now_ms: int | None = None
) -> Event:
    event = _decoded(payload, max_bytes, decode_event)
    _same_origin("event for", event.site, event.device, topic_site, topic_device)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not MIN_TS_MS <= event.ts_ms <= now_ms + FUTURE_SLACK_MS:
        raise Rejected("bad_timestamp", f"ts_ms {event.ts_ms} is implausible")
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


@dataclass(slots=True)
class DeviceEvents:
    traps: dict[str, int] = field(default_factory=dict)  # trap label → events counted
    alarms: dict[str, Alarm] = field(default_factory=dict)
    suppressed: int = 0  # the agent's running counts, the highest seen
    malformed: int = 0
    seen: set[int] = field(default_factory=set)
    order: deque[int] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class EventsSnapshot:
    traps: dict[tuple[str, str, str], int]  # (site, device, trap) → count
    alarms: dict[tuple[str, str, str], str]  # (site, device, alarm) → severity, raised only
    suppressed: dict[tuple[str, str], int]
    malformed: dict[tuple[str, str], int]
    duplicates: int
    cut: int


class EventState:
    """Counts and alarms by device; written by the pipeline's writer, read by /metrics."""

    def __init__(self, max_devices: int = MAX_DEVICES, max_alarms: int = MAX_ALARMS) -> None:
        self.max_devices = max_devices
        self.max_alarms = max_alarms
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceEvents] = {}
        self.duplicates = 0
        self.cut = 0  # events (or alarms) left out of state by a bound

    def on_event(self, event: Event) -> None:
        """Account an event once it is written."""
        key = (event.site, event.device)
        with self._lock:
            dev = self._devices.get(key)
            if dev is None:
                if len(self._devices) >= self.max_devices:
                    self.cut += 1
                    return
                dev = self._devices[key] = DeviceEvents()
            if event.seq in dev.seen:
                self.duplicates += 1
                return
            dev.seen.add(event.seq)
            dev.order.append(event.seq)
            if len(dev.order) > MAX_SEEN:
                dev.seen.discard(dev.order.popleft())
            label = trap_label(event)
            if label in dev.traps or len(dev.traps) < self.max_alarms:
                dev.traps[label] = dev.traps.get(label, 0) + 1
            else:
                self.cut += 1
            dev.suppressed = max(dev.suppressed, event.suppressed)
            dev.malformed = max(dev.malformed, event.malformed)
            if event.alarm:
                self._set(dev, event.alarm, event.seq, True, event.severity)
            for alarm in event.clears:
                self._set(dev, alarm, event.seq, False, "")

    def _set(self, dev: DeviceEvents, name: str, seq: int, raised: bool, severity: str) -> None:
        alarm = dev.alarms.get(name)
        if alarm is None:
            # A clear is remembered too: the event it clears may still be on its way (older
            # events come after the newest one when an outbox drains).
            if len(dev.alarms) >= self.max_alarms:
                self.cut += 1
                return
            dev.alarms[name] = Alarm(seq, raised, severity)
        elif seq > alarm.seq:
            alarm.seq, alarm.raised = seq, raised
            alarm.severity = severity or alarm.severity

    def forget_site(self, site: str) -> None:
        with self._lock:
            for key in [k for k in self._devices if k[0] == site]:
                del self._devices[key]

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
            )
