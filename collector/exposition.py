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

from collector.availability.live import LiveAvailability
from collector.events import (
    TRAP_DROP_REASONS,
    TRAP_RECEIVER_KINDS,
    EventsSnapshot,
    EventState,
)
from collector.inventory import Inventory
from collector.maintenance.manager import Maintenance
from collector.names import DeviceNames
from collector.rootcause import CauseHold
from collector.state import UNKNOWN, State
from collector.topology import Family
from collector.topology import build as build_topology
from collector.topology import families as topology_families
from pantau.wire import Field, Kind

PREFIX = "pantau"
WsgiApp = Callable[..., Iterable[bytes]]

# `_created` series double every self-metric and no alert or panel here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client: no annotations


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
        self._partitions = Gauge(
            "pantau_collector_partition_reading",
            "broker: amqp: 1 for a partition this collector reads now (its active consumer), "
            "0 for one it is subscribed to and waits on (another collector reads it)",
            ["partition"],
            registry=registry,
        )
        # Not per site: a global labelled series would outlive a decommissioned site (per-site
        # state, pantau_agent_confirm_end_to_end{site}, comes from State on each scrape).
        self._acks = Counter(
            "pantau_collector_acks_sent",
            "Acknowledgements of stored sample sets sent to sites (pantau/<site>/ack)",
            registry=registry,
        )
        self._silence_failures = Counter(
            "pantau_collector_maintenance_silence_failures",
            "Failed Alertmanager calls for maintenance silences (retried), by reason",
            ["reason"],
            registry=registry,
        )
        self._maintenance_write_failures = Counter(
            "pantau_collector_maintenance_write_failures",
            "Failed InfluxDB writes of maintenance windows (retried), by reason",
            ["reason"],
            registry=registry,
        )
        self._maintenance_save_failures = Counter(
            "pantau_collector_maintenance_save_failures",
            "Failed saves of the maintenance file (disk full or read-only; retried)",
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

    def partitions(self, reading: Iterable[int], waiting: Iterable[int]) -> None:
        """broker: amqp: which partitions this collector holds (collector/amqp_intake.py)."""
        self._partitions.clear()
        for p in reading:
            self._partitions.labels(str(p)).set(1)
        for p in waiting:
            self._partitions.labels(str(p)).set(0)

    def ack_sent(self, site: str) -> None:
        self._acks.inc()

    def silence_failed(self, reason: str) -> None:
        self._silence_failures.labels(reason).inc()

    def maintenance_write_failed(self, reason: str) -> None:
        self._maintenance_write_failures.labels(reason).inc()

    def maintenance_save_failed(self) -> None:
        self._maintenance_save_failures.inc()


def metrics_app(
    metrics: SelfMetrics,
    state: State,
    maintenance: Maintenance | None = None,
    inventory: Inventory | None = None,
    cause_hold: CauseHold | None = None,
) -> WsgiApp:
    """The WSGI app serving /metrics: the self-metrics and, on every scrape, current state.
    `cause_hold`: the collector's one CauseHold, shared with the status page."""
    if maintenance is not None:
        metrics.registry.register(MaintenanceCollector(maintenance))
    taken = {name for family in metrics.registry.collect() for name in exposed_names(family)}
    metrics.registry.register(
        StateCollector(state, reserved=taken, inventory=inventory, cause_hold=cause_hold)
    )
    return make_wsgi_app(metrics.registry)


def exposed_names(family: Metric) -> set[str]:
    """Every name a family occupies in the text format and in OpenMetrics: its own, the one of
    its HELP/TYPE lines and those of its samples. Two families sharing one make Prometheus
    drop the whole scrape."""
    names = {family.name, *(s.name for s in family.samples)}
    if family.type == "counter":
        names.update((f"{family.name}_total", f"{family.name}_created"))
    elif family.type == "info":
        names.add(f"{family.name}_info")
    return names


CONFLICTS = f"{PREFIX}_collector_metric_families_conflicting"
SITES_REFUSED = f"{PREFIX}_collector_state_sites_refused"


class StateCollector(Collector):
    """Yields site, device and polled-value families from `State` on every scrape.

    No two families it yields share a name, nor with `reserved` (the names of the registry's
    other metrics): a polled-value family whose name is taken (two measurement/field pairs
    spelling the same name with different kinds, or a measurement named like a fixed family)
    is left out, and counted in pantau_collector_metric_families_conflicting.
    """

    def __init__(
        self,
        state: State,
        reserved: Iterable[str] = (),
        inventory: Inventory | None = None,
        cause_hold: CauseHold | None = None,
    ) -> None:
        self.state = state
        self.reserved = frozenset(reserved)
        self.inventory = inventory  # sites and links (collector/topology.py); None: none
        self.cause_hold = cause_hold  # dependents' causes kept after recovery (rootcause.py)

    def collect(self) -> Iterator[Metric]:
        taken = set(self.reserved)
        taken |= {CONFLICTS, SITES_REFUSED, f"{SITES_REFUSED}_total", f"{SITES_REFUSED}_created"}
        conflicting = 0
        for family in self._families():
            names = exposed_names(family)
            if not names.isdisjoint(taken):
                conflicting += 1
                continue
            taken |= names
            yield family
        yield CounterMetricFamily(
            SITES_REFUSED,
            "Messages of sites over the collector's limit of sites, left out of current state",
            value=self.state.sites_cut,
        )
        yield GaugeMetricFamily(
            CONFLICTS,
            "Metric families left out of this scrape: their name was taken by another",
            value=conflicting,
        )

    def _families(self) -> Iterator[Metric]:
        sites = self.state.snapshot()
        online = GaugeMetricFamily(
            f"{PREFIX}_site_online",
            "1 while the site's agent is connected (birth, heartbeats), 0 after its Last Will "
            "or clean stop; a silent site keeps 1 and says silent in offline_reason_info",
            labels=["site"],
        )
        offline_reason = InfoMetricFamily(
            f"{PREFIX}_site_offline_reason",
            "Why the site is dark: stopped (clean stop), connection_lost (Last Will), silent "
            "(nothing received for silent_after while online); absent while it is not",
            labels=["site"],
        )
        offline_since = GaugeMetricFamily(
            f"{PREFIX}_site_offline_since_timestamp_seconds",
            "Since when the site is dark (absent while it is not)",
            labels=["site"],
        )
        device_state = GaugeMetricFamily(
            f"{PREFIX}_device_state",
            "1 for the device's state: up, down, or unknown (its site is dark, or it was not "
            "heard from for stale_after); one series per device",
            labels=["site", "device", "state"],
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
            "unconfirmed": GaugeMetricFamily(
                f"{PREFIX}_agent_outbox_unconfirmed",
                "Sample sets the agent published and keeps until a collector confirms them "
                "stored (end-to-end confirmation)",
                labels=["site"],
            ),
            "heartbeat_ts": GaugeMetricFamily(
                f"{PREFIX}_agent_heartbeat_timestamp_seconds",
                "When the agent sent its last birth/heartbeat",
                labels=["site"],
            ),
        }
        confirm = GaugeMetricFamily(
            f"{PREFIX}_agent_confirm_end_to_end",
            "1 when the site's agent keeps sample sets until a collector confirms them stored "
            "(pantau/<site>/ack), 0 when the broker's PUBACK is delivery (broker.confirm off, "
            "or auto without acknowledgements, or an agent older than acknowledgements)",
            labels=["site"],
        )
        dropped = CounterMetricFamily(
            f"{PREFIX}_agent_outbox_dropped",
            "Sample sets the agent dropped over its outbox budget",
            labels=["site"],
        )
        forgotten = CounterMetricFamily(
            f"{PREFIX}_agent_outbox_forgotten",
            "Sample sets the agent published but its outbox budget removed before a collector "
            "confirmed them (perhaps stored: not counted as dropped)",
            labels=["site"],
        )
        unrouted = CounterMetricFamily(
            f"{PREFIX}_agent_outbox_unrouted",
            "Items the broker answered with PUBACK 16 'no matching subscribers' (no collector "
            "session there: thrown away by the broker, kept in the outbox and sent again), "
            "since the agent started",
            labels=["site"],
        )
        receivers: dict[str, dict[str, int]] = {}  # site → its trap receiver's counters
        future = CounterMetricFamily(
            f"{PREFIX}_site_future_samples",
            "Sample sets dated further ahead of the collector's clock than max_clock_skew: "
            "written, but not trusted for current state",
            labels=["site"],
        )
        skew = GaugeMetricFamily(
            f"{PREFIX}_site_clock_skew_seconds",
            "How far ahead of the collector's clock the site's newest sample set was dated "
            "(0 when not ahead)",
            labels=["site"],
        )
        truncated = CounterMetricFamily(
            f"{PREFIX}_site_state_truncated",
            "What the collector's bounds on per-site state cut off: devices over the limit, "
            "error kinds over the limit, holes given up, gap records claiming implausibly many",
            labels=["site", "what"],
        )
        values: dict[tuple[str, Kind], Metric] = {}
        helps: dict[tuple[str, Kind], str | None] = {}  # the text all its devices agree on
        for site_name, site in sorted(sites.items()):
            online.add_metric([site_name], 1.0 if site.online else 0.0)
            heard.add_metric([site_name], site.heard)
            if site.offline_reason:
                offline_reason.add_metric([site_name], {"reason": site.offline_reason})
                offline_since.add_metric([site_name], site.offline_since)
            future.add_metric([site_name], site.future_samples)
            skew.add_metric([site_name], site.clock_skew)
            for what, count in sorted(site.truncated.items()):
                truncated.add_metric([site_name, what], count)
            # The agent's health from its last heartbeat stays while the site is dark: how old
            # it is, and the backlog waiting there, are what the NOC needs then.
            st = site.status
            if st is not None and not st.online:
                st = site.last_online
            if st is not None:
                for attr, family in health.items():
                    value = st.ts_ms / 1000 if attr == "heartbeat_ts" else getattr(st, attr)
                    family.add_metric([site_name], float(value))
                dropped.add_metric([site_name], float(st.dropped_total))
                forgotten.add_metric([site_name], float(st.forgotten_total))
                unrouted.add_metric([site_name], float(st.unrouted_total))
                confirm.add_metric([site_name], 1.0 if st.confirm == "end-to-end" else 0.0)
                if st.traps:
                    receivers[site_name] = st.traps
            for dev_name, tracker in sorted(site.sequences.items()):
                lost.add_metric([site_name, dev_name], tracker.lost)
                dupes.add_metric([site_name, dev_name], tracker.duplicates)
                received.add_metric([site_name, dev_name], tracker.received)
            for dev_name, dev in sorted(site.devices.items()):
                ss = dev.last
                key = [site_name, dev_name]
                device_state.add_metric([*key, dev.state], 1.0)
                last.add_metric(key, ss.ts_ms / 1000)
                if dev.state == UNKNOWN:
                    continue  # its last poll is not current state: no reading, no up/down
                up.add_metric(key, 1.0 if ss.up else 0.0)
                duration.add_metric(key, ss.duration_ms / 1000)
                reboots.add_metric(key, ss.reboots)
                for kind, count in sorted(dev.errors.items()):
                    anomalies.add_metric([*key, kind], count)
                if not ss.up:
                    down_reason.add_metric(key, {"reason": ss.reason})
                for group in ss.groups:
                    self._add_group(
                        values,
                        site_name,
                        dev_name,
                        group.measurement,
                        group.tags,
                        group.fields,
                        dev.names,
                        helps,
                    )
        for family_key, text in helps.items():
            if text:
                values[family_key].documentation = text
        yield from (
            online,
            offline_reason,
            offline_since,
            heard,
            device_state,
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
            forgotten,
            unrouted,
            confirm,
            *health.values(),
            future,
            skew,
            truncated,
        )
        yield from _receiver_families(receivers)
        # Sites, links and root cause (collector/topology.py), before the polled values: a
        # fixed family wins a name conflict.
        topo = build_topology(self.inventory, sites, self.cause_hold)
        yield from _gauges(topology_families(topo))
        yield from values.values()
        events: EventState | None = getattr(self.state, "events", None)  # stand-ins may lack it
        if events is not None:
            yield from _event_families(events.snapshot())

    @staticmethod
    def _add_group(
        values: dict[tuple[str, Kind], Metric],
        site: str,
        device: str,
        measurement: str,
        tags: dict[str, str],
        fields: list[Field],
        profile_names: DeviceNames | None = None,
        helps: dict[tuple[str, Kind], str | None] | None = None,
    ) -> None:
        """`profile_names`: the device's profile names (collector/names.py); `helps` collects, per
        family, the help text every device bringing it gives (None once two differ, or one
        gives none). The caller makes that the HELP line, else it stays "<measurement>
        <field>": one site's agent must not set the HELP line of every site's family."""
        names = ["site", "device", *tags]
        labels = [site, device, *tags.values()]
        info: dict[str, str] = {}
        for f in fields:
            if f.kind is Kind.INFO:
                info[f.name] = str(f.value)
                continue
            name = f"{PREFIX}_{measurement}_{f.name}"
            key = (name, f.kind)
            family = values.get(key)
            text = (
                profile_names.help_text(measurement, f.name) if profile_names is not None else None
            )
            if family is None:
                if f.kind is Kind.COUNTER:
                    family = CounterMetricFamily(
                        name, f"{measurement} {f.name} (counter)", labels=None
                    )
                else:
                    family = GaugeMetricFamily(name, f"{measurement} {f.name}", labels=None)
                values[key] = family
                if helps is not None:
                    helps[key] = text
            elif helps is not None and helps.get(key) != text:
                helps[key] = None
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


def _alarm_family(events: EventsSnapshot) -> Metric:
    """pantau_device_alarm: on /metrics with everything else, and alone on /metrics/alarms."""
    alarm = GaugeMetricFamily(
        f"{PREFIX}_device_alarm",
        "1 while the alarm a trap raised (e.g. linkDown:ifIndex=3) is not cleared by its "
        "clearing trap",
        labels=["site", "device", "alarm", "severity"],
    )
    for (site, device, name), severity in sorted(events.alarms.items()):
        alarm.add_metric([site, device, name, severity], 1)
    return alarm


class AlarmsCollector(Collector):
    """Only the alarms traps raised, for /metrics/alarms.

    A trap is in the collector within a fraction of a second, but an alert on it waits for the
    next scrape and the next rule evaluation: up to 30 s at the 15 s that suit the full
    /metrics (every site's every reading). This page is a few lines however big the NOC, so
    Prometheus can scrape it every few seconds (deploy/prometheus/prometheus.yml, job
    pantau-alarms) and the pantau-traps group can be evaluated as often (docs/traps.md)."""

    def __init__(self, events: EventState) -> None:
        self.events = events

    def collect(self) -> Iterator[Metric]:
        yield _alarm_family(self.events.snapshot())


def alarms_app(state: State) -> WsgiApp | None:
    """The WSGI app serving /metrics/alarms, or None for a state without event tracking."""
    events: EventState | None = getattr(state, "events", None)
    if events is None:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AlarmsCollector(events))
    return make_wsgi_app(registry)


