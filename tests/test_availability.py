"""Availability computation, pure: the coverage rule, unknown time, maintenance, backfill, the
site/uplink/link rules, the report's period parsing and writers, and the config block."""

from __future__ import annotations

import http.server
import logging
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest

from collector.availability.compute import History, Window, compute, periods
from collector.availability.live import LiveAvailability, month_of
from collector.availability.query import (
    InfluxQLClient,
    QueryError,
    _documents,
    _points,
    _series,
    quote,
)
from collector.availability.report import month_bounds, period
from collector.availability.report_csv import FIGURES_COLUMNS, figures_csv, periods_csv
from collector.availability.report_html import render
from collector.availability.timeline import (
    DOWN,
    MAINTENANCE,
    UNKNOWN,
    UP,
    Seg,
    combine,
    cover_cap,
    coverage,
    gap_counts,
    median_spacing,
    spans,
    steps,
)
from collector.config import load_collector_config
from collector.inventory import Inventory
from pantau.settings import ConfigError, Secret

S = 1000
M = 60 * S
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
HOUR = 3600 * S


def every_minute(first: int, last: int, up: int = 1, offset: int = 0) -> list[tuple[int, int]]:
    """Polls k = first … last-1, at T0 + k minutes + offset."""
    return [(T0 + k * M + offset, up) for k in range(first, last)]


def test_a_poll_covers_until_the_next_at_most_twice_the_median_spacing():
    readings = [(T0 + k * M, UP, "") for k in (0, 1, 2, 4, 5, 9)]  # one lost, then three
    tl = coverage(readings, T0, T0 + 11 * M)
    # 2 → 4: one lost poll is bridged; 5 → 9: covered 2 minutes, 2 minutes unknown (a gap)
    assert tl == [Seg(T0, T0 + 7 * M, UP), Seg(T0 + 9 * M, T0 + 11 * M, UP)]


def test_a_poll_before_the_period_covers_into_it_and_the_last_stops_at_the_cap():
    readings = [(T0 - 90 * S, UP, ""), (T0 - 30 * S, DOWN, "device down")]
    assert coverage(readings, T0, T0 + HOUR) == [Seg(T0, T0 + 90 * S, DOWN, "device down")]


def test_steps_hold_until_the_next_point_and_spans_merge_overlaps():
    pts = [(T0 - HOUR, UP, ""), (T0 + 10 * M, DOWN, "x"), (T0 + 20 * M, UP, "")]
    assert steps(pts, T0, T0 + HOUR) == [
        Seg(T0, T0 + 10 * M, UP),
        Seg(T0 + 10 * M, T0 + 20 * M, DOWN, "x"),
        Seg(T0 + 20 * M, T0 + HOUR, UP),
    ]
    assert spans([(T0, T0 + 5 * M), (T0 + 3 * M, T0 + 8 * M)], T0, T0 + HOUR, MAINTENANCE) == [
        Seg(T0, T0 + 8 * M, MAINTENANCE)
    ]


def test_combine_sees_gaps_as_none():
    a = [Seg(T0, T0 + 10 * M, UP)]
    b = [Seg(T0 + 5 * M, T0 + 15 * M, DOWN)]

    def rule(now: list[Seg | None]) -> tuple[str, str]:
        return "".join("-" if s is None else s.state[0] for s in now), ""

    assert [(s.start - T0, s.state) for s in combine([a, b], T0, T0 + 20 * M, rule)] == [
        (0, "u-"),
        (5 * M, "ud"),
        (10 * M, "-d"),
        (15 * M, "--"),
    ]


def one_device(polls: list[tuple[int, int]], **kw: object) -> History:
    return History(T0, T0 + HOUR, polls={("s1", "radio"): polls}, **kw)  # type: ignore[arg-type]


