"""Outbox.stats() at 200,000 pending rows while draining, and the memory an open outbox holds.

A week-long outage of a 20-device site leaves about 200,000 sample sets in the outbox; the agent
calls stats() for every heartbeat. Between calls 1,000 items are taken and acknowledged, so
every device's lowest pending number and the oldest poll time leave each round (the case that
costs most). Prints open() time, the RSS the open outbox adds, and stats() per call.
Run: .venv/bin/python bench/outbox_stats.py [TREE]   (TREE: another checkout to compare)
"""

from __future__ import annotations

import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent.parent))

from agent.outbox import Outbox

ROWS = 200_000
DEVICES = 20


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024  # type: ignore[index]


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "outbox.sqlite"
    Outbox(path, max_bytes=1 << 40, max_age_s=30 * 86400).open().close()  # the schema
    now = int(time.time() * 1000)
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO outbox (kind, device, seq, first, ts_ms, topic, payload)"
        " VALUES (0, ?, ?, ?, ?, ?, ?)",
        (
            (
                f"dev{i % DEVICES}",
                i // DEVICES + 1,
                i // DEVICES + 1,
                now - (ROWS - i) * 10,
                f"pantau/s/dev{i % DEVICES}/metrics",
                b"x" * 600,
            )
            for i in range(ROWS)
        ),
    )
    db.commit()
    db.close()
    before = rss_mib()
    t = time.perf_counter()
    box = Outbox(path, max_bytes=1 << 40, max_age_s=30 * 86400).open()
    opened = time.perf_counter() - t
    held = rss_mib() - before
    calls = []
    for _ in range(10):
        for _ in range(1000):
            item = box.take()
            assert item is not None
            box.ack(item)
        t = time.perf_counter()
        stats = box.stats()
        calls.append(time.perf_counter() - t)
    box.close()
    print(
        f"{ROWS:,} rows, {DEVICES} devices: open() {opened * 1000:.0f} ms, "
        f"RSS held by the open outbox +{held:.1f} MiB"
    )
    print("stats() after each 1,000 acks, ms: " + ", ".join(f"{c * 1000:.2f}" for c in calls))
    print(f"pending {stats.pending:,}, oldest {stats.oldest_age_s:.0f} s")


if __name__ == "__main__":
    main()
