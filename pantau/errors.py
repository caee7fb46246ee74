"""One exception tree for pantau: every failure carries a short `reason` and a human `detail`.

The reason is a stable label that ends up in metrics (`…_total{reason}`), sample sets and
rejected-message files; the detail is for the log line and never holds a secret. Catching
PantauError at a boundary (a poll, a message, a write) catches every failure pantau knows how to
name; anything else there is a bug, logged with its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class PantauError(Exception):
    """A failure pantau can name: `reason` for counting, `detail` for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ConfigError(PantauError):
    """A config that cannot be used; `errors` holds one readable line per problem. Here, not
    in pantau.settings, so that catching it loads no validation library (agent/runtime.py)."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        super().__init__("config", "\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)
