"""The monthly report against a real InfluxDB, to the second.

A month (November 2026) of history for three sites, six devices and two links, polled every
60 s, made the way the collector makes it: each poll a SampleSet encoded and decoded by the real
wire codec, then turned into line protocol by collector.lineproto; statuses through the codec
and `status_line`; maintenance windows through collector.maintenance's own `line`. It holds
outages, a site maintenance window, a device maintenance window, a cancelled window, a
microwave hop failure and a VSAT uplink outage whose polls arrive later as backfill, lost polls
(bridged and not), a three-hour gap with no data, and a site that never connects. Every figure
below is worked out by hand from the scenario (see the comments), not by the code under test.

InfluxDB 1.6 (Debian) stands in for 2.x/3.x's InfluxQL (`u` fields loaded as `i`).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.availability.report import month_bounds
from collector.cli import main
from collector.lineproto import sample_set_lines, status_line
from collector.maintenance.window import Window as MaintenanceWindow
from collector.maintenance.window import line as maintenance_line
from devstack.influxql import InfluxQL
from pantau.wire import Field, Group, Kind, SampleSet, Status
from pantau.wire.codec import (
    decode_sample_set,
    decode_status,
    encode_sample_set,
    encode_status,
)

pytestmark = pytest.mark.skipif(
    not InfluxQL.available(), reason="influxd (Debian influxdb) missing"
)

T0 = 1_793_491_200  # 2026-11-01T00:00:00Z, seconds
MONTH = 30 * 86400  # November: 2,592,000 s
D = 1440  # polls a day
LEAD = 60  # polls written before the month (and after it): the edges are covered

# device → (poll offset in s after each whole minute, interfaces (ifIndex, ifName, ifDescr)).
# Only the interfaces the links need, and their neighbours the match must skip: each line
# costs InfluxDB 1.6 ~20 µs to load.
DEVICES: dict[tuple[str, str], tuple[int, list[tuple[str, str, str]]]] = {
    ("kasongan-pop", "router"): (5, []),
    ("kasongan-pop", "mw-a"): (9, [("1", "eth1", "GbE 1"), ("2", "radio0", "Radio carrier 1")]),
    ("tumbang-samba", "mw-b"): (13, [("1", "eth1", "GbE 1"), ("2", "radio0", "Radio carrier 1")]),
    ("tumbang-samba", "bts"): (21, []),
    ("tumbang-hiran", "vsat-modem"): (11, [("1", "lan0", "LAN"), ("3", "sat0", "Satellite")]),
    ("tumbang-hiran", "ups"): (17, []),
}

INVENTORY = """\
defaults: {site_sla: 99.5, link_sla: 99.9}
sites:
  - {name: kasongan-pop, district: Katingan Hilir, uplink: fiber, sla: 99.9}
  - {name: tumbang-samba, district: Katingan Tengah, uplink: microwave,
     upstream: mw-kasongan-samba}
  - {name: tumbang-hiran, district: Marikit, uplink: vsat, upstream: vsat-tumbang-hiran}
  - {name: kuala-never, district: Marikit, uplink: vsat}
links:
  - name: mw-kasongan-samba
    kind: microwave
    a: {site: kasongan-pop, device: mw-a, interface: radio0}             # by ifName
    b: {site: tumbang-samba, device: mw-b, interface: Radio carrier 1}   # by ifDescr
  - name: vsat-tumbang-hiran
    kind: satellite
    a: {far_end: VSAT hub Jakarta}
    b: {site: tumbang-hiran, device: vsat-modem, interface: "3"}         # by ifIndex
    sla: 99.0
