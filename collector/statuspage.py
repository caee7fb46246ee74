"""The collector's status page at `/`: current state of every site and device as one HTML page.

For the technician in the field with a phone and for a NOC without Grafana: which sites are
dark (why, since when), which devices and links are down (since when), and the signal and power
readings that explain it. Problems come first: dark sites, then sites with a device or link
down, then the rest. Devices of a dark site are shown as unknown, greyed, without readings (the
last ones are not current). Under each site, the alarms its devices raised by SNMP trap and its
newest traps (collector/statusalarms.py). It is rendered from the same `State` snapshot as
/metrics, so both always agree. One self-contained page: no scripts, no external assets (it must work over a VSAT
link and behind strict proxies), a meta refresh instead of JavaScript, and every string from the
agents HTML-escaped.

Enumerations are shown by the names the device's profiles give them, "locked (1)", as its agent
sent them (collector/names.py: the same neutral field is numbered differently per vendor); a
value without a name is shown as its number. The IF-MIB interface states, numbered by RFC 2863
on every device, are named in any case.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from collector import statusalarms, statusdistricts
from collector.events import EventsSnapshot
from collector.inventory import Inventory
from collector.maintenance.window import Window
from collector.names import DeviceNames
from collector.rootcause import CauseHold
from collector.state import (
    CONNECTION_LOST,
    DOWN,
    SILENT,
    STOPPED,
    UNKNOWN,
    UP,
    DeviceState,
    SiteState,
    link_name,
)
from collector.topology import build as build_topology
from pantau.wire import Group, Kind

REFRESH_SECONDS = 15
MAX_LINKS_LISTED = 12
"""Down links named per device; more are counted ("+3 more"), so a broken switch stays short."""

KEY_MEASUREMENTS = ("signal", "power")
"""Vendor-neutral measurements whose readings the page shows (docs/alerts.md, metric names)."""

# Preferred order and short labels of the vendor-neutral fields; others follow by name.
_LABELS: dict[str, str] = {
    "esno_db": "Es/N0",
    "snr_db": "SNR",
    "rsl_dbm": "RSL",
    "mse_db": "MSE",
    "rx_power_dbm": "Rx",
    "tx_power_dbm": "Tx",
    "rsrp_dbm": "RSRP",
    "rsrq_db": "RSRQ",
    "sinr_db": "SINR",
    "rssi_dbm": "RSSI",
    "capacity_bps": "Capacity",
    "mains_ok": "Mains",
    "on_battery": "On battery",
    "battery_charge_percent": "Charge",
    "battery_runtime_minutes": "Runtime",
    "battery_voltage_volts": "Battery",
    "battery_current_amperes": "Battery current",
    "battery_temperature_celsius": "Battery temp",
    "dc_bus_voltage_volts": "DC bus",
    "load_current_amperes": "Load current",
    "rectifier_current_amperes": "Rectifier current",
    "generator_running": "Generator",
    "fuel_percent": "Fuel",
}
_ORDER = {name: i for i, name in enumerate(_LABELS)}
# 0/1 flags: (text for 1, text for 0, the value that is bad news, if any)
_FLAGS: dict[str, tuple[str, str, float | None]] = {
    "mains_ok": ("OK", "FAIL", 0.0),
    "on_battery": ("YES", "no", 1.0),
    "generator_running": ("running", "off", None),
    "lock": ("locked", "UNLOCKED", 0.0),
}
_UNITS = (
    ("_dbm", "dBm"),
    ("_db", "dB"),
    ("_volts", "V"),
    ("_amperes", "A"),
    ("_watts", "W"),
    ("_percent", "%"),
    ("_celsius", "°C"),
    ("_hertz", "Hz"),
    ("_minutes", "min"),
    ("_seconds", "s"),
)
# RFC 2863: the same numbering on every device (IF-MIB), so the collector can name them.
IF_OPER_STATUS = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}
_OFFLINE_TEXT = {
    CONNECTION_LOST: "connection lost (Last Will)",
    STOPPED: "agent stopped",
    SILENT: "silent: nothing received",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One key value of a device, ready to print: "RSL -67.0 … -32.0 dBm (8)"."""

    label: str
    text: str
    bad: bool = False


