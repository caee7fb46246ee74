"""Link state from both ends (collector/links.py), fed through a real `State`, and its export on
/metrics (collector/topology.py through exposition.StateCollector), read back with
prometheus_client's own parser as Prometheus would."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.exposition import SelfMetrics, StateCollector
from collector.inventory import Inventory, load_inventory
from collector.links import DEGRADED, DOWN, UNKNOWN, UP, find_interface, link_states
from collector.state import State
from pantau.wire import Field, Group, Kind, SampleSet, Status

INVENTORY = """\
defaults: {site_sla: 99.5}
sites:
  - {name: pop, district: Hilir, latitude: -1.88, longitude: 113.41, uplink: fiber}
  - {name: hop, district: Tengah, uplink: microwave, upstream: mw}
  - {name: vsat, district: Hulu, uplink: vsat, sla: 99.0}
  - {name: never, district: Hulu, uplink: vsat}
links:
  - name: mw
    kind: microwave
    a: {site: pop, device: idu-a, interface: radio0}
    b: {site: hop, device: idu-b, interface: "7"}
    sla: 99.9
    thresholds: {rsl_min_dbm: -70}
  - name: sat
    kind: satellite
    a: {far_end: "VSAT hub"}
    b: {site: vsat, device: modem}
    thresholds: {esno_min_db: 6}
"""

_seq: dict[tuple[str, str], int] = {}


def inventory(tmp_path: Path, text: str = INVENTORY) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return load_inventory(path)


def sample_set(site: str, device: str, groups: list[Group], up: bool = True) -> SampleSet:
    seq = _seq[(site, device)] = _seq.get((site, device), 0) + 1
    return SampleSet(
        site=site,
        device=device,
        seq=seq,
        ts_ms=int(time.time() * 1000),
        duration_ms=120,
        up=up,
        reason="" if up else "timeout",
        groups=groups if up else [],
    )


def iface(if_index: str, name: str | None = None, oper: int = 1, descr: str = "") -> Group:
    tags = {"ifIndex": if_index}
    if name is not None:
        tags["ifName"] = name
    if descr:
        tags["ifDescr"] = descr
    fields = [
        Field("oper_status", Kind.STATE, oper),
        Field("admin_status", Kind.STATE, 1),
    ]
    return Group("interface", tags, fields)


def signal(tags: dict[str, str], **values: float) -> Group:
    kinds = {"lock": Kind.GAUGE}
    return Group(
        "signal",
        tags,
        [Field(name, kinds.get(name, Kind.GAUGE), value) for name, value in values.items()],
    )


def online(state: State, site: str) -> None:
    state.on_status(Status(v=1, site=site, online=True, ts_ms=int(time.time() * 1000)))


def dark(state: State, site: str) -> None:
    """The site's Last Will: no time, connection lost."""
    state.on_status(Status(v=1, site=site, online=False, ts_ms=0, reason="connection lost"))


def healthy(state: State, *, rsl_b: float = -45.0, oper_a: int = 1, esno: float = 9.5) -> None:
    for site in ("pop", "hop", "vsat"):
        online(state, site)
    state.on_sample_set(
        sample_set(
            "pop",
            "idu-a",
            [
                iface("3", "radio0", oper_a),
                iface("4", "eth0"),
                signal({"ifIndex": "3", "ifName": "radio0"}, rsl_dbm=-44.0, lock=1),
                # an unused carrier: must not make the link degraded
                signal({"ifIndex": "4", "ifName": "radio1"}, rsl_dbm=-99.0),
            ],
        )
    )
    state.on_sample_set(
        sample_set(
            "hop",
            "idu-b",
            [
                iface("7", "Radio: Slot 2, Port 1"),
                signal({"ifIndex": "7", "ifName": "Radio: Slot 2, Port 1"}, rsl_dbm=rsl_b),
            ],
        )
    )
    state.on_sample_set(sample_set("vsat", "modem", [signal({}, esno_db=esno, lock=1)]))


def states(inv: Inventory, state: State) -> dict[str, str]:
    return {name: s.state for name, s in link_states(inv, state.snapshot()).items()}


