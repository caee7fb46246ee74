"""The backfill token bucket: bytes per second, a one-second burst, and 0 for unlimited.

The bucket reads `time.monotonic()` of its own module; the tests give it a clock they move by
hand, so nothing here sleeps. Rates are powers of two where the arithmetic must come out exact
(binary fractions add up without rounding).

The model, as the publisher uses it: before taking a backlog item it asks `ready()` (the
balance is not negative); after taking one it `spend`s the item's size, which may put the
balance into debt; `wait_time()` is how long until the debt is repaid.
"""

from __future__ import annotations

import types

import pytest

from agent import publisher
from agent.publisher import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(publisher, "time", types.SimpleNamespace(monotonic=clock))
    return clock


@pytest.mark.parametrize("spends", [[0], [1], [10**12], [1500, 1500, 10**9]])
def test_rate_zero_is_unlimited(clock, spends):
    bucket = TokenBucket(0)
    for size in spends:
        bucket.spend(size)
        assert (bucket.ready(), bucket.wait_time()) == (True, 0.0)
    clock.advance(3600)
    assert (bucket.ready(), bucket.wait_time()) == (True, 0.0)


@pytest.mark.parametrize("rate", [1, 1000, 8000, 1 << 20])
def test_a_new_bucket_holds_one_second_of_rate(clock, rate):
    bucket = TokenBucket(rate)
    assert (bucket.ready(), bucket.wait_time()) == (True, 0.0)
    bucket.spend(rate)  # the whole burst at once: the balance is exactly zero, not in debt
    assert (bucket.ready(), bucket.wait_time()) == (True, 0.0)
    bucket.spend(1)  # one byte more is debt, repaid at `rate`
    assert bucket.ready() is False
    assert bucket.wait_time() == pytest.approx(1 / rate)


@pytest.mark.parametrize(
    ("rate", "spent", "wait"),
    [
        (1024, 1536, 0.5),  # half a second of debt beyond the burst
        (1024, 3072, 2.0),  # one item bigger than the burst still goes; the debt is 2 s
        (8192, 8192 + 2048, 0.25),
        (1, 2, 1.0),
    ],
)
def test_debt_is_repaid_at_the_rate(clock, rate, spent, wait):
    bucket = TokenBucket(rate)
    assert bucket.ready()
    bucket.spend(spent)
    assert (bucket.ready(), bucket.wait_time()) == (False, wait)
    clock.advance(wait / 2)
    assert (bucket.ready(), bucket.wait_time()) == (False, wait / 2)
    clock.advance(wait / 2)
    assert (bucket.ready(), bucket.wait_time()) == (True, 0.0)


@pytest.mark.parametrize(
    ("idle_s", "refilled"),
    [
        (0.25, 256),
        (0.5, 512),
        (1.0, 1024),  # a full second refills the whole burst...
        (2.0, 1024),  # ...and no more, however long the link was idle
        (86400.0, 1024),
    ],
)
def test_idle_time_refills_at_most_one_seconds_burst(clock, idle_s, refilled):
    bucket = TokenBucket(1024)
    bucket.spend(1024)
    clock.advance(idle_s)
    bucket.spend(refilled)
    assert (bucket.ready(), bucket.wait_time()) == (True, 0.0)  # balance exactly zero
    bucket.spend(1)
    assert bucket.ready() is False
    assert bucket.wait_time() == pytest.approx(1 / 1024)


def send_times(clock, bucket, size, until_s):
    """Send `size`-byte items as fast as the bucket allows, the publisher's way: when it is not
    ready, sleep wait_time(). Returns the send times, relative to the start."""
    start = clock.now
    times = []
    for _ in range(100_000):  # a bound, so that a bucket that never gets ready fails, not hangs
        if clock.now - start > until_s:
            return times
        if bucket.ready():
            times.append(clock.now - start)
            bucket.spend(size)
        else:
            wait = bucket.wait_time()
            assert wait > 0
            clock.advance(wait)
    raise AssertionError(f"still sending after 100000 steps: {len(times)} items sent")


def test_a_burst_then_items_at_the_rate(clock):
    bucket = TokenBucket(1024)
    times = send_times(clock, bucket, 256, until_s=2.0)
    # 1024 bytes of burst and the balance at zero still sends: 5 items at once, then one
    # every 256/1024 s as the debt of the previous one is repaid
    assert times == [0.0] * 5 + [0.25 * k for k in range(1, 9)]


@pytest.mark.parametrize("size", [64, 1000, 1024, 1536, 4096, 100_000])
@pytest.mark.parametrize("rate", [1024, 8192])
def test_over_a_minute_the_rate_plus_one_burst_goes_out(clock, rate, size):
    bucket = TokenBucket(rate)
    seconds = 60
    sent = size * len(send_times(clock, bucket, size, until_s=seconds))
    # The balance at time t is rate * (1 + t) - sent. An item goes while it is not negative,
    # so by the end at most one second's burst plus the rate, plus the last item in debt; and
    # the loop ends only when the debt outlasts the minute, i.e. sent > rate * (1 + 60).
    assert rate * (seconds + 1) < sent <= rate * (seconds + 1) + size
