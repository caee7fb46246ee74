"""The agent's run loop: one task per device on its own cadence, results into the outbox.

A device's poll is bounded by its deadline and the number of polls at once by a semaphore, so a
device that never answers only ever costs its own slot. Sinks start before sources and stop after
them: the publisher runs first and drains last.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from agent import __version__
from agent.config import AgentConfig
from agent.outbox import MemoryOutbox, Sequences
from agent.poller import DevicePoller
from agent.publisher import Publisher
from agent.snmp import SnmpClient
from agent.wire import SampleSet, Status, encode_sample_set, metrics_topic

log = logging.getLogger("pantau.agent")


class Agent:
    def __init__(self, cfg: AgentConfig, outbox: MemoryOutbox | None = None) -> None:
        self.cfg = cfg
        self.outbox = outbox or MemoryOutbox()
        self.sequences = Sequences()
        self.publisher = Publisher(cfg, self.outbox, self.birth)
        self.last: dict[str, SampleSet] = {}

    def birth(self) -> Status:
        return Status(
            v=1,
            site=self.cfg.site,
            online=True,
            ts_ms=int(time.time() * 1000),
            agent_version=__version__,
            interval_s=min(d.interval for d in self.cfg.devices),
            devices=[d.name for d in self.cfg.devices],
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info("agent starting site=%s devices=%d", self.cfg.site, len(self.cfg.devices))
        publisher = asyncio.create_task(self.publisher.run(stop), name="publisher")
        async with SnmpClient() as client:
            limit = asyncio.Semaphore(self.cfg.concurrency)
            pollers = [DevicePoller(self.cfg.site, d, client, self.sequences.next)
                       for d in self.cfg.devices]
            tasks = [asyncio.create_task(self._device_loop(p, limit, stop), name=p.device.name)
                     for p in pollers]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await publisher
        log.info("agent stopped site=%s unpublished=%d", self.cfg.site, len(self.outbox))

    async def _device_loop(self, poller: DevicePoller, limit: asyncio.Semaphore,
                           stop: asyncio.Event) -> None:
        interval = poller.device.interval
        due = time.monotonic() + random.uniform(0, interval * self.cfg.jitter)
        while not stop.is_set():
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with limit:
                sample_set = await poller.poll()
            self.last[poller.device.name] = sample_set
            if not sample_set.up:
                log.warning("poll failed device=%s reason=%s", poller.device.name,
                            sample_set.reason)
            await self.outbox.put(metrics_topic(self.cfg.site, poller.device.name),
                                  encode_sample_set(sample_set), device=poller.device.name,
                                  seq=sample_set.seq)
            due += interval
            now = time.monotonic()
            if due < now:  # overran: skip the missed slots rather than bunching polls
                due += interval * ((now - due) // interval + 1)
