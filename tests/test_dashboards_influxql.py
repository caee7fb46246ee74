"""Every InfluxQL panel of the Grafana dashboards, run against a real InfluxDB.

The data is what the collector writes: sample sets polled through the real agent from recordings
of real devices (snmpsim), turned into line protocol by collector.lineproto, shifted in time
and with counters advanced by known amounts, so each query's answer can be computed here.
InfluxDB 1.6 (Debian) stands in for 2.x/3.x, which serve the same InfluxQL; it lacks unsigned
integers, so `u` fields are loaded as `i` (devstack.influxql.to_v1_lines).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from collector.lineproto import sample_set_lines, status_line
from devstack.influxql import InfluxQL, documented_queries
from devstack.polling import poll_recording
from pantau.wire import Field, Group, Kind, SampleSet, Status

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "deploy" / "grafana" / "influxql-queries.md"
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
SITE = "vsat-07"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, ms
STEP = 60_000  # one poll a minute
POLLS = 30
OCTETS_PER_POLL = 750_000  # → 100,000 bit/s at one poll a minute
DEVICES = {"radio": "ceraos", "ups": "apc_smt750x-nmc2", "gw": "routeros_rb750gr3"}

pytestmark = pytest.mark.skipif(
    not InfluxQL.available(), reason="influxd (Debian influxdb) missing"
)


def blocks() -> dict[str, str]:
    return documented_queries(DOC)


def influx_targets() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, query) of every InfluxDB target."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel.get("datasource") or {}
                if ds.get("uid") == "pantau-influxdb":
                    out.append((path.name, panel["title"], target["query"]))
    return out


def test_every_influx_panel_is_a_documented_influxql_block():
    documented = set(blocks().values())
    targets = influx_targets()
    assert len(targets) == len(blocks()) == 8
    assert [(f, t) for f, t, q in targets if q not in documented] == []


def test_no_flux_remains():
    flux = re.compile(r"\|>|from\(bucket")
    for path in [*DASHBOARDS, REPO / "deploy/grafana/provisioning/datasources/pantau.yml"]:
        assert not flux.search(path.read_text()), path
        assert "Flux" not in path.read_text(), path


def test_influx_targets_are_raw_influxql():
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if (target.get("datasource") or {}).get("uid") == "pantau-influxdb":
                    assert target.get("rawQuery") is True, panel["title"]


def with_counters(ss: SampleSet, i: int) -> SampleSet:
    """Poll i of a device: time T0 + i·STEP, sequence i + 1, octet counters advanced by
    i · OCTETS_PER_POLL (every other value as recorded)."""
    groups = []
    for g in ss.groups:
        fields = [
            Field(f.name, f.kind, int(f.value) + i * OCTETS_PER_POLL)
            if g.measurement == "interface" and f.name in ("in_octets", "out_octets")
            else f
            for f in g.fields
        ]
        groups.append(Group(g.measurement, g.tags, fields))
    return msgspec.structs.replace(ss, site=SITE, seq=i + 1, ts_ms=T0 + i * STEP, groups=groups)


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory, snmpsim: Any) -> Any:
    tmp = tmp_path_factory.mktemp("influxql")
    polled = {}
    for name, community in DEVICES.items():
        ss, _ = poll_recording(tmp, snmpsim.port, community)
        assert ss.up, f"{community}: {ss.reason}"
        polled[name] = msgspec.structs.replace(ss, device=name)
    lines: list[str] = []
    for name, ss in polled.items():
        for i in range(POLLS):
            if name == "gw" and i in (10, 11, 12):
                continue  # three sample sets of gw never arrived
            if name == "ups" and i % 3 == 0:
                ss_i = msgspec.structs.replace(
                    with_counters(ss, i), up=False, reason="timeout", groups=[]
                )
            else:
                ss_i = with_counters(ss, i)
            lines += sample_set_lines(ss_i)
    lines.append(status_line(Status(v=1, site=SITE, online=True, ts_ms=T0), T0))
    lines.append(status_line(Status(v=1, site=SITE, online=False, ts_ms=T0 + 20 * STEP), 0))
    with InfluxQL(tmp / "influxd") as server:
        server.write(lines)
        yield server, polled


def run(influx: Any, block: str, device: str = "gw") -> list[dict[str, Any]]:
    server, _ = influx
    end = T0 + POLLS * STEP
    query = (
        blocks()[block]
        .replace("$timeFilter", f"time >= {T0}ms AND time < {end}ms")
        .replace("$__interval", "1m")
        .replace("${site}", SITE)
        .replace("${device}", device)
    )
    (result,) = server.query(query)
    return result.get("series", [])


def by_tags(series: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {s.get("tags", {}).get(key, ""): s for s in series}


def test_availability_per_site(influx):
    (series,) = run(influx, "noc/availability-per-site")
    assert series["tags"] == {"site": SITE}
    ((_, value),) = series["values"]  # one day
    # polls that reached InfluxDB: radio 30 up, gw 27 up, ups 20 up + 10 down
    assert value == pytest.approx(100 * (30 + 27 + 20) / (30 + 27 + 30))


def test_availability_per_device(influx):
    got = {
        tags: s["values"][0][1]
        for tags, s in by_tags(run(influx, "site/availability-per-device"), "device").items()
    }
    assert got == {"radio": 100.0, "gw": 100.0, "ups": pytest.approx(100 * 20 / 30)}


def test_online_history(influx):
    (series,) = run(influx, "site/online-history")
    assert series["values"] == [[T0, 1], [T0 + 20 * STEP, 0]]


def test_traffic_history_is_the_rate_of_every_interface(influx):
    _, polled = influx
    interfaces = {
        g.tags.get("ifIndex")
        for g in polled["gw"].groups
        if g.measurement == "interface" and any(f.name == "in_octets" for f in g.fields)
    }
    series = run(influx, "device/traffic-history")
    assert {s["tags"]["ifIndex"] for s in series} == interfaces and len(interfaces) >= 2
    expected = OCTETS_PER_POLL * 8 / 60  # bit/s
    for s in series:
        columns = s["columns"]
        rates = [dict(zip(columns, row, strict=True)) for row in s["values"]]
        # the hole (three lost polls) stretches one step to four minutes: the rate stays
        assert len(rates) == POLLS - 3 - 1
        assert all(
            r["in"] == pytest.approx(expected) and r["out"] == pytest.approx(expected)
            for r in rates
        )


def test_signal_history_averages_levels_only(influx):
    _, polled = influx
    numeric = {
        f.name
        for g in polled["radio"].groups
        if g.measurement == "signal"
        for f in g.fields
        if re.search(r"_(dbm|db)$", f.name)
    }
    text_or_state = {
        f.name
        for g in polled["radio"].groups
        if g.measurement == "signal"
        for f in g.fields
        if f.kind in (Kind.INFO, Kind.STATE)
    }
    assert numeric, "the microwave recording has signal levels"
    series = run(influx, "device/signal-history", "radio")
    columns = {c for s in series for c in s["columns"]} - {"time"}
    assert columns == {f"mean_{n}" for n in numeric}
    assert not {c.removeprefix("mean_") for c in columns} & text_or_state
    recorded = {
        (tuple(sorted(g.tags.items())), f.name): f.value
        for g in polled["radio"].groups
        if g.measurement == "signal"
        for f in g.fields
        if f.name in numeric
    }
    for s in series:
        tags = tuple(
            sorted(
                (k, v) for k, v in s.get("tags", {}).items() if v and k not in ("site", "device")
            )
        )
        first = dict(zip(s["columns"], s["values"][0], strict=True))
        for column, value in first.items():
            if column != "time" and value is not None:
                assert value == pytest.approx(recorded[(tags, column.removeprefix("mean_"))])


def test_power_history_reads_the_ups(influx):
    _, polled = influx
    expected = {
        f.name: f.value
        for g in polled["ups"].groups
        if g.measurement == "power"
        for f in g.fields
        if f.kind == Kind.GAUGE
        and re.search(r"_(volts|amperes|watts|percent|minutes|hertz)$", f.name)
    }
    assert expected, "the UPS recording has power readings"
    (series,) = run(influx, "device/power-history", "ups")
    rows = [dict(zip(series["columns"], row, strict=True)) for row in series["values"]]
    assert len(rows) == 20  # every third poll failed and wrote no power point
    assert {k.removeprefix("mean_"): v for k, v in rows[0].items() if k != "time"} == pytest.approx(
        expected
    )


def test_lost_sample_sets_counts_the_hole(influx):
    (series,) = run(influx, "device/lost-sample-sets")
    assert [v for _, v in series["values"]] == [3]
    assert run(influx, "device/lost-sample-sets", "radio") == []
