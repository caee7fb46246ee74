"""The agent's run loop: one task per device on its own cadence, results into the outbox.

A device's poll is bounded by its deadline and the number of polls at once by a semaphore, so a
device that never answers only ever costs its own slot. Sinks start before sources and stop after
them: the outbox opens first, the publisher runs alongside the pollers and drains last.

Supervision: the device loops, the publisher, its watch and the systemd heartbeat run in one
asyncio.TaskGroup. A poll that raises is data (up = False, reason `internal_error`, traceback
logged) and its loop goes on; any task that ends with an exception is logged and stops the whole
agent with AgentFailed (non-zero exit: systemd restarts it), never a silent half-running agent.
The publisher is watched too: connected, with something to send and nothing acknowledged for
`broker.stall_timeout` seconds, it is overdue and the watchdog is no longer fed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

from agent import __version__
from agent.config import AgentConfig
from agent.icmp import Pinger
from agent.limits import encode_within
from agent.names import names_payload
from agent.outbox import Dropped, Outbox, OutboxError
from agent.poller import DevicePoller
from agent.publisher import Publisher
from agent.snmp import SnmpClient
from agent.traps.receiver import TrapReceiver, is_event_key
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

PUBLISHER = "publisher"  # its name in Liveness (and so in the watchdog's "overdue" list)


class AgentFailed(RuntimeError):
    """A task the agent cannot do without ended: the agent stops rather than run on half."""


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return out


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
        resend_after=cfg.outbox.resend_after,
        resend_max=cfg.outbox.resend_max,
    ).open()


class Agent:
    def __init__(self, cfg: AgentConfig, outbox: Outbox) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.publisher = Publisher(cfg, outbox, self.status, names=self.names)
        self.pollers: list[DevicePoller] = []  # once polling started: their plans name fields
        self.fatal: OutboxError | None = None
        self.liveness = Liveness()  # systemd watchdog: each device loop's next promised step
        self.poll_requests: dict[str, asyncio.Event] = {}  # device → a trap asks for a poll
        self.traps: TrapReceiver | None = None
        self._names: tuple[object, bytes] | None = None

    def names(self) -> tuple[object, bytes] | None:
        """(each device's profiles, the names message), None before polling starts. The
        payload is built only when the profiles changed (agent/names.py). When the message no
        longer fits (names_payload gives None, logged), the payload is empty: published
        retained, it deletes the broker's retained copy and withdraws the names at the NOC,
        which would otherwise keep showing the old ones (maybe another vendor's numbering)."""
        if not self.pollers:
            return None
        key = tuple((p.device.name, p.plan.profiles) for p in self.pollers)
        if self._names is None or self._names[0] != key:
            chosen = []
            for p in self.pollers:
                known = {x.name: x for x in (*p.device.profiles, *p.device.candidates)}
                chosen.append((p.device.name, [known[n] for n in p.plan.profiles if n in known]))
            self._names = (key, names_payload(chosen) or b"")
        return self._names

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
            # a device's events are a series of their own (agent.traps): not its sample sets
            pending_from={k: v for k, v in stats.pending_from.items() if not is_event_key(k)},
            confirm=self.publisher.confirm_mode,
            unconfirmed=stats.unconfirmed,
            forgotten_total=stats.forgotten_total,
            unrouted_total=outbox.unrouted,
            # the receiver's drops (unknown_source, auth_failure, ...) that no event carries
            traps=dict(self.traps.counters) if self.traps is not None else {},
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and publish until `stop` is set. Raises OutboxError when sample sets can no
        longer be kept, AgentFailed when a task ended with an exception (already logged)."""
        log.info(
            "agent starting site=%s devices=%d outbox=%s pending=%d",
            self.cfg.site,
            len(self.cfg.devices),
            self.cfg.outbox.path,
            len(self.outbox),
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                self._start(tasks, PUBLISHER, self._run_publisher(stop))
                self._start(tasks, "publisher-watch", self._watch_publisher(stop))
                if self.cfg.traps is not None:
                    self.traps = TrapReceiver(
                        self.cfg.traps,
                        self.cfg.site,
                        self.cfg.devices,
                        self.outbox,
                        self.poll_now,
                        state_dir=self.cfg.outbox.path.parent,  # snmpEngineBoots beside the outbox
                    )
                    self._start(tasks, "traps", self.traps.run(stop))
                await self._poll_until(stop, tasks)
        except BaseExceptionGroup as group:
            stop.set()
            errors = _leaves(group)
            if not all(isinstance(e, Exception) for e in errors):
                raise  # KeyboardInterrupt, SystemExit: not ours to translate
            log.error(
                "agent stopping on a failed task (systemd restarts it; what is unpublished "
                "stays on disk) site=%s unpublished=%d errors=%s",
                self.cfg.site,
                len(self.outbox),
                ",".join(type(e).__name__ for e in errors),
            )
            if len(errors) == 1 and isinstance(errors[0], OutboxError):
                raise errors[0] from None
            raise AgentFailed("; ".join(f"{type(e).__name__}: {e}" for e in errors)) from errors[0]
        log.info(
            "agent stopped site=%s unpublished=%d (kept on disk)", self.cfg.site, len(self.outbox)
        )
        if self.fatal is not None:
            raise self.fatal

    def _start(
        self, tasks: asyncio.TaskGroup, name: str, coro: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        """A task in the group whose exception is logged (with its traceback) as it happens."""

        async def logged() -> None:
            try:
                await coro
            except Exception:
                log.error("task failed, stopping the agent task=%s", name, exc_info=True)
                raise

        return tasks.create_task(logged(), name=name)

    async def _poll_until(self, stop: asyncio.Event, tasks: asyncio.TaskGroup) -> None:
        async with SnmpClient() as client:
            limit = asyncio.Semaphore(self.cfg.concurrency)
            pinger = Pinger()
            pollers = [
                DevicePoller(self.cfg.site, d, client, self.outbox.next_seq, pinger)
                for d in self.cfg.devices
            ]
            if any(p.needs_pysnmp for p in pollers):
                await client.preload()  # pysnmp is loaded only for configs that need it
            self.pollers = pollers
            self.publisher.names_changed.set()
            loops = [
                self._start(tasks, p.device.name, self._device_loop(p, limit, stop))
                for p in pollers
            ]
            # systemd (Type=notify): READY once polling and the broker answered or had its
            # chance; WATCHDOG only while every device loop and the publisher keep their
            # promises; STOPPING.
            supervisor = Supervisor(Notifier(), status=self._systemd_status, overdue=self._overdue)
            self._start(tasks, "heartbeat", supervise(supervisor, stop, self.publisher.attempted))
            try:
                await stop.wait()
            finally:
                # Sources stop first (the publisher drains after them), and before the SNMP
                # client closes under them.
                for task in loops:
                    task.cancel()
                if loops:
                    await asyncio.wait(loops)

    def _overdue(self) -> list[str]:
        return self.liveness.overdue()  # looked up at each tick: tests swap self.liveness

    async def _run_publisher(self, stop: asyncio.Event) -> None:
        await self.publisher.run(stop)
        if not stop.is_set():
            raise AgentFailed("the publisher ended while the agent was running")

    async def _watch_publisher(self, stop: asyncio.Event) -> None:
        """The publisher's promise to Liveness: while the broker is connected (and takes what
        is published) and the outbox holds something, an acknowledgement within
        `broker.stall_timeout` seconds. The time counts across reconnections (a broker that
        takes the connection but acknowledges nothing makes the publisher reconnect every
        few seconds) and starts again with each acknowledgement or an empty outbox.
        Disconnected or idle, the publisher promises nothing."""
        bound = self.cfg.broker.stall_timeout
        step = min(1.0, bound / 4)
        # PUBACKs "no matching subscribers" count too: the broker answers, the item waits
        answered = self.publisher.sent + self.outbox.unrouted
        stalled = 0.0  # seconds connected, with something to send, and nothing acknowledged
        busy = False
        at = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                progress = self.publisher.sent + self.outbox.unrouted
                if progress != answered or self.outbox.idle():
                    stalled = 0.0
                elif busy:
                    stalled += now - at
                answered, at = progress, now
                # Items waiting for the collector's confirmation are not the broker's to take.
                busy = self.publisher.ready and not self.outbox.idle()
                self.liveness.expect(PUBLISHER, bound - stalled if busy else None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), step)
        finally:
            self.liveness.forget(PUBLISHER)

    async def _poll(self, poller: DevicePoller) -> tuple[SampleSet, bytes]:
        """One poll and its payload. A poll (or an encoding) that raises gives a sample set
        with up = False, reason internal_error: a bug must not end the device's loop."""
        sample_set: SampleSet | None = None
        try:
            sample_set = await poller.poll()
            return encode_within(sample_set, poller.message_capped)
        except Exception as exc:
            failed = poller.internal_error(exc, sample_set)
            return failed, encode_sample_set(failed)

    def _systemd_status(self) -> str:
        broker = self.publisher.describe()
        return (
            f"site {self.cfg.site}: polling {len(self.cfg.devices)} device(s); {broker}; "
            f"outbox {len(self.outbox)} pending"
        )

    def poll_now(self, device: str) -> None:
        """Ask a device's loop for a poll at once (agent.traps rate-limits the asking)."""
        self.poll_requests.setdefault(device, asyncio.Event()).set()

    async def _nap(self, device: str, delay: float) -> bool:
        """Sleep `delay` seconds; True when a poll was asked for before that."""
        request = self.poll_requests.setdefault(device, asyncio.Event())
        try:
            await asyncio.wait_for(request.wait(), delay)
        except TimeoutError:
            return False
        request.clear()
        return True

    async def _device_loop(
        self, poller: DevicePoller, limit: asyncio.Semaphore, stop: asyncio.Event
    ) -> None:
        interval = poller.device.interval
        due = time.monotonic() + random.uniform(0, interval * self.cfg.jitter)
        name = poller.device.name
        while not stop.is_set():
            delay = due - time.monotonic()
            self.liveness.expect(name, max(delay, 0.0))  # back after the sleep
            triggered = False
            if delay > 0:
                triggered = await self._nap(name, delay)
            self.liveness.expect(name, None)  # waiting for a slot: its holders are watched
            plan = poller.plan
            async with limit:
                self.liveness.expect(name, poller.device.deadline)  # a poll ends by then
                sample_set, payload = await self._poll(poller)
            if poller.plan is not plan:  # detection chose other profiles: their names differ
                self.publisher.names_changed.set()
            if not sample_set.up:
                log.warning(
                    "poll failed device=%s reason=%s", poller.device.name, sample_set.reason
                )
            try:
                self.outbox.put(
                    metrics_topic(self.cfg.site, poller.device.name),
                    payload,
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
            # Not kept while the loop sleeps: the sample set (every group of the poll) is on
            # disk now, and nothing here reads it again.
            del sample_set, payload
            if triggered:
                continue  # a poll a trap asked for: the regular schedule stays as it was
            due += interval
            now = time.monotonic()
            if due < now:  # overran: skip the missed slots rather than bunching polls
                due += interval * ((now - due) // interval + 1)
