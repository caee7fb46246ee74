"""Root cause (collector/rootcause.py): pure functions over the inventory, the dark sites and
the link states; chains several levels deep, links as roots, unknown links transparent."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collector.inventory import Inventory, load_inventory
from collector.links import DEGRADED, DOWN, UNKNOWN, UP
from collector.rootcause import Cause, link_causes, site_causes

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
