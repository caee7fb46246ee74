"""The agent's run loop: one task per device on its own cadence, results into the outbox.

A device's poll is bounded by its deadline and the number of polls at once by a semaphore, so a
device that never answers only ever costs its own slot. Sinks start before sources and stop after
them: the outbox opens first, the publisher runs alongside the pollers and drains last.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from agent import __version__
from agent.config import AgentConfig
from agent.icmp import Pinger
from agent.outbox import Dropped, Outbox, OutboxError
from agent.poller import DevicePoller
from agent.publisher import Publisher
from agent.snmp import SnmpClient
from pantau.systemd import Liveness, Notifier, Supervisor, supervise
from pantau.wire import (
    Gap,
    SampleSet,
    Status,
    encode_gap,
    encode_sample_set,
    gap_topic,
    metrics_topic,
)

log = logging.getLogger("pantau.agent")


def open_outbox(cfg: AgentConfig) -> Outbox:
    """Open (and check) the durable outbox; raises OutboxError with a clear reason."""

    def gap(drop: Dropped) -> tuple[str, bytes]:
        record = Gap(
            cfg.site,
            drop.device,
            drop.first_seq,
            drop.last_seq,
            drop.count,
            int(time.time() * 1000),
        )
        return gap_topic(cfg.site, drop.device), encode_gap(record)

    return Outbox(
        cfg.outbox.path,
        max_bytes=cfg.outbox.max_bytes,
        max_age_s=cfg.outbox.max_age,
        gap_encoder=gap,
    ).open()


class Agent:
    def __init__(self, cfg: AgentConfig, outbox: Outbox) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.publisher = Publisher(cfg, outbox, self.status)
        self.last: dict[str, SampleSet] = {}
        self.fatal: OutboxError | None = None
        self.liveness = Liveness()  # systemd watchdog: each device loop's next promised step

    def status(self, outbox: Outbox, publish_latency_s: float) -> Status:
        stats = outbox.stats()
        return Status(
            v=1,
            site=self.cfg.site,
            online=True,
            ts_ms=int(time.time() * 1000),
            agent_version=__version__,
            interval_s=min(d.interval for d in self.cfg.devices),
            devices=[d.name for d in self.cfg.devices],
            outbox_pending=stats.pending,
            outbox_bytes=stats.pending_bytes,
            outbox_oldest_age_s=round(stats.oldest_age_s, 3),
            dropped_total=stats.dropped_total,
            publish_latency_s=round(publish_latency_s, 4),
            pending_from=stats.pending_from,
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "agent starting site=%s devices=%d outbox=%s pending=%d",
            self.cfg.site,
            len(self.cfg.devices),
            self.cfg.outbox.path,
            len(self.outbox),
        )
        publisher = asyncio.create_task(self.publisher.run(stop), name="publisher")
        async with SnmpClient() as client:
            limit = asyncio.Semaphore(self.cfg.concurrency)
            pinger = Pinger()
            pollers = [
                DevicePoller(self.cfg.site, d, client, self.outbox.next_seq, pinger)
                for d in self.cfg.devices
            ]
            if any(p.needs_pysnmp for p in pollers):
                await client.preload()  # pysnmp is loaded only for configs that need it
            tasks = [
                asyncio.create_task(self._device_loop(p, limit, stop), name=p.device.name)
                for p in pollers
            ]
            # systemd (Type=notify): READY once polling and the broker answered or had its
            # chance; WATCHDOG only while every device loop keeps its promises; STOPPING.
            supervisor = Supervisor(
                Notifier(), status=self._systemd_status, overdue=self.liveness.overdue
            )
            notify = asyncio.create_task(supervise(supervisor, stop, self.publisher.attempted))
            await stop.wait()
            await notify
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await publisher
        log.info(
            "agent stopped site=%s unpublished=%d (kept on disk)", self.cfg.site, len(self.outbox)
        )
        if self.fatal is not None:
            raise self.fatal

    def _systemd_status(self) -> str:
        broker = (
            "broker connected"
            if self.publisher.connected.is_set()
            else "broker unreachable, keeping sample sets in the outbox"
        )
        return (
            f"site {self.cfg.site}: polling {len(self.cfg.devices)} device(s); {broker}; "
            f"outbox {len(self.outbox)} pending"
        )

    async def _device_loop(
        self, poller: DevicePoller, limit: asyncio.Semaphore, stop: asyncio.Event
    ) -> None:
        interval = poller.device.interval
        due = time.monotonic() + random.uniform(0, interval * self.cfg.jitter)
        name = poller.device.name
        while not stop.is_set():
            delay = due - time.monotonic()
            self.liveness.expect(name, max(delay, 0.0))  # back after the sleep
            if delay > 0:
                await asyncio.sleep(delay)
            self.liveness.expect(name, None)  # waiting for a slot: its holders are watched
            async with limit:
                self.liveness.expect(name, poller.device.deadline)  # a poll ends by then
                sample_set = await poller.poll()
            self.last[poller.device.name] = sample_set
            if not sample_set.up:
                log.warning(
                    "poll failed device=%s reason=%s", poller.device.name, sample_set.reason
                )
            try:
                self.outbox.put(
                    metrics_topic(self.cfg.site, poller.device.name),
                    encode_sample_set(sample_set),
                    device=poller.device.name,
                    seq=sample_set.seq,
                    ts_ms=sample_set.ts_ms,
                )
            except OutboxError as exc:
                # Disk full or gone: polling on would lose data silently. Stop, and let
                # systemd restart us once the disk has room; what is on disk stays.
                log.error("cannot keep sample sets, stopping: %s", exc)
                self.fatal = exc
                stop.set()
                return
            due += interval
            now = time.monotonic()
            if due < now:  # overran: skip the missed slots rather than bunching polls
                due += interval * ((now - due) // interval + 1)
