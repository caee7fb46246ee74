"""The collector's status page at `/`: current state of every site and device as one HTML page.

For the technician in the field with a phone and for a NOC without Grafana: which sites are
dark, which devices are down and why, and the signal and power readings that explain it. It is
rendered from the same `State` snapshot as /metrics, so both always agree. One self-contained
page: no scripts, no external assets (it must work over a VSAT link and behind strict proxies),
a meta refresh instead of JavaScript, and every string from the agents HTML-escaped.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass

from collector.state import DeviceState, SiteState
from pantau.wire import Group, Kind

REFRESH_SECONDS = 15

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
    "mains_ok": "Mains",
    "on_battery": "On battery",
    "battery_charge_percent": "Charge",
    "battery_runtime_minutes": "Runtime",
    "battery_voltage_volts": "Battery",
    "generator_running": "Generator",
    "fuel_percent": "Fuel",
}
_ORDER = {name: i for i, name in enumerate(_LABELS)}
# 0/1 flags: (text for 1, text for 0, the value that is bad news, if any)
_FLAGS: dict[str, tuple[str, str, float | None]] = {
    "mains_ok": ("OK", "FAIL", 0.0),
    "on_battery": ("YES", "no", 1.0),
    "generator_running": ("running", "off", None),
}
_UNITS = (
    ("_dbm", "dBm"),
    ("_db", "dB"),
    ("_volts", "V"),
    ("_percent", "%"),
    ("_minutes", "min"),
    ("_seconds", "s"),
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One key value of a device, ready to print: "RSL -67.0 … -32.0 dBm (8)"."""

    label: str
    text: str
    bad: bool = False


