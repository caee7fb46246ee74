"""Capped exponential backoff with full jitter, for reconnect and retry loops.

Hundreds of sites reconnect at once when a broker comes back; full jitter spreads them out.
(A dozen lines do not justify a dependency on the agent; the collector shares this module.)
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, minimum: float = 1.0, maximum: float = 60.0, factor: float = 2.0) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.factor = factor
        self.attempt = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt: uniform in [minimum, current cap]."""
        cap = min(self.maximum, self.minimum * self.factor**self.attempt)
        self.attempt += 1
        return random.uniform(self.minimum, max(self.minimum, cap))

    def reset(self) -> None:
        self.attempt = 0
