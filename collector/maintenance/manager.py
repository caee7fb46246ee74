"""The windows' life: declared, silenced, written to InfluxDB, ended; one thread keeps it so.

Requests (HTTP) change the store and return at once; a reconciling thread then does what each
window still needs, and keeps trying until it is done: a silence for a window not yet over, the
silence's expiry for one ended or cancelled, and its `pantau_maintenance` point in InfluxDB
whenever it changed. Alertmanager or InfluxDB being away never refuses or loses a window: each
failure is logged (rate-limited), counted, and retried with capped, jittered backoff. What is
done is saved in the store, so a restart resumes the rest and redoes nothing. When that save
fails (a full disk), what was done is kept in memory all the same (else every round would ask
Alertmanager and InfluxDB again), counted, and the save retried each round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from collector.maintenance import store
from collector.maintenance.alertmanager import Alertmanager, SilenceFailed
from collector.maintenance.window import (
    DEFAULT_MAX_DAYS,
    BadRequest,
    Inventory,
    Window,
    line,
    parse_request,
    silence_key,
)
from pantau.backoff import Backoff
from pantau.errors import PantauError
from pantau.logs import RateLimitedLog

log = logging.getLogger("pantau.collector.maintenance")

MAX_WINDOWS = 10_000
"""Windows kept in the store; past ones go after KEEP_DAYS (InfluxDB keeps their history)."""
KEEP_DAYS = 400


class Conflict(PantauError):
    """The request is valid but cannot apply to the window as it is (HTTP 409)."""


class NotFound(PantauError):
    """No window with that id (HTTP 404)."""


class MaintenanceMetrics(Protocol):
    """Counters the windows report (collector.exposition.SelfMetrics)."""

    def silence_failed(self, reason: str) -> None: ...

    def maintenance_write_failed(self, reason: str) -> None: ...

    def maintenance_save_failed(self) -> None: ...


class Writer(Protocol):
    """The collector's InfluxDB sink (collector.sink.InfluxSink.write)."""

    def write(self, lines: list[str]) -> None: ...


