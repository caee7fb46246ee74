"""The inventory (collector/inventory.py): the shipped example loads, the API answers as the
contract says, and every user mistake is refused naming file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

from collector.cli import main as collector_main
from collector.config import load_collector_config
from collector.inventory import Inventory, LinkEnd, load_inventory
from pantau.settings import ConfigError

GOOD = """\
defaults: {site_sla: 99.5, link_sla: 99.9}
sites:
  - name: pop
    district: Hilir
    latitude: -1.877
    longitude: 113.412
    uplink: fiber
    upstream: null
    sla: 99.9
  - name: hop
    district: Tengah
    uplink: microwave
    upstream: mw-pop-hop
  - name: leaf
    district: Tengah
    uplink: fiber
    upstream: hop
  - name: remote
    district: Hulu
    uplink: vsat
links:
  - name: mw-pop-hop
    kind: microwave
    a: {site: pop, device: idu-1, interface: radio0}
    b: {site: hop, device: idu-2, interface: radio0}
    thresholds: {rsl_min_dbm: -70, esno_min_db: 6}
  - name: vsat-remote
    kind: satellite
    a: {far_end: "VSAT hub Jakarta"}
    b: {site: remote, device: vsat-modem}
    sla: 99.0
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_inventory(path)
    return exc.value.errors


def test_good_inventory_answers_the_contract(tmp_path):
    inv = load_inventory(write(tmp_path, GOOD))
    assert [s.name for s in inv.sites] == ["pop", "hop", "leaf", "remote"]
    assert inv.site("pop") is not None and inv.site("pop").latitude == -1.877
    assert inv.site("nowhere") is None and inv.link("nowhere") is None
    assert inv.site_sla("pop") == 99.9
    assert inv.site_sla("hop") == 99.5  # the default
    assert inv.site_sla("nowhere") is None
    assert inv.link_sla("mw-pop-hop") == 99.9 and inv.link_sla("vsat-remote") == 99.0
    link = inv.link("mw-pop-hop")
    assert link is not None and link.thresholds.rsl_min_dbm == -70
    assert link.a == LinkEnd(site="pop", device="idu-1", interface="radio0", far_end=None)
    assert inv.link("vsat-remote").a.far_end == "VSAT hub Jakarta"
    # nearest first, sites and links alike; a link's upstream is its `a` end's site
    assert inv.upstream_chain("leaf") == ["hop", "mw-pop-hop", "pop"]
    assert inv.upstream_chain("mw-pop-hop") == ["pop"]
    assert inv.upstream_chain("pop") == []
    assert inv.upstream_chain("vsat-remote") == []  # a far end: nothing we watch above it
    assert inv.upstream_chain("unlisted") == []


def test_no_defaults_means_no_target(tmp_path):
    inv = load_inventory(write(tmp_path, "sites:\n  - {name: s1, district: D, uplink: vsat}\n"))
    assert inv.site_sla("s1") is None


def test_inventory_is_frozen(tmp_path):
    inv = load_inventory(write(tmp_path, GOOD))
    with pytest.raises(pydantic.ValidationError):
        inv.sites[0].name = "other"  # type: ignore[misc]


def test_shipped_example_loads(repo_root):
    inv = load_inventory(repo_root / "config" / "inventory.example.yaml")
    assert isinstance(inv, Inventory)
    assert inv.upstream_chain("tumbang-sanamang") == [
        "mw-samba-sanamang",
        "tumbang-samba",
        "mw-kasongan-samba",
        "kasongan-pop",
    ]
    assert {s.district for s in inv.sites} >= {"Katingan Hilir", "Katingan Tengah", "Marikit"}
    hop = inv.link("mw-samba-sanamang")
    assert hop is not None and hop.b.signal == {"odu": "23.255"} and hop.a.signal is None


def _one(errors: list[str], path: Path, line: int, *needles: str) -> None:
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{path}:{line}: "), errors
    for needle in needles:
        assert needle in errors[0], errors


