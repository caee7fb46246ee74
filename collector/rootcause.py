"""Root cause: which dark site or down link explains each dark site and each down or unknown link.

When a fiber PoP fails, every site behind it goes dark too; paging for each of them buries the
one page that matters. Walking up each element's upstream chain (collector/inventory.py) finds
the element to blame: the topmost down element of the unbroken run of down or unknown elements
directly above it. An element that is up (an online site, an up or degraded link) ends the run:
whatever is down above it is not why this one is down, since the path through it works. An
unknown link (no end observed, typically because the sites at both ends are dark) is
transparent: it neither blames nor clears. A site never heard from is transparent too.

Pure functions over plain values (docs/inventory.md has a worked example), and `CauseHold`, the
one piece of memory: a dependent keeps its upstream cause for a while after that cause is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
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


# The agent's reconnect backoff tops out at 60 s (agent broker.reconnect_max) and its birth
# message follows the connection; one heartbeat (60 s) more covers a slow first publish.
CAUSE_HOLD = 120.0


class CauseHold:
    """Keeps a dark site's upstream cause for `hold` seconds after that cause is back.

    When a PoP comes back, the sites behind it come back one by one, each agent on its own
    reconnect backoff (up to a minute). Without memory a site still reconnecting is, from the
    PoP's first scrape online, its own cause (root="true"): its SiteOffline changes labels and
    pages once as a fresh outage that is none. Held, it keeps cause=<PoP>, root="false", and
    `recovering` names the PoP, so Alertmanager keeps it inhibited (the UpstreamRecovering
    alert, docs/alerts.md) until it is back or the hold runs out. A site still dark after the
    hold is its own root: it pages `hold` seconds late, the price of no false page.

    Only a cause seen *from the chain* (root="false" without memory) starts or refreshes the
    hold, so a held cause cannot hold itself up. A site that comes back forgets its cause.
    Shared by /metrics and the status page (both call `apply` from their own threads).
    """

    def __init__(self, hold: float = CAUSE_HOLD, clock: Callable[[], float] = time.monotonic):
        self.hold = hold
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, float]] = {}  # site → (upstream cause, last seen)

    def apply(self, causes: Mapping[str, Cause]) -> tuple[dict[str, Cause], tuple[str, ...]]:
        """`causes` (site_causes) with held causes put back, and the held causes that are
        back up (the sorted names UpstreamRecovering fires for)."""
        now = self._clock()
        out = dict(causes)
        held: set[str] = set()
        with self._lock:
            for site in [s for s in self._seen if s not in causes]:
                del self._seen[site]  # back online: nothing to hold
            for site, cause in causes.items():
                if not cause.root:
                    self._seen[site] = (cause.cause, now)
                    continue
                seen = self._seen.get(site)
                if seen is None:
                    continue
                if now - seen[1] > self.hold:
                    del self._seen[site]
                    continue
                out[site] = Cause(site, seen[0])
                held.add(site)
        # A site behind a held one (its chain stops at that dark site) is held behind the same
        # cause: the held site's alert is root="false", so it inhibits nothing.
        recovering: set[str] = set()
        for site, cause in list(out.items()):
            top, visited = cause.cause, {site}
            while top in held and top not in visited:
                visited.add(top)
                top = out[top].cause
            out[site] = Cause(site, top)
            if (site in held or len(visited) > 1) and top not in causes:
                recovering.add(top)  # back (not dark), yet a site is still held behind it
        return out, tuple(sorted(recovering))
