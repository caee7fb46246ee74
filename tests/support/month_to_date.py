"""Month-to-date availability history for the live Prometheus stack (tests/test_prometheus_live.py).

The Availability dashboard shows the collector's `pantau_availability_month_*` gauges, which
exist only when the collector reads history from an InfluxQL server (`availability:`) and, for
targets and links, has an inventory. The live stack's agents write to VictoriaMetrics, which
does not answer InfluxQL, so a real InfluxDB 1.x is seeded with half an hour of this month's
polls made the way the collector makes them (SampleSet → collector.lineproto, a maintenance
window through collector.maintenance's own `line`), for the live stack's two sites:

- SITE_B's gateway fails three polls in a row: 180 s down (each poll covers until the next);
- SITE_A has a five-minute site maintenance window: 300 s of maintenance for the site and for
  the satellite link whose far end is SITE_A's modem.

Half an hour, not a month: the figures only have to exist and be exact, and the month-long
scenario is tests/test_availability_report.py's job.
"""

from __future__ import annotations

from collector.lineproto import sample_set_lines
from collector.maintenance.window import Window, line
from pantau.wire import SampleSet

POLLS = 30  # one a minute, ending a minute before the stack starts
DOWN = range(10, 13)  # SITE_B's gateway fails these polls
MAINTENANCE = (15, 20)  # SITE_A's window, in poll numbers
LINK = "sat-kpg-hub"
SITE_SLA = {"a": 99.5, "b": 99.9}  # percent: site a meets it, site b's 180 s put it below


def inventory_yaml(site_a: str, site_b: str) -> str:
    """Both live sites (no upstream: the other live tests see no root-cause labels change)
    and one satellite link to SITE_A's modem, with targets."""
    return f"""\
defaults: {{link_sla: 99.0}}
sites:
  - {{name: {site_a}, district: Katingan Hulu, uplink: vsat, sla: {SITE_SLA["a"]}}}
  - {{name: {site_b}, district: Katingan Tengah, uplink: microwave, sla: {SITE_SLA["b"]}}}
links:
  - name: {LINK}
    kind: satellite
    a: {{far_end: VSAT hub Jakarta}}
    b: {{site: {site_a}, device: modem}}
"""


def first_poll_s(now_s: float) -> int:
    """Unix seconds of poll 0: whole minutes, the last poll a minute before `now_s`."""
    return (int(now_s) // 60 - POLLS) * 60


def history_lines(site_a: str, site_b: str, now_s: float) -> list[str]:
    """Line protocol (as the collector writes it) of the polls and the window."""
    t0 = first_poll_s(now_s)
    lines: list[str] = []
    for site, device in ((site_a, "modem"), (site_b, "gw")):
        for k in range(POLLS):
            up = not (site == site_b and k in DOWN)
            ss = SampleSet(
                site=site,
                device=device,
                seq=k + 1,
                ts_ms=(t0 + 60 * k) * 1000,
                duration_ms=300 if up else 5000,
                up=up,
                reason="" if up else "timeout",
                groups=[],  # availability reads only pantau_poll's `up`
            )
            lines.extend(sample_set_lines(ss))
    start, end = (t0 + 60 * k for k in MAINTENANCE)
    window = Window(
        id="m-live",
        scope="site",
        site=site_a,
        start=start,
        end=end,
        reason="antenna realignment",
        created=start - 3600,
    )
    lines.append(line(window))
    return lines
