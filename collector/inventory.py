"""The NOC's inventory: which sites exist, where, what they hang off, and the links between them.

The collector otherwise knows only the sites that spoke to it. The inventory names the ones that
should (a site that never connected is then visible), the upstream each site depends on (so a
dark fiber PoP is reported once, not once per site behind it: collector/rootcause.py) and the
links as objects with two ends (collector/links.py). It is strict like every other config:
unknown keys, duplicate names, an upstream or link end naming nothing, an upstream link that does
not end at its site, and dependency cycles are refused at start, each with file:line
(docs/inventory.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pydantic

from pantau.settings import (
    ConfigError,
    LineMap,
    StrictModel,
    format_loc,
    load_yaml,
    validate,
)
from pantau.wire.topics import IDENTIFIER

Name = Annotated[str, pydantic.Field(pattern=IDENTIFIER.pattern)]
Percent = Annotated[float, pydantic.Field(gt=0, le=100)]
UplinkKind = Literal["vsat", "microwave", "fiber", "cellular"]
LinkKind = Literal["microwave", "fiber", "satellite", "cellular"]


class Defaults(StrictModel):
    site_sla: Percent | None = None
    link_sla: Percent | None = None


class SiteEntry(StrictModel):
    name: Name
    district: str = pydantic.Field(min_length=1, max_length=100)
    latitude: float | None = pydantic.Field(None, ge=-90, le=90)
    longitude: float | None = pydantic.Field(None, ge=-180, le=180)
    uplink: UplinkKind
    upstream: Name | None = None  # a site or link name; None: the NOC itself
    sla: Percent | None = None

    @pydantic.model_validator(mode="after")
    def _coordinates(self) -> SiteEntry:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together")
        return self


def _tag_text(value: object) -> object:
    """A tag value as the agent writes it: text. An unquoted YAML integer (`odu: 1`) means the
    same text; a float or a boolean does not (`23.250` would read 23.25): quote it."""
    if isinstance(value, bool) or isinstance(value, float):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        raise ValueError(f'a tag value is text: quote it ("{text}")')
    if isinstance(value, int):
        return str(value)
    return value


TagValue = Annotated[
    str, pydantic.BeforeValidator(_tag_text), pydantic.Field(min_length=1, max_length=256)
]
TagName = Annotated[str, pydantic.Field(min_length=1, max_length=64)]


class LinkEnd(StrictModel):
    """One end of a link: a site's device and interface, or a named far end (the VSAT hub).

    `signal` names the end's `signal` row by its tags where the device does not tag those rows
    by ifIndex (a radio's ODUs, carriers or tuners: `{odu: "23.255"}`); without it a device
    with several such rows gives the end no readings (collector/links.py), since any one of
    them may be a spare reading -99 dBm."""

    site: Name | None = None
    device: Name | None = None
    interface: str | None = pydantic.Field(None, min_length=1, max_length=256)
    signal: dict[TagName, TagValue] | None = None
    far_end: str | None = pydantic.Field(None, min_length=1, max_length=100)

    @pydantic.field_validator("signal")
    @classmethod
    def _some_tag(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and not value:
            raise ValueError("name the row by at least one tag, or leave signal out")
        return value

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> LinkEnd:
        if self.far_end is not None:
            if any(v is not None for v in (self.site, self.device, self.interface, self.signal)):
                raise ValueError(
                    "an end is either a far_end or a site (with device, interface, signal)"
                )
        elif self.site is None:
            raise ValueError("an end needs a site (with device, interface) or a far_end")
        if self.interface is not None and self.device is None:
            raise ValueError("an interface needs its device")
        if self.signal is not None and self.device is None:
            raise ValueError("a signal needs its device")
        return self


class Thresholds(StrictModel):
    """Below these a link that is up is `degraded` (its fade margin is gone)."""

    rsl_min_dbm: float | None = pydantic.Field(None, ge=-150, le=30)
    esno_min_db: float | None = pydantic.Field(None, ge=-30, le=60)
    rx_power_min_dbm: float | None = pydantic.Field(None, ge=-60, le=30)  # optics (SFP DOM)


class LinkEntry(StrictModel):
    name: Name
    kind: LinkKind
    a: LinkEnd  # the end toward the NOC
    b: LinkEnd
    sla: Percent | None = None
    thresholds: Thresholds = Thresholds()

    @pydantic.model_validator(mode="after")
    def _a_site(self) -> LinkEntry:
        if self.a.site is None and self.b.site is None:
            raise ValueError("at least one end must be a site: pantau observes links from sites")
        return self


class Inventory(StrictModel):
    defaults: Defaults = Defaults()
    sites: tuple[SiteEntry, ...] = ()
    links: tuple[LinkEntry, ...] = ()

    # By name, for lookups on every scrape (thousands of sites); the first of a duplicated name
    # (load_inventory refuses duplicates, a hand-built Inventory may have them).
    _sites: dict[str, SiteEntry] = pydantic.PrivateAttr(default_factory=dict)
    _links: dict[str, LinkEntry] = pydantic.PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object, /) -> None:
        for site in self.sites:
            self._sites.setdefault(site.name, site)
        for link in self.links:
            self._links.setdefault(link.name, link)

    def site(self, name: str) -> SiteEntry | None:
        return self._sites.get(name)

    def link(self, name: str) -> LinkEntry | None:
        return self._links.get(name)

    def links_ending_at(self, site: str | None, device: str | None) -> tuple[str, ...]:
        """The links one of whose ends is this device at this site: what work on the device
        takes down (maintenance silences, availability's cut-off sites), in inventory order."""
        return tuple(
            k.name
            for k in self.links
            if any(e.site == site and e.device == device for e in (k.a, k.b))
        )

    def site_sla(self, name: str) -> float | None:
        """The site's target in percent: its own, else the default, else None (no target)."""
        site = self.site(name)
        if site is None:
            return None
        return site.sla if site.sla is not None else self.defaults.site_sla

    def link_sla(self, name: str) -> float | None:
        link = self.link(name)
        if link is None:
            return None
        return link.sla if link.sla is not None else self.defaults.link_sla

    def upstream_of(self, name: str) -> str | None:
        """The element `name` depends on directly: a site's upstream, a link's `a` site."""
        site = self.site(name)
        if site is not None:
            return site.upstream
        link = self.link(name)
        if link is not None:
            return link.a.site
        return None

    def upstream_chain(self, name: str) -> list[str]:
        """The names above `name` (site or link), nearest first, up to the NOC. Loading refuses
        cycles; the guard here keeps a hand-built Inventory from looping."""
        chain: list[str] = []
        seen = {name}
        up = self.upstream_of(name)
        while up is not None and up not in seen:
            chain.append(up)
            seen.add(up)
            up = self.upstream_of(up)
        return chain


def load_inventory(path: Path) -> Inventory:
    """Read and check an inventory file; ConfigError listing every problem with file:line."""
    data, lines = load_yaml(path)
    if data is None or data == {}:
        raise ConfigError([f"{path}:1: the inventory is empty: list sites (and links)"])
    inventory = validate(Inventory, data, lines, path)
    errors = _cross_check(inventory, lines, path)
    if errors:
        raise ConfigError(errors)
    return inventory


def _cross_check(inv: Inventory, lines: LineMap, path: Path) -> list[str]:
    """What one entry cannot check alone: duplicates, references, cycles."""
    errors: list[str] = []

    def err(loc: tuple[str | int, ...], what: str) -> None:
        errors.append(f"{path}:{lines.line(loc)}: {format_loc(loc)}: {what}")

    kinds: dict[str, str] = {}
    for i, site in enumerate(inv.sites):
        if site.name in kinds:
            err(("sites", i, "name"), f"duplicate name {site.name!r} (a {kinds[site.name]} too)")
        kinds.setdefault(site.name, "site")
    for i, link in enumerate(inv.links):
        if link.name in kinds:
            err(("links", i, "name"), f"duplicate name {link.name!r} (a {kinds[link.name]} too)")
        kinds.setdefault(link.name, "link")
    for i, site in enumerate(inv.sites):
        if site.upstream is not None and site.upstream not in kinds:
            err(("sites", i, "upstream"), f"no site or link is named {site.upstream!r}")
        elif site.upstream == site.name:
            err(("sites", i, "upstream"), "a site cannot depend on itself")
        elif site.upstream is not None and kinds[site.upstream] == "link":
            if (what := _not_reaching(inv, site)) is not None:
                err(("sites", i, "upstream"), what)
    ports: dict[tuple[str, str, str], str] = {}
    for i, link in enumerate(inv.links):
        for side, end in (("a", link.a), ("b", link.b)):
            if end.site is not None and kinds.get(end.site) != "site":
                err(("links", i, side, "site"), f"no site is named {end.site!r}")
            if end.site and end.device and end.interface:
                port = (end.site, end.device, end.interface)
                if port in ports:
                    err(("links", i, side), f"this interface is already an end of {ports[port]}")
                ports.setdefault(port, link.name)
        if link.a.site is not None and link.a.site == link.b.site:
            err(("links", i, "b", "site"), "both ends are at the same site")
    if not errors:
        errors.extend(_cycles(inv, lines, path))
    return errors


def _not_reaching(inv: Inventory, site: SiteEntry) -> str | None:
    """Why the site's upstream link does not end at it (its `b` end), else None. Root cause
    blames the link for the site, and the link state is read at the ends the inventory names:
    a site further on (a BTS on the far site's switch) depends on the far site, whose own
    failure must stay visible between the link and it."""
    link = inv.link(site.upstream or "")
    if link is None or link.b.site == site.name:
        return None
    if link.b.site is None:
        return (
            f"link {link.name!r} does not reach {site.name!r}: its b end is the far end "
            f"{link.b.far_end!r} (a link a site depends on has that site as its b end)"
        )
    return (
        f"link {link.name!r} does not reach {site.name!r}: its b end is at "
        f"{link.b.site!r} (a site behind {link.b.site!r} names it: upstream: {link.b.site})"
    )


def _cycles(inv: Inventory, lines: LineMap, path: Path) -> list[str]:
    """Every dependency cycle once, named along its path (site → link → site …)."""
    index = {s.name: ("sites", i) for i, s in enumerate(inv.sites)}
    index |= {k.name: ("links", i) for i, k in enumerate(inv.links)}
    errors: list[str] = []
    done: set[str] = set()
    for start in index:
        path_names: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in done and node not in on_path:
            path_names.append(node)
            on_path.add(node)
            node = inv.upstream_of(node)
        if node is not None and node in on_path:
            cycle = path_names[path_names.index(node) :]
            first = min(cycle, key=lambda n: lines.line((*index[n], "name")))
            at = cycle.index(first)
            ring = [*cycle[at:], *cycle[:at], first]
            group, i = index[first]
            key = "upstream" if group == "sites" else "a"
            loc = (group, i, key)
            errors.append(
                f"{path}:{lines.line(loc)}: {format_loc(loc)}: dependency cycle: {' → '.join(ring)}"
            )
        done.update(path_names)
    return errors