class Maintenance:
    def __init__(
        self,
        path: Path,
        *,
        alertmanager: Alertmanager | None,
        writer: Writer | None,
        metrics: MaintenanceMetrics,
        inventory: Inventory | None = None,
        max_days: int = DEFAULT_MAX_DAYS,
        retry_min: float = 1.0,
        retry_max: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Loads the store: StoreError (the start is refused) when it cannot be read."""
        self.path = path
        self.alertmanager = alertmanager
        self.writer = writer
        self.metrics = metrics
        self.inventory = inventory
        self.max_days = max_days
        self.clock = clock
        self._windows = {w.id: w for w in store.load(path)}
        self._lock = threading.Lock()  # the windows and the file
        self._wake = threading.Event()
        self._am_backoff = Backoff(retry_min, retry_max)
        self._influx_backoff = Backoff(retry_min, retry_max)
        self._am_next = 0.0  # monotonic time of the next Alertmanager attempt
        self._influx_next = 0.0
        self._warn = RateLimitedLog(log, period=60.0)
        self._unsaved = False  # the windows in memory hold bookkeeping the file lacks
        self.silences_pending = 0  # windows that lack a silence (last round; 0: no Alertmanager)

    # -- requests --------------------------------------------------------------------------

    def windows(self) -> list[Window]:
        with self._lock:
            return sorted(self._windows.values(), key=lambda w: (w.start, w.id))

    def get(self, window_id: str) -> Window:
        with self._lock:
            window = self._windows.get(window_id)
        if window is None:
            raise NotFound("not_found", f"no maintenance window {window_id}")
        return window

    def in_force(self, now: float | None = None) -> list[Window]:
        """The windows active now (what the status page marks and /metrics exports)."""
        now = self.clock() if now is None else now
        return [w for w in self.windows() if w.status(now) == "active"]

    def create(self, body: object) -> Window:
        """A new window from a request body; BadRequest naming the field, Conflict when full."""
        now = self.clock()
        with self._lock:
            window = parse_request(
                body,
                now=now,
                taken=set(self._windows),
                inventory=self.inventory,
                max_days=self.max_days,
            )
            if len(self._windows) >= MAX_WINDOWS:
                raise Conflict("full", f"{MAX_WINDOWS} windows stored: end or wait for some")
            self._save({**self._windows, window.id: window})
        log.info(
            "maintenance window declared id=%s %s start=%d end=%d reason=%r",
            window.id,
            window.target(),
            window.start,
            window.end,
            window.reason,
        )
        self._wake.set()
        return window

    def end(self, window_id: str) -> Window:
        """End a running window now, or cancel one not begun; Conflict when already over."""
        now = int(self.clock())
        with self._lock:
            window = self._windows.get(window_id)
            if window is None:
                raise NotFound("not_found", f"no maintenance window {window_id}")
            status = window.status(now)
            if status in ("over", "cancelled"):
                raise Conflict(status, f"window {window_id} is already {status}")
            if now <= window.start:  # not begun (or within its first second): nothing done
                changed = window.model_copy(update={"state": "cancelled", "ended": now})
            else:
                # The time before now was maintenance and stays excluded from availability.
                changed = window.model_copy(update={"end": now, "ended": now})
            self._save({**self._windows, window_id: changed})
        log.info("maintenance window %s id=%s", changed.status(now), window_id)
        self._wake.set()
        return changed

    def _save(self, windows: dict[str, Window]) -> None:
        """Write the file first, then adopt: a window the disk refused was never promised.
        Called with the lock held; OSError (counted) when the disk refuses."""
        try:
            store.save(self.path, windows.values())
        except OSError:
            self.metrics.maintenance_save_failed()
            raise
        self._windows = windows
        self._unsaved = False

    def _keep(self, windows: dict[str, Window]) -> None:
        """Save the collector's bookkeeping; when the disk refuses, adopt it anyway (it
        records what Alertmanager and InfluxDB already hold) and retry next round."""
        try:
            self._save(windows)
        except OSError as exc:
            self._windows = windows
            self._unsaved = True
            self._warn.warning("save", "cannot save maintenance file %s: %s", self.path, exc)

    def _update(
        self, window_id: str, *, silence: tuple[str, str] | None = None, **changes: object
    ) -> None:
        """Change the window as it is now (an operator may have ended it since the round
        began); `silence`: (key, id) added to its silences."""
        with self._lock:
            current = self._windows.get(window_id)
            if current is None:
                return
            if silence is not None:
                changes["silences"] = {**current.silences, silence[0]: silence[1]}
            updated = current.model_copy(update=changes)
            self._keep({**self._windows, window_id: updated})

    # -- the reconciling thread ------------------------------------------------------------

    def run(self, stop: threading.Event, period: float = 1.0) -> None:
        """Reconcile at once on every change, else every `period` s, until `stop`."""
        next_round = 0.0
        while not stop.is_set():
            if self._wake.is_set() or time.monotonic() >= next_round:
                self._wake.clear()
                try:
                    self.reconcile()
                except Exception:  # a bug must not end the windows' upkeep: loud, then go on
                    log.exception("maintenance reconcile failed")
                next_round = time.monotonic() + period
            self._wake.wait(min(period, 0.25))

    def reconcile(self) -> None:
        """One round: silences, expiries, InfluxDB points, pruning."""
        now = self.clock()
        if self._unsaved:
            with self._lock:
                if self._unsaved:
                    self._keep(dict(self._windows))
        windows = self.windows()
        self._silences(windows, now)
        self._influx(windows)
        self._prune(now)

    def _silences(self, windows: list[Window], now: float) -> None:
        am = self.alertmanager
        need = [
            w
            for w in windows
            if w.state == "planned" and w.end > now and w.ended is None and w.silences_missing()
        ]
        expire = [
            w for w in windows if w.silences and not w.silence_expired and w.ended is not None
        ]
        # Without an Alertmanager no silence is ever placed: nothing is pending (else a rule
        # on this gauge would fire for every window).
        self.silences_pending = len(need) if am is not None else 0
        if am is None or not (need or expire) or time.monotonic() < self._am_next:
            return
        failed: SilenceFailed | None = None
        jobs = [(w, True) for w in need] + [(w, False) for w in expire]
        for w, create in jobs:
            try:
                if create:
                    for group in w.silences_missing():
                        key = silence_key(group)
                        silence = am.create(w, group, now)
                        self._update(w.id, silence=(key, silence))
                        log.info("silence created id=%s silence=%s %s", w.id, silence, key)
                    self.silences_pending -= 1
                else:
                    for silence in w.silences.values():
                        am.expire(silence)
                    self._update(w.id, silence_expired=True)
                    log.info(
                        "silences expired id=%s silences=%s", w.id, ",".join(w.silences.values())
                    )
            except SilenceFailed as exc:
                self.metrics.silence_failed(exc.reason)
                failed = exc
                self._warn.warning(
                    f"alertmanager-{exc.reason}",
                    "alertmanager silence failed id=%s reason=%s detail=%s",
                    w.id,
                    exc.reason,
                    exc.detail,
                )
                # Refused for this window alone (4xx): try the others; else Alertmanager is
                # away or broken for all of them: back off first.
                if not (exc.reason.startswith("http_4") and exc.reason != "http_429"):
                    break
        if failed is None:
            self._am_backoff.reset()
        else:
            self._am_next = time.monotonic() + self._am_backoff.next()

    def _influx(self, windows: list[Window]) -> None:
        todo = [w for w in windows if w.written != w.fingerprint()]
        if self.writer is None or not todo or time.monotonic() < self._influx_next:
            return
        try:
            self.writer.write([line(w) for w in todo])
        except PantauError as exc:  # collector.sink.WriteFailed
            self.metrics.maintenance_write_failed(exc.reason)
            delay = self._influx_backoff.next()
            self._influx_next = time.monotonic() + delay
            self._warn.warning(
                "influx",
                "maintenance write failed reason=%s detail=%s retry_in=%.1fs windows=%d",
                exc.reason,
                exc.detail,
                delay,
                len(todo),
            )
            return
        self._influx_backoff.reset()
        for w in todo:
            with self._lock:
                current = self._windows.get(w.id)
            if current is not None and current.fingerprint() == w.fingerprint():
                self._update(w.id, written=w.fingerprint())

    def _prune(self, now: float) -> None:
        cutoff = now - KEEP_DAYS * 86400
        with self._lock:
            old = [
                w.id
                for w in self._windows.values()
                if w.end < cutoff
                and w.written == w.fingerprint()
                and (not w.silences or w.silence_expired or w.ended is None)
            ]
            if old:
                self._keep({k: v for k, v in self._windows.items() if k not in old})


__all__ = ["BadRequest", "Conflict", "Maintenance", "NotFound"]
