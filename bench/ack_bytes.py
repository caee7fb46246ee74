"""Bytes per minute that end-to-end acknowledgements add to a site's downlink (issue: "Delivery
confirmed by the NOC"; target: a few hundred bytes per minute at 20 devices polled every 60 s).

Drives the collector's real Acker (collector/acks.py) and the real ack codec through simulated
minutes: each device's poll is written to InfluxDB `--write-delay` s after its poll time, and
the Acker flushes every `--interval` s (the collector's `acks.interval`). Counts, per
acknowledgement, the MQTT 5 PUBLISH at QoS 1 as it crosses the downlink: fixed header (2),
topic (2 + length), packet id (2), property length (1) and the payload; the agent's PUBACK (4
bytes) goes up. TCP/IP headers (about 40 bytes per segment, often shared with other traffic)
are not counted, as in bench/wire_bytes.py.

Two schedules: polls spread evenly over the minute (the agent jitters each device's start, the
worst case: most flushes carry one or two devices) and all polls at the same second (the best).
No servers needed. Run: .venv/bin/python bench/ack_bytes.py [--devices 20] [--poll 60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector.acks import Acker  # noqa: E402
from pantau.wire import ack_topic  # noqa: E402

SITE = "vsat-07"


def publish_bytes(topic: str, payload: bytes) -> int:
    return 2 + 2 + len(topic.encode()) + 2 + 1 + len(payload)


def simulate(
    devices: int, poll: float, interval: float, delay: float, spread: bool, minutes: int
) -> tuple[float, float, float]:
    """(downlink bytes per minute, acknowledgements per minute, payload bytes per sample set)."""
    sizes: list[int] = []
    acker = Acker(lambda topic, payload: sizes.append(len(payload)) is None, interval)
    names = [f"dev-{i:02}-{'radio' if i % 2 else 'switch'}" for i in range(devices)]
    seq0 = 100_000  # 70 days of 60 s polls: 4-byte msgpack integers (the long-run size)
    events: list[tuple[float, str, int]] = []
    for i, name in enumerate(names):
        offset = (poll * i / devices) if spread else 0.0
        t, n = offset, 0
        while t < minutes * 60:
            events.append((t + delay, name, seq0 + n))
            t += poll
            n += 1
    events.sort()
    e = 0
    tick = interval
    written = 0
    while tick <= minutes * 60:
        while e < len(events) and events[e][0] <= tick:
            acker.stored(SITE, events[e][1], events[e][2])
            e += 1
            written += 1
        acker.flush()
        tick += interval
    topic = ack_topic(SITE)
    total = sum(publish_bytes(topic, b"x" * s) for s in sizes)
    return total / minutes, len(sizes) / minutes, sum(sizes) / max(written, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--poll", type=float, default=60.0, help="poll interval, s")
    ap.add_argument("--interval", type=float, default=10.0, help="collector acks.interval, s")
    ap.add_argument("--write-delay", type=float, default=1.5, help="poll → InfluxDB, s")
    ap.add_argument("--minutes", type=int, default=60)
    args = ap.parse_args()
    print(
        f"{args.devices} devices polled every {args.poll:g} s, acks.interval {args.interval:g} s,"
        f" site {SITE!r}, device names ~15 characters"
    )
    for spread in (True, False):
        per_min, msgs, per_set = simulate(
            args.devices, args.poll, args.interval, args.write_delay, spread, args.minutes
        )
        label = "polls spread over the minute" if spread else "polls at the same second"
        print(
            f"  {label:30}: {per_min:6.0f} bytes/min downlink, {msgs:4.1f} acks/min, "
            f"{per_set:4.1f} payload bytes per acknowledged sample set"
        )


if __name__ == "__main__":
    main()