def _event_families(events: EventsSnapshot) -> Iterator[Metric]:
    """Traps and informs (collector.events): counts by trap, and the alarms raised now."""
    traps = CounterMetricFamily(
        f"{PREFIX}_device_traps",
        "Traps and informs received from the device, by trap name (its OID when unnamed)",
        labels=["site", "device", "trap"],
    )
    for (site, device, trap), n in sorted(events.traps.items()):
        traps.add_metric([site, device, trap], n)
    alarm = _alarm_family(events)
    suppressed = CounterMetricFamily(
        f"{PREFIX}_device_traps_suppressed",
        "Traps of the device the agent dropped over its rate limit (the agent's running count)",
        labels=["site", "device"],
    )
    for (site, device), n in sorted(events.suppressed.items()):
        suppressed.add_metric([site, device], n)
    malformed = CounterMetricFamily(
        f"{PREFIX}_device_traps_malformed",
        "Datagrams from the device's address the agent could not read as a trap",
        labels=["site", "device"],
    )
    for (site, device), n in sorted(events.malformed.items()):
        malformed.add_metric([site, device], n)
    duplicates = CounterMetricFamily(
        f"{PREFIX}_collector_events_duplicate",
        "Events received again (same device and sequence number), counted once",
        value=events.duplicates,
    )
    lost = CounterMetricFamily(
        f"{PREFIX}_device_events_lost",
        "Events (traps) the agent dropped over its outbox budget, from its event gap records",
        labels=["site", "device"],
    )
    for (site, device), n in sorted(events.lost.items()):
        lost.add_metric([site, device], n)
    save_errors = CounterMetricFamily(
        f"{PREFIX}_collector_alarm_state_save_errors",
        "Failed writes of alarm_state_file (retried each second; the error is logged)",
        value=events.save_errors,
    )
    renumbered = CounterMetricFamily(
        f"{PREFIX}_device_events_renumbered",
        "Events that showed a device's event numbering restarted (its agent's outbox "
        "recreated): its newer events count, not the old numbers (logged)",
        labels=["site"],
    )
    for site, n in sorted(events.renumbered.items()):
        renumbered.add_metric([site], n)
    yield from (traps, alarm, suppressed, malformed, duplicates, lost, save_errors, renumbered)


