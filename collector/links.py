"""Links as objects: one state per inventory link, derived from what both of its ends report now.

Without this a microwave hop is two unrelated ports on two devices, and its failure pages twice
(once per end) or not at all (the far end is dark, so its port is `unknown`). Here each end is
read from the collector's current state (a `State.snapshot()`): its site's reachability, its
device's poll, the named interface row's ifOperStatus, and the radio's neutral readings
(`lock`, `rsl_dbm`, `esno_db`, `rx_power_dbm`: docs/metrics.md). The link then is

- `down` when either end says so: its device's poll failed, its interface is neither up nor
  dormant (nor `unknown`, 4: the agent cannot tell, so that end is unknown), or its receiver is
  unlocked (`lock` 0);
- `unknown` when no end can be observed (both sites dark, a far end and a dark site, …);
- `degraded` when it is up but a reading of either end is below the link's `thresholds`;
- `up` otherwise.

Pure functions over plain values: no I/O, no clock, no locking (docs/inventory.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from collector.inventory import Inventory, LinkEnd, LinkEntry, Thresholds
from collector.state import DOWN as DEVICE_DOWN
from collector.state import IF_DORMANT, IF_OPER_UP, DeviceState, SiteState
from collector.state import UNKNOWN as DEVICE_UNKNOWN
from pantau.wire import Group

UP, DOWN, DEGRADED, UNKNOWN = "up", "down", "degraded", "unknown"
LINK_STATES = (UP, DOWN, DEGRADED, UNKNOWN)
"""Every state a link (and each of its ends) can be in, in the order they are exported."""

READINGS = ("rsl_dbm", "esno_db", "rx_power_dbm", "lock")
"""The neutral `signal` fields read at each end (the worst over the end's rows)."""

LIMITS = (
    ("rsl_dbm", "RSL", "dBm", "rsl_min_dbm"),
    ("esno_db", "Es/N0", "dB", "esno_min_db"),
    ("rx_power_dbm", "Rx power", "dBm", "rx_power_min_dbm"),
)
"""(reading, its name for people, unit, the `Thresholds` field below which it is degraded)."""

IF_OPER_UNKNOWN = 4  # RFC 2863 ifOperStatus unknown: the agent cannot tell, so neither can we

_INTERFACE_KEYS = ("ifName", "ifDescr", "ifIndex")


@dataclass(frozen=True, slots=True)
class EndStatus:
    """What one end of a link says now."""

    end: str  # "a" or "b"
    spec: LinkEnd
    state: str  # UP, DOWN, DEGRADED or UNKNOWN (nothing current observed)
    why: str  # for people: "interface down", "site dark", "RSL -75 dBm below -70 dBm", …
    if_index: str | None = None  # the interface row the end resolved to (from the last poll)
    oper_status: int | None = None  # its ifOperStatus, while observed
    readings: tuple[tuple[str, float], ...] = ()  # (field of READINGS, value), while observed
    signal_unresolved: str = ""  # why no signal row was taken as this end's (else "")

    def reading(self, name: str) -> float | None:
        return next((v for n, v in self.readings if n == name), None)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    name: str
    state: str
    why: str
    a: EndStatus
    b: EndStatus

    @property
    def ends(self) -> tuple[EndStatus, EndStatus]:
        return self.a, self.b


def find_interface(groups: Iterable[Group], interface: str) -> Group | None:
    """The `interface` row whose ifName, else ifDescr, else ifIndex equals `interface` (the
    contract's order: a name first, so an ifIndex that is also some port's name is not taken
    for it)."""
    rows = [g for g in groups if g.measurement == "interface"]
    for key in _INTERFACE_KEYS:
        for row in rows:
            if row.tags.get(key) == interface:
                return row
    return None


def _field(group: Group, name: str) -> float | None:
    for f in group.fields:
        if f.name == name and isinstance(f.value, int | float) and not isinstance(f.value, bool):
            return float(f.value)
    return None


def _tags_text(tags: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in tags.items())


def _signal_rows(
    groups: list[Group], row: Group | None, selector: Mapping[str, str] | None
) -> tuple[list[Group], str]:
    """This end's `signal` rows and, when there are rows but none can be taken as this end's,
    why not. The end's `signal` tags name exactly one row; else the rows of the resolved
    interface (same ifIndex or ifName); else the device's one row without an ifIndex (a
    modem's scalars), or the only row there is. Several rows without an ifIndex (a radio's
    ODUs, carriers or tuners, tagged `odu`, `entPhysicalIndex`, `tuner`) are never merged: a
    spare reads -99 dBm, unlocked, and would put a working link down."""
    signal = [g for g in groups if g.measurement == "signal"]
    if selector is not None:
        rows = [g for g in signal if all(g.tags.get(k) == v for k, v in selector.items())]
        found = _distinct(rows)
        if len(found) == 1:
            return rows, ""
        want = _tags_text(selector)
        if not found:
            return [], f"no signal row has {want}"
        return [], f"{len(found)} signal rows have {want}: name one with more tags"
    if row is not None:
        keys = {(k, row.tags[k]) for k in ("ifIndex", "ifName") if row.tags.get(k)}
        rows = [g for g in signal if any(g.tags.get(k) == v for k, v in keys)]
        if rows:
            return rows, ""
    loose = [g for g in signal if "ifIndex" not in g.tags]
    found = _distinct(loose)
    if len(found) > 1:
        some = "; ".join(_tags_text(dict(tags)) or "no tags" for tags in found[:3])
        more = ", …" if len(found) > 3 else ""
        return [], (
            f"{len(found)} signal rows without ifIndex ({some}{more}): name this end's "
            "with signal: {tag: value}"
        )
    if loose:
        return loose, ""
    return (signal, "") if len(_distinct(signal)) == 1 else ([], "")


def _distinct(rows: list[Group]) -> list[tuple[tuple[str, str], ...]]:
    """The rows' tag sets, each once, in order: two tables of one profile indexed alike (a
    radio's RSL table and its modem table) give one row of the device two groups."""
    return list(dict.fromkeys(tuple(sorted(g.tags.items())) for g in rows))


def _readings(rows: list[Group]) -> tuple[tuple[str, float], ...]:
    """The worst of each neutral reading over the end's rows."""
    out = []
    for name in READINGS:
        values = [v for g in rows if (v := _field(g, name)) is not None]
        if values:
            out.append((name, min(values)))
    return tuple(out)


def below(thresholds: Thresholds, readings: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The readings below the link's thresholds: reading name → its threshold."""
    got = dict(readings)
    out = {}
    for name, _, _, key in LIMITS:
        limit: float | None = getattr(thresholds, key)
        if limit is not None and name in got and got[name] < limit:
            out[name] = limit
    return out


def end_status(
    label: str, spec: LinkEnd, thresholds: Thresholds, sites: Mapping[str, SiteState]
) -> EndStatus:
    """One end's state from the snapshot (see the module's docstring)."""
    if spec.far_end is not None or spec.site is None:
        return EndStatus(label, spec, UNKNOWN, f"far end {spec.far_end}: not observed")
    site = sites.get(spec.site)
    if site is None:
        return EndStatus(label, spec, UNKNOWN, f"site {spec.site} never heard")
    dev: DeviceState | None = site.devices.get(spec.device) if spec.device else None
    row = None
    if dev is not None and spec.interface is not None:
        row = find_interface(dev.last.groups, spec.interface)
    if_index = row.tags.get("ifIndex") if row is not None else None
    if site.offline_reason:
        return EndStatus(label, spec, UNKNOWN, f"site {spec.site} dark", if_index)
    if spec.device is None:
        return EndStatus(label, spec, UP, f"site {spec.site} reachable")
    if dev is None:
        return EndStatus(label, spec, UNKNOWN, f"device {spec.device} not reporting")
    if dev.state == DEVICE_UNKNOWN:
        return EndStatus(label, spec, UNKNOWN, f"device {spec.device} not heard lately", if_index)
    if dev.state == DEVICE_DOWN:
        why = f"device {spec.device} down: {dev.last.reason or 'poll failed'}"
        return EndStatus(label, spec, DOWN, why, if_index)
    if spec.interface is not None and row is None:
        return EndStatus(
            label, spec, UNKNOWN, f"device {spec.device} has no interface {spec.interface}"
        )
    rows, unresolved = _signal_rows(list(dev.last.groups), row, spec.signal)
    readings = _readings(rows)
    oper: int | None = None
    if row is not None:
        value = _field(row, "oper_status")
        oper = int(value) if value is not None else None

    def end(state: str, why: str) -> EndStatus:
        if unresolved:
            why = f"{why}; no readings: {unresolved}"
        return EndStatus(label, spec, state, why, if_index, oper, readings, unresolved)

    if oper is not None and oper not in (IF_OPER_UP, IF_DORMANT, IF_OPER_UNKNOWN):
        return end(DOWN, f"interface {spec.interface} oper_status {oper}")
    got = dict(readings)
    if got.get("lock") == 0:
        return end(DOWN, "receiver unlocked")
    if oper == IF_OPER_UNKNOWN:
        return end(UNKNOWN, f"interface {spec.interface} oper_status 4 (unknown)")
    low = below(thresholds, readings)
    if low:
        return end(
            DEGRADED,
            "; ".join(
                f"{text} {got[name]:g} {unit} below {low[name]:g} {unit}"
                for name, text, unit, _ in LIMITS
                if name in low
            ),
        )
    return end(UP, "up")


def link_status(link: LinkEntry, sites: Mapping[str, SiteState]) -> LinkStatus:
    a = end_status("a", link.a, link.thresholds, sites)
    b = end_status("b", link.b, link.thresholds, sites)
    ends = (a, b)
    for state in (DOWN, DEGRADED):
        bad = [e for e in ends if e.state == state]
        if bad:
            return LinkStatus(link.name, state, _why(bad), a, b)
    if all(e.state == UNKNOWN for e in ends):
        return LinkStatus(link.name, UNKNOWN, "no end observed", a, b)
    return LinkStatus(link.name, UP, "up", a, b)


def _why(ends: list[EndStatus]) -> str:
    return "; ".join(f"{e.end} ({e.spec.site}): {e.why}" for e in ends)


def link_states(
    inventory: Inventory | None, sites: Mapping[str, SiteState]
) -> dict[str, LinkStatus]:
    """Every inventory link's status, in inventory order."""
    if inventory is None:
        return {}
    return {link.name: link_status(link, sites) for link in inventory.links}