def test_both_ends_up_with_readings(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state)
    links = link_states(inv, state.snapshot())
    mw = links["mw"]
    assert mw.state == UP
    assert (mw.a.state, mw.b.state) == (UP, UP)
    assert mw.a.if_index == "3" and mw.b.if_index == "7"  # "7" matched the ifIndex
    assert mw.a.oper_status == 1
    assert mw.a.reading("rsl_dbm") == -44.0  # its own row, not the -99 dBm carrier
    assert mw.a.reading("lock") == 1
    assert mw.b.reading("rsl_dbm") == -45.0
    assert links["sat"].state == UP
    assert links["sat"].a.state == UNKNOWN and "far end VSAT hub" in links["sat"].a.why
    assert links["sat"].b.reading("esno_db") == 9.5


def test_interface_oper_down_at_one_end_is_down_naming_that_end(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, oper_a=2)
    mw = link_states(inv, state.snapshot())["mw"]
    assert mw.state == DOWN
    assert mw.a.state == DOWN and mw.b.state == UP
    assert "a (pop): interface radio0 oper_status 2" == mw.why


def test_dormant_interface_is_not_down(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, oper_a=5)
    assert states(inv, state)["mw"] == UP


def test_end_device_down_is_link_down(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state)
    state.on_sample_set(sample_set("hop", "idu-b", [], up=False))
    mw = link_states(inv, state.snapshot())["mw"]
    assert mw.state == DOWN
    assert mw.b.state == DOWN and "device idu-b down: timeout" in mw.why
    assert mw.b.if_index is None  # a failed poll has no rows (nor interface series)


def test_receiver_unlocked_is_down(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state)
    state.on_sample_set(sample_set("vsat", "modem", [signal({}, esno_db=2.0, lock=0)]))
    sat = link_states(inv, state.snapshot())["sat"]
    assert sat.state == DOWN and "receiver unlocked" in sat.why


def test_rsl_below_threshold_is_degraded(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, rsl_b=-75.5)
    mw = link_states(inv, state.snapshot())["mw"]
    assert mw.state == DEGRADED
    assert mw.b.state == DEGRADED and "RSL -75.5 dBm below -70 dBm" in mw.why
    healthy(state, rsl_b=-70.0)  # at the threshold: not below it
    assert states(inv, state)["mw"] == UP


def test_esno_below_threshold_is_degraded(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, esno=4.2)
    sat = link_states(inv, state.snapshot())["sat"]
    assert sat.state == DEGRADED and "Es/N0 4.2 dB below 6 dB" in sat.why


def test_down_wins_over_degraded(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, rsl_b=-80.0, oper_a=2)
    assert states(inv, state)["mw"] == DOWN


def test_both_sites_dark_is_unknown(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state)
    dark(state, "pop")
    dark(state, "hop")
    dark(state, "vsat")
    links = link_states(inv, state.snapshot())
    assert links["mw"].state == UNKNOWN and links["mw"].why == "no end observed"
    assert links["sat"].state == UNKNOWN  # a far end and a dark site
    assert links["mw"].a.readings == () and links["mw"].a.oper_status is None


def test_one_dark_end_and_one_up_end_is_up(tmp_path):
    """The far site is dark but the near radio still sees its interface up: the hop works;
    whatever darkened the site is not the link (root cause blames the site)."""
    inv, state = inventory(tmp_path), State(900)
    healthy(state)
    dark(state, "hop")
    mw = link_states(inv, state.snapshot())["mw"]
    assert mw.state == UP and mw.b.state == UNKNOWN and "site hop dark" in mw.b.why