def _receiver_families(receivers: dict[str, dict[str, int]]) -> Iterator[Metric]:
    """The agents' trap receiver counters, from each site's newest heartbeat (Status.traps):
    the traps no event tells of (unknown senders, floods, bad keys). Counter names this
    collector does not know (a newer agent's) are left out; known ones absent count 0."""
    received = CounterMetricFamily(
        f"{PREFIX}_agent_traps_received",
        "Datagrams the site agent's trap receiver received (since the agent started)",
        labels=["site"],
    )
    stored = CounterMetricFamily(
        f"{PREFIX}_agent_traps_stored",
        "Traps and informs the site agent stored as events in its outbox",
        labels=["site"],
    )
    dropped = CounterMetricFamily(
        f"{PREFIX}_agent_traps_dropped",
        "Traps the site agent's receiver dropped, by reason (unknown_source, suppressed, "
        "auth_failure, malformed, ...)",
        labels=["site", "reason"],
    )
    other = CounterMetricFamily(
        f"{PREFIX}_agent_traps_receiver",
        "Other counts of the site agent's trap receiver (informs_acknowledged, ack_failed, "
        "polls_skipped, engine_discovery, socket_errors)",
        labels=["site", "kind"],
    )
    for site, counters in sorted(receivers.items()):
        received.add_metric([site], counters.get("received", 0))
        stored.add_metric([site], counters.get("stored", 0))
        for reason in TRAP_DROP_REASONS:
            dropped.add_metric([site, reason], counters.get(reason, 0))
        for kind in TRAP_RECEIVER_KINDS:
            other.add_metric([site, kind], counters.get(kind, 0))
    yield from (received, stored, dropped, other)