def key_readings(groups: Iterable[Group], names: DeviceNames | None = None) -> list[Reading]:
    """Signal and power readings of a sample set, one per field name.

    A field measured on several rows (a radio's carriers, a switch's SFPs) is summarised as
    its range and row count, so a 48-port switch stays one line on a phone. An enumeration
    (kind state) is shown by the name its profile gives each value, "locked (1)", when the
    agent sent `names` (collector/names.py), else as its number(s).
    """
    values: dict[str, list[float]] = {}
    states: dict[str, str] = {}  # enumerations: field → its measurement
    for group in groups:
        if group.measurement not in KEY_MEASUREMENTS:
            continue
        for f in group.fields:
            if f.kind in (Kind.GAUGE, Kind.STATE) and isinstance(f.value, int | float):
                values.setdefault(f.name, []).append(float(f.value))
                if f.kind is Kind.STATE:
                    states.setdefault(f.name, group.measurement)
    out = []
    for name in sorted(values, key=lambda n: (_ORDER.get(n, len(_ORDER)), n)):
        vals = values[name]
        label = _LABELS.get(name, name)
        if name in _FLAGS and len(vals) == 1:
            yes, no, bad = _FLAGS[name]
            out.append(Reading(label, yes if vals[0] == 1 else no, vals[0] == bad))
            continue
        if name in states and name not in _FLAGS:
            distinct = sorted(set(vals))
            named = [
                (names.state_name(states[name], name, v) if names is not None else None, v)
                for v in distinct[:6]
            ]
            if any(n for n, _ in named):
                text = ", ".join(f"{n} ({v:.0f})" if n else f"{v:.0f}" for n, v in named)
            else:
                text = "state " + ", ".join(f"{v:.0f}" for v in distinct[:6])
            if len(distinct) > 6:
                text += ", …"
            out.append(Reading(label, text))
            continue
        lo, hi = (_with_unit(name, v) for v in (min(vals), max(vals)))
        if lo == hi:
            text = " ".join(filter(None, lo))
        elif lo[1] == hi[1]:
            text = " ".join(filter(None, (lo[0], "…", hi[0], hi[1])))
        else:
            text = f"{' '.join(filter(None, lo))} … {' '.join(filter(None, hi))}"
        if len(vals) > 1:
            text += f" ({len(vals)})"
        out.append(Reading(label, text))
    return out


def value_text(name: str, value: float) -> str:
    """A value with its unit, from the name's suffix (docs/metrics.md); bit/s scaled."""
    return " ".join(filter(None, _with_unit(name, value)))