def test_site_never_heard_and_device_missing_are_unknown(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    online(state, "pop")  # no sample sets at all; hop never heard
    mw = link_states(inv, state.snapshot())["mw"]
    assert mw.state == UNKNOWN
    assert "device idu-a not reporting" in mw.a.why and "site hop never heard" in mw.b.why


def test_stale_device_is_unknown(tmp_path):
    inv, state = inventory(tmp_path), State(60)
    healthy(state)
    later = time.time() + 120  # idu-b and idu-a not heard for stale_after; sites not dark yet
    for site in ("pop", "hop"):
        beat = Status(
            v=1, site=site, online=True, ts_ms=int(later * 1000), devices=["idu-a", "idu-b"]
        )
        state.on_status(beat, now=later)
    mw = link_states(inv, state.snapshot(now=later))["mw"]
    assert mw.state == UNKNOWN and "not heard lately" in mw.a.why


def test_unknown_interface_name_is_unknown_end(tmp_path):
    inv = inventory(tmp_path, INVENTORY.replace("interface: radio0", "interface: radio9"))
    state = State(900)
    healthy(state)
    mw = link_states(inv, state.snapshot())["mw"]
    assert mw.a.state == UNKNOWN and "has no interface radio9" in mw.a.why
    assert mw.a.if_index is None
    assert mw.state == UP  # the other end still sees the hop up


def test_site_only_end_is_reachability(tmp_path):
    inv = inventory(
        tmp_path,
        """\
        sites:
          - {name: p, district: D, uplink: fiber}
          - {name: q, district: D, uplink: fiber, upstream: f}
        links:
          - {name: f, kind: fiber, a: {site: p}, b: {site: q}}
        """,
    )
    state = State(900)
    online(state, "p")
    assert states(inv, state)["f"] == UP
    dark(state, "p")
    assert states(inv, state)["f"] == UNKNOWN


def test_interface_matches_ifname_then_ifdescr_then_ifindex():
    rows = [
        iface("2", "ge-0/0/1"),  # ifIndex 2
        iface("9", None, descr="2"),  # ifDescr "2"
        iface("11", "2"),  # ifName "2"
    ]
    found = find_interface(rows, "2")
    assert found is not None and found.tags["ifIndex"] == "11"
    found = find_interface(rows[:2], "2")
    assert found is not None and found.tags["ifIndex"] == "9"
    found = find_interface(rows[:1], "2")
    assert found is not None and found.tags["ifIndex"] == "2"
    assert find_interface(rows, "ge-0/0/9") is None


def test_no_inventory_no_links():
    assert link_states(None, {}) == {}


# --- /metrics ---------------------------------------------------------------------------


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(state: State, inv: Inventory | None) -> Scrape:
    metrics = SelfMetrics()
    metrics.registry.register(StateCollector(state, inventory=inv))
    out: Scrape = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(got: Scrape, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in got.items() if n == name}


def lab(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


def test_exposition_of_sites_and_links(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, rsl_b=-75.0)
    online(state, "stranger")  # sends, not in the inventory
    got = scrape(state, inv)
    assert series(got, "pantau_site_info") == {
        lab(site="pop", district="Hilir", uplink="fiber", upstream=""): 1,
        lab(site="hop", district="Tengah", uplink="microwave", upstream="mw"): 1,
        lab(site="vsat", district="Hulu", uplink="vsat", upstream=""): 1,
        lab(site="never", district="Hulu", uplink="vsat", upstream=""): 1,
    }
    assert series(got, "pantau_site_latitude") == {lab(site="pop"): -1.88}
    assert series(got, "pantau_site_longitude") == {lab(site="pop"): 113.41}
    assert series(got, "pantau_site_never_seen") == {
        lab(site="pop"): 0,
        lab(site="hop"): 0,
        lab(site="vsat"): 0,
        lab(site="never"): 1,
    }
    assert series(got, "pantau_site_unlisted") == {lab(site="stranger"): 1}
    assert series(got, "pantau_site_cause") == {}
    assert series(got, "pantau_sla_target_ratio") == {
        lab(scope="site", name="pop"): 0.995,
        lab(scope="site", name="hop"): 0.995,
        lab(scope="site", name="vsat"): 0.99,
        lab(scope="site", name="never"): 0.995,
        lab(scope="link", name="mw"): 0.999,
    }
    assert series(got, "pantau_link_info") == {
        lab(
            link="mw",
            kind="microwave",
            a_site="pop",
            a_device="idu-a",
            a_interface="radio0",
            b_site="hop",
            b_device="idu-b",
            b_interface="7",
            far_end="",
        ): 1,
        lab(
            link="sat",
            kind="satellite",
            a_site="",
            a_device="",
            a_interface="",
            b_site="vsat",
            b_device="modem",
            b_interface="",
            far_end="VSAT hub",
        ): 1,
    }
    assert series(got, "pantau_link_state") == {
        lab(link="mw", state="up"): 0,
        lab(link="mw", state="down"): 0,
        lab(link="mw", state="degraded"): 1,
        lab(link="mw", state="unknown"): 0,
        lab(link="sat", state="up"): 1,
        lab(link="sat", state="down"): 0,
        lab(link="sat", state="degraded"): 0,
        lab(link="sat", state="unknown"): 0,
    }
    assert got[("pantau_link_end_state", lab(link="mw", end="b", state="degraded"))] == 1
    assert got[("pantau_link_end_state", lab(link="sat", end="a", state="unknown"))] == 1
    assert series(got, "pantau_link_end_rsl_dbm") == {
        lab(link="mw", end="a"): -44.0,
        lab(link="mw", end="b"): -75.0,
    }
    assert series(got, "pantau_link_end_esno_db") == {lab(link="sat", end="b"): 9.5}
    assert series(got, "pantau_link_end_oper_status") == {
        lab(link="mw", end="a"): 1,
        lab(link="mw", end="b"): 1,
    }
    assert series(got, "pantau_link_port_info") == {
        lab(link="mw", site="pop", device="idu-a", ifIndex="3"): 1,
        lab(link="mw", site="hop", device="idu-b", ifIndex="7"): 1,
    }
    assert series(got, "pantau_link_threshold_rsl_min_dbm") == {lab(link="mw"): -70}
    assert series(got, "pantau_link_cause") == {}
    assert got[("pantau_collector_metric_families_conflicting", ())] == 0


def test_exposition_of_causes(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, oper_a=2)  # the hop is down …
    dark(state, "hop")  # … and the site behind it dark: it is the hop's fault
    dark(state, "stranger")  # a dark site the inventory does not list: its own root
    got = scrape(state, inv)
    assert series(got, "pantau_site_cause") == {
        lab(site="hop", cause="mw", root="false"): 1,
        lab(site="stranger", cause="stranger", root="true"): 1,
    }
    assert series(got, "pantau_link_cause") == {lab(link="mw", cause="mw", root="true"): 1}
    assert got[("pantau_link_state", lab(link="mw", state="down"))] == 1
    # the far end is dark: no readings from it, but the port stays known
    assert ("pantau_link_end_rsl_dbm", lab(link="mw", end="b")) not in got
    assert got[("pantau_link_port_info", lab(link="mw", site="hop", device="idu-b", ifIndex="7"))]


def test_exposition_without_inventory_still_names_dark_sites_roots():
    state = State(900)
    online(state, "alone")
    dark(state, "gone")
    got = scrape(state, None)
    assert series(got, "pantau_site_cause") == {lab(site="gone", cause="gone", root="true"): 1}
    for name in ("pantau_site_info", "pantau_site_unlisted", "pantau_link_state"):
        assert series(got, name) == {}, name


@pytest.mark.parametrize("inv_text", [INVENTORY])
def test_metrics_app_takes_the_inventory(tmp_path, inv_text):
    """The service's wiring: metrics_app(…, inventory=…) exports through the real WSGI app."""
    from collector.exposition import metrics_app

    inv, state = inventory(tmp_path, inv_text), State(900)
    app = metrics_app(SelfMetrics(), state, inventory=inv)
    status: list[str] = []
    body = b"".join(
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda s, h: status.append(s))
    )
    assert status == ["200 OK"]
    assert b'pantau_site_never_seen{site="never"} 1.0' in body


# --- which signal row is the end's (review 14, item 1) -----------------------------------

ODU = """\
sites:
  - {name: p, district: D, uplink: fiber}
  - {name: q, district: D, uplink: microwave, upstream: l}
links:
  - name: l
    kind: microwave
    a: {site: p, device: rtn, interface: radio0%s}
    b: {site: q}
    thresholds: {rsl_min_dbm: -70}
"""


def two_odus(state: State, *, second_locked: int = 0) -> None:
    """A Huawei RTN with two ODUs: its signal rows are tagged {odu}, not by ifIndex; the second
    ODU is unused (-99 dBm, unlocked), as a spare radio or Terra's unused tuner reads."""
    online(state, "p")
    online(state, "q")
    state.on_sample_set(
        sample_set(
            "p",
            "rtn",
            [
                iface("1", "radio0"),
                signal({"odu": "23.255"}, rsl_dbm=-45.0, lock=1),
                signal({"odu": "24.255"}, rsl_dbm=-99.0, lock=second_locked),
            ],
        )
    )


def test_several_unnamed_signal_rows_give_no_readings_not_a_down_link(tmp_path):
    """Before: the minimum over both ODUs (lock 0, -99 dBm): 'receiver unlocked', link down."""
    inv, state = inventory(tmp_path, ODU % ""), State(900)
    two_odus(state)
    link = link_states(inv, state.snapshot())["l"]
    assert link.state == UP, link.why
    assert link.a.state == UP and link.a.readings == ()
    assert link.a.signal_unresolved
    assert "2 signal rows" in link.a.why and "signal:" in link.a.why
    got = scrape(state, inv)
    assert series(got, "pantau_link_end_signal_unresolved") == {lab(link="l", end="a"): 1}
    assert series(got, "pantau_link_end_rsl_dbm") == {}


def test_an_end_names_its_signal_row_by_tags(tmp_path):
    inv, state = inventory(tmp_path, ODU % ', signal: {odu: "23.255"}'), State(900)
    two_odus(state)
    link = link_states(inv, state.snapshot())["l"]
    assert link.state == UP and not link.a.signal_unresolved
    assert link.a.reading("rsl_dbm") == -45.0 and link.a.reading("lock") == 1
    assert series(scrape(state, inv), "pantau_link_end_signal_unresolved") == {}
    # the named row, not the worst: the other ODU unlocked is not this link's business …
    inv = inventory(tmp_path, ODU % ', signal: {odu: "24.255"}')
    # … but naming that one reads it
    link = link_states(inv, state.snapshot())["l"]
    assert link.state == DOWN and "receiver unlocked" in link.why


def test_a_signal_selector_matching_no_row_is_unresolved(tmp_path):
    inv, state = inventory(tmp_path, ODU % ", signal: {odu: 25}"), State(900)  # YAML int
    assert inv.links[0].a.signal == {"odu": "25"}
    two_odus(state)
    link = link_states(inv, state.snapshot())["l"]
    assert link.state == UP and link.a.readings == ()
    assert link.a.signal_unresolved and "no signal row has odu=25" in link.a.why


def test_one_row_in_two_groups_is_one_row(tmp_path):
    """Two tables indexed alike (RSL, lock) give one ODU two groups with the same tags."""
    inv, state = inventory(tmp_path, ODU % ', signal: {odu: "23.255"}'), State(900)
    online(state, "p")
    rows = [
        iface("1", "radio0"),
        signal({"odu": "23.255"}, rsl_dbm=-75.0),
        signal({"odu": "23.255"}, lock=1),
        signal({"odu": "24.255"}, rsl_dbm=-99.0),
        signal({"odu": "24.255"}, lock=0),
    ]
    state.on_sample_set(sample_set("p", "rtn", rows))
    link = link_states(inv, state.snapshot())["l"]
    assert link.a.readings == (("rsl_dbm", -75.0), ("lock", 1.0))
    assert link.state == DEGRADED and not link.a.signal_unresolved
    # without the selector: two rows (not four), none taken
    inv = inventory(tmp_path, ODU % "")
    state.on_sample_set(sample_set("p", "rtn", rows[:3]))  # and one ODU in two groups: its own
    link = link_states(inv, state.snapshot())["l"]
    assert link.a.reading("lock") == 1 and not link.a.signal_unresolved
    state.on_sample_set(sample_set("p", "rtn", rows))
    link = link_states(inv, state.snapshot())["l"]
    assert link.a.signal_unresolved.startswith(
        "2 signal rows without ifIndex (odu=23.255; odu=24.255)"
    )


def test_one_unnamed_signal_row_is_the_ends(tmp_path):
    inv, state = inventory(tmp_path, ODU % ""), State(900)
    online(state, "p")
    state.on_sample_set(
        sample_set("p", "rtn", [iface("1", "radio0"), signal({"odu": "23.255"}, rsl_dbm=-75.0)])
    )
    link = link_states(inv, state.snapshot())["l"]
    assert link.state == DEGRADED and not link.a.signal_unresolved


# --- ifOperStatus unknown (review 14, item 10) ---------------------------------------------


def test_oper_status_unknown_is_an_unknown_end_not_down(tmp_path):
    inv, state = inventory(tmp_path), State(900)
    healthy(state, oper_a=4)
    mw = link_states(inv, state.snapshot())["mw"]
    assert mw.a.state == UNKNOWN and "oper_status 4 (unknown)" in mw.a.why
    assert mw.a.oper_status == 4
    assert mw.state == UP  # the far end still sees the hop up
    healthy(state, oper_a=7)  # lowerLayerDown is down
    assert states(inv, state)["mw"] == DOWN
