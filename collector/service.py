"""Wires the collector together: intake → pipeline → InfluxDB, with state served over HTTP.

Sinks start before sources: HTTP and InfluxDB first, the MQTT subscription last; on shutdown the
subscription stops first and the pipeline flushes what it holds.

A thread that died is loud: the pipeline thread, its InfluxDB writer and the MQTT network thread
are watched; if one ends while the collector runs, /readyz fails naming it and the systemd
watchdog is no longer fed (STATUS says which), so systemd restarts the service.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from collector.acks import Acker, announce
from collector.amqp_intake import AmqpIntake
from collector.availability import live as availability
from collector.config import CollectorFile
from collector.exposition import AvailabilityCollector, SelfMetrics, alarms_app, metrics_app
from collector.http import HttpServer, make_app
from collector.intake import Inbound, Intake
from collector.maintenance.wiring import build as build_maintenance
from collector.pipeline import Pipeline, RejectedStore
from collector.rootcause import CauseHold
from collector.sink import InfluxSink
from collector.state import State
from pantau.systemd import Notifier, Supervisor

log = logging.getLogger("pantau.collector")


class Collector:
    def __init__(self, cfg: CollectorFile) -> None:
        self.cfg = cfg
        self.metrics = SelfMetrics()
        self.state = State(
            cfg.stale_after,
            silent_after=cfg.silent_after,
            decommissioned=cfg.decommissioned_sites,
            max_clock_skew=cfg.max_clock_skew,
        )
        if cfg.alarm_state_file is not None:
            self.state.events.load(cfg.alarm_state_file)  # alarms raised before a restart
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        # One MQTT broker (the default), or a RabbitMQ cluster's queues (docs/scaling.md).
        self.intake: Intake | AmqpIntake = (
            AmqpIntake(cfg.amqp, self.inbox)
            if cfg.broker == "amqp" and cfg.amqp is not None
            else Intake(cfg.mqtt, self.inbox)
        )
        if isinstance(self.intake, AmqpIntake):
            self.intake.on_acquired = self.state.acquire_sites
            self.intake.on_released = self.state.release_sites
        self.sink = InfluxSink(cfg.influx)
        # End-to-end acknowledgements to the sites (docs/delivery.md); off: agents fall back
        # to the broker's PUBACK.
        self.acker = (
            Acker(self.intake.publish, cfg.acks.interval, self.metrics.ack_sent)
            if cfg.acks.enabled
            else None
        )
        if isinstance(self.intake, Intake):  # RabbitMQ: no retained flag, agents never fall back
            intake = self.intake
            intake.on_subscribed = lambda: announce(intake.publish, cfg.acks.enabled)
        self.pipeline = Pipeline(
            acks=self.acker,
            sink=self.sink,
            state=self.state,
            metrics=self.metrics,
            ack=self.intake.ack,
            rejected=RejectedStore(cfg.rejected_file, cfg.rejected_max_bytes),
            max_message_bytes=cfg.max_message_bytes,
            batch_size=cfg.influx.batch_size,
            flush_interval=cfg.influx.flush_interval,
            retry_min=cfg.influx.retry_min,
            retry_max=cfg.influx.retry_max,
            # In a shared group another collector writes some of a device's sequence numbers:
            # only the agent's gap records can then prove a loss.
            settle_holes=cfg.mqtt.shared_group is None,
        )
        # Planned maintenance windows (docs/maintenance.md); a corrupt store refuses the start.
        self.maintenance = build_maintenance(cfg, self.sink, self.metrics)
        windows = self.maintenance.maintenance if self.maintenance else None
        # Month-to-date availability for the SLA alerts (docs/availability.md), when configured.
        self.availability = (
            availability.from_config(cfg.availability, cfg.loaded_inventory)
            if cfg.availability is not None
            else None
        )
        if self.availability is not None:
            self.metrics.registry.register(AvailabilityCollector(self.availability))
        # One memory of the dependents' causes for /metrics and the status page (rootcause.py).
        cause_hold = CauseHold(cfg.inventory_cause_hold)
        self.http = HttpServer(
            cfg.http.address,
            make_app(
                metrics_app(
                    self.metrics,
                    self.state,
                    windows,
                    inventory=cfg.loaded_inventory,
                    cause_hold=cause_hold,
                ),
                self.ready,
                self.state,
                maintenance_api=self.maintenance.api if self.maintenance else None,
                in_maintenance=windows.in_force if windows else None,
                inventory=cfg.loaded_inventory,
                alarms_app=alarms_app(self.state),
                cause_hold=cause_hold,
            ),
        )
        self._ping_cache = (0.0, False)
        self._worker: threading.Thread | None = None
        self._running = False  # every thread started, and not yet told to stop

    def dead_threads(self) -> list[str]:
        """The threads that should run and ended (an exception nobody caught)."""
        if not self._running:
            return []
        worker = self._worker
        return [
            name
            for name, dead in (
                ("pipeline", worker is not None and not worker.is_alive()),
                ("pipeline-writer", self.pipeline.writer_dead()),
                ("mqtt", not self.intake.alive()),
            )
            if dead
        ]

    def _shares(self) -> str:
        """broker: amqp: the partitions held, for /readyz and /metrics ("" for MQTT)."""
        if not isinstance(self.intake, AmqpIntake):
            return ""
        reading, waiting = self.intake.shares()
        self.metrics.partitions(reading, waiting)
        return (
            f" (partitions reading: {' '.join(map(str, reading)) or 'none'}; "
            f"waiting: {' '.join(map(str, waiting)) or 'none'})"
        )

    def ready(self) -> tuple[bool, str]:
        subscribed = self.intake.subscribed.is_set()
        self.metrics.connected(subscribed)
        shares = self._shares()
        dead = self.dead_threads()
        auth = self.pipeline.auth_failure
        influx = self.pipeline.influx_ok.is_set() or self._influx_reachable()
        if subscribed and influx and not dead and auth is None:
            return True, "ready" + shares
        why = [
            w
            for w, bad in (
                (f"thread died: {', '.join(dead)}", bool(dead)),
                ("not subscribed to the broker", not subscribed),
                ("InfluxDB API unreachable", not influx),
                (auth or "", auth is not None),
            )
            if bad
        ]
        return False, "; ".join(why) + shares

    def _influx_reachable(self) -> bool:
        at, ok = self._ping_cache
        if time.monotonic() - at > 5:
            ok = self.sink.ping()
            self._ping_cache = (time.monotonic(), ok)
        return ok

    def _systemd_status(self) -> str:
        broker = "subscribed" if self.intake.subscribed.is_set() else "not subscribed"
        influx = "writing" if self.pipeline.influx_ok.is_set() else "no write confirmed yet"
        if self.pipeline.auth_failure is not None:
            influx = self.pipeline.auth_failure
        return f"broker: {broker}; InfluxDB: {influx}; http {self.cfg.http.listen}"

    def run(self, stop: threading.Event) -> None:
        self.http.start()
        log.info("collector listening http=%s:%d", self.cfg.http.address[0], self.http.port)
        worker = threading.Thread(
            target=self.pipeline.run, args=(self.inbox, stop), name="pipeline"
        )
        self._worker = worker
        worker.start()
        acker_stop = threading.Event()
        acker: threading.Thread | None = None
        if self.acker is not None:
            acker = threading.Thread(target=self.acker.run, args=(acker_stop,), name="acks")
            acker.start()
        maintenance: threading.Thread | None = None
        if self.maintenance is not None:
            maintenance = threading.Thread(
                target=self.maintenance.maintenance.run, args=(stop,), name="maintenance"
            )
            maintenance.start()
        if self.availability is not None:
            # A daemon: a refresh waiting on a slow InfluxDB must not hold up the shutdown.
            threading.Thread(
                target=self.availability.run, args=(stop,), name="availability", daemon=True
            ).start()
        self.intake.start()
        self._running = True
        # systemd (Type=notify): READY once HTTP serves and the subscription is in place (or
        # after READY_WAIT); WATCHDOG only while this loop, the pipeline, its writer and the
        # MQTT threads live.
        supervisor = Supervisor(Notifier(), status=self._systemd_status, overdue=self.dead_threads)
        try:
            while not stop.wait(min(1.0, supervisor.period) if supervisor.is_ready else 0.1):
                self.metrics.connected(self.intake.subscribed.is_set())
                self._shares()
                supervisor.tick(self.intake.subscribed.is_set())
                self.state.events.save()  # alarm_state_file, when alarms changed
        finally:
            self._running = False
            supervisor.stopping()
            worker.join()  # the last batch written: its acknowledgements go out before the end
            self.state.events.save()
            acker_stop.set()
            if acker is not None:
                acker.join()
            self.intake.stop()
            self.http.stop()
            if maintenance is not None:
                maintenance.join()
            self.sink.close()
            log.info("collector stopped")