def test_device_outages_mttr_and_ratio():
    polls = every_minute(-2, 60)
    polls[10 + 2] = (polls[12][0], 0)  # minute 10 down
    for k in (30, 31, 32):
        polls[k + 2] = (polls[k + 2][0], 0)  # minutes 30-32 down
    (dev,) = compute(one_device(polls)).devices
    assert dev.name == "s1/radio"
    assert (dev.up_ms, dev.down_ms, dev.unknown_ms, dev.maintenance_ms) == (
        56 * M,
        4 * M,
        0,
        0,
    )
    assert [(p.start_ms - T0, p.seconds, p.cause) for p in dev.outages] == [
        (10 * M, 60, "device down"),
        (30 * M, 180, "device down"),
    ]
    assert dev.count == 2 and dev.mttr_s == 120
    assert dev.ratio == pytest.approx(56 / 60)


def test_unknown_time_is_neither_up_nor_down_and_names_the_unreachable_site():
    polls = every_minute(-2, 10) + every_minute(40, 60)
    online = {"s1": [(T0 - HOUR, 1), (T0 + 10 * M + 30 * S, 0), (T0 + 39 * M, 1)]}
    report = compute(one_device(polls, online=online))
    (dev,) = report.devices
    # minute 9's poll covers to 11:00; unknown 11:00 → 40:00
    assert dev.unknown_ms == 29 * M and dev.down_ms == 0 and dev.ratio == 1.0
    (gap,) = dev.unknown
    assert gap.cause == "site unreachable, no data"  # back online at 39:00, first poll 40:00
    (uplink,) = report.uplinks
    assert uplink.down_ms == 28 * M + 30 * S
    assert uplink.outages[0].cause == "site unreachable"


def test_backfilled_polls_count_as_up_while_the_uplink_is_down():
    polls = every_minute(-2, 60)  # every poll arrived, some of them later (backfill)
    online = {"s1": [(T0 - HOUR, 1), (T0 + 10 * M, 0), (T0 + 40 * M, 1)]}
    report = compute(one_device(polls, online=online))
    assert report.devices[0].ratio == 1.0 and report.sites[0].ratio == 1.0
    assert report.uplinks[0].down_ms == 30 * M


def test_maintenance_is_excluded_and_a_cancelled_window_is_not_there():
    polls = every_minute(-2, 60)
    polls = [(t, 0 if T0 + 20 * M <= t < T0 + 30 * M else v) for t, v in polls]
    w = Window("m-1", "device", T0 + 20 * M, T0 + 30 * M, site="s1", device="radio", reason="swap")
    (dev,) = compute(one_device(polls, windows=[w])).devices
    assert (dev.down_ms, dev.maintenance_ms, dev.ratio) == (0, 10 * M, 1.0)
    assert dev.maintenance[0].cause == "swap"
    (dev,) = compute(one_device(polls)).devices
    assert dev.down_ms == 10 * M


def test_nothing_known_gives_no_ratio():
    inv = Inventory.model_validate(
        {"sites": [{"name": "ghost", "district": "D", "uplink": "vsat"}]}
    )
    report = compute(History(T0, T0 + HOUR), inv)
    (site,) = report.sites
    assert site.ratio is None and site.unknown_ms == HOUR and site.mttr_s is None


LINK_INV = {
    "sites": [
        {"name": "pop", "district": "A", "uplink": "fiber"},
        {"name": "far", "district": "B", "uplink": "microwave", "upstream": "hop"},
    ],
    "links": [
        {
            "name": "hop",
            "kind": "microwave",
            "a": {"site": "pop", "device": "r1", "interface": "radio0"},
            "b": {"site": "far", "device": "r2", "interface": "radio0"},
        }
    ],
}


def link_report(a_ports: list[tuple[int, int]], far_online: list[tuple[int, int]]) -> object:
    inv = Inventory.model_validate(LINK_INV)
    polls = {("pop", "r1"): every_minute(-2, 60), ("far", "r2"): every_minute(-2, 60)}
    ports = {
        ("pop", "r1", "radio0"): a_ports,
        ("far", "r2", "radio0"): [(t, 1) for t, _ in every_minute(-2, 60)],
    }
    online = {"pop": [(T0 - HOUR, 1)], "far": far_online}
    return compute(History(T0, T0 + HOUR, polls=polls, ports=ports, online=online), inv)