def _gauges(families: Iterable[Family]) -> Iterator[Metric]:
    """Plain families (collector/topology.py) as prometheus_client gauge families."""
    for fam in families:
        gauge = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.labels))
        for values, value in fam.samples:
            gauge.add_metric(list(values), value)
        yield gauge


def _sample(
    family: Metric, names: list[str], labels: list[str], value: float, suffix: str | None = None
) -> Sample:
    if suffix is None:
        suffix = "_total" if family.type == "counter" else ""
    return Sample(family.name + suffix, dict(zip(names, labels, strict=True)), value)


class MaintenanceCollector(Collector):
    """Maintenance windows in force (collector/maintenance/), built on every scrape so a window
    leaves /metrics the moment it ends."""

    def __init__(self, maintenance: Maintenance) -> None:
        self.maintenance = maintenance

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            f"{PREFIX}_maintenance_active",
            "1 while a planned maintenance window is in force (absent otherwise); "
            "site, device, link are empty where the window's scope has none",
            labels=["id", "scope", "site", "device", "link", "reason"],
        )
        for w in self.maintenance.in_force():
            active.add_metric(
                [w.id, w.scope, w.site or "", w.device or "", w.link or "", w.reason], 1.0
            )
        pending = GaugeMetricFamily(
            f"{PREFIX}_collector_maintenance_silences_pending",
            "Maintenance windows not yet over whose Alertmanager silence is not in place yet",
            value=self.maintenance.silences_pending,
        )
        yield from (active, pending)


