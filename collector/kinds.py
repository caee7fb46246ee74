"""One kind per (measurement, field): the first kind the collector sees for a field is the one.

InfluxDB refuses a whole batch when a field's type changes (gauges are floats, counters unsigned,
states integers, info strings: see collector/lineproto.py), and Prometheus drops a whole scrape
with two metric families of one name. So a sample set whose field has another kind than the one
first seen for that measurement and field is rejected, alone, with reason `kind_conflict`.

The registry is bounded: at most `max_fields` pairs; measurements not seen for `forget_after`
seconds are forgotten. When it is full of live pairs, a sample set bringing new ones is rejected
with reason `field_limit`.
"""

from __future__ import annotations

from collector.validate import Rejected
from pantau.wire import Kind, SampleSet

MAX_FIELDS = 100_000
"""(measurement, field) pairs remembered by default; profiles use a few hundred."""

_EMPTY: dict[str, Kind] = {}


class Kinds:
    def __init__(self, max_fields: int = MAX_FIELDS, forget_after: float = 7 * 86400.0) -> None:
        self.max_fields = max_fields
        self.forget_after = forget_after
        self._kinds: dict[str, dict[str, Kind]] = {}
        self._seen: dict[str, float] = {}  # measurement → wall clock it was last seen
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def kind(self, measurement: str, field: str) -> Kind | None:
        return self._kinds.get(measurement, _EMPTY).get(field)

    def check(self, ss: SampleSet, now: float) -> None:
        """Rejected('kind_conflict') if a field of `ss` has another kind than the first one seen
        (in an earlier sample set or earlier in this one); otherwise remember its new fields.
        Nothing is remembered from a rejected sample set."""
        kinds = self._kinds
        new: dict[tuple[str, str], Kind] | None = None
        for group in ss.groups:
            m = group.measurement
            known = kinds.get(m, _EMPTY)
            for f in group.fields:
                first = known.get(f.name)
                if first is f.kind:
                    continue
                if first is None:
                    if new is None:
                        new = {}
                    first = new.setdefault((m, f.name), f.kind)
                    if first is f.kind:
                        continue
                raise Rejected(
                    "kind_conflict",
                    f"{m}.{f.name} is {Kind(f.kind).name.lower()},"
                    f" first seen as {Kind(first).name.lower()}",
                )
        if new:
            if self._count + len(new) > self.max_fields:
                self.prune(now)
                if self._count + len(new) > self.max_fields:
                    raise Rejected(
                        "field_limit", f"{self.max_fields} measurement fields known already"
                    )
            for (m, name), kind in new.items():
                kinds.setdefault(m, {})[name] = kind
            self._count += len(new)
        seen = self._seen
        for group in ss.groups:
            seen[group.measurement] = now

    def prune(self, now: float) -> None:
        """Forget the measurements not seen for `forget_after` seconds."""
        for m in [m for m, t in self._seen.items() if now - t > self.forget_after]:
            del self._seen[m]
            self._count -= len(self._kinds.pop(m, _EMPTY))
