"""The timelines of the engines that send SNMPv3 traps: replay and time-window protection
(RFC 3414 §3.2.7 b, the non-authoritative receiver's side).

pysnmp does not protect traps: it stores the incoming message's own boots and time as the
sender's timeline *before* its time-window check, so that check always passes, and it forgets
the timeline after 300 s. So the receiver keeps its own, per device and sender engine ID, from
authenticated messages only: the highest snmpEngineBoots seen, the highest snmpEngineTime within
it and when that was received. A message is refused when

- its boots are lower than the known boots (a message recorded before the sender restarted),
- its boots are equal and its time is more than WINDOW_S seconds behind the local notion of the
  sender's time (the latest time plus the seconds elapsed since it was received),
- its boots are 2147483647 (RFC 3414 §2.2.2: latched; the sender needs new keys), or
- its digest (msgAuthenticationParameters, an HMAC only the key holder can make) was accepted
  within the window already: an exact replay inside the 150 s the RFC leaves open.

The timelines are kept in the agent's state directory (`trap-sender-timelines.json`, written
atomically, the directory fsynced) when boots change or an engine is first seen, and otherwise
at most every SAVE_EVERY_S seconds, so a restart does not reopen old messages: the local notion
runs on with the wall clock across it. The digests of the last window are not kept across a
restart (a message replayed within 150 s of its recording, across a restart, is accepted once
more). A device that lost its boots (a reset to factory settings) is refused until its boots
exceed the kept value: logged with the remedy (delete its entry or give it a new engine ID).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("pantau.agent.traps")

TIMELINE_FILE = "trap-sender-timelines.json"
WINDOW_S = 150
"""RFC 3414 §3.2.7: a message more than 150 s older than the sender's time is not in time."""
MAX_BOOTS = 2_147_483_647
SAVE_EVERY_S = 60.0
"""How often a moved-on time is written (boots changes and new engines at once): the local
notion of a sender's time drifts with its clock, a fresher copy drifts less after a restart."""
MAX_DIGESTS = 4096
"""Digests remembered per engine (at most one window's worth): the oldest go first beyond it."""


@dataclass(slots=True)
class _Line:
    boots: int
    time: int  # the highest snmpEngineTime seen with `boots`
    at: float  # wall clock when `time` was received
    digests: dict[bytes, float] = field(default_factory=dict)  # accepted in the window → when


def _save_atomically(path: Path, doc: object) -> None:
    """Temporary file, fsync, rename, fsync of the directory (the rename itself survives a
    power loss only once its directory is on disk)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SenderTimelines:
    """The timelines by (device, engine ID); `path` None keeps them in memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lines: dict[tuple[str, bytes], _Line] = {}
        self._dirty = False
        self._saved_at = time.monotonic()
        self.save_errors = 0
        if path is not None:
            self._load(path)

    def check(
        self, device: str, engine_id: bytes, boots: int, etime: int, digest: bytes, now: float
    ) -> str | None:
        """Why this authenticated message is refused (a detail for the log), or None."""
        line = self._lines.get((device, engine_id))
        if boots >= MAX_BOOTS:
            return "not_in_time_window boots latched at their maximum"
        if line is None:
            return None
        if boots < line.boots:
            return (
                f"not_in_time_window boots {boots} below {line.boots} (a replay, or the device "
                f"lost its boots: then delete its entry in {TIMELINE_FILE})"
            )
        if boots == line.boots:
            expected = line.time + max(0.0, now - line.at)
            if etime < expected - WINDOW_S:
                return f"not_in_time_window {int(expected - etime)} s old"
            if digest in line.digests:
                return "replayed"
        return None

    def accept(
        self, device: str, engine_id: bytes, boots: int, etime: int, digest: bytes, now: float
    ) -> None:
        """Note a message `check` let through (RFC 3414 §3.2.7 b 1: the timeline moves on)."""
        key = (device, engine_id)
        line = self._lines.get(key)
        if line is None or boots > line.boots:
            self._lines[key] = line = _Line(boots, etime, now)
            self._dirty = True
            self.save(force=True)
        elif etime > line.time:
            line.time, line.at = etime, now
            self._dirty = True
        line.digests[digest] = now
        if len(line.digests) > MAX_DIGESTS:
            del line.digests[next(iter(line.digests))]

    def forget(self, device: str, engine_id: bytes) -> None:
        if self._lines.pop((device, engine_id), None) is not None:
            self._dirty = True

    def tick(self, now: float) -> None:
        """Forget digests older than two windows (their messages are out of time by then) and
        write a moved-on timeline now and then."""
        horizon = now - 2 * WINDOW_S
        for line in self._lines.values():
            while line.digests:
                first = next(iter(line.digests))
                if line.digests[first] >= horizon:
                    break
                del line.digests[first]
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            self.save()

    def save(self, force: bool = False) -> None:
        """Write when changed; an error is logged and counted (replay protection then lasts
        until the next restart only), never fatal to the receiver."""
        if self.path is None or not self._dirty:
            return
        if not force and time.monotonic() - self._saved_at < SAVE_EVERY_S:
            return
        doc = {
            "version": 1,
            "senders": [
                [device, engine.hex(), line.boots, line.time, round(line.at, 3)]
                for (device, engine), line in self._lines.items()
            ],
        }
        self._saved_at = time.monotonic()
        try:
            _save_atomically(self.path, doc)
        except OSError as exc:
            self.save_errors += 1
            log.error("cannot save the SNMPv3 sender timelines file=%s error=%s", self.path, exc)
            return
        self._dirty = False

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict) or doc.get("version") != 1:
                raise ValueError("not a version 1 document")
            lines: dict[tuple[str, bytes], _Line] = {}
            for item in doc["senders"]:
                device, engine, boots, etime, at = item
                if not isinstance(device, str) or not isinstance(engine, str):
                    raise ValueError("device or engine ID of the wrong type")
                for n in (boots, etime):
                    if type(n) is not int or not 0 <= n <= MAX_BOOTS:
                        raise ValueError(f"boots or time {str(n)[:32]!r}")
                if type(at) not in (int, float):
                    raise ValueError("time received of the wrong type")
                lines[(device, bytes.fromhex(engine))] = _Line(boots, etime, float(at))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_name(path.name + ".bad")
            log.error(
                "SNMPv3 sender timelines unreadable, moved aside; old trap messages are not "
                "recognised until each sender's next trap file=%s error=%s moved_to=%s",
                path,
                exc,
                aside,
            )
            try:
                os.replace(path, aside)
            except OSError as move:
                log.error("cannot move the sender timelines aside file=%s error=%s", path, move)
            return
        self._lines = lines
        log.info("SNMPv3 sender timelines loaded file=%s senders=%d", path, len(lines))


__all__ = ["TIMELINE_FILE", "WINDOW_S", "SenderTimelines"]
