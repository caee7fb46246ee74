"""What a monthly availability report costs: reading a month of polls over InfluxQL and computing.

Starts InfluxDB 1.6 (Debian's `influxdb`) on 127.0.0.1 in a temporary directory, loads a month
of 60 s polls for `--devices` devices (one in 50 polls failed, a lost poll now and then), then
times `fetch_history` (the report's queries) and `compute` (the rules), medians of `--runs`.
Baseline in the same run: InfluxDB counting the same polls server-side (`count("up")`), the
least any reader of every poll could cost.

Then the month-to-date refresh (collector/availability/live.py) near the month's end:
a cold one (after a start or the daily rebuild: the month read a day at a time) and a warm
one five minutes later (the open part only: `reread_hours`, 24 by default, and what is not
closed yet), with the rows each read and the peak of memory it allocated (tracemalloc, in a
separate untimed run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector.availability.compute import compute  # noqa: E402
from collector.availability.live import LiveAvailability  # noqa: E402
from collector.availability.query import InfluxQLClient, fetch_history  # noqa: E402
from devstack.influxql import InfluxQL  # noqa: E402

T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
MONTH_MS = 30 * 86_400_000


def lines(devices: int) -> list[str]:
    out = []
    for d in range(devices):
        site, device = f"site-{d // 4}", f"dev-{d % 4}"
        for k in range(-60, MONTH_MS // 60_000):
            if (k * 7 + d) % 997 == 0:
                continue  # lost
            up = 0 if (k + d) % 50 == 0 else 1
            out.append(
                f"pantau_poll,device={device},site={site} up={up}i,duration_seconds=0.4,"
                f'seq={k + 61}i,rebooted=0i,reason="" {T0 + k * 60_000 + d * 1000}'
            )
    return out


class Counting(InfluxQLClient):
    """Counts the rows InfluxDB answered."""

    rows = 0

    def query(self, influxql: str) -> list[dict[str, Any]]:
        series = super().query(influxql)
        self.rows += sum(len(s["values"]) for s in series)
        return series


def peak_mib(work: Callable[[], object]) -> float:
    """The most memory `work` had allocated at once (MiB)."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def refreshes(url: str) -> tuple[float, int, float, int, float, float]:
    """(cold s, cold rows, warm s, warm rows, cold peak MiB, warm peak MiB)."""
    clock = [(T0 + MONTH_MS) / 1000 - 900]  # 15 min before the month ends
    client = Counting(url, "pantau")
    live = LiveAvailability(client, None, 300, clock=lambda: clock[0])
    t = time.perf_counter()
    assert live.refresh()
    cold = time.perf_counter() - t
    cold_rows, client.rows = client.rows, 0
    clock[0] += 300
    t = time.perf_counter()
    assert live.refresh()
    warm = time.perf_counter() - t
    warm_rows = client.rows
    traced = LiveAvailability(client, None, 300, clock=lambda: clock[0])
    cold_mib = peak_mib(traced.refresh)
    clock[0] += 300
    warm_mib = peak_mib(traced.refresh)
    assert traced.latest() is not None and traced.latest().now_ms == clock[0] * 1000  # type: ignore[union-attr]
    return cold, cold_rows, warm, warm_rows, cold_mib, warm_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, InfluxQL(Path(tmp) / "influxd") as server:
        data = lines(args.devices)
        for i in range(0, len(data), 50_000):
            server.write(data[i : i + 50_000])
        client = InfluxQLClient(server.url, "pantau")
        fetch, comp, base = [], [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            server.query(
                f'SELECT count("up") FROM "pantau_poll" WHERE time >= {T0}ms AND '
                f'time < {T0 + MONTH_MS}ms GROUP BY "site", "device"'
            )
            base.append(time.perf_counter() - t)
            t = time.perf_counter()
            history = fetch_history(client, T0, T0 + MONTH_MS)
            fetch.append(time.perf_counter() - t)
            t = time.perf_counter()
            report = compute(history)
            comp.append(time.perf_counter() - t)
        polls = sum(len(p) for p in history.polls.values())
        assert len(report.devices) == args.devices
        f, c, b = (statistics.median(x) for x in (fetch, comp, base))
        print(f"{args.devices} devices, {polls} polls in a month (60 s), medians of {args.runs}:")
        print(f"  fetch_history  {f:6.2f} s   ({polls / f:,.0f} polls/s)")
        print(f"  compute        {c:6.2f} s   ({polls / c:,.0f} polls/s)")
        print(
            f"  baseline: InfluxDB count() server-side {b:6.2f} s; report / baseline "
            f"{(f + c) / b:,.1f}x"
        )
        full_mib = peak_mib(lambda: compute(fetch_history(client, T0, T0 + MONTH_MS)))
        print(f"  report path (read all, compute): peak {full_mib:,.1f} MiB allocated")
        cold, cold_rows, warm, warm_rows, cold_mib, warm_mib = refreshes(server.url)
        print("month to date 15 and 10 minutes before the month ends (live.py):")
        print(f"  cold refresh   {cold:6.2f} s   {cold_rows:,} rows read, peak {cold_mib:,.1f} MiB")
        print(f"  warm refresh   {warm:6.2f} s   {warm_rows:,} rows read, peak {warm_mib:,.1f} MiB")


if __name__ == "__main__":
    main()
