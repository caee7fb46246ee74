"""In-process stand-ins that record what the collector reports, for tests without servers."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.exposition import SelfMetrics, StateCollector
from collector.state import State

Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class RecordingMetrics:
    """The pipeline's metrics (collector.pipeline.PipelineMetrics), recorded."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.rejections: list[str] = []
        self.failures: list[str] = []
        self.points = 0

    def received(self, kind: str) -> None:
        self.kinds.append(kind)

    def rejected(self, reason: str) -> None:
        self.rejections.append(reason)

    def pending(self, points: int) -> None:
        pass

    def write_failed(self, reason: str) -> None:
        self.failures.append(reason)

    def written(self, points: int, seconds: float) -> None:
        self.points += points


def scrape(state: State) -> Scrape:
    """/metrics of a collector holding `state`, as Prometheus reads it (the collector snapshots
    at wall-clock time): {(name, sorted labels): value}."""
    metrics = SelfMetrics()
    metrics.registry.register(StateCollector(state))
    out = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
