"""Root cause: which dark site or down link explains each dark site and each down or unknown link.

When a fiber PoP fails, every site behind it goes dark too; paging for each of them buries the
one page that matters. Walking up each element's upstream chain (collector/inventory.py) finds
the element to blame: the topmost down element of the unbroken run of down or unknown elements
directly above it. An element that is up (an online site, an up or degraded link) ends the run:
whatever is down above it is not why this one is down, since the path through it works. An
unknown link (no end observed, typically because the sites at both ends are dark) is
transparent: it neither blames nor clears. A site never heard from is transparent too.

Pure functions over plain values (docs/inventory.md has a worked example).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from collector.inventory import Inventory
from collector.links import DOWN, UNKNOWN


@dataclass(frozen=True, slots=True)
class Cause:
    """Why `name` is dark or down: because of `cause` (`name` itself when it is the root)."""

    name: str
    cause: str

    @property
    def root(self) -> bool:
        return self.cause == self.name


def _cause_of(
    name: str,
    inventory: Inventory | None,
    dark: Collection[str],
    links: Mapping[str, str],
    unseen: Collection[str],
) -> str:
    if inventory is None:
        return name
    cause = name
    for up in inventory.upstream_chain(name):
        if up in links:
            state = links[up]
            if state == DOWN:
                cause = up
            elif state != UNKNOWN:
                break  # up or degraded: the path through it works
        elif up in dark:
            cause = up
        elif up not in unseen:
            break  # an online site
    return cause


def site_causes(
    inventory: Inventory | None,
    dark: Collection[str],
    links: Mapping[str, str],
    unseen: Collection[str] = (),
) -> dict[str, Cause]:
    """The cause of every dark site (also of dark sites the inventory does not list: their
    own). `links` maps link names to their state (collector.links); `unseen` names inventory
    sites never heard from."""
    return {s: Cause(s, _cause_of(s, inventory, dark, links, unseen)) for s in sorted(dark)}


def link_causes(
    inventory: Inventory | None,
    dark: Collection[str],
    links: Mapping[str, str],
    unseen: Collection[str] = (),
) -> dict[str, Cause]:
    """The cause of every down link (itself, or something above it) and of every unknown
    link that something above it explains; an unknown link nothing explains is left out (it is
    not a failure, only unobserved)."""
    out: dict[str, Cause] = {}
    for name, state in links.items():
        if state not in (DOWN, UNKNOWN):
            continue
        cause = _cause_of(name, inventory, dark, links, unseen)
        if state == DOWN or cause != name:
            out[name] = Cause(name, cause)
    return out
