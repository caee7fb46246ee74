"""ICMP echo: round-trip time and loss to each device and to upstream targets.

"The radio answers ping but not SNMP" and "the VSAT hop adds 650 ms" must be visible, so every
poll can carry an `icmp` group. icmplib (a small, kept, pure-Python library) builds the packets.
Unprivileged ICMP sockets are used where the kernel allows them (net.ipv4.ping_group_range);
otherwise raw sockets, which need root or CAP_NET_RAW. The first choice that works is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pantau.wire import Field, Group, Kind

log = logging.getLogger("pantau.agent.icmp")
MEASUREMENT = "icmp"


@dataclass(frozen=True, slots=True)
class PingSettings:
    count: int = 3
    interval: float = 0.2
    timeout: float = 1.0


class Pinger:
    def __init__(self) -> None:
        self._privileged: bool | None = None  # None: not yet known

    async def ping(self, host: str, settings: PingSettings) -> Group | None:
        """An `icmp` group (sent, received, loss_ratio, and RTTs if any reply), or None if
        ICMP cannot be used at all here (then it is logged once)."""
        # icmplib is loaded with the first ping: a site whose config pings nothing never
        # loads it (0.13 MiB, docs/performance.md, Footprint).
        from icmplib import ICMPLibError, SocketPermissionError, async_ping

        for privileged in [self._privileged] if self._privileged is not None else [False, True]:
            try:
                result = await async_ping(
                    host,
                    count=settings.count,
                    interval=settings.interval,
                    timeout=settings.timeout,
                    privileged=privileged,
                )
            except SocketPermissionError:
                continue
            except ICMPLibError as exc:  # name lookup failure, bad address
                log.warning("ping failed host=%s error=%s", host, exc)
                return None
            self._privileged = privileged
            fields = [
                Field("sent", Kind.GAUGE, result.packets_sent),
                Field("received", Kind.GAUGE, result.packets_received),
                Field("loss_ratio", Kind.GAUGE, round(result.packet_loss, 4)),
            ]
            if result.packets_received:
                fields += [
                    Field("rtt_seconds", Kind.GAUGE, round(result.avg_rtt / 1000, 6)),
                    Field("rtt_min_seconds", Kind.GAUGE, round(result.min_rtt / 1000, 6)),
                    Field("rtt_max_seconds", Kind.GAUGE, round(result.max_rtt / 1000, 6)),
                ]
            return Group(MEASUREMENT, {}, fields)
        if self._privileged is None:
            log.error(
                "ICMP is not available: allow unprivileged ICMP "
                "(sysctl net.ipv4.ping_group_range) or grant CAP_NET_RAW; pings are off"
            )
            self._privileged = False
        return None