def key_readings(groups: Iterable[Group]) -> list[Reading]:
    """Signal and power readings of a sample set, one per field name.

    A field measured on several rows (a radio's carriers, a switch's SFPs) is summarised as
    its range and row count, so a 48-port switch stays one line on a phone.
    """
    values: dict[str, list[float]] = {}
    for group in groups:
        if group.measurement not in KEY_MEASUREMENTS:
            continue
        for f in group.fields:
            if f.kind in (Kind.GAUGE, Kind.STATE) and isinstance(f.value, int | float):
                values.setdefault(f.name, []).append(float(f.value))
    out = []
    for name in sorted(values, key=lambda n: (_ORDER.get(n, len(_ORDER)), n)):
        vals = values[name]
        label = _LABELS.get(name, name)
        if name in _FLAGS and len(vals) == 1:
            yes, no, bad = _FLAGS[name]
            out.append(Reading(label, yes if vals[0] == 1 else no, vals[0] == bad))
            continue
        unit = next((u for suffix, u in _UNITS if name.endswith(suffix)), "")
        lo, hi = min(vals), max(vals)
        text = _num(lo) if lo == hi else f"{_num(lo)} … {_num(hi)}"
        if unit:
            text += f" {unit}"
        if len(vals) > 1:
            text += f" ({len(vals)})"
        out.append(Reading(label, text))
    return out


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def ago(seconds: float) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '4 d ago' (never negative)."""
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 90 * 60:
        return f"{s / 60:.0f} min ago"
    if s < 36 * 3600:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} d ago"


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


def _device_html(name: str, dev: DeviceState, now: float) -> str:
    ss = dev.last
    state = "UP" if ss.up else "DOWN"
    parts = [
        f'<li class="device {"up" if ss.up else "down"}" data-device="{_esc(name)}" '
        f'data-up="{int(ss.up)}">',
        f'<div class="line"><span class="name">{_esc(name)}</span>'
        f'<span class="badge {"ok" if ss.up else "bad"}">{state}</span></div>',
    ]
    detail = [f"polled {ago(now - ss.ts_ms / 1000)}"]
    if not ss.up:
        detail.insert(0, f'<span class="reason">{_esc(ss.reason or "unknown")}</span>')
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
    readings = key_readings(ss.groups)
    if readings:
        parts.append('<dl class="readings">')
        for r in readings:
            cls = ' class="bad"' if r.bad else ""
            parts.append(f"<div{cls}><dt>{_esc(r.label)}</dt><dd>{_esc(r.text)}</dd></div>")
        parts.append("</dl>")
    parts.append("</li>")
    return "".join(parts)


def _site_html(name: str, site: SiteState, now: float) -> str:
    down = sum(1 for d in site.devices.values() if not d.last.up)
    badge = (
        '<span class="badge ok">ONLINE</span>'
        if site.online
        else '<span class="badge bad">OFFLINE</span>'
    )
    meta = [
        f'last heard {ago(now - site.heard)} <span class="ts">({_stamp(site.heard)})</span>'
        if site.heard
        else "never heard"
    ]
    st = site.status
    if not site.online and st is not None and st.reason:
        meta.insert(0, f'<span class="reason">{_esc(st.reason)}</span>')
    if site.online and st is not None and st.outbox_pending:
        meta.append(
            f"backlog {st.outbox_pending} waiting, oldest {_duration(st.outbox_oldest_age_s)}"
        )
    meta.append(f"{_count(len(site.devices), 'device')}, {down} down")
    devices = sorted(site.devices.items(), key=lambda kv: (kv[1].last.up, kv[0]))
    return (
        f'<section class="site {"online" if site.online else "offline"}" '
        f'data-site="{_esc(name)}" data-online="{int(site.online)}">'
        f'<h2><span class="name">{_esc(name)}</span>{badge}</h2>'
        f'<div class="meta">{" · ".join(meta)}</div>'
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
h2{display:flex;justify-content:space-between;align-items:flex-start;gap:.5rem;
 font-size:1.1rem;margin:0;overflow-wrap:anywhere}
.meta{color:var(--mut);font-size:.85rem;overflow-wrap:anywhere}
.ts{white-space:nowrap}
.badge{font-size:.8rem;font-weight:700;padding:.1rem .5rem;border-radius:1rem;color:#fff;
 white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.reason{color:var(--bad);font-weight:600}
ul.devices{list-style:none;margin:.5rem 0 0;padding:0}
.device{border-top:1px solid #8883;padding:.4rem 0}
.device .line{display:flex;justify-content:space-between;align-items:flex-start;gap:.5rem}
.device .name{font-weight:600;overflow-wrap:anywhere}
dl.readings{display:flex;flex-wrap:wrap;gap:.25rem .9rem;margin:.25rem 0 0}
dl.readings div{display:flex;gap:.3rem}
dt{color:var(--mut)}dd{margin:0;font-variant-numeric:tabular-nums}
dl.readings .bad dd{color:var(--bad);font-weight:700}
footer{color:var(--mut);font-size:.8rem;padding:1rem;text-align:center}
"""


def render(
    sites: dict[str, SiteState], now: float | None = None, refresh: int = REFRESH_SECONDS
) -> str:
    """The whole page for a `State.snapshot()`: offline sites first, then by name."""
    now = time.time() if now is None else now
    n_dev = sum(len(s.devices) for s in sites.values())
    n_down = sum(1 for s in sites.values() for d in s.devices.values() if not d.last.up)
    n_off = sum(1 for s in sites.values() if not s.online)
    ordered = sorted(sites.items(), key=lambda kv: (kv[1].online, kv[0]))
    body = "".join(_site_html(n, s, now) for n, s in ordered) or (
        '<p class="meta">No site has reported yet.</p>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{int(refresh)}">'
        f"<title>pantau: {n_off} offline, {n_down} down</title>"
        f"<style>{_CSS}</style></head><body>"
        "<header><h1>pantau status</h1>"
        f'<p class="summary" id="summary">{_count(len(sites), "site")}, {n_off} offline · '
        f"{_count(n_dev, 'device')}, {n_down} down</p></header>"
        f"<main>{body}</main>"
        f"<footer>as of {_stamp(now)} · refreshes every {int(refresh)} s · "
        'read-only · <a href="/metrics">/metrics</a></footer>'
        "</body></html>\n"
    )