def test_a_link_is_down_while_the_site_behind_it_is_unreachable():
    far = [(T0 - HOUR, 1), (T0 + 10 * M, 0), (T0 + 20 * M, 1)]
    # no reading at the NOC end during the outage: the dark site is the evidence
    a_ports = [(t, 1) for t, _ in every_minute(-2, 60) if not T0 + 8 * M < t < T0 + 25 * M]
    (link,) = link_report(a_ports, far).links  # type: ignore[attr-defined]
    assert link.down_ms == 10 * M and link.outages[0].cause == "site unreachable"


def test_a_link_the_noc_end_saw_up_stays_up_when_the_site_behind_it_is_dark():
    far = [(T0 - HOUR, 1), (T0 + 10 * M, 0), (T0 + 20 * M, 1)]
    (link,) = link_report([(t, 1) for t, _ in every_minute(-2, 60)], far).links  # type: ignore[attr-defined]
    assert link.down_ms == 0 and link.ratio == 1.0


def test_a_port_down_at_either_end_is_link_down():
    a_ports = [(t, 2 if T0 + 5 * M <= t < T0 + 7 * M else 1) for t, _ in every_minute(-2, 60)]
    (link,) = link_report(a_ports, [(T0 - HOUR, 1)]).links  # type: ignore[attr-defined]
    assert link.down_ms == 2 * M and link.outages[0].cause == "link down"


def test_dormant_is_up_and_unknown_is_unknown_as_the_live_link_state_says():
    """ifOperStatus 5 (dormant: a standby radio) is not down and 4 (unknown) is neither up
    nor down, as collector/links.py reads them; 7 (lowerLayerDown) is down."""
    oper = {5 * M: 5, 6 * M: 5, 10 * M: 4, 11 * M: 4, 20 * M: 7}
    b_ports = [(t, oper.get(t - T0, 1)) for t, _ in every_minute(-2, 60)]
    inv = Inventory.model_validate(LINK_INV)
    polls = {("pop", "r1"): every_minute(-2, 60), ("far", "r2"): every_minute(-2, 60)}
    ports = {("far", "r2", "radio0"): b_ports}  # the NOC end reads nothing: only b counts
    online = {"pop": [(T0 - HOUR, 1)], "far": [(T0 - HOUR, 1)]}
    (link,) = compute(History(T0, T0 + HOUR, polls=polls, ports=ports, online=online), inv).links
    assert (link.down_ms, link.unknown_ms) == (1 * M, 2 * M)
    assert [(p.start_ms - T0, p.cause) for p in link.unknown] == [
        (10 * M, "interface status unknown")
    ]
    assert [(p.start_ms - T0, p.cause) for p in link.outages] == [(20 * M, "link down")]


CHAIN_INV = {
    "sites": [
        {"name": "pop", "district": "A", "uplink": "fiber"},
        {"name": "far", "district": "B", "uplink": "microwave", "upstream": "hop"},
        {"name": "farther", "district": "B", "uplink": "microwave", "upstream": "far"},
        {"name": "beside", "district": "A", "uplink": "fiber", "upstream": "pop"},
    ],
    "links": [
        {
            "name": "hop",
            "kind": "microwave",
            "a": {"site": "pop", "device": "r1", "interface": "radio0"},
            "b": {"site": "far", "device": "r2", "interface": "radio0"},
        }
    ],
}


