"""Prometheus exposition: a custom collector that builds metric families from current state.

Per-device series come and go with the devices, so they are built on every scrape from `State`
rather than kept in global metric objects that never forget. Fixed self-metrics live in
`SelfMetrics`, on a registry of its own (never the global one). The only module of the
collector that imports prometheus_client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from collector.state import State
from pantau.wire import Field, Kind

PREFIX = "pantau"
WsgiApp = Callable[..., Iterable[bytes]]

# `_created` series double every self-metric and no alert or panel here uses them.
disable_created_metrics()


class SelfMetrics:
    """The collector's fixed self-metrics; the pipeline reports to it through the methods of
    collector.pipeline.PipelineMetrics, so the write path never imports prometheus_client."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry if registry is not None else CollectorRegistry()
        self._received = Counter(
            "pantau_collector_messages_received",
            "MQTT messages received",
            ["type"],
            registry=registry,
        )
        self._rejected = Counter(
            "pantau_collector_messages_rejected",
            "Messages rejected and set aside, by reason",
            ["reason"],
            registry=registry,
        )
        self._points = Counter(
            "pantau_collector_points_written",
            "Points accepted by the InfluxDB write API",
            registry=registry,
        )
        self._write_errors = Counter(
            "pantau_collector_write_errors",
            "Failed InfluxDB write attempts, by reason",
            ["reason"],
            registry=registry,
        )
        self._write_latency = Histogram(
            "pantau_collector_write_duration_seconds",
            "Duration of successful InfluxDB writes",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self._pending = Gauge(
            "pantau_collector_pending_points",
            "Points waiting to be written (not yet acknowledged to the broker)",
            registry=registry,
        )
        self._connected = Gauge(
            "pantau_collector_broker_connected",
            "1 while connected and subscribed to the broker",
            registry=registry,
        )

    def received(self, kind: str) -> None:
        self._received.labels(kind).inc()

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def pending(self, points: int) -> None:
        self._pending.set(points)

    def write_failed(self, reason: str) -> None:
        self._write_errors.labels(reason).inc()

    def written(self, points: int, seconds: float) -> None:
        self._write_latency.observe(seconds)
        self._points.inc(points)

    def connected(self, subscribed: bool) -> None:
        self._connected.set(1 if subscribed else 0)


def metrics_app(metrics: SelfMetrics, state: State) -> WsgiApp:
    """The WSGI app serving /metrics: the self-metrics and, on every scrape, current state."""
    metrics.registry.register(StateCollector(state))
    return make_wsgi_app(metrics.registry)  # type: ignore[no-any-return]


class StateCollector(Collector):
    """Yields site, device and polled-value families from `State` on every scrape."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        sites = self.state.snapshot()
        online = GaugeMetricFamily(
            f"{PREFIX}_site_online",
            "1 if the site's agent is connected (birth), 0 after its will",
            labels=["site"],
        )
        heard = GaugeMetricFamily(
            f"{PREFIX}_site_last_heard_timestamp_seconds",
            "When anything was last received from the site",
            labels=["site"],
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_device_up",
            "1 if the device's last poll succeeded",
            labels=["site", "device"],
        )
        last = GaugeMetricFamily(
            f"{PREFIX}_device_last_poll_timestamp_seconds",
            "Start of the device's newest poll",
            labels=["site", "device"],
        )
        duration = GaugeMetricFamily(
            f"{PREFIX}_device_poll_duration_seconds",
            "How long the device's newest poll took",
            labels=["site", "device"],
        )
        anomalies = CounterMetricFamily(
            f"{PREFIX}_device_snmp_errors",
            "SNMP anomalies and failures seen by the agent, by kind",
            labels=["site", "device", "kind"],
        )
        reboots = CounterMetricFamily(
            f"{PREFIX}_device_reboots",
            "Reboots the agent detected (sysUpTime going backwards, "
            "checked against snmpEngineTime at the 497-day wrap)",
            labels=["site", "device"],
        )
        down_reason = InfoMetricFamily(
            f"{PREFIX}_device_down_reason",
            "Why the device's newest poll failed",
            labels=["site", "device"],
        )
        lost = CounterMetricFamily(
            f"{PREFIX}_samples_lost",
            "Sample sets that will never arrive: dropped by the agent "
            "over its outbox budget, or holes the agent confirmed",
            labels=["site", "device"],
        )
        dupes = CounterMetricFamily(
            f"{PREFIX}_samples_duplicate",
            "Sample sets received again (written idempotently)",
            labels=["site", "device"],
        )
        received = CounterMetricFamily(
            f"{PREFIX}_samples_received",
            "Distinct sample sets written, by device",
            labels=["site", "device"],
        )
        health = {
            "outbox_pending": GaugeMetricFamily(
                f"{PREFIX}_agent_outbox_pending",
                "Items waiting in the agent's outbox",
                labels=["site"],
            ),
            "outbox_bytes": GaugeMetricFamily(
                f"{PREFIX}_agent_outbox_bytes",
                "Bytes waiting in the agent's outbox",
                labels=["site"],
            ),
            "outbox_oldest_age_s": GaugeMetricFamily(
                f"{PREFIX}_agent_outbox_oldest_age_seconds",
                "Age of the oldest sample set waiting in the agent's outbox",
                labels=["site"],
            ),
            "publish_latency_s": GaugeMetricFamily(
                f"{PREFIX}_agent_publish_latency_seconds",
                "Time from publish to PUBACK at the agent (last message)",
                labels=["site"],
            ),
            "heartbeat_ts": GaugeMetricFamily(
                f"{PREFIX}_agent_heartbeat_timestamp_seconds",
                "When the agent sent its last birth/heartbeat",
                labels=["site"],
            ),
        }
        dropped = CounterMetricFamily(
            f"{PREFIX}_agent_outbox_dropped",
            "Sample sets the agent dropped over its outbox budget",
            labels=["site"],
        )
        values: dict[tuple[str, Kind], Metric] = {}
        for site_name, site in sorted(sites.items()):
            online.add_metric([site_name], 1.0 if site.online else 0.0)
            heard.add_metric([site_name], site.heard)
            st = site.status
            if st is not None and st.online:
                for key, family in health.items():
                    value = st.ts_ms / 1000 if key == "heartbeat_ts" else getattr(st, key)
                    family.add_metric([site_name], float(value))
                dropped.add_metric([site_name], float(st.dropped_total))
            for dev_name, tracker in sorted(site.sequences.items()):
                lost.add_metric([site_name, dev_name], tracker.lost)
                dupes.add_metric([site_name, dev_name], tracker.duplicates)
                received.add_metric([site_name, dev_name], tracker.received)
            for dev_name, dev in sorted(site.devices.items()):
                ss = dev.last
                key = [site_name, dev_name]
                up.add_metric(key, 1.0 if ss.up else 0.0)
                last.add_metric(key, ss.ts_ms / 1000)
                duration.add_metric(key, ss.duration_ms / 1000)
                reboots.add_metric(key, ss.reboots)
                for kind, count in sorted(ss.errors.items()):
                    anomalies.add_metric([*key, kind], count)
                if not ss.up:
                    down_reason.add_metric(key, {"reason": ss.reason})
                for group in ss.groups:
                    self._add_group(
                        values, site_name, dev_name, group.measurement, group.tags, group.fields
                    )
        yield from (
            online,
            heard,
            up,
            last,
            duration,
            anomalies,
            reboots,
            down_reason,
            lost,
            dupes,
            received,
            dropped,
            *health.values(),
        )
        yield from values.values()

    @staticmethod
    def _add_group(
        values: dict[tuple[str, Kind], Metric],
        site: str,
        device: str,
        measurement: str,
        tags: dict[str, str],
        fields: list[Field],
    ) -> None:
        names = ["site", "device", *tags]
        labels = [site, device, *tags.values()]
        info: dict[str, str] = {}
        for f in fields:
            if f.kind is Kind.INFO:
                info[f.name] = str(f.value)
                continue
            name = f"{PREFIX}_{measurement}_{f.name}"
            family = values.get((name, f.kind))
            if family is None:
                if f.kind is Kind.COUNTER:
                    family = CounterMetricFamily(
                        name, f"{measurement} {f.name} (counter)", labels=None
                    )
                else:
                    family = GaugeMetricFamily(name, f"{measurement} {f.name}", labels=None)
                values[(name, f.kind)] = family
            family.samples.append(_sample(family, names, labels, float(f.value)))
        if info:
            name = f"{PREFIX}_{measurement}"
            family = values.get((name, Kind.INFO))
            if family is None:
                family = InfoMetricFamily(name, f"{measurement} text values", labels=None)
                values[(name, Kind.INFO)] = family
            merged = dict(zip(names, labels, strict=True))
            for k, v in info.items():
                merged.setdefault(k, v)
            family.samples.append(
                _sample(family, list(merged), list(merged.values()), 1.0, suffix="_info")
            )


def _sample(
    family: Metric, names: list[str], labels: list[str], value: float, suffix: str | None = None
) -> Sample:
    if suffix is None:
        suffix = "_total" if family.type == "counter" else ""
    return Sample(family.name + suffix, dict(zip(names, labels, strict=True)), value)