class AvailabilityCollector(Collector):
    """Month-to-date availability (collector/availability/live.py, docs/availability.md) from
    the last good refresh; nothing but the error counter before the first one."""

    def __init__(self, live: LiveAvailability) -> None:
        self.live = live

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            f"{PREFIX}_availability_refresh_errors",
            "Month-to-date availability refreshes that failed (InfluxDB unreachable, refused, "
            "an InfluxQL error, internal_error), by reason",
            labels=["reason"],
        )
        for reason, n in sorted(self.live.error_counts().items()):
            errors.add_metric([reason], n)
        yield errors
        mtd = self.live.latest()
        if mtd is None:
            return
        labels = ["scope", "name"]
        ratio = GaugeMetricFamily(
            f"{PREFIX}_availability_month_ratio",
            "This UTC month so far: up / (up + down), unknown time and maintenance left out "
            "(absent while nothing is known)",
            labels=labels,
        )
        families = {
            "down": GaugeMetricFamily(
                f"{PREFIX}_availability_month_down_seconds",
                "This UTC month so far: seconds down (maintenance excluded)",
                labels=labels,
            ),
            "unknown": GaugeMetricFamily(
                f"{PREFIX}_availability_month_unknown_seconds",
                "This UTC month so far: seconds with no reading and no backfill",
                labels=labels,
            ),
            "maintenance": GaugeMetricFamily(
                f"{PREFIX}_availability_month_maintenance_seconds",
                "This UTC month so far: seconds in planned maintenance",
                labels=labels,
            ),
        }
        for f in mtd.report.all():
            key = [f.scope, f.name]
            if f.ratio is not None:
                ratio.add_metric(key, f.ratio)
            families["down"].add_metric(key, f.down_ms / 1000)
            families["unknown"].add_metric(key, f.unknown_ms / 1000)
            families["maintenance"].add_metric(key, f.maintenance_ms / 1000)
        yield ratio
        yield from families.values()
        yield GaugeMetricFamily(
            f"{PREFIX}_availability_month_length_seconds",
            "Length of the current UTC calendar month",
            value=(mtd.month_end_ms - mtd.month_start_ms) / 1000,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_availability_month_elapsed_seconds",
            "Seconds of the current UTC month the month-to-date figures cover",
            value=(mtd.now_ms - mtd.month_start_ms) / 1000,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_availability_refreshed_timestamp_seconds",
            "When the month-to-date figures were last computed (unix seconds)",
            value=mtd.refreshed_at,
        )
