"""Root cause (collector/rootcause.py): pure functions over the inventory, the dark sites and
the link states; chains several levels deep, links as roots, unknown links transparent."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collector.inventory import Inventory, load_inventory
from collector.links import DEGRADED, DOWN, UNKNOWN, UP
from collector.rootcause import CAUSE_HOLD, Cause, CauseHold, link_causes, site_causes

# pop ─fiber─ (no link) ; pop ─mw1─ s1 ─ s2 ─ s3 (s2, s3 hang off the site before them)
#                              s1 ─mw2─ s4 ;  vsat: on its own
CHAIN = """\
sites:
  - {name: pop, district: D, uplink: fiber}
  - {name: s1, district: D, uplink: microwave, upstream: mw1}
  - {name: s2, district: D, uplink: fiber, upstream: s1}
  - {name: s3, district: D, uplink: fiber, upstream: s2}
  - {name: s4, district: D, uplink: microwave, upstream: mw2}
  - {name: vsat, district: D, uplink: vsat}
links:
  - {name: mw1, kind: microwave, a: {site: pop, device: r1, interface: radio0},
     b: {site: s1, device: r2, interface: radio0}}
  - {name: mw2, kind: microwave, a: {site: s1, device: r3, interface: radio0},
     b: {site: s4, device: r4, interface: radio0}}
