"""The status page with an inventory (collector/statusdistricts.py through statuspage.render):
districts, links with both ends' readings, sites never seen, unlisted sites, and dark sites
shown "unreachable via <cause>". Rendered from a real `State`; the browser test of the page
itself is tests/test_status_page.py, the demo's in tests/test_demo.py."""

from __future__ import annotations

import re

from collector import statuspage
from collector.state import State
from tests.test_links import ODU, dark, healthy, inventory, online, sample_set, signal, two_odus


def sections(page: str) -> list[tuple[str, list[str]]]:
    """[(district, [site names in order])] as the page shows them."""
    out = []
    for m in re.finditer(r'<section class="district[^"]*" data-district="([^"]*)">', page):
        start = m.end()
        nxt = page.find('<section class="district', start)
        chunk = page[start : nxt if nxt != -1 else len(page)]
        out.append(
            (m.group(1), re.findall(r'<section class="site[^"]*" data-site="([^"]+)"', chunk))
        )
    return out


def test_page_groups_by_district_and_shows_links(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, rsl_b=-75.0)
    online(state, "stranger")
    page = statuspage.render(state.snapshot(), inventory=inv)
    assert sections(page) == [
        ("Hulu", ["never", "vsat"]),  # a site never seen is a problem: its district first
        ("Hilir", ["pop"]),
        ("Tengah", ["hop"]),
        ("", ["stranger"]),
    ]
    assert '<section class="site never" data-site="never" data-never-seen="1">' in page
    assert "NEVER SEEN" in page
    stranger = page[page.index('data-site="stranger"') :]
    assert 'data-unlisted="1">not in the inventory' in stranger
    assert '<li class="linkrow degraded" data-link="mw" data-state="degraded">' in page
    mw = page[page.index('data-link="mw"') : page.index('data-link="sat"')]
    assert "a: <b>pop/idu-a/radio0</b> up · oper up · RSL -44 dBm · locked" in mw
    # the reading below its threshold is shown once, marked, with the threshold
    assert (
        'b: <b>hop/idu-b/7</b> degraded · oper up · <span class="bad">RSL -75 dBm</span> '
        "below -70 dBm</li>" in mw
    )
    assert mw.split('<ul class="ends">')[1].count("-75 dBm") == 1
    assert "1 never seen" in page and "1 not in the inventory" in page
    assert "2 links, 1 degraded" in page


def test_dark_dependent_is_unreachable_via_its_cause(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, oper_a=2)
    dark(state, "hop")
    page = statuspage.render(state.snapshot(), inventory=inv)
    hop = page[page.index('data-site="hop"') :]
    hop = hop[: hop.index("</section>")]
    assert '<div class="note cause" data-cause="mw">unreachable via mw</div>' in hop
    assert '<li class="linkrow down" data-link="mw" data-state="down">' in page
    assert "interface radio0 oper_status 2" in page
    # the root itself carries no such note
    assert page.count("unreachable via") == 1


def test_without_inventory_page_is_unchanged(tmp_path):
    state = State(900)
    healthy(state)
    page = statuspage.render(state.snapshot(), now=1.0)
    assert "data-district" not in page and 'id="links"' not in page
    assert page == statuspage.render(state.snapshot(), now=1.0, inventory=None)


def test_an_unlocked_receiver_is_said_once(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state)
    state.on_sample_set(sample_set("vsat", "modem", [signal({}, esno_db=2.0, lock=0)]))
    page = statuspage.render(state.snapshot(), inventory=inv)
    sat = page[page.index('data-link="sat"') :]
    sat = sat[: sat.index("</li></ul>")]
    assert (
        'b: <b>vsat/modem</b> down · <span class="bad">Es/N0 2 dB</span> below 6 dB · '
        '<span class="bad">UNLOCKED</span>' in sat
    )
    assert "receiver unlocked" not in sat.split('<ul class="ends">')[1]


def test_an_end_without_its_signal_row_says_so(tmp_path):
    inv, state = inventory(tmp_path, ODU % ""), State(900)
    two_odus(state)
    page = statuspage.render(state.snapshot(), inventory=inv)
    end = page[page.index('data-end="a"') :]
    end = end[: end.index("</li>")]
    assert "a: <b>p/rtn/radio0</b> up · oper up · " in end
    assert '<span class="warn">2 signal rows' in end


def test_an_interface_of_unknown_status_is_said_once_not_as_down(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, oper_a=4)
    page = statuspage.render(state.snapshot(), inventory=inv)
    end = page[page.index('<li class="end unknown" data-end="a"') :]
    end = end[: end.index("</li>")]
    assert 'a: <b>pop/idu-a/radio0</b> unknown · <span class="warn">oper unknown</span> · ' in end
    assert "oper_status 4" not in end