def _with_unit(name: str, value: float) -> tuple[str, str]:
    if name.endswith("_bps"):
        for factor, unit in ((1e9, "Gb/s"), (1e6, "Mb/s"), (1e3, "kb/s")):
            if abs(value) >= factor:
                return _num(value / factor), unit
        return _num(value), "bit/s"
    unit = next((u for suffix, u in _UNITS if name.endswith(suffix)), "")
    return _num(value), unit


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def ago(seconds: float) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '4 d ago' (never negative)."""
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 36 * 3600:
        return f"{s / 3600:.0f} h"
    return f"{s / 86400:.0f} d"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _since(ts: float, now: float) -> str:
    """'for 12 min (since 2026-12-06 20:18:22 UTC)'."""
    return (
        f'<span class="since">for {_span(now - ts)} '
        f'<span class="ts">(since {_stamp(ts)})</span></span>'
    )


def _oper_status(dev: DeviceState) -> dict[str, int]:
    """ifOperStatus of each down link, by the name the page shows."""
    out: dict[str, int] = {}
    for g in dev.last.groups:
        if g.measurement != "interface":
            continue
        for f in g.fields:
            if f.name == "oper_status" and isinstance(f.value, int):
                out[link_name(g.tags)] = f.value
    return out


def _links_html(dev: DeviceState, now: float) -> str:
    if not dev.links_down and not dev.links_up:
        return ""
    oper = _oper_status(dev) if dev.links_down else {}
    items = []
    for name, since in sorted(dev.links_down.items(), key=lambda kv: (kv[1], kv[0]))[
        :MAX_LINKS_LISTED
    ]:
        value = oper.get(name)
        state = IF_OPER_STATUS.get(value, f"oper_status {value}") if value is not None else "down"
        items.append(
            f'<li class="link down" data-link="{_esc(name)}"><span class="name">{_esc(name)}'
            f'</span> <span class="reason">{_esc(state)}</span> {_since(since, now)}</li>'
        )
    more = len(dev.links_down) - MAX_LINKS_LISTED
    if more > 0:
        items.append(f'<li class="link more">+{more} more down</li>')
    summary = (
        f'<span class="links-summary" data-links-up="{dev.links_up}" '
        f'data-links-down="{len(dev.links_down)}">links: {dev.links_up} up'
        + (f', <b class="bad">{len(dev.links_down)} down</b>' if dev.links_down else "")
        + "</span>"
    )
    return (
        f'<div class="links">{summary}'
        + (f'<ul class="down-links">{"".join(items)}</ul>' if items else "")
        + "</div>"
    )


def _device_html(name: str, dev: DeviceState, now: float) -> str:
    ss = dev.last
    state = dev.state
    badge = {UP: "ok", DOWN: "bad"}.get(state, "unk")
    up_attr = f' data-up="{int(state == UP)}"' if state != UNKNOWN else ""
    parts = [
        f'<li class="device {state}" data-device="{_esc(name)}" data-state="{state}"{up_attr}>',
        f'<div class="line"><span class="name">{_esc(name)}</span>'
        f'<span class="badge {badge}">{state.upper()}</span></div>',
    ]
    if state == UNKNOWN:
        was = "up" if ss.up else f"down: {_esc(ss.reason or 'unknown')}"
        parts.append(
            f'<div class="meta">last polled {ago(now - ss.ts_ms / 1000)} · was {was}</div></li>'
        )
        return "".join(parts)
    detail = []
    if state == DOWN:
        detail.append(f'<span class="reason">{_esc(ss.reason or "unknown")}</span>')
        if dev.down_since:
            detail.append(f"down {_since(dev.down_since, now)}")
    detail.append(f"polled {ago(now - ss.ts_ms / 1000)}")
    uptime = next(
        (
            f.value
            for g in ss.groups
            if g.measurement == "system"
            for f in g.fields
            if f.name == "uptime_seconds" and isinstance(f.value, int | float)
        ),
        None,
    )
    if uptime is not None:
        detail.append(f"up {_duration(float(uptime))}")
    parts.append(f'<div class="meta">{" · ".join(detail)}</div>')
    parts.append(_links_html(dev, now))
    readings = key_readings(ss.groups, dev.names)
    if readings:
        parts.append('<dl class="readings">')
        for r in readings:
            cls = ' class="bad"' if r.bad else ""
            parts.append(f"<div{cls}><dt>{_esc(r.label)}</dt><dd>{_esc(r.text)}</dd></div>")
        parts.append("</dl>")
    parts.append("</li>")
    return "".join(parts)


def _rank(site: SiteState) -> int:
    """0: dark; 1: a device or link down; 2: the rest."""
    if not site.online:
        return 0
    if any(d.state == DOWN or (d.state == UP and d.links_down) for d in site.devices.values()):
        return 1
    return 2


_DEVICE_ORDER = {DOWN: 0, UP: 1, UNKNOWN: 2}


def _maintenance_html(windows: Sequence[Window], now: float) -> str:
    """Windows in force: one line each (what, until when, why); empty when none."""
    if not windows:
        return ""
    items = "".join(
        f'<li data-window="{_esc(w.id)}" data-scope="{w.scope}">'
        f'<span class="name">{_esc(w.target())}</span> until {_stamp(w.end)} '
        f"({_span(w.end - now)} left) · {_esc(w.reason)}</li>"
        for w in windows
    )
    return f'<div class="maint" data-maintenance="1">MAINTENANCE<ul>{items}</ul></div>'


def _site_html(
    name: str, site: SiteState, now: float, maintenance: Sequence[Window] = (), note: str = ""
) -> str:
    """One site's section; `note`: HTML under its meta line (collector/statusdistricts.py:
    "unreachable via …", "not in the inventory")."""
    down = sum(1 for d in site.devices.values() if d.state == DOWN)
    unknown = sum(1 for d in site.devices.values() if d.state == UNKNOWN)
    badge = (
        '<span class="badge ok">ONLINE</span>'
        if site.online
        else '<span class="badge bad">OFFLINE</span>'
    )
    meta = []
    if not site.online:
        why = _OFFLINE_TEXT.get(site.offline_reason, site.offline_reason or "offline")
        st = site.status
        if site.offline_reason == STOPPED and st is not None and st.reason:
            why = st.reason
        meta.append(
            f'<span class="reason" data-reason="{_esc(site.offline_reason)}">{_esc(why)}</span>'
        )
        if site.offline_since:
            meta.append(f"dark {_since(site.offline_since, now)}")
    meta.append(
        f'last heard {ago(now - site.heard)} <span class="ts">({_stamp(site.heard)})</span>'
        if site.heard
        else "never heard"
    )
    hb = site.last_online
    if hb is not None and not site.online:
        meta.append(f"last heartbeat {ago(now - hb.ts_ms / 1000)}")
    if hb is not None and hb.outbox_pending:
        meta.append(
            f"backlog {hb.outbox_pending} waiting, oldest {_duration(hb.outbox_oldest_age_s)}"
        )
    counts = f"{_count(len(site.devices), 'device')}, {down} down"
    if unknown:
        counts += f", {unknown} unknown"
    meta.append(counts)
    devices = sorted(site.devices.items(), key=lambda kv: (_DEVICE_ORDER[kv[1].state], kv[0]))
    rank = _rank(site)
    cls = ("offline", "trouble", "online")[rank]
    return (
        f'<section class="site {cls}" data-site="{_esc(name)}" data-online="{int(site.online)}" '
        f'data-rank="{rank}">'
        f'<h2><span class="name">{_esc(name)}</span>{badge}</h2>'
        f'<div class="meta">{" · ".join(meta)}</div>{note}'
        f"{_maintenance_html(maintenance, now)}"
        f'<ul class="devices">{"".join(_device_html(n, d, now) for n, d in devices)}</ul>'
        "</section>"
    )


_CSS = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--mut:#6e7781}
*{box-sizing:border-box}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 background:Canvas;color:CanvasText}
header{padding:.75rem 1rem;border-bottom:1px solid #8884;position:sticky;top:0;background:Canvas}
h1{font-size:1.15rem;margin:0}
.summary{margin:.25rem 0 0;color:var(--mut);font-size:.9rem}
main{padding:.5rem;max-width:60rem;margin:0 auto}
.site{border:1px solid #8886;border-radius:.5rem;margin:.5rem 0;padding:.5rem .75rem}
.site.offline{border-color:var(--bad);border-width:2px}
.site.trouble{border-color:var(--warn);border-width:2px}
h2{display:flex;justify-content:space-between;align-items:flex-start;gap:.5rem;
 font-size:1.1rem;margin:0;overflow-wrap:anywhere}
.meta{color:var(--mut);font-size:.85rem;overflow-wrap:anywhere}
.ts{white-space:nowrap}
.badge{font-size:.8rem;font-weight:700;padding:.1rem .5rem;border-radius:1rem;color:#fff;
 white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.unk{background:var(--mut)}
.reason{color:var(--bad);font-weight:600}
.maint{color:var(--warn);font-size:.85rem;font-weight:700;margin:.2rem 0}
.maint ul{list-style:none;margin:0;padding:0 0 0 .75rem;font-weight:400}
ul.devices{list-style:none;margin:.5rem 0 0;padding:0}
.device{border-top:1px solid #8883;padding:.4rem 0}
.device.unknown{opacity:.55}
.device .line{display:flex;justify-content:space-between;align-items:flex-start;gap:.5rem}
.device .name{font-weight:600;overflow-wrap:anywhere}
.links{font-size:.85rem;margin:.2rem 0 0}
.links-summary{color:var(--mut)}.links .bad{color:var(--bad)}
ul.down-links{list-style:none;margin:.1rem 0 0;padding:0 0 0 .75rem}
.link{overflow-wrap:anywhere}.link .name{font-weight:600}
.since{color:var(--mut)}
dl.readings{display:flex;flex-wrap:wrap;gap:.25rem .9rem;margin:.25rem 0 0}
dl.readings div{display:flex;gap:.3rem}
dt{color:var(--mut)}dd{margin:0;font-variant-numeric:tabular-nums}
dl.readings .bad dd{color:var(--bad);font-weight:700}
footer{color:var(--mut);font-size:.8rem;padding:1rem;text-align:center}
"""