"""


def within(k: int, *ranges: tuple[int, int]) -> bool:
    return any(a <= k < b for a, b in ranges)


# The scenario, by poll number k (poll k of a device is at T0 + 60 k + its offset).
HOP = (5 * D + 100, 5 * D + 120)  # 20 min: the microwave hop down, seen at both ends
GAP = (15 * D, 15 * D + 180)  # 3 h: tumbang-samba's gateway dead, nothing polled or sent
VSAT = (20 * D + 720, 20 * D + 1080)  # 6 h: the VSAT down, polls kept in the outbox
ROUTER_DOWN = ((2 * D + 600, 2 * D + 610), (12 * D + 300, 12 * D + 330))  # 10 + 30 min
ROUTER_IN_MAINTENANCE = (9 * D + 480, 9 * D + 599)  # down inside the site window 08:00-10:00
UPS_DOWN = ((25 * D, 25 * D + 5), (27 * D + 60, 27 * D + 70))  # 5 min; 10 min (window cancelled)
UPS_IN_MAINTENANCE = (26 * D + 120, 26 * D + 239)  # down inside its device window 02:00-04:00


def poll_state(site: str, device: str, k: int) -> tuple[bool, dict[str, int]] | None:
    """(up, oper_status by ifName) of poll k, or None when it never reached InfluxDB."""
    down: dict[str, int] = {}
    if device == "router":
        return not within(k, *ROUTER_DOWN, ROUTER_IN_MAINTENANCE), down
    if device == "mw-a":
        if k == 7 * D or within(k, (8 * D, 8 * D + 3)):
            return None  # one lost poll (bridged), then three (2 min unknown)
        return True, {"radio0": 2} if within(k, HOP) else down
    if device == "mw-b":
        if within(k, GAP):
            return None
        return True, {"radio0": 2} if within(k, HOP) else down
    if device == "bts":
        if within(k, GAP):
            return None
        return not within(k, (20 * D, 20 * D + 10)), down
    if device == "vsat-modem":
        return True, {"sat0": 2} if within(k, VSAT) else down
    assert device == "ups"
    return not within(k, *UPS_DOWN, UPS_IN_MAINTENANCE), down


def backfilled(site: str, k: int) -> bool:
    """Polls that reached the NOC only after the uplink came back (written last)."""
    return (site == "tumbang-hiran" and within(k, VSAT)) or (
        site == "tumbang-samba" and within(k, HOP)
    )


def sample_set(site: str, device: str, k: int, up: bool, oper: dict[str, int]) -> SampleSet:
    offset, ports = DEVICES[(site, device)]
    groups: list[Group] = []
    if up:
        for index, name, descr in ports:
            groups.append(
                Group(
                    "interface",
                    {"ifIndex": index, "ifName": name, "ifDescr": descr},
                    [
                        Field("oper_status", Kind.STATE, oper.get(name, 1)),
                        Field("admin_status", Kind.STATE, 1),
                        Field("in_octets", Kind.COUNTER, 750_000 * (k + LEAD)),
                    ],
                )
            )
    return SampleSet(
        site=site,
        device=device,
        seq=k + LEAD + 1,
        ts_ms=(T0 + 60 * k + offset) * 1000,
        duration_ms=380 if up else 5000,
        up=up,
        reason="" if up else "timeout",
        groups=groups,
    )


_SHAPES: set[tuple[object, ...]] = set()
_checked = [0]


def through_the_wire(ss: SampleSet) -> list[str]:
    """What the collector writes for a sample set the agent sent. The codec round trip costs
    ~40 µs a poll (a month is 260,000 polls), so it runs on the first sample set of every
    shape (device, up, interface states) and on every 50th; each must come back equal, which
    makes the rest what the collector would have decoded."""
    shape = (
        ss.device,
        ss.up,
        *(f.value for g in ss.groups for f in g.fields if f.kind == Kind.STATE),
    )
    if shape not in _SHAPES or ss.seq % 50 == 0:
        _SHAPES.add(shape)
        _checked[0] += 1
        decoded = decode_sample_set(encode_sample_set(ss), site=ss.site, device=ss.device)
        assert decoded == ss
        ss = decoded
    return sample_set_lines(ss)


# Status messages: (site, unix s, online). Births and hourly heartbeats carry the agent's time;
# a Last Will is stamped with the time the collector received it (ts_ms 0).
OFFLINE = {
    "tumbang-samba": [
        (T0 + 60 * HOP[0] + 54, T0 + 60 * HOP[0] + 1233),  # will 45 s after the cut
        (T0 + 15 * 86400 + 90, T0 + 15 * 86400 + 10840),
    ],
    "tumbang-hiran": [(T0 + 60 * VSAT[0] + 56, T0 + 60 * VSAT[0] + 21641)],
}


def status_lines() -> list[str]:
    lines = []
    for site in ("kasongan-pop", "tumbang-samba", "tumbang-hiran"):
        offline = OFFLINE.get(site, [])
        events = [(t, True) for t in range(T0 - 86400 + 30, T0 + MONTH + 3600, 3600)]
        events = [(t, on) for t, on in events if not any(a <= t < b for a, b in offline)]
        events += [(a, False) for a, _ in offline] + [(b, True) for _, b in offline]
        for t, on in sorted(events):
            status = Status(
                v=1,
                site=site,
                online=on,
                ts_ms=t * 1000 if on else 0,
                reason="" if on else "connection lost",
                interval_s=60.0,
            )
            lines.append(status_line(decode_status(encode_status(status)), t * 1000))
    return lines


def window(wid: str, scope: Any, start: int, end: int, **kw: Any) -> str:
    return maintenance_line(
        MaintenanceWindow(id=wid, scope=scope, start=start, end=end, created=start - 86400, **kw)
    )


WINDOWS = [
    window(
        "m-splice",
        "site",
        T0 + 9 * 86400 + 8 * 3600,
        T0 + 9 * 86400 + 10 * 3600,
        site="kasongan-pop",
        reason="fiber splice",
    ),
    window(
        "m-battery",
        "device",
        T0 + 26 * 86400 + 2 * 3600,
        T0 + 26 * 86400 + 4 * 3600,
        site="tumbang-hiran",
        device="ups",
        reason="battery swap",
    ),
    window(
        "m-called-off",
        "site",
        T0 + 27 * 86400,
        T0 + 27 * 86400 + 3 * 3600,
        site="tumbang-hiran",
        reason="visit",
        state="cancelled",
    ),
    window(
        "m-october",
        "site",
        T0 - 5 * 86400,
        T0 - 4 * 86400,
        site="tumbang-hiran",
        reason="last month",
    ),
]


def history_lines() -> Iterator[list[str]]:
    """Batches of line protocol: live polls, statuses and windows, then the backfill."""
    later: list[str] = []
    batch: list[str] = []
    for site, device in DEVICES:
        for k in range(-LEAD, MONTH // 60 + LEAD):
            state = poll_state(site, device, k)
            if state is None:
                continue
            lines = through_the_wire(sample_set(site, device, k, *state))
            (later if backfilled(site, k) else batch).extend(lines)
            if len(batch) >= 50_000:
                yield batch
                batch = []
    yield batch + status_lines() + WINDOWS
    yield later


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxQL]:
    tmp = tmp_path_factory.mktemp("availability")
    with InfluxQL(tmp / "influxd") as server:
        for batch in history_lines():
            server.write(batch)
        yield server


@pytest.fixture(scope="module")
def config(influx: InfluxQL, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("config")
    (d / "inventory.yaml").write_text(INVENTORY)
    (d / "collector.yaml").write_text(
        f"inventory: inventory.yaml\navailability:\n  influxql_url: {influx.url}\n"
        "  database: pantau\n"
    )
    return d / "collector.yaml"


@pytest.fixture(scope="module")
def report(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--config", str(config), "--month", "2026-11", "--out", str(out)]) == 0
    return out


# What the scenario gives, in seconds: (down, unknown, maintenance, outages).
EXPECTED: dict[tuple[str, str], tuple[int, int, int, int]] = {
    # router: 600 + 1800 s down; its polls inside the site window are maintenance
    ("device", "kasongan-pop/router"): (2400, 0, 7200, 2),
    # mw-a: the lone lost poll is bridged (a poll covers up to 2 × 60 s); of the 4-minute hole
    # left by three lost polls, the last poll covers 2 minutes: 120 s unknown. The hop failure
    # is its port, not the device.
    ("device", "kasongan-pop/mw-a"): (0, 120, 7200, 0),
    # mw-b: last poll before the gap at 23:59:13 covers to 00:01:13, next poll 03:00:13
    ("device", "tumbang-samba/mw-b"): (0, 10740, 0, 0),
    ("device", "tumbang-samba/bts"): (600, 10740, 0, 1),
    # the VSAT outage: every poll arrived as backfill, all up
    ("device", "tumbang-hiran/vsat-modem"): (0, 0, 0, 0),
    # 300 s + 600 s (inside the cancelled window: counted); its own window excluded
    ("device", "tumbang-hiran/ups"): (900, 0, 7200, 2),
    ("site", "kasongan-pop"): (2400, 0, 7200, 2),
    # unknown while neither device is covered: bts' cover ends 00:01:21, mw-b polls 03:00:13
    ("site", "tumbang-samba"): (600, 10732, 0, 1),
    # the ups' own window leaves the site up (the modem answers)
    ("site", "tumbang-hiran"): (900, 0, 0, 2),
    ("site", "kuala-never"): (0, MONTH, 0, 0),
    ("uplink", "kasongan-pop"): (0, 0, 7200, 0),
    # will → birth: hop failure 54 → 1233 s (1179 s); gap 00:01:30 → 03:00:40 (10750 s)
    ("uplink", "tumbang-samba"): (1179 + 10750, 0, 0, 2),
    # will 56 s after the cut → birth 21641 s after it
    ("uplink", "tumbang-hiran"): (21585, 0, 0, 1),
    ("uplink", "kuala-never"): (0, MONTH, 0, 0),
    # a end (offset 9) down 09 → 1209 s, b end (offset 13) 13 → 1213 s: 1204 s; mw-a's site
    # window is the link's too. During the gap the NOC end saw the hop up: up.
    ("link", "mw-kasongan-samba"): (1204, 0, 7200, 1),
    # sat0 down from 11 s (first down poll) to 21611 s, the site unreachable until its birth
    # at 21641 s: 21630 s
    ("link", "vsat-tumbang-hiran"): (21630, 0, 0, 1),
}
SLA = {
    ("site", "kasongan-pop"): "99.9",
    ("site", "tumbang-samba"): "99.5",
    ("site", "tumbang-hiran"): "99.5",
    ("site", "kuala-never"): "99.5",
    ("link", "mw-kasongan-samba"): "99.9",
    ("link", "vsat-tumbang-hiran"): "99",
}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_every_figure_to_the_second(report: Path):
    got = {(r["scope"], r["name"]): r for r in rows(report / "pantau-availability-2026-11.csv")}
    assert set(got) == set(EXPECTED)
    for key, (down, unknown, maint, count) in EXPECTED.items():
        r = got[key]
        up = MONTH - down - unknown - maint
        assert (
            int(r["up_seconds"]),
            int(r["down_seconds"]),
            int(r["unknown_seconds"]),
            int(r["maintenance_seconds"]),
            int(r["outages"]),
            int(r["period_seconds"]),
        ) == (up, down, unknown, maint, count, MONTH), key
        if up + down:
            assert float(r["availability_percent"]) == pytest.approx(
                100 * up / (up + down), abs=1e-6
            ), key
        else:
            assert r["availability_percent"] == "", key
        mttr = r["mttr_seconds"]
        assert (float(mttr) if mttr else None) == (down / count if count else None), key
        assert r["sla_percent"] == SLA.get(key, ""), key


def test_sla_verdicts_and_districts(report: Path):
    got = {(r["scope"], r["name"]): r for r in rows(report / "pantau-availability-2026-11.csv")}
    # 2400 s down of 2,584,800 s known: 99.907 % ≥ 99.9
    assert got[("site", "kasongan-pop")]["sla_met"] == "yes"
    # 21630 s of 2,592,000: 99.166 % ≥ 99.0
    assert got[("link", "vsat-tumbang-hiran")]["sla_met"] == "yes"
    assert got[("site", "kuala-never")]["sla_met"] == ""  # nothing known: no verdict
    assert got[("device", "tumbang-hiran/ups")]["district"] == "Marikit"
    assert got[("link", "mw-kasongan-samba")]["district"] == "Katingan Tengah"


def test_outage_list(report: Path):
    listed = rows(report / "pantau-availability-2026-11-outages.csv")

    def of(scope: str, name: str, kind: str) -> list[tuple[str, str, str]]:
        return [
            (r["start"], r["seconds"], r["cause"])
            for r in listed
            if (r["scope"], r["name"], r["kind"]) == (scope, name, kind)
        ]

    assert of("device", "kasongan-pop/router", "outage") == [
        ("2026-11-03T10:00:05Z", "600", "device down"),
        ("2026-11-13T05:00:05Z", "1800", "device down"),
    ]
    assert of("device", "kasongan-pop/router", "maintenance") == [
        ("2026-11-10T08:00:00Z", "7200", "fiber splice")
    ]
    assert of("link", "vsat-tumbang-hiran", "outage") == [
        ("2026-11-21T12:00:11Z", "21630", "link down, site unreachable")
    ]
    assert of("uplink", "tumbang-samba", "outage") == [
        ("2026-11-06T01:40:54Z", "1179", "site unreachable"),
        ("2026-11-16T00:01:30Z", "10750", "site unreachable"),
    ]
    # the gap: no data while the site was still online, then the site unreachable
    assert of("device", "tumbang-samba/mw-b", "unknown") == [
        ("2026-11-16T00:01:13Z", "10740", "no data, site unreachable")
    ]
    assert of("device", "tumbang-hiran/ups", "maintenance") == [
        ("2026-11-27T02:00:00Z", "7200", "battery swap")
    ]


def test_the_html_page_is_self_contained_and_renders(report: Path, tmp_path: Path):
    html = (report / "pantau-availability-2026-11.html").read_text()
    assert not re.search(r"(?i)(src|href)\s*=|url\(|@import|https?://|<script|<link", html)
    for text in (
        "Katingan Hilir",
        "Katingan Tengah",
        "Marikit",
        "kuala-never",
        "vsat-tumbang-hiran",
        "link down, site unreachable",
        "99.907 %",
    ):
        assert text in html, text
    assert html.count("<svg") == 4 + 2  # a bar per site and per link
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium missing")
    png = tmp_path / "report.png"
    out = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",  # not ~/.config: isolated
            f"--screenshot={png}",
            "--window-size=1400,1800",
            f"file://{report / 'pantau-availability-2026-11.html'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert png.is_file() and png.stat().st_size > 20_000, out.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_month_is_november():
    assert month_bounds("2026-11") == (T0 * 1000, (T0 + MONTH) * 1000)


def test_month_to_date_metrics(influx: InfluxQL, config: Path):
    from collector.availability.live import from_config
    from collector.config import load_collector_config
    from collector.exposition import AvailabilityCollector, SelfMetrics

    cfg = load_collector_config(config)
    assert cfg.availability is not None
    now = T0 + 10 * 86400  # 2026-11-11T00:00:00Z: ten days into the month
    live = from_config(cfg.availability, cfg.loaded_inventory)
    live.clock = lambda: float(now)
    registry = SelfMetrics().registry
    registry.register(AvailabilityCollector(live))
    assert registry.get_sample_value("pantau_availability_month_elapsed_seconds") is None
    assert live.refresh()

    def value(metric: str, scope: str, name: str) -> float | None:
        return registry.get_sample_value(
            f"pantau_availability_month_{metric}", {"scope": scope, "name": name}
        )

    elapsed = 10 * 86400
    assert registry.get_sample_value("pantau_availability_month_elapsed_seconds") == elapsed
    assert registry.get_sample_value("pantau_availability_month_length_seconds") == MONTH
    # so far: the router's first outage (600 s) and the splice window (7200 s)
    assert value("down_seconds", "device", "kasongan-pop/router") == 600
    assert value("maintenance_seconds", "site", "kasongan-pop") == 7200
    assert value("ratio", "site", "kasongan-pop") == pytest.approx(
        (elapsed - 7800) / (elapsed - 7200)
    )
    assert value("down_seconds", "link", "mw-kasongan-samba") == 1204
    assert value("down_seconds", "uplink", "tumbang-samba") == 1179
    assert value("unknown_seconds", "device", "kasongan-pop/mw-a") == 120
    assert value("unknown_seconds", "site", "kuala-never") == elapsed
    assert value("ratio", "site", "kuala-never") is None  # nothing known: no ratio
    # InfluxDB goes away: counted, the last figures stay, nothing raises
    live.client.url = "http://127.0.0.1:9/query"
    assert not live.refresh()
    assert (
        registry.get_sample_value(
            "pantau_availability_refresh_errors_total", {"reason": "unreachable"}
        )
        == 1
    )
    assert value("down_seconds", "device", "kasongan-pop/router") == 600


def test_the_dashboards_availability_by_minute_panel(influx: InfluxQL):
    """The InfluxQL view (deploy/grafana/influxql-queries.md) over the same month: whole
    minutes, no coverage rule, maintenance not left out."""
    from devstack.influxql import documented_queries

    doc = Path(__file__).resolve().parent.parent / "deploy/grafana/influxql-queries.md"
    query = documented_queries(doc)["noc/availability-by-minute"].replace(
        "$timeFilter", f"time >= {T0}s AND time < {T0 + MONTH}s"
    )
    (result,) = influx.query(query)
    got = {
        (s["tags"]["site"], s["tags"]["device"]): dict(
            zip(s["columns"], s["values"][0], strict=True)
        )
        for s in result["series"]
    }
    minutes = MONTH // 60
    # (minutes down, minutes without a poll): the router's 10 + 30 + 119 in its site window;
    # the ups' 5 + 119 (its window) + 10; mw-a's 1 + 3 lost polls; the 3-hour gap
    expected = {
        ("kasongan-pop", "router"): (159, 0),
        ("kasongan-pop", "mw-a"): (0, 4),
        ("tumbang-samba", "mw-b"): (0, 180),
        ("tumbang-samba", "bts"): (10, 180),
        ("tumbang-hiran", "vsat-modem"): (0, 0),
        ("tumbang-hiran", "ups"): (134, 0),
    }
    assert set(got) == set(expected)
    for key, (down, missing) in expected.items():
        polled = minutes - missing
        row = got[key]
        assert (row["down_seconds"], row["polled_seconds"], row["up_seconds"]) == (
            60 * down,
            60 * polled,
            60 * (polled - down),
        ), key
        assert row["availability"] == pytest.approx(100 * (polled - down) / polled), key


def test_a_wrong_database_is_a_clear_error(
    influx: InfluxQL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"availability:\n  influxql_url: {influx.url}\n  database: pantua\n")
    args = ["report", "--config", str(cfg), "--month", "2026-11", "--out", str(tmp_path)]
    assert main(args) == 1
    assert "database not found: pantua" in capsys.readouterr().err
    assert not list(tmp_path.glob("pantau-availability-*"))


def test_the_collector_exports_month_to_date_when_configured(config: Path):
    """The wiring: a Collector built from a config with `availability:` registers the gauges
    beside its own on the /metrics registry (not started: no broker needed)."""
    from collector.config import load_collector_config
    from collector.service import Collector

    cfg = load_collector_config(config)
    collector = Collector(cfg)
    try:
        live = collector.availability
        assert live is not None and live.refresh_seconds == 300
        assert (live.reread_ms, live.rebuild_s) == (24 * 3600_000, 24 * 3600.0)
        live.clock = lambda: float(T0 + 86400)
        assert live.refresh()
        registry = collector.metrics.registry
        assert registry.get_sample_value("pantau_availability_month_elapsed_seconds") == 86400
        assert (
            registry.get_sample_value(
                "pantau_availability_month_ratio",
                {"scope": "device", "name": "kasongan-pop/router"},
            )
            == 1.0
        )
    finally:
        collector.sink.close()


# -- month to date, incremental (collector/availability/live.py) --------------------------------


class CountingClient:
    """An InfluxQLClient that counts the rows it was answered (a refresh's read cost)."""

    def __init__(self, url: str, database: str) -> None:
        from collector.availability.query import InfluxQLClient

        self.inner = InfluxQLClient(url, database)
        self.rows = 0

    def query(self, influxql: str) -> list[dict[str, Any]]:
        series = self.inner.query(influxql)
        self.rows += sum(len(s["values"]) for s in series)
        return series


def full_report(client: Any, now_s: int, inventory: Any) -> dict[tuple[str, str], Any]:
    """What the report's path (every poll read, then computed) gives for the month so far."""
    from collector.availability.compute import compute
    from collector.availability.query import fetch_history

    history = fetch_history(client, T0 * 1000, now_s * 1000, inventory)
    return {(f.scope, f.name): f.timeline for f in compute(history, inventory).all()}


def test_month_to_date_is_incremental_and_agrees_with_the_report(influx: InfluxQL, config: Path):
    """Refresh after refresh through the month, each reads only what is not closed yet and
    every timeline equals a full read and compute of the month so far, to the millisecond."""
    from collector.availability.live import LiveAvailability
    from collector.config import load_collector_config

    cfg = load_collector_config(config)
    inventory = cfg.loaded_inventory
    client = CountingClient(influx.url, "pantau")
    clock = [0.0]
    live = LiveAvailability(client, inventory, 300, clock=lambda: clock[0], reread_hours=6)  # type: ignore[arg-type]
    nows = [
        T0 + 1800,  # half an hour into the month
        T0 + 5 * 86400 + 6000,  # just after the hop failure
        T0 + 5 * 86400 + 6300,  # one refresh later
        T0 + 9 * 86400 + 9 * 3600,  # inside the splice window
        T0 + 15 * 86400 + 3600,  # inside the gap
        T0 + 20 * 86400 + 15 * 3600,  # the VSAT outage
        T0 + MONTH - 1,
    ]
    for now in nows:
        clock[0] = float(now)
        client.rows = 0
        assert live.refresh()
        got = {(f.scope, f.name): f.timeline for f in live.latest().report.all()}  # type: ignore[union-attr]
        assert got == full_report(client.inner, now, inventory), now
        if now == T0 + 5 * 86400 + 6300:
            # 5 min later: the open part (6 h re-read and up to an hour) and the statuses only
            polls = 6 * 7 * 60 + 4 * 8 * 60  # 6 devices; 4 link ports
            assert client.rows < polls + 3 * 24 * 5 + 200, client.rows
    assert live.rereads == 0  # every series polled every 60 s: the cap never moved


def test_month_to_date_picks_up_late_backfill_and_a_moving_poll_spacing(influx: InfluxQL):
    """In a database of its own: backfill landing inside the re-read window is counted at the
    next refresh, older backfill at the next rebuild; a device whose spacing changes (its
    median moves, so does the coverage cap) is read again and still agrees with the report."""
    from collector.availability.live import LiveAvailability
    from collector.availability.query import InfluxQLClient

    influx.query('CREATE DATABASE "late"')
    db, influx.database = influx.database, "late"
    try:
        hole = (T0 + 86400 + 10 * 3600, T0 + 86400 + 16 * 3600)  # day 2, 10:00-16:00
        recent = (T0 + 3 * 86400 - 2 * 3600, T0 + 3 * 86400 - 3600)  # day 3, 22:00-23:00

        def polls(device: str, times: range, skip: list[tuple[int, int]]) -> list[str]:
            return [
                f"pantau_poll,device={device},site=s1 up=1i {t * 1000}"
                for t in times
                if not any(a <= t < b for a, b in skip)
            ]

        # modem: every 60 s; slow: every 60 s for 6 h, then every 300 s (its median moves
        # from 60 s to 300 s on day 2)
        influx.write(polls("modem", range(T0, T0 + 3 * 86400, 60), [hole, recent]))
        influx.write(polls("slow", range(T0, T0 + 6 * 3600, 60), []))
        influx.write(polls("slow", range(T0 + 6 * 3600, T0 + 3 * 86400, 300), []))
        client = InfluxQLClient(influx.url, "late")
        clock = [float(T0 + 3 * 86400)]
        live = LiveAvailability(
            client, None, 300, clock=lambda: clock[0], reread_hours=6, rebuild_hours=24
        )

        def modem_unknown() -> float:
            mtd = live.latest()
            assert mtd is not None
            (dev,) = [f for f in mtd.report.devices if f.name == "s1/modem"]
            return dev.unknown_ms / 1000

        assert live.refresh()
        # the poll before each hole covers 120 s from its start: 60 s into the hole
        assert modem_unknown() == 6 * 3600 - 60 + 3600 - 60
        assert live.rereads >= 1  # slow's cap moved from 120 s to 600 s while closing days
        got = {(f.scope, f.name): f.timeline for f in live.latest().report.all()}  # type: ignore[union-attr]
        assert got == full_report(client, int(clock[0]), None)
        # both holes are backfilled; the recent one lies in the re-read window
        influx.write(polls("modem", range(*hole, 60), []) + polls("modem", range(*recent, 60), []))
        clock[0] += 300
        assert live.refresh()
        # the older one is closed: not yet; and 240 s since the last poll's cover ended
        assert modem_unknown() == 6 * 3600 - 60 + 240
        clock[0] += 24 * 3600  # the daily rebuild reads the month again
        assert live.refresh()
        assert modem_unknown() == 24 * 3600 + 300 - 60  # all counted; after the last poll: unknown
        got = {(f.scope, f.name): f.timeline for f in live.latest().report.all()}  # type: ignore[union-attr]
        assert got == full_report(client, int(clock[0]), None)
    finally:
        influx.database = db