"""


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(CHAIN))
    return load_inventory(path)


def causes(result: dict[str, Cause]) -> dict[str, tuple[str, bool]]:
    return {name: (c.cause, c.root) for name, c in result.items()}


def test_pop_dark_blames_the_pop_three_deep(inv):
    """The PoP is dark, so is everything behind it; the hop between them has no end observed
    (both sites dark): unknown, transparent."""
    dark = {"pop", "s1", "s2", "s3", "s4"}
    links = {"mw1": UNKNOWN, "mw2": UNKNOWN}
    assert causes(site_causes(inv, dark, links)) == {
        "pop": ("pop", True),
        "s1": ("pop", False),
        "s2": ("pop", False),
        "s3": ("pop", False),  # s3 → s2 → s1 → mw1 → pop
        "s4": ("pop", False),  # s4 → mw2 → s1 → mw1 → pop
    }
    # unknown links something above explains get that cause too; nothing else is exported
    assert causes(link_causes(inv, dark, links)) == {
        "mw1": ("pop", False),
        "mw2": ("pop", False),
    }


def test_a_link_as_root(inv):
    """The PoP is fine, the first hop is down (the PoP's radio sees its port down)."""
    dark = {"s1", "s2", "s3", "s4"}
    links = {"mw1": DOWN, "mw2": UNKNOWN}
    assert causes(site_causes(inv, dark, links)) == {
        "s1": ("mw1", False),
        "s2": ("mw1", False),
        "s3": ("mw1", False),
        "s4": ("mw1", False),
    }
    assert causes(link_causes(inv, dark, links)) == {
        "mw1": ("mw1", True),
        "mw2": ("mw1", False),
    }


def test_middle_site_dark_blames_it_not_what_is_above(inv):
    dark = {"s2", "s3"}
    links = {"mw1": UP, "mw2": UP}
    assert causes(site_causes(inv, dark, links)) == {"s2": ("s2", True), "s3": ("s2", False)}
    assert link_causes(inv, dark, links) == {}


def test_an_up_element_breaks_the_chain(inv):
    """s1 is online: whatever made the PoP dark (its own power), s1's path works, so s2 being
    dark is s2's own fault, not the PoP's."""
    dark = {"pop", "s2"}
    links = {"mw1": UNKNOWN, "mw2": UP}
    assert causes(site_causes(inv, dark, links)) == {"pop": ("pop", True), "s2": ("s2", True)}


def test_an_up_link_breaks_the_chain(inv):
    dark = {"s1", "pop"}
    links = {"mw1": UP, "mw2": UNKNOWN}
    assert causes(site_causes(inv, dark, links))["s1"] == ("s1", True)


def test_degraded_link_is_up_for_root_cause(inv):
    dark = {"s1"}
    links = {"mw1": DEGRADED, "mw2": UNKNOWN}
    assert causes(site_causes(inv, dark, links)) == {"s1": ("s1", True)}


def test_unknown_link_is_transparent(inv):
    """mw1 unknown (neither end observed): it neither blames nor clears; the dark PoP above it
    is the cause. With the PoP online instead, s1 is its own root (mw1 is not blamed)."""
    links = {"mw1": UNKNOWN, "mw2": UNKNOWN}
    assert site_causes(inv, {"pop", "s1"}, links)["s1"] == Cause("s1", "pop")
    assert site_causes(inv, {"s1"}, links)["s1"] == Cause("s1", "s1")
    # an unknown link nothing explains is not exported as a failure
    assert "mw1" not in link_causes(inv, {"s1"}, links)


def test_topmost_down_element_is_the_cause(inv):
    """Both the hop and the PoP are down: the PoP is above the hop, so it is the cause."""
    dark = {"pop", "s1", "s2"}
    links = {"mw1": DOWN, "mw2": UNKNOWN}
    assert site_causes(inv, dark, links)["s2"] == Cause("s2", "pop")
    assert link_causes(inv, dark, links)["mw1"] == Cause("mw1", "pop")


def test_never_seen_site_is_transparent(inv):
    dark = {"s2", "pop"}
    links = {"mw1": UNKNOWN, "mw2": UNKNOWN}
    assert site_causes(inv, dark, links, unseen={"s1"})["s2"] == Cause("s2", "pop")
    assert site_causes(inv, dark, links)["s2"] == Cause("s2", "s2")  # s1 taken as online


def test_dark_site_without_inventory_is_its_own_root(inv):
    assert site_causes(None, {"x", "y"}, {}) == {"x": Cause("x", "x"), "y": Cause("y", "y")}
    # listed nowhere in an inventory that exists: its own root too
    assert site_causes(inv, {"stranger"}, {"mw1": DOWN}) == {
        "stranger": Cause("stranger", "stranger")
    }
    assert Cause("x", "x").root and not Cause("x", "y").root


def test_far_end_link_has_no_upstream(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - {name: v, district: D, uplink: vsat, upstream: sat}\n"
        "links:\n  - {name: sat, kind: satellite, a: {far_end: hub}, b: {site: v}}\n"
    )
    inv = load_inventory(path)
    assert causes(site_causes(inv, {"v"}, {"sat": DOWN})) == {"v": ("sat", False)}
    assert causes(link_causes(inv, {"v"}, {"sat": DOWN})) == {"sat": ("sat", True)}
    assert causes(site_causes(inv, {"v"}, {"sat": UNKNOWN})) == {"v": ("v", True)}


# ---------------------------------------------------------------------------------------------
# CauseHold: a dependent keeps its cause for a while after the cause is back (issue 14 follow-up)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dependent_back_late_keeps_its_cause_for_the_hold(inv):
    """The PoP comes back; s1's agent reconnects 50 s later (its backoff). Without the hold s1
    is its own root from the PoP's first scrape online and pages; held, it stays root="false"
    behind the PoP, and the PoP is named recovering (UpstreamRecovering inhibits by it)."""
    clock = FakeClock()
    hold = CauseHold(120, clock)
    links = {"mw1": UNKNOWN, "mw2": UNKNOWN}
    held, recovering = hold.apply(site_causes(inv, {"pop", "s1"}, links))
    assert causes(held) == {"pop": ("pop", True), "s1": ("pop", False)}
    assert recovering == ()  # the PoP is still dark: its own SiteOffline inhibits

    clock.now += 10  # the PoP is back, s1 not yet: from the chain alone s1 is its own root
    raw = site_causes(inv, {"s1"}, {"mw1": UP, "mw2": UNKNOWN})
    assert causes(raw) == {"s1": ("s1", True)}
    held, recovering = hold.apply(raw)
    assert causes(held) == {"s1": ("pop", False)}
    assert recovering == ("pop",)

    clock.now += 50  # still within the hold
    assert causes(hold.apply(raw)[0]) == {"s1": ("pop", False)}
    # s1 back: nothing held, nothing recovering
    assert hold.apply({}) == ({}, ())


def test_hold_runs_out_and_the_site_is_its_own_root(inv):
    """A site still dark `hold` seconds after the PoP is back is down on its own: it pages
    (late by the hold), and the hold does not refresh itself."""
    clock = FakeClock()
    hold = CauseHold(120, clock)
    hold.apply(site_causes(inv, {"pop", "s1"}, {"mw1": UNKNOWN}))
    raw = site_causes(inv, {"s1"}, {"mw1": UP})
    clock.now += 120
    assert causes(hold.apply(raw)[0]) == {"s1": ("pop", False)}  # at the limit: held
    clock.now += 0.5
    assert hold.apply(raw) == ({"s1": Cause("s1", "s1")}, ())
    clock.now -= 100  # even were the clock to step back: forgotten, not held again
    assert hold.apply(raw)[0] == {"s1": Cause("s1", "s1")}


def test_site_back_forgets_its_cause(inv):
    """s1 reconnects after the PoP, then goes dark on its own within the hold: its own root
    at once (its earlier cause is forgotten when it came back)."""
    clock = FakeClock()
    hold = CauseHold(120, clock)
    hold.apply(site_causes(inv, {"pop", "s1"}, {"mw1": UNKNOWN}))
    clock.now += 5
    assert hold.apply({}) == ({}, ())  # everything back
    clock.now += 5
    assert hold.apply(site_causes(inv, {"s1"}, {"mw1": UP})) == ({"s1": Cause("s1", "s1")}, ())


def test_a_link_cause_is_held_too(inv):
    """The hop was the cause; it is up again, s1 and s2 not yet back: held behind mw1."""
    clock = FakeClock()
    hold = CauseHold(120, clock)
    hold.apply(site_causes(inv, {"s1", "s2"}, {"mw1": DOWN}))
    clock.now += 30
    raw = site_causes(inv, {"s1", "s2"}, {"mw1": UP})
    assert causes(raw) == {"s1": ("s1", True), "s2": ("s1", False)}
    held, recovering = hold.apply(raw)
    # s2 stops at s1, which is held: s2 is held behind mw1 as well, or nothing would
    # inhibit it (s1's alert is root="false")
    assert causes(held) == {"s1": ("mw1", False), "s2": ("mw1", False)}
    assert recovering == ("mw1",)
    clock.now += 30  # s1 back, s2 not yet: held behind s1 (its own recent cause)
    held, recovering = hold.apply(site_causes(inv, {"s2"}, {"mw1": UP}))
    assert causes(held) == {"s2": ("s1", False)}
    assert recovering == ("s1",)


def test_nothing_is_recovering_while_the_cause_is_down(inv):
    """Sites dark behind a link that is still down: held by LinkDown's root alert, not by
    UpstreamRecovering (which would say the link is back)."""
    hold = CauseHold(120, FakeClock())
    held, recovering = hold.apply(site_causes(inv, {"s1", "s2"}, {"mw1": DOWN}))
    assert causes(held) == {"s1": ("mw1", False), "s2": ("mw1", False)}
    assert recovering == ()


def test_zero_hold_is_the_chain_alone(inv):
    clock = FakeClock()
    hold = CauseHold(0, clock)
    hold.apply(site_causes(inv, {"pop", "s1"}, {"mw1": UNKNOWN}))
    clock.now += 1
    assert causes(hold.apply(site_causes(inv, {"s1"}, {"mw1": UP}))[0]) == {"s1": ("s1", True)}


def test_default_hold_covers_the_agents_reconnect_backoff_and_a_heartbeat():
    from agent.config_file import BrokerConfig, OutboxConfig

    reconnect_max = BrokerConfig.model_fields["reconnect_max"].default
    heartbeat = OutboxConfig.model_fields["heartbeat"].default
    assert CAUSE_HOLD >= reconnect_max + heartbeat


def test_topology_exports_the_held_cause_and_what_is_recovering(inv):
    """/metrics and the status page build from one Topology: the held site keeps cause=pop,
    root="false", and pantau_cause_recovering{cause="pop"} is 1 (the UpstreamRecovering
    alert's source)."""
    from collector.state import CONNECTION_LOST, SiteState
    from collector.topology import build, families

    clock = FakeClock()
    hold = CauseHold(120, clock)
    dark = SiteState(online=False, offline_reason=CONNECTION_LOST, offline_since=1.0)
    online = SiteState(online=True)
    build(inv, {"pop": dark, "s1": dark}, hold)
    clock.now += 10
    topo = build(inv, {"pop": online, "s1": dark}, hold)
    by_name = {f.name: f.samples for f in families(topo)}
    assert by_name["pantau_site_cause"] == [(("s1", "pop", "false"), 1)]
    assert by_name["pantau_cause_recovering"] == [(("pop",), 1)]
    # without the hold (a caller that passes none): the chain alone
    topo = build(inv, {"pop": online, "s1": dark})
    by_name = {f.name: f.samples for f in families(topo)}
    assert by_name["pantau_site_cause"] == [(("s1", "s1", "true"), 1)]
    assert by_name["pantau_cause_recovering"] == []


def test_cause_hold_in_the_collector_config(tmp_path):
    from collector.config import load_collector_config
    from pantau.settings import ConfigError

    cfg = tmp_path / "collector.yaml"
    cfg.write_text("stale_after: 900\n")
    assert load_collector_config(cfg).inventory_cause_hold == CAUSE_HOLD
    cfg.write_text("stale_after: 900\ninventory_cause_hold: 300\n")
    assert load_collector_config(cfg).inventory_cause_hold == 300
    cfg.write_text("stale_after: 900\ninventory_cause_hold: -5\n")
    with pytest.raises(ConfigError) as exc:
        load_collector_config(cfg)
    assert f"{cfg}:2:" in str(exc.value.errors) and "inventory_cause_hold" in str(exc.value.errors)
