"""The trap receiver: UDP in, events into the outbox, informs acknowledged once stored.

Work on the event loop is bounded per datagram before anything is decoded: the sender is looked
up (traps from addresses that are no configured device are counted and dropped unless
`accept_unknown`, when all unknown addresses share one bucket), then its device's token bucket
is asked (a flood is counted as `suppressed` and dropped: an inform over the limit is not
acknowledged, so its sender tries again later). SNMPv3 messages ask one more bucket, shared by
all senders (V3_RATE), before pysnmp's work.
Only then is the datagram decoded (malformed ones are counted) and queued; one worker task
stores events in the outbox (fsync), then sends the inform's acknowledgement and, for a trap
defined with `poll: true`, asks the device's loop for a poll now (at most every
`poll_min_interval` seconds per device). A full queue drops too (counted), so a flood of many
devices costs bounded memory, and polling and publishing are never behind it by more than one
store.

An inform whose acknowledgement was late or lost comes again (net-snmp's snmpinform -r: the
same request-id; SNMPv3 with a new msgID), and a recorded one can be sent again: within
INFORM_WINDOW_S of the first, the same inform of the same device and sender (community, or
SNMPv3 context engine ID and user) is no new event. It is acknowledged all the same, after the
first one is stored (the queue keeps their order), so the sender stops retrying, and counted
(`duplicate_inform`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import Device, SnmpSettings, TrapsSettings
from agent.outbox import Outbox
from agent.snmp import ber
from agent.snmp.values import Credentials
from agent.traps.catalog import Catalog
from agent.traps.decode import Trap, decode_trap, inform_response
from agent.traps.engineboots import next_boots
from agent.traps.timeline import TIMELINE_FILE
from pantau.logs import RateLimitedLog
from pantau.wire import Event, encode_event, event_topic

if TYPE_CHECKING:
    from agent.traps.usm import UsmReceiver

log = logging.getLogger("pantau.agent.traps")

EVENT_KEY = "{device}/event"
"""The outbox's sequence key of a device's events: their own series, apart from its sample
sets ('/' is in no device name, so no device's key can be taken)."""


def event_key(device: str) -> str:
    return EVENT_KEY.format(device=device)


def is_event_key(key: str) -> bool:
    return key.endswith("/event")


ENGINE_ID_PREFIX = bytes.fromhex("80004fb804")
"""RFC 3411 snmpEngineID: enterprise 20408 (pysnmp, whose engine answers), format 4 (text)."""


def default_engine_id(site: str) -> bytes:
    """The agent's snmpEngineID unless `traps.engine_id` says otherwise: stable across restarts
    (devices that send informs may be configured with it) and different per site."""
    return ENGINE_ID_PREFIX + site.encode()[:27]


V3_RATE = 200.0
V3_BURST = 200
"""SNMPv3 messages per second (and at once) handed to pysnmp, all senders together: each costs
~1-2 ms of the event loop (a new sender engine ID ~5 ms more), so per-device limits alone let
many sources (accept_unknown: up to 10,000) take the loop. Over it: counted as suppressed."""


def v3_credentials(snmp: SnmpSettings) -> Credentials:
    """The credentials of v3 settings (a device's `snmp:` or a `traps.users` entry)."""
    return Credentials(
        version="3",
        user=snmp.user or "",
        auth_protocol=snmp.auth_protocol,
        auth_key=snmp.auth_key,
        priv_protocol=snmp.priv_protocol,
        priv_key=snmp.priv_key,
    )


INFORM_WINDOW_S = 150.0
"""How long an inform is remembered to recognize it when it comes again: USM's time window
(RFC 3414 §3.2 7b), within which pysnmp accepts a recorded SNMPv3 inform sent again, and many
times a sender's retries (net-snmp: 5 retries of 1 s by default)."""
INFORM_KEYS = 10_000
"""Informs remembered at most (oldest forgotten first, ~250 bytes each): each one stored costs
one, so the rate limits bound them well below this in practice."""


def inform_key(device: str, sender: bytes, trap: Trap) -> tuple[str, bytes, int, bytes]:
    """What makes an inform the same one again: the device, who sent it (b"c:" + community,
    or b"v3:" + context engine ID + b":" + user), its request-id, and its content (trap OID,
    sysUpTime, varbinds; a retransmission is the same PDU, RFC 3416 §4.2.7), so a device that
    restarted and numbers its requests from 1 again is not taken for a retransmission."""
    content = repr((trap.trap_oid, trap.uptime, trap.varbinds)).encode()
    return device, sender, trap.request_id, hashlib.blake2b(content, digest_size=16).digest()


class InformMemory:
    """Informs seen in the last `window_s` seconds (agent.traps.receiver docstring)."""

    def __init__(self, window_s: float = INFORM_WINDOW_S, max_keys: int = INFORM_KEYS) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: dict[tuple[str, bytes, int, bytes], float] = {}  # key → first seen, in order

    def first(self, key: tuple[str, bytes, int, bytes], now: float) -> bool:
        """True the first time `key` comes within the window (remembered from now on)."""
        while self._seen:  # in time order: stops at the first one still current
            old, at = next(iter(self._seen.items()))
            if now - at < self.window_s and len(self._seen) < self.max_keys:
                break
            del self._seen[old]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def forget(self, key: tuple[str, bytes, int, bytes]) -> None:
        """The inform was not stored (a full queue): its next retry is no duplicate."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _Sender:
    device: str
    catalog: Catalog
    bucket: TokenBucket
    suppressed: int = 0  # traps dropped by the rate limit (or a full queue), cumulative
    malformed: int = 0
    last_poll: float = float("-inf")
    last_ts_ms: int = 0  # events of a device get distinct times: each is its own point
    users: dict[str, Credentials] = field(default_factory=dict)  # SNMPv3 users it may use


_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class TrapReceiver(asyncio.DatagramProtocol):
    def __init__(
        self,
        cfg: TrapsSettings,
        site: str,
        devices: Iterable[Device],
        outbox: Outbox | None,  # None: a subclass delivers elsewhere (agent.traps.watch)
        poll_now: Callable[[str], None] = lambda device: None,
        state_dir: Path | None = None,  # keeps snmpEngineBoots (agent.traps.engineboots)
    ) -> None:
        self.cfg = cfg
        self.state_dir = state_dir
        self.site = site
        self.devices = [d for d in devices if d.snmp_enabled]
        self.outbox = outbox
        self.poll_now = poll_now
        self.counters: Counter[str] = Counter()  # received, unknown_source, malformed, ...
        self.senders: dict[str, _Sender] = {}  # by IP address
        self._unknown_catalog = Catalog(p for d in self.devices for p in d.profiles)
        # (sender, trap, its acknowledgement, source, True: an inform again, not stored again)
        self._queue: asyncio.Queue[
            tuple[_Sender, Trap, Callable[[], bytes] | None, tuple[str, int], bool]
        ] = asyncio.Queue(cfg.queue)
        self.informs = InformMemory()
        self.users = {u.user or "": v3_credentials(u) for u in cfg.users}  # from every device
        self.usm: UsmReceiver | None = None  # SNMPv3, when any user is configured
        self._transport: asyncio.DatagramTransport | None = None
        self._warn = RateLimitedLog(log, 30.0)
        self._v3_bucket = TokenBucket(V3_RATE, V3_BURST)
        # All unknown sources share one bucket: a device's budget, not one per address.
        self._unknown_bucket = TokenBucket(cfg.rate, cfg.burst)
        self.bound: tuple[str, int] | None = None

    # -- setup ------------------------------------------------------------------------------

    async def _addresses(self) -> dict[str, Device]:
        loop = asyncio.get_running_loop()
        out: dict[str, Device] = {}
        for d in self.devices:
            try:
                ipaddress.ip_address(d.host)
                addrs = [d.host]
            except ValueError:
                try:
                    infos = await loop.getaddrinfo(d.host, None, type=socket.SOCK_DGRAM)
                except OSError as exc:
                    log.warning("cannot resolve device for traps device=%s error=%s", d.name, exc)
                    continue
                addrs = [str(info[4][0]) for info in infos]
            for a in addrs:
                out.setdefault(_normal(a), d)
        return out

    def _device_users(self, d: Device) -> dict[str, Credentials]:
        users = dict(self.users)
        if d.snmp.version == "3" and d.snmp.user and d.snmp.user not in users:
            users[d.snmp.user] = v3_credentials(d.snmp)
        return users

    def _start_usm(self) -> None:
        """pysnmp (~30 MB) only when some SNMPv3 user is configured."""
        from agent.traps.usm import UsmReceiver

        engine_id = (
            bytes.fromhex(self.cfg.engine_id)
            if self.cfg.engine_id
            else default_engine_id(self.site)
        )
        boots = None if self.state_dir is None else next_boots(self.state_dir, engine_id)
        timelines = None if self.state_dir is None else self.state_dir / TIMELINE_FILE
        self.usm = UsmReceiver(engine_id, self._send, boots, timelines)
        seen: dict[str, Credentials] = {}
        for s in self.senders.values():
            for name, creds in s.users.items():
                if name in seen and seen[name] != creds:
                    log.warning(
                        "SNMPv3 user with other keys on another device: its informs are not "
                        "accepted from device=%s user=%s",
                        s.device,
                        name,
                    )
                    continue
                seen[name] = creds
        for creds in seen.values():
            self.usm.add_user(creds)  # under our engine ID: informs
        log.info(
            "SNMPv3 traps and informs: engine_id=%s engine_boots=%s users=%d",
            engine_id.hex(),
            boots if boots is not None else "not kept",
            len(seen),
        )

    def _send(self, message: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(message, addr)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.usm is not None:
                self.usm.tick()

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set. Raises OSError when the address cannot be bound (port
        162 needs CAP_NET_BIND_SERVICE: docs/traps.md)."""
        for addr, d in (await self._addresses()).items():
            self.senders[addr] = _Sender(
                d.name,
                Catalog((*d.profiles, *d.candidates)),
                TokenBucket(self.cfg.rate, self.cfg.burst),
                users=self._device_users(d),
            )
        if self.users or any(s.users for s in self.senders.values()):
            self._start_usm()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.cfg.host, self.cfg.port)
        )
        self._transport = transport
        self.bound = transport.get_extra_info("sockname")[:2]
        log.info("trap receiver listening on %s:%s", *self.bound)
        worker = asyncio.create_task(self._store_loop(), name="traps-store")
        stopped = asyncio.create_task(stop.wait())
        ticker = asyncio.create_task(self._tick(), name="traps-usm-tick")
        try:
            await asyncio.wait({worker, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if worker.done():
                worker.result()  # an OutboxError: the agent's supervision stops it
        finally:
            transport.close()
            for task in (worker, stopped, ticker):
                task.cancel()
            await asyncio.gather(worker, stopped, ticker, return_exceptions=True)
            if self.usm is not None:
                self.usm.close()

    # -- the datagram path (event loop, no I/O) ---------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.counters["received"] += 1
        host = _normal(str(addr[0]))
        sender = self.senders.get(host)
        if sender is None:
            if not self.cfg.accept_unknown:
                self.counters["unknown_source"] += 1
                self._warn.warning(
                    "unknown", "trap from an address that is no device, dropped source=%s", host
                )
                return
            if len(self.senders) >= 10_000:
                self.counters["unknown_source"] += 1
                return
            name = "trap-" + _NOT_NAME.sub("-", host)[:57]
            sender = self.senders[host] = _Sender(
                name,
                self._unknown_catalog,
                self._unknown_bucket,
                users=self.users,
            )
        if len(data) > self.cfg.max_datagram:
            sender.malformed += 1
            self.counters["oversize"] += 1
            return
        if not sender.bucket.take(time.monotonic()):
            sender.suppressed += 1
            self.counters["suppressed"] += 1
            self._warn.warning(
                f"flood:{sender.device}",
                "traps over the rate limit, dropped device=%s suppressed_total=%d",
                sender.device,
                sender.suppressed,
            )
            return
        ack: Callable[[], bytes] | None = None
        try:
            trap = decode_trap(data)
        except ber.DecodeError as exc:
            if "SNMPv3" in exc.what and self.usm is not None:
                if not self._v3_bucket.take(time.monotonic()):
                    sender.suppressed += 1
                    self.counters["suppressed"] += 1
                    self._warn.warning(
                        "v3flood", "SNMPv3 messages over the receiver's limit, dropped"
                    )
                    return
                self._v3(sender, data, (str(addr[0]), int(addr[1])))
                return
            reason = "unsupported_version" if "SNMPv3" in exc.what else "malformed"
            sender.malformed += 1
            self.counters[reason] += 1
            self._warn.warning(
                f"{reason}:{sender.device}",
                "trap dropped reason=%s device=%s detail=%s",
                reason,
                sender.device,
                exc,
            )
            return
        if self.cfg.communities and trap.community.decode(errors="replace") not in (
            self.cfg.communities
        ):
            self.counters["bad_community"] += 1
            self._warn.warning(
                "community", "trap with a community not accepted device=%s", sender.device
            )
            return
        if trap.inform:
            ack = partial(inform_response, data, trap)
        self._enqueue(sender, trap, ack, (str(addr[0]), int(addr[1])), b"c:" + trap.community)

    def _enqueue(
        self,
        sender: _Sender,
        trap: Trap,
        ack: Callable[[], bytes] | None,
        addr: tuple[str, int],
        origin: bytes = b"",  # who sent it (inform_key): b"c:" + community, b"v3:" ...
    ) -> None:
        key = inform_key(sender.device, origin, trap) if trap.inform else None
        again = key is not None and not self.informs.first(key, time.monotonic())
        try:
            self._queue.put_nowait((sender, trap, ack, addr, again))
        except asyncio.QueueFull:
            if key is not None and not again:
                self.informs.forget(key)
            sender.suppressed += 1
            self.counters["queue_full"] += 1

    def _v3(self, sender: _Sender, data: bytes, addr: tuple[str, int]) -> None:
        """An SNMPv3 message through USM (agent.traps.usm). A wrong key or an unknown user is
        `auth_failure`: counted and logged with the device, the user and what failed, never a
        key; nothing is stored. An engine ID discovery probe is answered with a Report."""
        from agent.traps.usm import UsmError

        assert self.usm is not None
        try:
            received = self.usm.receive(data, addr, sender.device, sender.users)
        except UsmError as exc:
            self.counters[exc.reason] += 1
            if exc.reason == "engine_discovery":
                return
            if exc.reason == "malformed":
                sender.malformed += 1
            self._warn.warning(
                f"{exc.reason}:{sender.device}",
                "SNMPv3 trap dropped reason=%s device=%s source=%s detail=%s",
                exc.reason,
                sender.device,
                addr[0],
                exc.detail,
            )
            return
        origin = b"v3:" + received.context_engine + b":" + received.user.encode()
        self._enqueue(sender, received.trap, received.ack, addr, origin)

    def error_received(self, exc: Exception) -> None:
        self.counters["socket_errors"] += 1

    # -- the store path ---------------------------------------------------------------------

    async def _store_loop(self) -> None:
        while True:
            sender, trap, ack, addr, again = await self._queue.get()
            if again:
                self.acknowledge_again(sender, ack, addr)
            else:
                self.store(sender, trap, ack, addr)
            await asyncio.sleep(0)  # pollers and the publisher get their turn between stores

    def store(
        self,
        sender: _Sender,
        trap: Trap,
        ack: Callable[[], bytes] | None,
        addr: tuple[str, int],
    ) -> Event:
        """Into the outbox (fsync); then the inform's acknowledgement, then the poll."""
        c = sender.catalog.classify(trap)
        key = event_key(sender.device)
        ts_ms = sender.last_ts_ms = max(int(time.time() * 1000), sender.last_ts_ms + 1)
        event = Event(
            site=self.site,
            device=sender.device,
            seq=self._next_seq(key),
            ts_ms=ts_ms,
            trap_oid=c.trap_oid,
            trap=c.trap,
            severity=c.severity,
            varbinds=c.varbinds,
            alarm=c.alarm,
            clears=c.clears,
            inform=trap.inform,
            source=addr[0],
            suppressed=sender.suppressed,
            malformed=sender.malformed,
        )
        self._deliver(event)
        self.counters["stored"] += 1
        self._acknowledge(sender, ack, addr)
        log.info(
            "trap device=%s trap=%s severity=%s alarm=%s clears=%s",
            sender.device,
            c.trap or c.trap_oid,
            c.severity,
            c.alarm,
            ",".join(c.clears),
        )
        if c.poll:
            now = time.monotonic()
            if now - sender.last_poll >= self.cfg.poll_min_interval:
                sender.last_poll = now
                self.poll_now(sender.device)
            else:
                self.counters["polls_skipped"] += 1
        return event

    def acknowledge_again(
        self, sender: _Sender, ack: Callable[[], bytes] | None, addr: tuple[str, int]
    ) -> None:
        """An inform that came again (its first is stored: the queue is in order): answered,
        so its sender stops retrying, and counted, but no new event."""
        self.counters["duplicate_inform"] += 1
        self._warn.warning(
            f"again:{sender.device}",
            "inform received again (a retry or a replay), acknowledged, not stored again "
            "device=%s duplicate_inform_total=%d",
            sender.device,
            self.counters["duplicate_inform"],
        )
        self._acknowledge(sender, ack, addr)

    def _acknowledge(
        self, sender: _Sender, ack: Callable[[], bytes] | None, addr: tuple[str, int]
    ) -> None:
        if ack is None or self._transport is None:
            return
        try:
            self._transport.sendto(ack(), addr)
            self.counters["informs_acknowledged"] += 1
        except ValueError as exc:  # stored all the same: the sender tries again, counted once
            self.counters["ack_failed"] += 1
            self._warn.warning(
                "ack", "inform not acknowledged device=%s detail=%s", sender.device, exc
            )

    def _next_seq(self, key: str) -> int:
        assert self.outbox is not None
        return self.outbox.next_seq(key)

    def _deliver(self, event: Event) -> None:
        """Durably: the outbox commits (fsync) before it returns."""
        assert self.outbox is not None
        self.outbox.put(
            event_topic(self.site, event.device),
            encode_event(event),
            device=event_key(event.device),
            seq=event.seq,
            ts_ms=event.ts_ms,
        )


def _normal(host: str) -> str:
    """An address as one spelling: IPv4-mapped IPv6 as IPv4, no scope."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
