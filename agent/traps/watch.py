"""`pantau-agent probe --traps`: listen for traps for a while and print each one as the agent
would make it into an event, for a field technician checking that a device sends traps (to the
right address, with the right community or SNMPv3 user, and the OIDs the profiles know).

The receiver's own path is used (agent.traps.receiver: source lookup, rate limit, decoding,
SNMPv3 USM, the catalog of the device's profiles), with nothing stored and no poll asked for.
Traps from addresses that are no configured device are shown too (marked), since a device
sending from an unexpected address is a common reason traps "do not arrive". An inform is
acknowledged, so the device sees its inform delivered: the probe is a stand-in for the agent.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TextIO

from agent.config import Device, TrapsSettings
from agent.traps.receiver import TrapReceiver
from pantau.wire import Event


class TrapWatch(TrapReceiver):
    """A TrapReceiver that prints events instead of storing them."""

    def __init__(
        self,
        cfg: TrapsSettings,
        site: str,
        devices: Iterable[Device],
        out: TextIO,
        as_json: bool = False,
    ) -> None:
        super().__init__(replace(cfg, accept_unknown=True), site, devices, None)
        self.out = out
        self.as_json = as_json
        self.known = {d.name for d in self.devices}
        self.shown = 0
        self._seqs: dict[str, int] = {}

    def _next_seq(self, key: str) -> int:
        self._seqs[key] = self._seqs.get(key, 0) + 1
        return self._seqs[key]

    def _deliver(self, event: Event) -> None:
        self.shown += 1
        known = event.device in self.known
        if self.as_json:
            doc = {
                "time": event.ts_ms / 1000,
                "device": event.device,
                "configured": known,
                "source": event.source,
                "trap": event.trap,
                "trap_oid": event.trap_oid,
                "severity": event.severity,
                "alarm": event.alarm,
                "clears": event.clears,
                "inform": event.inform,
                "varbinds": event.varbinds,
            }
            print(json.dumps(doc), file=self.out, flush=True)
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts_ms / 1000))
        who = event.device if known else f"{event.source} (not a configured device)"
        parts = [stamp, who, event.trap or f"{event.trap_oid} (no definition)", event.severity]
        if event.inform:
            parts.append("inform")
        if event.alarm:
            parts.append(f"raises {event.alarm}")
        if event.clears:
            parts.append(f"clears {','.join(event.clears)}")
        print("  ".join(parts), file=self.out, flush=True)
        for name, value in event.varbinds.items():
            print(f"    {name} = {value}", file=self.out, flush=True)


async def watch(
    cfg: TrapsSettings,
    site: str,
    devices: Iterable[Device],
    seconds: float,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> TrapWatch:
    """Listen for `seconds`; the watch with its counters. OSError when the port is taken (the
    agent itself may be listening there: stop it, or use --listen with another port)."""
    w = TrapWatch(cfg, site, devices, out, as_json)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    while w.bound is None and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # the bind error
    assert w.bound is not None
    print(f"listening for traps on {w.bound[0]}:{w.bound[1]} for {seconds:g} s", file=sys.stderr)
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return w


def summary(w: TrapWatch) -> str:
    """What the receiver counted: why traps that arrived were not shown."""
    counts = {k: v for k, v in sorted(w.counters.items()) if v and k != "stored"}
    text = ", ".join(f"{k}={v}" for k, v in counts.items()) or "nothing received"
    return f"{w.shown} trap(s) shown; received: {text}"
