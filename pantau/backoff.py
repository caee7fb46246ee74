"""Capped exponential backoff with full jitter, for reconnect and retry loops.

Hundreds of sites reconnect at once when a broker comes back; full jitter spreads them out.
The growth stops at the cap: the attempt counter keeps counting (for logs) but the exponent never
goes past the point where the cap is reached, so a week-long outage (hundreds of thousands of
attempts) computes the same bounded delay as the tenth attempt instead of overflowing a float.
(A dozen lines do not justify a dependency; agent and collector share this module.)
"""

from __future__ import annotations

import math
import random


class Backoff:
    def __init__(self, minimum: float = 1.0, maximum: float = 60.0, factor: float = 2.0) -> None:
        if not 0 < minimum <= maximum or factor < 1:
            raise ValueError("backoff needs 0 < minimum <= maximum and factor >= 1")
        self.minimum = minimum
        self.maximum = maximum
        self.factor = factor
        self.attempt = 0
        # the first exponent at which minimum × factor^n reaches the cap: growth stops there
        self._top = (
            0
            if factor == 1 or minimum == maximum
            else math.ceil(math.log(maximum / minimum, factor))
        )

    def next(self) -> float:
        """Seconds to wait before the next attempt: uniform in [minimum, current cap]."""
        exponent = min(self.attempt, self._top)
        cap = min(self.maximum, self.minimum * self.factor**exponent)
        self.attempt += 1
        return random.uniform(self.minimum, max(self.minimum, cap))

    def reset(self) -> None:
        self.attempt = 0
