"""The inventory seen through current state: link states, causes, sites never seen or unlisted.

/metrics (collector/exposition.py) and the status page (collector/statuspage.py) both render
from one `Topology` built from the same snapshot, so they always agree. The metric families are
described here as plain values (`Family`): exposition.py, the one module that imports
prometheus_client, only converts them (docs/inventory.md, docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from collector.inventory import Inventory
from collector.links import LINK_STATES, READINGS, LinkStatus, link_states
from collector.rootcause import Cause, CauseHold, link_causes, site_causes
from collector.state import SiteState


@dataclass(frozen=True, slots=True)
class Topology:
    inventory: Inventory | None
    links: dict[str, LinkStatus]
    site_causes: dict[str, Cause]  # every dark site (with or without an inventory)
    link_causes: dict[str, Cause]  # down links, and unknown ones something above explains
    never_seen: tuple[str, ...]  # inventory sites absent from current state
    unlisted: tuple[str, ...]  # sites in current state the inventory does not list
    recovering: tuple[str, ...] = ()  # causes back up that dark sites are still held behind


def build(
    inventory: Inventory | None, sites: Mapping[str, SiteState], hold: CauseHold | None = None
) -> Topology:
    """`hold`: the collector's one CauseHold (collector/rootcause.py), shared by /metrics and
    the status page; None: causes from current state only."""
    dark = {name for name, site in sites.items() if site.offline_reason}
    links = link_states(inventory, sites)
    states = {name: status.state for name, status in links.items()}
    listed = {s.name for s in inventory.sites} if inventory is not None else set()
    never = tuple(s.name for s in inventory.sites if s.name not in sites) if inventory else ()
    causes = site_causes(inventory, dark, states, never)
    recovering: tuple[str, ...] = ()
    if hold is not None and inventory is not None:
        causes, recovering = hold.apply(causes)
    return Topology(
        inventory,
        links,
        causes,
        link_causes(inventory, dark, states, never),
        never,
        tuple(sorted(n for n in sites if n not in listed)) if inventory is not None else (),
        recovering,
    )


@dataclass(slots=True)
class Family:
    """A gauge family as plain values: exposition.py turns it into a prometheus_client one."""

    name: str
    help: str
    labels: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add(self, values: tuple[str, ...], value: float) -> None:
        self.samples.append((values, value))


_READING_HELP = {
    "rsl_dbm": "Received signal level at this end of the link (dBm; the worst of its rows)",
    "esno_db": "Es/N0 at this end of the link (dB; the worst of its rows)",
    "rx_power_dbm": "Received optical power at this end of the link (dBm; the worst of its rows)",
    "lock": "Receiver lock at this end of the link (1 locked, 0 unlocked)",
}


def families(topo: Topology) -> list[Family]:
    """The inventory's metric families (names in docs/metrics.md, the contract of issue 14)."""
    inv = topo.inventory
    site_cause = Family(
        "pantau_site_cause",
        "1 for every dark site: cause is the topmost down element (site or link) above it, or "
        'the site itself (root="true")',
        ("site", "cause", "root"),
    )
    for c in topo.site_causes.values():
        site_cause.add((c.name, c.cause, _bool(c.root)), 1)
    if inv is None:
        return [site_cause]
    info = Family(
        "pantau_site_info",
        "1 per inventory site, with its district, uplink kind and upstream",
        ("site", "district", "uplink", "upstream"),
    )
    lat = Family("pantau_site_latitude", "Inventory latitude (decimal degrees)", ("site",))
    lon = Family("pantau_site_longitude", "Inventory longitude (decimal degrees)", ("site",))
    never = Family(
        "pantau_site_never_seen",
        "1 for an inventory site nothing was ever received from (since the collector started)",
        ("site",),
    )
    unlisted = Family(
        "pantau_site_unlisted",
        "1 for a site that sends but is not in the inventory",
        ("site",),
    )
    recovering = Family(
        "pantau_cause_recovering",
        "1 for a site or link that is back while dark sites behind it are still held behind it "
        "(inventory_cause_hold): the UpstreamRecovering alert keeps them inhibited",
        ("cause",),
    )
    for name in topo.recovering:
        recovering.add((name,), 1)
    sla = Family(
        "pantau_sla_target_ratio",
        "Service level the inventory holds a site or link to (0.999 for 99.9 %)",
        ("scope", "name"),
    )
    never_seen = set(topo.never_seen)
    for s in inv.sites:
        info.add((s.name, s.district, s.uplink, s.upstream or ""), 1)
        if s.latitude is not None and s.longitude is not None:
            lat.add((s.name,), s.latitude)
            lon.add((s.name,), s.longitude)
        never.add((s.name,), 1 if s.name in never_seen else 0)
        target = inv.site_sla(s.name)
        if target is not None:
            sla.add(("site", s.name), _ratio(target))
    for name in topo.unlisted:
        unlisted.add((name,), 1)
    link_info = Family(
        "pantau_link_info",
        "1 per inventory link, with its kind and both ends (a: toward the NOC)",
        (
            "link",
            "kind",
            "a_site",
            "a_device",
            "a_interface",
            "b_site",
            "b_device",
            "b_interface",
            "far_end",
        ),
    )
    state = Family(
        "pantau_link_state",
        "1 for the link's current state: up, down, degraded (a reading below its thresholds) "
        "or unknown (no end observed)",
        ("link", "state"),
    )
    end_state = Family(
        "pantau_link_end_state",
        "1 for what each end of the link says: up, down, degraded or unknown",
        ("link", "end", "state"),
    )
    oper = Family(
        "pantau_link_end_oper_status",
        "ifOperStatus of the end's interface (1 up, 2 down, 5 dormant, 7 lowerLayerDown, …)",
        ("link", "end"),
    )
    readings = {
        name: Family(f"pantau_link_end_{name}", _READING_HELP[name], ("link", "end"))
        for name in READINGS
    }
    unresolved = Family(
        "pantau_link_end_signal_unresolved",
        "1 for a link end whose device has signal rows but none could be taken as the end's "
        "(several without ifIndex and no `signal:` naming one, or `signal:` matching none or "
        "several): the end has no readings",
        ("link", "end"),
    )
    ports = Family(
        "pantau_link_port_info",
        "1 for every inventory link end resolved to an interface row: the per-port LinkDown "
        "rule leaves these ports to the per-link alert",
        ("link", "site", "device", "ifIndex"),
    )
    link_cause = Family(
        "pantau_link_cause",
        "1 for a link down or unknown because of something: cause is the topmost down element "
        'above it, or the link itself (root="true")',
        ("link", "cause", "root"),
    )
    limits = {
        key: Family(
            f"pantau_link_threshold_{key}",
            f"The link's {key} threshold from the inventory: below it the link is degraded",
            ("link",),
        )
        for key in ("rsl_min_dbm", "esno_min_db", "rx_power_min_dbm")
    }
    for link in inv.links:
        far = link.a.far_end or link.b.far_end or ""
        link_info.add(
            (
                link.name,
                link.kind,
                *(v or "" for v in (link.a.site, link.a.device, link.a.interface)),
                *(v or "" for v in (link.b.site, link.b.device, link.b.interface)),
                far,
            ),
            1,
        )
        target = inv.link_sla(link.name)
        if target is not None:
            sla.add(("link", link.name), _ratio(target))
        for key, family in limits.items():
            limit = getattr(link.thresholds, key)
            if limit is not None:
                family.add((link.name,), limit)
        status = topo.links.get(link.name)
        if status is None:
            continue
        for one in LINK_STATES:
            state.add((link.name, one), 1 if status.state == one else 0)
        for end in status.ends:
            for one in LINK_STATES:
                end_state.add((link.name, end.end, one), 1 if end.state == one else 0)
            if end.oper_status is not None:
                oper.add((link.name, end.end), end.oper_status)
            for name, value in end.readings:
                readings[name].add((link.name, end.end), value)
            if end.signal_unresolved:
                unresolved.add((link.name, end.end), 1)
            if end.if_index is not None and end.spec.site and end.spec.device:
                ports.add((link.name, end.spec.site, end.spec.device, end.if_index), 1)
    for c in topo.link_causes.values():
        link_cause.add((c.name, c.cause, _bool(c.root)), 1)
    return [
        info,
        lat,
        lon,
        never,
        unlisted,
        site_cause,
        recovering,
        sla,
        link_info,
        state,
        link_cause,
        end_state,
        oper,
        *readings.values(),
        unresolved,
        ports,
        *limits.values(),
    ]


def _ratio(percent: float) -> float:
    """99.9 → 0.999 exactly as written (not 0.9990000000000001)."""
    return round(percent / 100, 12)


def _bool(value: bool) -> str:
    return "true" if value else "false"
