"""`pantau-collector report`: read a period from InfluxDB, compute, write CSV and HTML.

The period is `--month YYYY-MM` (a UTC calendar month) or `--from`/`--to` (dates or ISO 8601
times, UTC unless they say otherwise; `--to` is exclusive). The InfluxQL side is the config's
`availability:` block, else `influx:` (its URL, its bucket as the database, its token).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from collector.availability.compute import Report, compute
from collector.availability.query import InfluxQLClient, QueryError, fetch_history
from collector.availability.report_csv import figures_csv, periods_csv
from collector.availability.report_html import render
from collector.config import CollectorFile
from pantau.settings import Secret

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_bounds(text: str) -> tuple[int, int]:
    """`2026-11` → [2026-11-01T00:00Z, 2026-12-01T00:00Z) in epoch ms."""
    m = _MONTH.match(text)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"--month {text!r}: give YYYY-MM, e.g. 2026-11")
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def parse_time(text: str, what: str) -> int:
    """A date or ISO 8601 time (UTC unless it names an offset) in epoch ms."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{what} {text!r}: give a date or time, e.g. 2026-11-01 or 2026-11-01T06:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def period(month: str | None, start: str | None, end: str | None) -> tuple[int, int, str]:
    """(start ms, end ms, label for file names) from the command line's choice."""
    if month is not None:
        if start is not None or end is not None:
            raise ValueError("give --month or --from/--to, not both")
        a, b = month_bounds(month)
        return a, b, month
    if start is None or end is None:
        raise ValueError("give --month YYYY-MM, or both --from and --to")
    a, b = parse_time(start, "--from"), parse_time(end, "--to")
    if b <= a:
        raise ValueError(f"--to {end!r} is not after --from {start!r}")
    label = "{}_{}".format(
        *(datetime.fromtimestamp(t / 1000, UTC).strftime("%Y%m%dT%H%M%SZ") for t in (a, b))
    )
    return a, b, label


def client_for(cfg: CollectorFile) -> InfluxQLClient:
    if cfg.availability is not None:
        av = cfg.availability
        return InfluxQLClient(str(av.influxql_url), av.database, av.token, av.timeout)
    token = cfg.influx.token
    return InfluxQLClient(
        str(cfg.influx.url),
        cfg.influx.bucket,
        Secret(token) if token else None,
        max(cfg.influx.timeout, 60.0),
    )


@dataclass(frozen=True)
class Written:
    report: Report
    files: tuple[Path, ...]


def run_report(cfg: CollectorFile, start_ms: int, end_ms: int, label: str, out: Path) -> Written:
    """Query, compute and write `pantau-availability-<label>.csv`, `…-outages.csv`, `….html`."""
    inventory = cfg.loaded_inventory
    history = fetch_history(client_for(cfg), start_ms, end_ms, inventory)
    report = compute(history, inventory)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"pantau-availability-{label}"
    files = (
        base.with_name(base.name + ".csv"),
        base.with_name(base.name + "-outages.csv"),
        base.with_name(base.name + ".html"),
    )
    files[0].write_text(figures_csv(report))
    files[1].write_text(periods_csv(report))
    files[2].write_text(render(report))
    return Written(report, files)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month", help="a UTC calendar month, YYYY-MM (e.g. 2026-11)")
    parser.add_argument("--from", dest="start", help="start, a date or ISO 8601 time (UTC)")
    parser.add_argument("--to", dest="end", help="end (exclusive), a date or ISO 8601 time")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory for the files")


def command(cfg: CollectorFile, args: argparse.Namespace) -> int:
    """The CLI's `report`: 0 written, 2 a bad period, 1 InfluxDB did not answer."""
    try:
        start_ms, end_ms, label = period(args.month, args.start, args.end)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    try:
        written = run_report(cfg, start_ms, end_ms, label, args.out)
    except QueryError as exc:
        print(f"report: cannot read InfluxDB: {exc.detail}", file=sys.stderr)
        return 1
    r = written.report
    unknown = sum(f.unknown_ms for f in r.devices) / 1000
    print(
        f"{len(r.sites)} sites, {len(r.devices)} devices, {len(r.links)} links; "
        f"{sum(f.count for f in r.devices)} device outages, {unknown:g} s unknown device time"
    )
    for path in written.files:
        print(path)
    return 0