@pytest.mark.parametrize(
    "window",
    [
        Window("m-hop", "link", T0 + 10 * M, T0 + 40 * M, link="hop", reason="realign"),
        Window(
            "m-r1", "device", T0 + 10 * M, T0 + 40 * M, site="pop", device="r1", reason="realign"
        ),
    ],
    ids=["link-window", "window-on-a-link-end-device"],
)
def test_work_on_a_link_is_maintenance_for_every_site_cut_off_behind_it(window: Window):
    """The `pantau_maintenance` point names only the link (or the device); the sites behind
    it, however deep, lose their path to the NOC for the same planned work."""
    inv = Inventory.model_validate(CHAIN_INV)
    dark = [(T0 - HOUR, 1), (T0 + 10 * M, 0), (T0 + 40 * M, 1)]
    online = {"pop": [(T0 - HOUR, 1)], "beside": [(T0 - HOUR, 1)], "far": dark, "farther": dark}
    polls = {
        ("pop", "r1"): every_minute(-2, 60),
        ("beside", "sw"): every_minute(-2, 60),
        # nothing backfilled from behind the hop, and far's switch down during the work
        ("far", "r2"): every_minute(-2, 10) + every_minute(40, 60),
        ("far", "sw"): every_minute(-2, 10) + every_minute(10, 40, up=0) + every_minute(40, 60),
        ("farther", "bts"): every_minute(-2, 10) + every_minute(40, 60),
    }
    report = compute(History(T0, T0 + HOUR, polls=polls, online=online, windows=[window]), inv)
    by = {(f.scope, f.name): f for f in report.all()}
    for scope, name in [
        ("uplink", "far"),
        ("uplink", "farther"),
        ("site", "far"),
        ("site", "farther"),
        ("device", "far/sw"),
        ("device", "farther/bts"),
    ]:
        f = by[(scope, name)]
        assert (f.down_ms, f.unknown_ms, f.maintenance_ms) == (0, 0, 30 * M), (scope, name)
    assert by[("link", "hop")].maintenance_ms == 30 * M  # no port readings: the rest unknown
    assert by[("site", "far")].maintenance[0].cause == "realign (via hop)"
    # not behind the hop: untouched
    for scope, name in [("uplink", "beside"), ("site", "beside"), ("uplink", "pop")]:
        assert by[(scope, name)].maintenance_ms == 0, (scope, name)
    # r1 is pop's only device: in its own window it leaves pop in maintenance, not down
    assert by[("site", "pop")].maintenance_ms == (30 * M if window.scope == "device" else 0)


def test_periods_join_causes_in_order():
    tl = [
        Seg(0, 10, DOWN, "link down"),
        Seg(10, 20, DOWN, "site unreachable"),
        Seg(20, 30, UP),
        Seg(30, 40, UNKNOWN, "no data"),
    ]
    assert [(p.start_ms, p.end_ms, p.cause) for p in periods(tl, DOWN)] == [
        (0, 20, "link down, site unreachable")
    ]


