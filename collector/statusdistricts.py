"""The status page's inventory view: sites grouped by district, the links, and why a site is dark.

With an inventory (collector/inventory.py) the NOC reads the page as it thinks: by district,
with every link's state and both ends' readings, inventory sites that never connected listed as
such, sites the inventory does not know marked, and a dark site behind a failed PoP or hop shown
"unreachable via <cause>" rather than as one more problem. collector/statuspage.py renders each
site; this module arranges them (same `Topology` as /metrics: collector/topology.py).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping

from collector.inventory import Thresholds
from collector.links import (
    DEGRADED,
    DOWN,
    IF_OPER_UNKNOWN,
    UNKNOWN,
    UP,
    EndStatus,
    LinkStatus,
    below,
)
from collector.state import SiteState
from collector.topology import Topology

SiteHtml = Callable[[str, SiteState, str], str]
"""Renders one site's section, with a note (HTML) under its heading."""

_BADGE = {UP: "ok", DEGRADED: "warn", DOWN: "bad", UNKNOWN: "unk"}
_LINK_ORDER = {DOWN: 0, DEGRADED: 1, UNKNOWN: 2, UP: 3}
_OPER = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent"}
_OPER[7] = "lowerLayerDown"
_READING_TEXT = (
    ("rsl_dbm", "RSL", "dBm"),
    ("esno_db", "Es/N0", "dB"),
    ("rx_power_dbm", "Rx", "dBm"),
)

CSS = """
.district{margin:1rem 0 0}
.district>h2{font-size:1rem;color:var(--mut);text-transform:uppercase;letter-spacing:.04em;
 border-bottom:1px solid #8886;padding:.2rem 0}
.site.never{border-style:dashed;border-color:var(--warn)}
.note{font-size:.85rem;font-weight:600;margin:.15rem 0}
.note.cause{color:var(--bad)}.note.unlisted{color:var(--warn)}
.badge.warn{background:var(--warn)}
#links ul.linklist{list-style:none;margin:.25rem 0 0;padding:0}
.linkrow{border-top:1px solid #8883;padding:.4rem 0}
.linkrow .line{display:flex;justify-content:space-between;align-items:flex-start;gap:.5rem}
.linkrow .name{font-weight:600;overflow-wrap:anywhere}
ul.ends{list-style:none;margin:.1rem 0 0;padding:0 0 0 .75rem;font-size:.85rem}
.end .bad{color:var(--bad);font-weight:700}
.end .warn{color:var(--warn);font-weight:600}
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def summary(topo: Topology) -> str:
    """' · 2 links, 1 down · 1 never seen' for the page's header (empty without inventory)."""
    if topo.inventory is None:
        return ""
    states = [s.state for s in topo.links.values()]
    parts = [f"{len(states)} link{'s' if len(states) != 1 else ''}"]
    parts += [f"{states.count(s)} {s}" for s in (DOWN, DEGRADED, UNKNOWN) if states.count(s)]
    text = " · " + ", ".join(parts)
    if topo.never_seen:
        text += f" · {len(topo.never_seen)} never seen"
    if topo.unlisted:
        text += f" · {len(topo.unlisted)} not in the inventory"
    return text


def cause_note(topo: Topology, site: str) -> str:
    """'unreachable via <cause>' for a dark site something above it explains; else ''."""
    cause = topo.site_causes.get(site)
    if cause is None or cause.root:
        return ""
    return (
        f'<div class="note cause" data-cause="{_esc(cause.cause)}">unreachable via '
        f"{_esc(cause.cause)}</div>"
    )


def body(
    topo: Topology,
    sites: Mapping[str, SiteState],
    rank: Callable[[SiteState], int],
    site_html: SiteHtml,
    link_notes: Mapping[str, str] | None = None,
) -> str:
    """Links first, then each district (the one with the worst site first), then the sites the
    inventory does not list. `link_notes`: HTML under a link's row (its maintenance windows)."""
    inv = topo.inventory
    if inv is None:
        return ""
    never = set(topo.never_seen)
    districts: dict[str, list[tuple[float, str, str]]] = {}
    for entry in inv.sites:
        group = districts.setdefault(entry.district, [])
        if entry.name in never:
            group.append((0.5, entry.name, _never_html(entry.name, entry.uplink, topo)))
        else:
            site = sites[entry.name]
            html_ = site_html(entry.name, site, cause_note(topo, entry.name))
            group.append((rank(site), entry.name, html_))
    order = sorted(districts, key=lambda d: min(r for r, _, _ in districts[d]))
    out = [_links_html(topo, link_notes or {})]
    for district in order:
        members = "".join(h for _, _, h in sorted(districts[district], key=lambda t: t[:2]))
        out.append(
            f'<section class="district" data-district="{_esc(district)}">'
            f"<h2>{_esc(district)}</h2>{members}</section>"
        )
    if topo.unlisted:
        note = '<div class="note unlisted" data-unlisted="1">not in the inventory</div>'
        unlisted = sorted(topo.unlisted, key=lambda n: (rank(sites[n]), n))
        members = "".join(site_html(n, sites[n], note + cause_note(topo, n)) for n in unlisted)
        out.append(
            '<section class="district unlisted" data-district="">'
            f"<h2>Not in the inventory</h2>{members}</section>"
        )
    return "".join(out)