def _marked_by(w: Window, inventory: Inventory | None) -> tuple[set[str], set[str]]:
    """The sites and links a window in force marks: its site; for a link window, or a device
    window taking links down (`cuts`), those links, the sites at their ends and every site
    behind them (the window's `behind` and, with the inventory, the sites further down their
    chains): all of them go dark or down during the work, as planned."""
    sites = {w.site} if w.site is not None else set()
    links = set(w.cuts) | ({w.link} if w.link else set())
    sites |= set(w.behind)
    if inventory is not None:
        for name in links:
            link = inventory.link(name)
            if link is not None:
                sites |= {e.site for e in (link.a, link.b) if e.site is not None}
        sites |= {s.name for s in inventory.sites if links & set(inventory.upstream_chain(s.name))}
    return sites, links


def _maintenance_section(windows: Sequence[Window], now: float) -> str:
    """All windows in force, on top of the page (link windows belong to no one site)."""
    if not windows:
        return ""
    return (
        '<div class="site maintenance" id="maintenance"><h2>Planned maintenance</h2>'
        f"{_maintenance_html(windows, now)}</div>"
    )


def render(
    sites: dict[str, SiteState],
    now: float | None = None,
    refresh: int = REFRESH_SECONDS,
    maintenance: Sequence[Window] = (),
    inventory: Inventory | None = None,
    events: EventsSnapshot | None = None,
    cause_hold: CauseHold | None = None,
) -> str:
    """The whole page for a `State.snapshot()`: dark sites first, then sites with a device or
    link down, then the rest; by name within each. `maintenance`: the windows in force, listed
    on top and marked on their sites. With an `inventory`: the links, then the sites by
    district (collector/statusdistricts.py). `events`: the alarms raised by trap and the
    newest events, under each site's heading (collector/statusalarms.py). `cause_hold`: the
    collector's one CauseHold (collector/rootcause.py), shared with /metrics."""
    now = time.time() if now is None else now
    traps = statusalarms.sections(events, now)
    by_site: dict[str, list[Window]] = {}
    by_link: dict[str, list[Window]] = {}
    for w in maintenance:
        marked, links = _marked_by(w, inventory)
        for name in sorted(marked):
            by_site.setdefault(name, []).append(w)
        for name in sorted(links):
            by_link.setdefault(name, []).append(w)
    devs = [d for s in sites.values() for d in s.devices.values()]
    n_down = sum(1 for d in devs if d.state == DOWN)
    n_unknown = sum(1 for d in devs if d.state == UNKNOWN)
    n_off = sum(1 for s in sites.values() if not s.online)
    ordered = sorted(sites.items(), key=lambda kv: (_rank(kv[1]), kv[0]))
    body = "".join(
        _site_html(n, s, now, by_site.get(n, ()), traps.get(n, "")) for n, s in ordered
    ) or ('<p class="meta">No site has reported yet.</p>')
    unknown = f", {n_unknown} unknown" if n_unknown else ""
    unknown += statusalarms.summary(events)
    css = _CSS + statusalarms.CSS
    if inventory is not None:
        topo = build_topology(inventory, sites, cause_hold)
        body = statusdistricts.body(
            topo,
            sites,
            _rank,
            lambda n, s, note: _site_html(n, s, now, by_site.get(n, ()), note + traps.get(n, "")),
            {name: _maintenance_html(ws, now) for name, ws in by_link.items()},
        )
        unknown += statusdistricts.summary(topo)
        css += statusdistricts.CSS
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{int(refresh)}">'
        f"<title>pantau: {n_off} offline, {n_down} down</title>"
        f"<style>{css}</style></head><body>"
        "<header><h1>pantau status</h1>"
        f'<p class="summary" id="summary">{_count(len(sites), "site")}, {n_off} offline · '
        f"{_count(len(devs), 'device')}, {n_down} down{unknown}</p></header>"
        f"<main>{_maintenance_section(maintenance, now)}{body}</main>"
        f"<footer>as of {_stamp(now)} · refreshes every {int(refresh)} s · "
        'read-only · <a href="/metrics">/metrics</a></footer>'
        "</body></html>\n"
    )