def test_month_and_period_parsing():
    assert month_bounds("2026-11") == (T0, T0 + 30 * 86400 * S)
    assert month_bounds("2026-12")[1] == 1_798_761_600_000  # 2027-01-01
    assert period(
        None,
        "2026-11-01",
        "2026-11-02T00:00:00Z",
    )[:2] == (T0, T0 + 86400 * S)
    for bad in ("2026-13", "2026-1", "november"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            period(bad, None, None)
    with pytest.raises(ValueError, match="not both"):
        period("2026-11", "2026-11-01", None)
    with pytest.raises(ValueError, match="both --from and --to"):
        period(None, "2026-11-01", None)
    with pytest.raises(ValueError, match="not after"):
        period(None, "2026-11-02", "2026-11-01")
    with pytest.raises(ValueError, match="--from 'yesterday'"):
        period(None, "yesterday", "2026-11-01")


def test_the_cli_refuses_a_bad_period(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from collector.cli import main

    cfg = tmp_path / "collector.yaml"
    cfg.write_text("http: {listen: '127.0.0.1:0'}\n")
    assert main(["report", "--config", str(cfg), "--month", "2026-13"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err
    # nothing listens there: a clear error, exit 1, no traceback
    cfg.write_text("influx: {url: 'http://127.0.0.1:9'}\n")
    assert main(["report", "--config", str(cfg), "--month", "2026-11", "--out", str(tmp_path)]) == 1
    assert "cannot read InfluxDB" in capsys.readouterr().err


def test_chunked_answers_are_read_document_by_document():
    body = '{"results":[{"series":[{"name":"a","values":[[1,1]]}]}]}\n{"results":[]}\n'
    assert len(list(_documents(body))) == 2
    assert quote("it's a \\ test") == "'it\\'s a \\\\ test'"


SERIES = '{"name":"pantau_poll","tags":{"site":"s","device":"d"},"columns":["time","up"],'


@pytest.mark.parametrize(
    ("body", "values"),
    [
        # 1.x chunked: every chunk but the last says partial; one series over two chunks
        (
            '{"results":[{"statement_id":0,"series":[' + SERIES + '"values":[[1,1]],'
            '"partial":true}],"partial":true}]}\n'
            '{"results":[{"statement_id":0,"series":[' + SERIES + '"values":[[2,0]]}]}]}\n',
            [[1, 1], [2, 0]],
        ),
        # nothing matched: no `series` at all (2.x, 3.x: `statement_id` only)
        ('{"results":[{"statement_id":0}]}', None),
        # a series whose tags and values are null
        (
            '{"results":[{"series":[{"name":"x","tags":null,"columns":["time"],"values":null}]}]}',
            [],
        ),
    ],
    ids=["chunked", "no-series", "nulls"],
)
def test_the_answer_shapes_of_1x_2x_and_3x(body: str, values: list[list[int]] | None):
    series = _series(body, "SELECT 1", "http://db/query")
    if values is None:
        assert series == []
    else:
        assert [s["values"] for s in series] == [values]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # cut short: a row limit (max-row-limit) or a lost last chunk
        ('{"results":[{"series":[' + SERIES + '"values":[[1,1]],"partial":true}]}]}', "partial"),
        ('{"results":[{"series":[],"partial":true}]}', "partial"),
        ('{"results":[{"statement_id":0,"error":"database not found: x"}]}', "influxql"),
        ('{"error":"query interrupted"}', "influxql"),
        ('[{"results":[]}]', "bad_answer"),
        ('{"code":"ok"}', "bad_answer"),
        ('{"results":[{"series":[' + SERIES + '"values":[[1,1]]}]}] trailing', "bad_answer"),
    ],
    ids=["partial-series", "partial-result", "error", "top-error", "list", "no-results", "junk"],
)
def test_an_answer_cut_short_or_malformed_is_an_error_not_a_shorter_month(body: str, reason: str):
    with pytest.raises(QueryError) as err:
        _series(body, "SELECT 1", "http://db/query")
    assert err.value.reason == reason


def test_a_series_without_the_column_is_an_error():
    with pytest.raises(QueryError) as err:
        _points({"columns": ["time", "other"], "values": [[1, 1]]}, "up")
    assert err.value.reason == "bad_answer"
    assert _points({"columns": ["time", "up"], "values": [[1, 1.0], [2, None]]}, "up") == [(1, 1)]


def test_month_lengths_leap_years_and_the_year_end():
    day = 86_400_000
    for now, days in [
        ("2028-02-29T23:59:59", 29),  # leap
        ("2027-02-01T00:00:00", 28),
        ("2026-12-31T23:59:59.999", 31),  # December ends at the next year's 1 January
        ("2026-11-30T12:00:00", 30),
    ]:
        start, end = month_of(int(datetime.fromisoformat(now + "+00:00").timestamp() * 1000))
        assert (end - start) // day == days, now
        label = now[:7]
        assert month_bounds(label) == (start, end)
    assert month_of(T0) == (T0, T0 + 30 * day)  # its first millisecond is in it


def test_a_poll_on_the_period_end_counts_nothing_and_one_on_the_start_counts():
    polls = [(T0 - 2 * M, 1), (T0 - M, 1), (T0, 1), (T0 + HOUR, 0)]  # [T0, T0 + HOUR)
    (dev,) = compute(one_device(polls)).devices
    assert (dev.up_ms, dev.down_ms, dev.unknown_ms) == (120 * S, 0, HOUR - 120 * S)


def test_the_median_of_counted_gaps_is_the_median_of_the_gaps():
    import random
    import statistics

    rng = random.Random(7)
    for n in (1, 2, 3, 10, 11, 500):
        times = sorted(rng.sample(range(3_000_000), n + 1))  # every gap under an hour
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert median_spacing(times) == int(statistics.median(gaps))
        times = sorted(rng.sample(range(50 * HOUR), n + 1))  # some over: the same cap
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert cover_cap(gap_counts(times)) == min(2 * int(statistics.median(gaps)), HOUR)
    assert median_spacing([5]) == 60_000 and median_spacing([5, 5]) == 60_000  # no gap
    # gaps over an hour are counted as an hour: the cap is an hour either way
    assert cover_cap(gap_counts([0, 1000, 10 * HOUR, 30 * HOUR])) == HOUR


def test_writers_have_every_column_and_no_external_reference():
    polls = every_minute(-2, 60)
    polls[20] = (polls[20][0], 0)
    report = compute(one_device(polls))
    rows = figures_csv(report).splitlines()
    assert rows[0].split(",") == list(FIGURES_COLUMNS)
    assert rows[1].startswith("device,s1/radio,(not in the inventory),98.333333,")
    assert "outage," in periods_csv(report)
    html = render(report)
    assert not re.search(r"(?i)(src|href)\s*=|url\(|@import|https?://", html)
    assert "s1/radio" in html or "radio" in html


def test_the_availability_block_is_strict(tmp_path: Path):
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(
        "availability:\n  influxql_url: http://127.0.0.1:8086\n  refresh_seconds: 1\n"
        "  databse: pantau\n"
    )
    with pytest.raises(ConfigError) as err:
        load_collector_config(cfg)
    text = str(err.value)
    assert "collector.yaml:3: availability.refresh_seconds" in text
    assert "collector.yaml:4: availability.databse" in text
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    cfg.write_text(f"availability:\n  influxql_url: http://127.0.0.1:8086\n  token_file: {token}\n")
    loaded = load_collector_config(cfg)
    assert loaded.availability is not None
    assert loaded.availability.token is not None
    assert "s3cret" not in repr(loaded.availability)
    cfg.write_text(
        "availability:\n  influxql_url: http://127.0.0.1:8086\n  reread_hours: 0.5\n"
        "  rebuild_hours: 0\n"
    )
    with pytest.raises(ConfigError) as err:
        load_collector_config(cfg)
    assert "collector.yaml:3: availability.reread_hours" in str(err.value)
    assert "collector.yaml:4: availability.rebuild_hours" in str(err.value)


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every /query with 401, remembering the Authorization header it was sent (what
    InfluxDB 2/3 do with a wrong token; neither can be installed here)."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        body = b'{"code":"unauthorized","message":"unauthorized access"}'
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_token_is_sent_and_never_shown(caplog: pytest.LogCaptureFixture):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        client = InfluxQLClient(url, "pantau", Secret("tok-123-secret"), timeout=5)
        live = LiveAvailability(client, None, 300, clock=lambda: T0 / 1000 + 3600)
        with caplog.at_level(logging.WARNING):
            assert not live.refresh() and not live.refresh()
        assert _Refusing.seen[0] == "Token tok-123-secret"
        assert live.error_counts() == {"unauthorized": 2}
        assert live.latest() is None
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "reason=unauthorized" in lines[0]  # the second held back
        assert "tok-123" not in caplog.text
        with pytest.raises(QueryError) as err:
            client.query("SHOW DATABASES")
        assert "401" in str(err.value) and "tok-123" not in str(err.value)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
