"""The report as one printable HTML page: a table per district, the links, an outage list and
a small timeline bar per site. Self-contained (inline CSS and SVG, no script, no external
resource), so it can be mailed, archived and printed as it is."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from collector.availability.compute import Figures, Report
from collector.availability.report_csv import iso
from collector.availability.timeline import DOWN, MAINTENANCE, UNKNOWN, UP

COLOURS = {UP: "#3a9d5d", DOWN: "#d64545", UNKNOWN: "#b8b8b8", MAINTENANCE: "#4a7fc1"}
BAR_WIDTH = 300
MIN_SLIVER = 2.0  # px: the narrowest an outage, window or unknown stretch is drawn
BAR_HEIGHT = 14

CSS = """
@page { size: A4 landscape; margin: 12mm; }
body { font: 12px/1.35 "DejaVu Sans", Arial, sans-serif; color: #222; margin: 16px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 18px 0 6px; border-bottom: 2px solid #444; }
p.meta { margin: 0 0 8px; color: #555; }
table { border-collapse: collapse; width: 100%; margin-bottom: 8px; page-break-inside: auto; }
tr { page-break-inside: avoid; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #eee; }
td.name, th.name, td.text { text-align: left; }
tr.site td { font-weight: bold; background: #f7f7f7; }
tr.device td.name { padding-left: 18px; font-weight: normal; }
td.bad { color: #b00; }
td.good { color: #176b35; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
svg { display: block; }
"""


def pct(f: Figures) -> str:
    return "—" if f.ratio is None else f"{f.ratio * 100:.3f} %"


def duration(ms: float) -> str:
    s = int(round(ms / 1000))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h:02d}:{m:02d}:{s:02d}"
    return f"{h:d}:{m:02d}:{s:02d}"


def bar(f: Figures, start_ms: int, end_ms: int) -> str:
    """The period as a strip: green up, red down, grey unknown, blue maintenance. A short
    outage still gets a visible sliver (MIN_SLIVER pixels)."""
    span = max(end_ms - start_ms, 1)
    rects = [f'<rect width="{BAR_WIDTH}" height="{BAR_HEIGHT}" fill="{COLOURS[UNKNOWN]}"/>']
    # up first, then the rest on top: a short outage or window keeps a visible sliver
    for seg in sorted(f.timeline, key=lambda s: s.state != UP):
        x = (seg.start - start_ms) * BAR_WIDTH / span
        w = (seg.end - seg.start) * BAR_WIDTH / span
        if seg.state != UP:
            w = max(w, MIN_SLIVER)
        rects.append(
            f'<rect x="{x:.2f}" width="{w:.2f}" height="{BAR_HEIGHT}" fill="{COLOURS[seg.state]}"/>'
        )
    label = escape(f"{f.name}: {pct(f)}")
    return (
        f'<svg width="{BAR_WIDTH}" height="{BAR_HEIGHT}" '
        f'role="img" aria-label="{label}"><title>{label}</title>{"".join(rects)}</svg>'
    )


def sla_cell(f: Figures) -> str:
    if f.sla is None:
        return "<td>—</td>"
    if f.ratio is None:
        return f"<td>{f.sla:g} %</td>"
    css = "good" if f.ratio * 100 >= f.sla else "bad"
    return f'<td class="{css}">{f.sla:g} %</td>'


def row(f: Figures, css: str, label: str, uplink: Figures | None, report: Report) -> str:
    mttr = "—" if f.mttr_s is None else duration(f.mttr_s * 1000)
    reach = "" if uplink is None else pct(uplink)
    return (
        f'<tr class="{css}"><td class="name">{escape(label)}</td>'
        f"<td>{pct(f)}</td>{sla_cell(f)}<td>{reach}</td>"
        f"<td>{duration(f.down_ms)}</td><td>{duration(f.unknown_ms)}</td>"
        f"<td>{duration(f.maintenance_ms)}</td><td>{f.count}</td><td>{mttr}</td>"
        f"<td>{bar(f, report.start_ms, report.end_ms) if css != 'device' else ''}</td></tr>"
    )


HEAD = (
    '<tr><th class="name">{what}</th><th>availability</th><th>SLA</th><th>uplink</th>'
    "<th>down</th><th>unknown</th><th>maintenance</th><th>outages</th><th>MTTR</th>"
    "<th>timeline</th></tr>"
)


def render(report: Report, title: str = "pantau availability report") -> str:
    uplinks = {u.name: u for u in report.uplinks}
    by_district: dict[str, list[Figures]] = defaultdict(list)
    for site in report.sites:
        by_district[site.district].append(site)
    devices: dict[str, list[Figures]] = defaultdict(list)
    for d in report.devices:
        devices[d.name.split("/", 1)[0]].append(d)
    period = f"{iso(report.start_ms)} – {iso(report.end_ms)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)} {escape(period)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Period {escape(period)} ({duration(report.end_ms - report.start_ms)}).'
        " Availability = up / (up + down): unknown time (no reading, no backfill) and"
        " maintenance are left out and shown apart. Uplink = the site reachable from the NOC.</p>",
        '<p class="legend">'
        + "".join(
            f'<span><i style="background:{c}"></i>{escape(s)}</span>' for s, c in COLOURS.items()
        )
        + "</p>",
    ]
    for district in sorted(by_district):
        parts.append(f"<h2>{escape(district)}</h2><table>{HEAD.format(what='site / device')}")
        for site in sorted(by_district[district], key=lambda f: f.name):
            parts.append(row(site, "site", site.name, uplinks.get(site.name), report))
            for d in sorted(devices.get(site.name, []), key=lambda f: f.name):
                parts.append(row(d, "device", d.name.split("/", 1)[1], None, report))
        parts.append("</table>")
    if report.links:
        parts.append(f"<h2>Links</h2><table>{HEAD.format(what='link')}")
        for link in report.links:
            parts.append(row(link, "site", link.name, None, report))
        parts.append("</table>")
    parts.append(
        "<h2>Outages, maintenance and unknown time</h2><table><tr>"
        '<th class="name">what</th><th class="name">kind</th><th>start (UTC)</th>'
        '<th>end (UTC)</th><th>duration</th><th class="name">cause</th></tr>'
    )
    listed = sorted(
        (
            (p.start_ms, f.scope, f.name, kind, p)
            for f in report.all()
            for kind, items in (
                ("outage", f.outages),
                ("maintenance", f.maintenance),
                ("unknown", f.unknown),
            )
            for p in items
        ),
        key=lambda item: (item[0], item[1], item[2]),
    )
    for _, scope, name, kind, p in listed:
        parts.append(
            f'<tr><td class="text">{escape(scope)} {escape(name)}</td>'
            f'<td class="text">{kind}</td><td>{iso(p.start_ms)}</td><td>{iso(p.end_ms)}</td>'
            f'<td>{duration(p.end_ms - p.start_ms)}</td><td class="text">{escape(p.cause)}</td>'
            "</tr>"
        )
    if not listed:
        parts.append('<tr><td class="text" colspan="6">none</td></tr>')
    parts.append("</table></body></html>")
    return "\n".join(parts)
