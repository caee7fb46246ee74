"""Backoff stays bounded however long the outage: the 8.7-hour overflow must never come back."""

from __future__ import annotations

import random

import pytest

from pantau.backoff import Backoff


@pytest.mark.parametrize(
    ("minimum", "maximum", "factor"),
    [(1.0, 60.0, 2.0), (0.5, 30.0, 2.0), (0.001, 86400.0, 10.0), (2.0, 2.0, 2.0), (1, 5, 1.0)],
)
def test_ten_thousand_attempts_stay_within_bounds(minimum: float, maximum: float, factor: float):
    backoff = Backoff(minimum, maximum, factor)
    delays = [backoff.next() for _ in range(10_000)]
    assert backoff.attempt == 10_000
    assert all(minimum <= d <= maximum for d in delays)


def test_a_week_of_attempts_at_the_defaults_does_not_overflow():
    backoff = Backoff()
    backoff.attempt = 7 * 86400  # one attempt a second for a week, without iterating it
    assert 1.0 <= backoff.next() <= 60.0


def test_growth_doubles_until_the_cap_then_stays():
    random.seed(7)
    backoff = Backoff(1.0, 60.0, 2.0)
    caps = []
    for _ in range(12):
        samples = []
        for _ in range(400):  # many draws of the same attempt: their max approaches its cap
            backoff.attempt = len(caps)
            samples.append(backoff.next())
        caps.append(max(samples))
    assert caps[0] == pytest.approx(1.0)
    assert 3.5 < caps[2] <= 4.0 and 15 < caps[4] <= 16.0
    assert all(55 < c <= 60.0 for c in caps[6:])


def test_reset_starts_again_at_the_minimum():
    backoff = Backoff(1.0, 60.0)
    for _ in range(50):
        backoff.next()
    backoff.reset()
    assert backoff.next() == pytest.approx(1.0)


@pytest.mark.parametrize(("minimum", "maximum", "factor"), [(0, 1, 2), (5, 1, 2), (1, 5, 0.5)])
def test_nonsense_bounds_are_refused(minimum: float, maximum: float, factor: float):
    with pytest.raises(ValueError):
        Backoff(minimum, maximum, factor)
