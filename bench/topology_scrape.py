"""What the inventory adds to a scrape of /metrics and to the status page: link states, root
cause and their families, for a regency-sized and a country-sized inventory.

Builds an inventory of `--sites` sites in chains of `--depth` behind PoPs (each site behind a
microwave hop, as in the example), feeds a real `State` one radio per site, darkens a share of
the PoPs, and times `topology.build` + `topology.families` (what StateCollector adds per scrape)
and `statuspage.render` with the inventory. No servers. Run:
.venv/bin/python bench/topology_scrape.py [--sites 2000] [--depth 4] [--dark 0.1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector import statuspage  # noqa: E402
from collector.inventory import load_inventory  # noqa: E402
from collector.state import State  # noqa: E402
from collector.topology import build, families  # noqa: E402
from pantau.wire import Field, Group, Kind, SampleSet, Status  # noqa: E402


def inventory_text(sites: int, depth: int) -> str:
    lines = ["sites:"]
    links = ["links:"]
    for i in range(sites):
        name = f"s{i}"
        if i % depth == 0:
            lines.append(f"  - {{name: {name}, district: d{i // 50}, uplink: fiber}}")
            continue
        hop = f"mw{i}"
        lines.append(
            f"  - {{name: {name}, district: d{i // 50}, uplink: microwave, upstream: {hop}}}"
        )
        links.append(
            f"  - {{name: {hop}, kind: microwave, thresholds: {{rsl_min_dbm: -70}},"
            f" a: {{site: s{i - 1}, device: r, interface: radio1}},"
            f" b: {{site: {name}, device: r, interface: radio0}}}}"
        )
    return "\n".join(lines + links) + "\n"


def radio(site: str, now: float) -> SampleSet:
    groups = [
        Group(
            "interface",
            {"ifIndex": str(i), "ifName": f"radio{i}"},
            [Field("oper_status", Kind.STATE, 1)],
        )
        for i in (0, 1)
    ]
    groups += [
        Group(
            "signal",
            {"ifIndex": str(i), "ifName": f"radio{i}"},
            [Field("rsl_dbm", Kind.GAUGE, -45.0)],
        )
        for i in (0, 1)
    ]
    return SampleSet(site, "r", 1, int(now * 1000), 100, True, "", groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--dark", type=float, default=0.1, help="share of PoPs dark")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inventory.yaml"
        path.write_text(inventory_text(args.sites, args.depth))
        started = time.perf_counter()
        inv = load_inventory(path)
        load_s = time.perf_counter() - started
    state = State(900, max_sites=args.sites + 10)
    now = time.time()
    pops = [i for i in range(args.sites) if i % args.depth == 0]
    dark_pops = set(pops[: int(len(pops) * args.dark)])
    for i in range(args.sites):
        site = f"s{i}"
        state.on_status(Status(v=1, site=site, online=True, ts_ms=int(now * 1000)), now=now)
        state.on_sample_set(radio(site, now), now=now)
        if i - i % args.depth in dark_pops:
            state.on_status(Status(v=1, site=site, online=False, ts_ms=0), now=now)
    sites = state.snapshot(now=now)
    best_metrics = best_page = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        topo = build(inv, sites)
        fams = families(topo)
        t1 = time.perf_counter()
        statuspage.render(sites, now=now, inventory=inv)
        t2 = time.perf_counter()
        best_metrics, best_page = min(best_metrics, t1 - t0), min(best_page, t2 - t1)
    series = sum(len(f.samples) for f in fams)
    roots = sum(1 for c in topo.site_causes.values() if c.root)
    print(
        f"{args.sites} sites, {len(inv.links)} links, {len(topo.site_causes)} dark "
        f"({roots} roots): load {load_s * 1000:.0f} ms; per scrape +{best_metrics * 1000:.1f} ms "
        f"for {series} series; status page {best_page * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
