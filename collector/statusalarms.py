"""The status page's alarms and events: what the devices of a site said by trap (docs/traps.md).

A technician who sees a device down on the page wants to know whether it also *said* something:
the alarms its traps raised and that no clearing trap has cleared yet (which alarm, how severe,
since when, from which trap), and the site's newest events. Both come from the same
`EventsSnapshot` as `pantau_device_alarm` in /metrics (collector/events.py), so the page and the
alert rules agree. Everything is bounded: a device flooding alarms stays a few lines on a phone.
collector/statuspage.py renders the site; this module renders its alarms and events.
"""

from __future__ import annotations

import html
import time
from collections import defaultdict

from collector.events import EventsSnapshot, RaisedAlarm, RecentEvent

MAX_ALARMS_LISTED = 10
"""Raised alarms named per device; more are counted ("+4 more")."""
MAX_EVENTS_LISTED = 5
"""Newest events shown per site (the collector keeps collector.events.RECENT_PER_SITE)."""

_SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2, "warning": 3, "info": 4, "clear": 5}
_SEVERITY_CLASS = {"critical": "bad", "major": "bad", "minor": "warn", "warning": "warn"}

CSS = """
.alarms,.events{font-size:.85rem;margin:.3rem 0 0}
.alarms>b,.events>b{color:var(--mut);font-weight:600}
ul.alarmlist,ul.eventlist{list-style:none;margin:.1rem 0 0;padding:0 0 0 .75rem}
.alarm,.event{overflow-wrap:anywhere}
.alarm .name,.event .name,.alarm-device>.name{font-weight:600}
.sev{font-size:.75rem;font-weight:700;padding:0 .35rem;border-radius:.6rem;color:#fff;
 background:var(--mut);white-space:nowrap}
.sev.bad{background:var(--bad)}.sev.warn{background:var(--warn)}
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _span(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 36 * 3600:
        return f"{s / 3600:.0f} h"
    return f"{s / 86400:.0f} d"


def _severity(severity: str) -> str:
    cls = _SEVERITY_CLASS.get(severity, "")
    return f'<span class="sev {cls}">{_esc(severity or "?")}</span>'


def _alarm_html(a: RaisedAlarm, now: float) -> str:
    if a.since_ms:
        since = (
            f'<span class="since">for {_span(now - a.since_ms / 1000)} '
            f'<span class="ts">(since {_stamp(a.since_ms / 1000)})</span></span>'
        )
    else:  # from an alarm state file of an older collector
        since = '<span class="since">since before the collector restarted</span>'
    trap = f' · from trap <span class="trap">{_esc(a.trap)}</span>' if a.trap else ""
    return (
        f'<li class="alarm" data-alarm="{_esc(a.alarm)}" data-severity="{_esc(a.severity)}">'
        f'<span class="name">{_esc(a.alarm)}</span> {_severity(a.severity)} {since}{trap}</li>'
    )


def alarms_html(alarms: list[RaisedAlarm], now: float) -> str:
    """A site's raised alarms by device: the most severe first, then the oldest; empty when
    none is raised."""
    if not alarms:
        return ""
    by_device: dict[str, list[RaisedAlarm]] = defaultdict(list)
    for a in alarms:
        by_device[a.device].append(a)
    parts = [f'<div class="alarms" data-alarms="{len(alarms)}"><b>Alarms raised by trap</b>']
    for device in sorted(by_device):
        items = sorted(
            by_device[device],
            key=lambda a: (_SEVERITY_ORDER.get(a.severity, 9), a.since_ms, a.alarm),
        )
        rows = [_alarm_html(a, now) for a in items[:MAX_ALARMS_LISTED]]
        more = len(items) - MAX_ALARMS_LISTED
        if more > 0:
            rows.append(f'<li class="alarm more">+{more} more raised</li>')
        parts.append(
            f'<div class="alarm-device" data-device="{_esc(device)}">'
            f'<span class="name">{_esc(device)}</span>'
            f'<ul class="alarmlist">{"".join(rows)}</ul></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def _event_html(e: RecentEvent, now: float) -> str:
    what = []
    if e.alarm:
        what.append(f"raises {_esc(e.alarm)}")
    if e.clears:
        what.append(f"clears {_esc(', '.join(e.clears))}")
    tail = f" · {' · '.join(what)}" if what else ""
    return (
        f'<li class="event" data-device="{_esc(e.device)}" data-trap="{_esc(e.trap)}" '
        f'data-seq="{e.seq}"><span class="ts">{_stamp(e.ts_ms / 1000)}</span> '
        f'({_span(now - e.ts_ms / 1000)} ago) <span class="name">{_esc(e.device)}</span> '
        f"{_esc(e.trap)} {_severity(e.severity)}{tail}</li>"
    )


def events_html(events: tuple[RecentEvent, ...], now: float) -> str:
    """A site's newest events (newest first, at most MAX_EVENTS_LISTED); empty when none."""
    if not events:
        return ""
    rows = "".join(_event_html(e, now) for e in events[:MAX_EVENTS_LISTED])
    return f'<div class="events"><b>Recent traps</b><ul class="eventlist">{rows}</ul></div>'


def sections(events: EventsSnapshot | None, now: float) -> dict[str, str]:
    """Each site's alarms and recent events as HTML for its section of the page, by site."""
    if events is None:
        return {}
    raised: dict[str, list[RaisedAlarm]] = defaultdict(list)
    for a in events.raised:
        raised[a.site].append(a)
    return {
        site: alarms_html(raised.get(site, []), now) + events_html(events.recent.get(site, ()), now)
        for site in {*raised, *events.recent}
    }


def summary(events: EventsSnapshot | None) -> str:
    """', 3 alarms raised' for the page's summary line; empty when none."""
    if events is None or not events.raised:
        return ""
    n = len(events.raised)
    return f", {n} alarm{'s' if n != 1 else ''} raised"