@pytest.mark.parametrize(
    ("text", "line", "needles"),
    [
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: vsat
                colour: red
            """,
            5,
            ("sites[0].colour", "unknown key"),
            id="unknown-key",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
              - {name: a, district: E, uplink: fiber}
            """,
            3,
            ("sites[1].name", "duplicate name 'a'"),
            id="duplicate-site",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
              - {name: b, district: D, uplink: vsat}
            links:
              - {name: l, kind: fiber, a: {site: a}, b: {site: b}}
              - {name: l, kind: fiber, a: {site: b}, b: {site: a}}
            """,
            6,
            ("links[1].name", "duplicate name 'l'"),
            id="duplicate-link",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - {name: a, kind: fiber, a: {site: a}, b: {far_end: hub}}
            """,
            4,
            ("links[0].name", "a site too"),
            id="link-named-like-a-site",
        ),
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: vsat
                upstream: nowhere
            """,
            5,
            ("sites[0].upstream", "no site or link is named 'nowhere'"),
            id="unknown-upstream",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: fiber
                a: {site: a}
                b:
                  site: ghost
            """,
            8,
            ("links[0].b.site", "no site is named 'ghost'"),
            id="link-end-unknown-site",
        ),
        pytest.param(
            """\
            sites:
              - name: x
                district: D
                uplink: microwave
                upstream: l
              - {name: y, district: D, uplink: microwave, upstream: m}
            links:
              - name: l
                kind: microwave
                a: {site: y, device: r1, interface: radio0}
                b: {site: x, device: r2, interface: radio0}
              - {name: m, kind: microwave, a: {site: x}, b: {site: y}}
            """,
            5,
            ("sites[0].upstream", "dependency cycle: x → l → y → m → x"),
            id="cycle-site-link-site",
        ),
        pytest.param(
            """\
            sites:
              - {name: pop, district: D, uplink: fiber}
              - {name: hop, district: D, uplink: microwave, upstream: l}
              - name: leaf
                district: D
                uplink: fiber
                upstream: l
            links:
              - name: l
                kind: microwave
                a: {site: pop, device: r1, interface: radio0}
                b: {site: hop, device: r2, interface: radio0}
            """,
            7,
            (
                "sites[2].upstream",
                "link 'l' does not reach 'leaf': its b end is at 'hop'",
                "upstream: hop",
            ),
            id="upstream-link-ending-elsewhere",
        ),
        pytest.param(
            """\
            sites:
              - {name: pop, district: D, uplink: fiber}
              - {name: x, district: D, uplink: vsat, upstream: l}
            links:
              - {name: l, kind: satellite, a: {site: pop}, b: {far_end: hub}}
            """,
            3,
            ("sites[1].upstream", "link 'l' does not reach 'x': its b end is the far end 'hub'"),
            id="upstream-link-to-a-far-end",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: satellite
                a: {far_end: hub}
                b:
                  site: a
                  signal: {odu: 1.5}
            """,
            9,
            ("links[0].b.signal.odu", "quote"),
            id="signal-tag-a-float",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: satellite
                a: {far_end: hub}
                b:
                  site: a
                  signal: {odu: "1"}
            """,
            7,
            ("links[0].b", "signal needs its device"),
            id="signal-without-device",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: satellite
                a: {far_end: hub}
                b:
                  site: a
                  device: modem
                  signal: {}
            """,
            10,
            ("links[0].b.signal", "at least one tag"),
            id="signal-empty",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: satellite
                a: {far_end: hub}
                b:
                  site: a
                  device: modem
                  signal: {ifIndex: [1, 2]}
            """,
            10,
            ("links[0].b.signal.ifIndex",),
            id="signal-tag-a-list",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: fiber, upstream: b}
              - {name: b, district: D, uplink: fiber, upstream: c}
              - {name: c, district: D, uplink: fiber, upstream: a}
            """,
            2,
            ("sites[0].upstream", "dependency cycle: a → b → c → a"),
            id="cycle-three-sites",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat, upstream: a}
            """,
            2,
            ("sites[0].upstream", "cannot depend on itself"),
            id="self-upstream",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: satellite
                a:
                  site: a
                  far_end: hub
                b: {site: a}
            """,
            6,
            ("links[0].a", "either a far_end or a site"),
            id="end-with-site-and-far-end",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: satellite
                a: {far_end: hub}
                b:
                  site: a
                  interface: radio0
            """,
            7,
            ("links[0].b", "an interface needs its device"),
            id="interface-without-device",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: satellite
                a: {far_end: hub}
                b: {far_end: other hub}
            """,
            4,
            ("links[0]", "at least one end must be a site"),
            id="no-site-end",
        ),
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: satellite
            """,
            4,
            ("sites[0].uplink", "'vsat', 'microwave', 'fiber' or 'cellular'"),
            id="bad-uplink-kind",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: vsat}
            links:
              - name: l
                kind: vsat
                a: {far_end: hub}
                b: {site: a}
            """,
            5,
            ("links[0].kind", "'satellite'"),
            id="bad-link-kind",
        ),
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: vsat
                sla: 0
            """,
            5,
            ("sites[0].sla", "greater than 0"),
            id="sla-zero",
        ),
        pytest.param(
            """\
            defaults:
              link_sla: 100.5
            sites:
              - {name: a, district: D, uplink: vsat}
            """,
            2,
            ("defaults.link_sla", "less than or equal to 100"),
            id="sla-over-100",
        ),
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: vsat
                latitude: -91
                longitude: 113
            """,
            5,
            ("sites[0].latitude", "greater than or equal to -90"),
            id="latitude-out-of-range",
        ),
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: vsat
                latitude: -1.8
                longitude: 213.4
            """,
            6,
            ("sites[0].longitude", "less than or equal to 180"),
            id="longitude-out-of-range",
        ),
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: vsat
                latitude: -1.8
            """,
            2,
            ("sites[0]", "latitude and longitude go together"),
            id="latitude-alone",
        ),
        pytest.param(
            """\
            sites:
              - name: a
                district: D
                uplink: vsat
                latitude: south
                longitude: 113
            """,
            5,
            ("sites[0].latitude", "valid number"),
            id="latitude-not-a-number",
        ),
        pytest.param(
            """\
            sites:
              - name: bad/name
                district: D
                uplink: vsat
            """,
            2,
            ("sites[0].name", "pattern"),
            id="site-name-not-a-topic-level",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: fiber}
              - {name: b, district: D, uplink: fiber}
            links:
              - {name: l1, kind: fiber, a: {site: a, device: sw, interface: ge1}, b: {site: b}}
              - name: l2
                kind: fiber
                a: {site: a, device: sw, interface: ge1}
                b: {site: b}
            """,
            8,
            ("links[1].a", "already an end of l1"),
            id="port-in-two-links",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: fiber}
            links:
              - name: l
                kind: fiber
                a: {site: a}
                b: {site: a}
            """,
            7,
            ("links[0].b.site", "both ends are at the same site"),
            id="link-to-itself",
        ),
        pytest.param(
            """\
            sites:
              - {name: a, district: D, uplink: fiber}
              - {name: a, district: D, uplink: fiber}
            sites:
              - {name: b, district: D, uplink: fiber}
            """,
            4,
            ("sites", "duplicate key"),
            id="duplicate-yaml-key",
        ),
        pytest.param("", 1, ("empty",), id="empty-file"),
    ],
)
def test_mistakes_are_refused_with_file_and_line(tmp_path, text, line, needles):
    path = write(tmp_path, text)
    _one(errors_of(path), path, line, *needles)


def test_every_mistake_is_listed_at_once(tmp_path):
    path = write(
        tmp_path,
        """\
        sites:
          - {name: a, district: D, uplink: nope}
          - {name: b, district: D, uplink: vsat, sla: 101}
        """,
    )
    errors = errors_of(path)
    assert len(errors) == 2, errors
    assert errors[0].startswith(f"{path}:2: sites[0].uplink")
    assert errors[1].startswith(f"{path}:3: sites[1].sla")


# --- the collector's config: `inventory:` -------------------------------------------------


def collector_yaml(tmp_path: Path, inventory: str) -> Path:
    cfg = tmp_path / "etc" / "collector.yaml"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text(f"http: {{listen: '127.0.0.1:9877'}}\ninventory: {inventory}\n")
    return cfg


def test_collector_config_loads_inventory_relative_to_itself(tmp_path):
    cfg_path = collector_yaml(tmp_path, "sites.yaml")
    write(tmp_path / "etc", GOOD, "sites.yaml")
    cfg = load_collector_config(cfg_path)
    assert cfg.inventory == tmp_path / "etc" / "sites.yaml"
    assert cfg.loaded_inventory is not None
    assert [s.name for s in cfg.loaded_inventory.sites] == ["pop", "hop", "leaf", "remote"]


def test_collector_config_without_inventory(tmp_path):
    cfg = tmp_path / "collector.yaml"
    cfg.write_text("stale_after: 900\n")
    loaded = load_collector_config(cfg)
    assert loaded.inventory is None and loaded.loaded_inventory is None


def test_missing_inventory_file_names_the_collector_config_line(tmp_path):
    cfg_path = collector_yaml(tmp_path, "absent.yaml")
    with pytest.raises(ConfigError) as exc:
        load_collector_config(cfg_path)
    assert exc.value.errors == [
        f"{cfg_path}:2: inventory: no such file: {tmp_path / 'etc' / 'absent.yaml'}"
    ]


def test_check_config_refuses_a_bad_inventory_with_the_reason(tmp_path, capsys):
    cfg_path = collector_yaml(tmp_path, "inventory.yaml")
    bad = write(
        tmp_path / "etc",
        """\
        sites:
          - name: a
            district: D
            uplink: vsat
            upstream: ghost
        """,
    )
    assert collector_main(["check-config", "--config", str(cfg_path)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5: sites[0].upstream: no site or link is named 'ghost'" in err
    write(tmp_path / "etc", GOOD)
    assert collector_main(["check-config", "--config", str(cfg_path)]) == 0
    assert f"{tmp_path / 'etc' / 'inventory.yaml'}: ok: 4 sites, 2 links" in capsys.readouterr().out
