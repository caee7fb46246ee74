"""Telling systemd how the service is doing: READY, WATCHDOG, STATUS and STOPPING.

The sd_notify protocol (sd_notify(3), "NOTES"): newline-separated VAR=VALUE assignments sent as
one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET ("@name" is the abstract namespace).
A dozen lines, so no dependency. Outside systemd (no NOTIFY_SOCKET) every call does nothing.

A watchdog ping must mean "this service is doing its job", not merely "the process exists", so
pings are gated: `Liveness` tracks what each loop promised to do next and by when, and
`Supervisor` pings only while no loop is overdue and the event loop itself keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("pantau.systemd")

READY_WAIT = 10.0
"""Seconds to wait for the first broker connection before READY=1 is sent anyway.

A site whose uplink is down at boot must still start: it polls into the durable outbox and
sends everything once the link is back. So READY means "configured, state open, polling, and
the broker either answered or had its chance"; STATUS= says which."""

STATUS_EVERY = 10.0
"""Seconds between STATUS= updates when systemd's watchdog is off."""


class Notifier:
    """Sends sd_notify messages; harmless no-ops when not started by systemd with Type=notify."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        elif address and not address.startswith("/"):
            address = ""  # vsock and other transports (systemd >= 254) are not used here
        self.address = address
        self.watchdog_s = 0.0
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._sock: socket.socket | None = None
        self._failed = False
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *assignments: str) -> bool:
        """Send one datagram; never raises (a lost message is logged once, then ignored)."""
        if not self.address:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._failed:
                log.warning(
                    "cannot notify systemd socket=%s error=%s",
                    self.address.replace("\0", "@"),
                    exc.strerror or exc,
                )
                self._failed = True
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *self._status_line(status))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """STATUS=text, sent only when it changed."""
        lines = self._status_line(text)
        return self.send(*lines) if lines else False

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", *self._status_line(status))

    def _status_line(self, text: str) -> list[str]:
        text = " ".join(text.split())  # one line: a newline would start another assignment
        if not text or text == self._last_status:
            return []
        self._last_status = text
        return [f"STATUS={text}"]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Liveness:
    """What each watched loop promised to do next, and by when.

    A loop calls `expect(name, within)` whenever it enters a phase with a known bound: "asleep
    until the next poll is due" (within = the delay) or "polling" (within = the deadline). It is
    overdue once that bound plus `grace` has passed without a new promise. `expect(name, None)`
    means "waiting on others" (e.g. for a slot held by other loops, which are watched
    themselves): never overdue. `forget(name)` stops watching a loop that ended.
    """

    def __init__(self, grace: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self.clock = clock
        self._due: dict[str, float | None] = {}

    def expect(self, name: str, within: float | None) -> None:
        self._due[name] = None if within is None else self.clock() + within

    def forget(self, name: str) -> None:
        self._due.pop(name, None)

    def overdue(self) -> list[str]:
        now = self.clock()
        return sorted(
            name for name, due in self._due.items() if due is not None and now > due + self.grace
        )


class Supervisor:
    """READY=1 once started (or after `ready_wait`), then WATCHDOG=1 only while nothing is
    overdue, STATUS= as it changes, STOPPING=1 at the end. Call `tick()` from the loop it vouches
    for, at least every `period` seconds: if that loop stalls, the pings stop with it."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        status: Callable[[], str],
        overdue: Callable[[], list[str]],
        ready_wait: float = READY_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.status = status
        self.overdue = overdue
        self.clock = clock
        self.ready_by = clock() + ready_wait
        self.is_ready = False
        self._stuck: list[str] = []

    @property
    def period(self) -> float:
        """Seconds between ticks once ready: half the watchdog period (as systemd advises)."""
        return self.notifier.watchdog_s / 2 if self.notifier.watchdog_s else STATUS_EVERY

    def tick(self, started: bool) -> None:
        if not self.notifier.enabled:
            return
        if not self.is_ready:
            if not started and self.clock() < self.ready_by:
                return
            self.is_ready = True
            self.notifier.ready(self.status())
            watchdog = f"{self.notifier.watchdog_s:g}s" if self.notifier.watchdog_s else "off"
            log.info("told systemd: ready status=%r watchdog=%s", self.status(), watchdog)
        stuck = self.overdue()
        if stuck:
            if stuck != self._stuck:
                log.error(
                    "no progress, withholding the watchdog ping so that systemd restarts "
                    "the service: overdue=%s",
                    ",".join(stuck),
                )
            self.notifier.status(f"stuck: no progress from {', '.join(stuck)}")
        else:
            if self.notifier.watchdog_s:
                self.notifier.watchdog()
            self.notifier.status(self.status())
        self._stuck = stuck

    def stopping(self) -> None:
        if self.notifier.enabled:
            self.notifier.stopping()


async def supervise(supervisor: Supervisor, stop: asyncio.Event, started: asyncio.Event) -> None:
    """Run a Supervisor on the asyncio loop until `stop` is set, then say STOPPING=1."""
    if not supervisor.notifier.enabled:
        return
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            supervisor.tick(started.is_set())
            waits: set[asyncio.Future[Any]] = {stopping}
            if not supervisor.is_ready:
                waits.add(asyncio.ensure_future(started.wait()))
                timeout = max(0.0, supervisor.ready_by - supervisor.clock())
            else:
                timeout = supervisor.period
            done, pending = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending - {stopping}:
                task.cancel()
    finally:
        stopping.cancel()
        supervisor.stopping()
