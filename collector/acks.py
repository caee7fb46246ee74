"""Acknowledgements to the sites: what InfluxDB stored, so agents keep sample sets until then.

The broker's PUBACK says only that the broker has a message, and Mosquitto answers it before the
message is on disk. So the agent keeps every sample set until the collector that wrote it says
so: after each InfluxDB write the pipeline reports the sequence numbers stored (and the gap
records written); every `acks.interval` seconds this sends one small message per site that had
any, on `pantau/<site>/ack` (QoS 1): per device, the runs written since the previous
acknowledgement (pantau.wire.Ack). Only what this collector wrote: in a shared-subscription
group each member acknowledges its own part and the agent takes the union. Trap events are
acknowledged the same way, under "<device>/event" (their own sequence numbers, events_key), and
every message says so (`Ack.events`): an agent keeps events until confirmed only for
collectors that do.

A lost acknowledgement (the agent was offline; QoS 1 to a session that did not survive) costs a
resend after the agent's `outbox.resend_after`: the collector writes it again idempotently and
acknowledges it again. See docs/delivery.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pantau.wire import Ack, ack_topic, confirm_topic, device_ack, encode_ack

log = logging.getLogger("pantau.collector.acks")

Publish = Callable[[str, bytes], bool]
"""(topic, payload) → whether the broker connection took it (QoS 1)."""


def events_key(device: str) -> str:
    """The entry a device's trap events are acknowledged under: the agent's outbox key of them
    (agent/traps/receiver.py), which their gap records carry as device too."""
    return f"{device}/event"


def announce(publish: Callable[[str, bytes, bool], bool], enabled: bool) -> None:
    """Say on the retained pantau/confirm whether this collector acknowledges, after each
    connection (a broker killed before its autosave forgets retained messages). An agent in
    `broker.confirm: auto` goes back to the broker's PUBACK only on "off": silence alone may
    be this collector or its InfluxDB down while the broker queues for it, unsaved. A stopped
    collector says nothing new, so its last word stays. docs/delivery.md."""
    flag = b"on" if enabled else b"off"
    if publish(confirm_topic(), flag, True):
        log.info("said pantau/confirm %s (retained)", flag.decode())
    else:
        log.error("could not publish pantau/confirm %s: agents keep their mode", flag.decode())


def runs(seqs: set[int]) -> list[tuple[int, int]]:
    """Sorted, disjoint [lo, hi] runs of a set of numbers."""
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] + 1 == seq:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


class Acker:
    """Collects what was written (any thread) and sends it per site (its own thread)."""

    def __init__(
        self, publish: Publish, interval: float, on_sent: Callable[[str], None] | None = None
    ) -> None:
        self.publish = publish
        self.interval = interval
        self.on_sent = on_sent  # site → counted (pantau_collector_acks_sent_total)
        self._lock = threading.Lock()
        self._stored: dict[str, dict[str, set[int]]] = {}  # site → device → numbers
        self._gaps: dict[str, dict[str, set[tuple[int, int]]]] = {}  # site → device → ranges
        self.sent: dict[str, int] = {}  # site → acknowledgements sent (for /metrics)
        self.bytes_sent = 0
        self.last_sent: dict[str, float] = {}

    def stored(self, site: str, device: str, seq: int) -> None:
        with self._lock:
            self._stored.setdefault(site, {}).setdefault(device, set()).add(seq)

    def gap(self, site: str, device: str, first: int, last: int) -> None:
        with self._lock:
            self._gaps.setdefault(site, {}).setdefault(device, set()).add((first, last))

    def flush(self) -> int:
        """Send what was written since the last flush; returns the messages sent. What the
        connection did not take is kept for the next flush."""
        with self._lock:
            stored, self._stored = self._stored, {}
            gaps, self._gaps = self._gaps, {}
        sent = 0
        for site in sorted(stored.keys() | gaps.keys()):
            devices = stored.get(site, {})
            site_gaps = gaps.get(site, {})
            ack = Ack(
                [
                    device_ack(d, runs(devices.get(d, set())), tuple(sorted(site_gaps.get(d, ()))))
                    for d in sorted(devices.keys() | site_gaps.keys())
                ],
                events=True,
            )
            payload = encode_ack(ack)
            if self.publish(ack_topic(site), payload):
                sent += 1
                self.sent[site] = self.sent.get(site, 0) + 1
                self.bytes_sent += len(payload)
                if self.on_sent is not None:
                    self.on_sent(site)
                continue
            with self._lock:  # not connected: keep it for the next attempt
                for d, seqs in devices.items():
                    self._stored.setdefault(site, {}).setdefault(d, set()).update(seqs)
                for d, ranges in site_gaps.items():
                    self._gaps.setdefault(site, {}).setdefault(d, set()).update(ranges)
        return sent

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(self.interval):
                self.flush()
        finally:
            self.flush()