def _never_html(name: str, uplink: str, topo: Topology) -> str:
    return (
        f'<section class="site never" data-site="{_esc(name)}" data-never-seen="1">'
        f'<h2><span class="name">{_esc(name)}</span>'
        '<span class="badge unk">NEVER SEEN</span></h2>'
        f'<div class="meta">in the inventory ({_esc(uplink)}), nothing ever received from it'
        "</div></section>"
    )


def _links_html(topo: Topology, notes: Mapping[str, str]) -> str:
    if not topo.links:
        return ""
    links = sorted(topo.links.values(), key=lambda s: _LINK_ORDER.get(s.state, 9))
    items = "".join(_link_html(topo, s, notes.get(s.name, "")) for s in links)
    return (
        '<section class="site" id="links"><h2>Links</h2>'
        f'<ul class="linklist">{items}</ul></section>'
    )


def _link_html(topo: Topology, status: LinkStatus, note: str = "") -> str:
    inv = topo.inventory
    entry = inv.link(status.name) if inv is not None else None
    kind = entry.kind if entry is not None else ""
    parts = [
        f'<li class="linkrow {status.state}" data-link="{_esc(status.name)}" '
        f'data-state="{status.state}">'
        f'<div class="line"><span class="name">{_esc(status.name)}</span>'
        f'<span class="badge {_BADGE[status.state]}">{status.state.upper()}</span></div>'
        f'<div class="meta">{_esc(kind)}'
        + (f" · {_esc(status.why)}" if status.state != UP else "")
        + "</div>"
    ]
    cause = topo.link_causes.get(status.name)
    if cause is not None and not cause.root:
        parts.append(
            f'<div class="note cause" data-cause="{_esc(cause.cause)}">unreachable via '
            f"{_esc(cause.cause)}</div>"
        )
    parts.append(note)
    limits = entry.thresholds if entry is not None else Thresholds()
    ends = _end_html(status.a, limits) + _end_html(status.b, limits)
    parts.append(f'<ul class="ends">{ends}</ul></li>')
    return "".join(parts)


def _end_html(end: EndStatus, limits: Thresholds) -> str:
    """One end: where, its state, then its oper status and readings, each marked when it is
    the reason for the state. `why` only where those do not say it already: an interface
    not up (its oper status), an unlocked receiver (UNLOCKED) and a reading below its
    threshold (marked, with the threshold) are each said once."""
    spec = end.spec
    where = spec.far_end or "/".join(p for p in (spec.site, spec.device, spec.interface) if p)
    bits = [f"{end.end}: <b>{_esc(where)}</b> {end.state}"]
    got = dict(end.readings)
    oper_says = end.oper_status is not None and end.oper_status not in (1, 5)
    shown = end.state in (UP, DEGRADED) or oper_says or got.get("lock") == 0
    if not shown:
        bits.append(_esc(end.why))  # carries signal_unresolved too
    if end.oper_status is not None:
        oper = f"oper {_OPER.get(end.oper_status, str(end.oper_status))}"
        if end.oper_status == IF_OPER_UNKNOWN:
            bits.append(f'<span class="warn">{oper}</span>')
        else:
            bits.append(f'<span class="bad">{oper}</span>' if oper_says else oper)
    low = below(limits, end.readings)
    for name, label, unit in _READING_TEXT:
        if name in low:
            bits.append(
                f'<span class="bad">{label} {got[name]:g} {unit}</span> below {low[name]:g} {unit}'
            )
        elif name in got:
            bits.append(f"{label} {got[name]:g} {unit}")
    if "lock" in got:
        bits.append("locked" if got["lock"] == 1 else '<span class="bad">UNLOCKED</span>')
    if shown and end.signal_unresolved:
        bits.append(f'<span class="warn">{_esc(end.signal_unresolved)}</span>')
    return (
        f'<li class="end {end.state}" data-end="{end.end}" data-state="{end.state}">'
        + " · ".join(bits)
        + "</li>"
    )
