"""One device's poll: profiles compiled to a request plan, answers turned into a SampleSet.

A poll never raises: a device that times out, refuses the credentials or answers garbage still
yields a SampleSet (up = False and the reason), because a failed poll is data the NOC needs.
Per-varbind anomalies (noSuchObject, wrong types, non-increasing OIDs, values no number can be
made of) are counted per device. Anything else that goes wrong in a poll is a bug or a case
nobody foresaw: it too yields a SampleSet (up = False, reason `internal_error`), and its
traceback is logged once per device and exception type every INTERNAL_LOG_PERIOD seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from agent.config import Device
from agent.icmp import Pinger
from agent.limits import MESSAGE_CAPPED, fit_groups
from agent.profiles.plan import (
    BAD_VALUE,
    MAX_TEXT_CHARS,
    CompiledTable,
    Converter,
    Plan,
    decode_text,
    wire_number,
)
from agent.profiles.spec import Profile
from agent.snmp import (
    END_OF_MIB,
    Missing,
    Oid,
    Session,
    SnmpClient,
    SnmpError,
    SnmpValue,
    oid_tuple,
    takes_fast_path,
)
from agent.snmp import Credentials as SnmpCredentials
from pantau.wire import Field, Group, SampleSet

log = logging.getLogger("pantau.agent.poller")

MAX_ROWS = 10_000
"""Rows per column before a walk is cut short (and counted): protects against looping agents."""

SYS_DESCR = oid_tuple("1.3.6.1.2.1.1.1.0")
SYS_OBJECT_ID = oid_tuple("1.3.6.1.2.1.1.2.0")
SYS_UPTIME = oid_tuple("1.3.6.1.2.1.1.3.0")
ENGINE_TIME = oid_tuple("1.3.6.1.6.3.10.2.1.3.0")  # snmpEngineTime: seconds, no 497-day wrap
REDETECT_S = 24 * 3600.0
WRAP_TICKS = 2**32
INTERNAL_ERROR = "internal_error"
INTERNAL_LOG_PERIOD = 3600.0
"""Seconds between two tracebacks logged for the same device and exception type."""


def select_profiles(
    device: Device, sys_object_id: str, sys_descr: str, values: dict[str, str] | None = None
) -> tuple[Profile, ...]:
    """The device's fixed profiles plus every candidate whose `match` fits, best first.
    `values`: text answers to the candidates' `match.oid_value` OIDs."""
    scored = [
        (p.match.matches(sys_object_id, sys_descr, values), i, p)
        for i, p in enumerate(device.candidates)
        if p.match is not None
    ]
    chosen = [p for score, _, p in sorted(scored, key=lambda t: (-t[0], t[1])) if score]
    return (*device.profiles, *chosen)


@dataclass(slots=True)
class RebootDetector:
    """A reboot shows as sysUpTime going backwards. sysUpTime (TimeTicks) wraps after 497
    days, so a drop right where a wrap was due is checked against snmpEngineTime."""

    uptime: int | None = None
    engine_time: int | None = None
    at: float = 0.0
    reboots: int = 0

    def update(self, uptime: int | None, engine_time: int | None, now: float) -> bool:
        rebooted = False
        if uptime is not None and self.uptime is not None and uptime < self.uptime:
            expected = self.uptime + int((now - self.at) * 100)
            wrapped = expected >= WRAP_TICKS and uptime <= expected - WRAP_TICKS + 6000
            if not wrapped or (
                engine_time is not None
                and self.engine_time is not None
                and engine_time < self.engine_time
            ):
                rebooted = True
        elif uptime is None and engine_time is not None and self.engine_time is not None:
            rebooted = engine_time < self.engine_time
        if rebooted:
            self.reboots += 1
        if uptime is not None or engine_time is not None:
            self.uptime, self.engine_time, self.at = uptime, engine_time, now
        return rebooted


def _chunks(items: list[Oid], size: int) -> list[list[Oid]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _multiply(table: CompiledTable, fields: list[Field], errors: Counter[str]) -> list[Field]:
    """Columns scaled by another column of the same row (hrStorageUsed × allocation unit).
    A product beyond what the wire carries is left out and counted (`bad_value`)."""
    by_name = {f.name: f.value for f in fields}
    factors = {c.name: c.multiply_by for c in table.columns if c.multiply_by}
    out = []
    for f in fields:
        other = factors.get(f.name)
        if other is None:
            out.append(f)
            continue
        factor = by_name.get(other)
        if isinstance(factor, (int, float)) and isinstance(f.value, (int, float)):
            try:
                product = f.value * factor
            except OverflowError:  # an integer beyond the float range times a float
                errors[BAD_VALUE] += 1
                continue
            if not wire_number(product):
                errors[BAD_VALUE] += 1
                continue
            out.append(Field(f.name, f.kind, product))
    return out


class DevicePoller:
    """Polls one device; holds its compiled plan, detection result and anomaly counters."""

    def __init__(
        self,
        site: str,
        device: Device,
        client: SnmpClient,
        next_seq: Callable[[str], int],
        pinger: Pinger | None = None,
    ) -> None:
        self.site = site
        self._pinger = pinger if device.ping is not None else None
        self.device = device
        self.plan = Plan.of(device.profiles)
        self._detect = bool(device.candidates)
        self._detected_at = -REDETECT_S
        self._client = client
        self._next_seq = next_seq
        self._conv = Converter()
        self._reboot = RebootDetector()
        self._session: Session | None = None
        self._internal_logged: dict[str, float] = {}  # exception type → when last logged
        self._internal_held: dict[str, int] = {}  # exception type → not logged since
        snmp = device.snmp
        self._creds = SnmpCredentials(
            version=snmp.version,
            community=snmp.community_value,
            user=snmp.user or "",
            auth_protocol=snmp.auth_protocol,
            auth_key=snmp.auth_key,
            priv_protocol=snmp.priv_protocol,
            priv_key=snmp.priv_key,
            context=snmp.context,
        )

    @property
    def needs_pysnmp(self) -> bool:
        """Whether this device's session goes through pysnmp (SNMPv3, fast path off)."""
        return self.device.snmp_enabled and not takes_fast_path(self._creds, self.device.fast_snmp)

    @property
    def errors(self) -> Counter[str]:
        return self._conv.errors

    @property
    def reboots(self) -> int:
        return self._reboot.reboots

    async def poll(self) -> SampleSet:
        started = time.time()
        t0 = time.monotonic()
        groups: list[Group] = []
        reason = ""
        rebooted = False
        ping: asyncio.Task[Group | None] | None = None
        if self._pinger is not None and self.device.ping is not None:
            ping = asyncio.create_task(self._pinger.ping(self.device.host, self.device.ping))
        try:
            async with asyncio.timeout(self.device.deadline):
                if self.device.snmp_enabled:
                    groups, rebooted = await self._collect()
                if ping is not None:
                    await asyncio.wait({ping})
        except TimeoutError:
            reason = "deadline"
        except SnmpError as exc:
            reason = exc.reason
            if (
                exc.reason in ("engine", "auth", "timeout")
                and self._creds.version == "3"
                and self._session is not None
            ):
                # A v3 device that came back with a new engine ID (reset or replaced) is
                # discovered again on the next poll, without restarting the agent.
                self._session.forget_engine()
        except Exception as exc:  # a bug, or data nothing was prepared for: still a sample set
            reason = INTERNAL_ERROR
            self.log_internal_error(exc)
        if reason:
            self._conv.errors[reason] += 1
            groups = []
        if ping is not None:
            icmp = None
            if not ping.done():
                ping.cancel()  # the poll ran out of time: no ICMP figures this round
            elif not ping.cancelled() and ping.exception() is None:
                icmp = ping.result()
            if icmp is not None:
                groups.append(icmp)  # also when SNMP failed: "answers ping, not SNMP"
            if not self.device.snmp_enabled and not reason:
                replies = (
                    next((f.value for f in icmp.fields if f.name == "received"), 0)
                    if icmp is not None
                    else 0
                )
                if not replies:
                    reason = "unreachable"
        groups = fit_groups(groups, self._conv.errors)  # what the collector accepts
        return SampleSet(
            site=self.site,
            device=self.device.name,
            seq=self._next_seq(self.device.name),
            ts_ms=int(started * 1000),
            duration_ms=int((time.monotonic() - t0) * 1000),
            up=not reason,
            reason=reason,
            groups=groups,
            errors=self._errors(),
            reboots=self._reboot.reboots,
            rebooted=rebooted,
        )

    def message_capped(self, groups_cut: int) -> dict[str, int]:
        """Count groups left out because the encoded sample set was larger than the collector
        accepts (agent.limits.encode_within); the device's errors as they now stand."""
        self._conv.errors[MESSAGE_CAPPED] += groups_cut
        log.warning(
            "sample set too large for the collector, last groups left out device=%s cut=%d",
            self.device.name,
            groups_cut,
        )
        return self._errors()

    def _errors(self) -> dict[str, int]:
        """The device's cumulative anomaly counts: conversions, and what its SNMP session saw
        (fast-path fallbacks, stray datagrams, tolerated encodings: agent.snmp counters)."""
        counts = Counter(self._conv.errors)
        session_counts = getattr(self._session, "counters", None)
        if session_counts:
            counts.update(session_counts)
        return dict(counts)

    def log_internal_error(self, exc: BaseException) -> None:
        """One line with the traceback per device and exception type every
        INTERNAL_LOG_PERIOD seconds; the next one says how many were held back."""
        kind = type(exc).__name__
        now = time.monotonic()
        last = self._internal_logged.get(kind)
        if last is not None and now - last < INTERNAL_LOG_PERIOD:
            self._internal_held[kind] = self._internal_held.get(kind, 0) + 1
            return
        self._internal_logged[kind] = now
        held = self._internal_held.pop(kind, 0)
        log.error(
            "poll raised, published as down device=%s reason=%s error=%s detail=%r",
            self.device.name,
            INTERNAL_ERROR,
            kind,
            str(exc)[:200],
            exc_info=exc,
            extra={"held_back": held} if held else None,
        )

    def internal_error(self, exc: BaseException, failed: SampleSet | None = None) -> SampleSet:
        """The sample set for a poll whose result could not be used (`failed`, e.g. it could
        not be encoded; None if the poll itself raised): up = False, reason internal_error,
        logged and counted. Keeps `failed`'s sequence number, so no gap appears."""
        self.log_internal_error(exc)
        self._conv.errors[INTERNAL_ERROR] += 1
        now = time.time()
        return SampleSet(
            site=self.site,
            device=self.device.name,
            seq=failed.seq if failed is not None else self._next_seq(self.device.name),
            ts_ms=failed.ts_ms if failed is not None else int(now * 1000),
            duration_ms=failed.duration_ms if failed is not None else 0,
            up=False,
            reason=INTERNAL_ERROR,
            groups=[],
            errors=self._errors(),
            reboots=self._reboot.reboots,
            rebooted=failed.rebooted if failed is not None else False,
        )

    async def _get_session(self) -> Session:
        if self._session is None:
            d = self.device
            self._session = await self._client.session(
                d.host,
                d.port,
                self._creds,
                timeout=d.timeout,
                retries=d.retries,
                fast=d.fast_snmp,
            )
        return self._session

    async def _collect(self) -> tuple[list[Group], bool]:
        session = await self._get_session()
        # Every poll reads uptime (for reboots) and, when detecting, the identity: one GET.
        probe = [SYS_UPTIME, ENGINE_TIME]
        due = self._detect and time.monotonic() - self._detected_at >= REDETECT_S
        if due:
            probe += [SYS_OBJECT_ID, SYS_DESCR]
        ident = await session.get(probe)
        uptime = ident.get(SYS_UPTIME)
        engine_time = ident.get(ENGINE_TIME)
        rebooted = self._reboot.update(
            uptime if isinstance(uptime, int) else None,
            engine_time if isinstance(engine_time, int) else None,
            time.monotonic(),
        )
        if due or (rebooted and self._detect):
            await self._redetect(session, ident)
        groups: list[Group] = []
        # Every scalar of every group in as few GETs as max_varbinds allows: round trips cost
        # most over a slow link.
        raw: dict[Oid, SnmpValue] = dict(ident)
        every = [v for _, _, values in self.plan.scalars for v in values]
        wanted = list(dict.fromkeys(v.oid for v in every if v.oid not in raw))
        for chunk in _chunks(wanted, self.device.max_varbinds):
            raw.update(await session.get(chunk))
        # Objects the device lacks, where the profile names another place to look.
        fallbacks = list(
            dict.fromkeys(
                v.fallback_oid
                for v in every
                if v.fallback_oid is not None
                and isinstance(raw.get(v.oid, END_OF_MIB), Missing)
                and v.fallback_oid not in raw
            )
        )
        for chunk in _chunks(fallbacks, self.device.max_varbinds):
            raw.update(await session.get(chunk))
        for measurement, tags, values in self.plan.scalars:
            fields = []
            for spec in values:
                primary = raw.get(spec.oid, END_OF_MIB)
                if isinstance(primary, Missing) and spec.fallback_oid is not None:
                    value = self._conv.value(
                        spec, raw.get(spec.fallback_oid, primary), spec.fallback_scale
                    )
                else:
                    value = self._conv.value(spec, primary)
                if value is not None:
                    fields.append(Field(spec.name, spec.kind, value))
            if fields:
                groups.append(Group(measurement, dict(tags), fields))
        for table in self.plan.tables:
            groups.extend(await self._table(session, table))
        return groups, rebooted

    async def _redetect(self, session: Session, ident: dict[Oid, SnmpValue]) -> None:
        oid_value = ident.get(SYS_OBJECT_ID)
        descr = ident.get(SYS_DESCR)
        sys_object_id = oid_value if isinstance(oid_value, str) else ""
        sys_descr = decode_text(descr) if isinstance(descr, bytes) else ""
        if not sys_object_id and not sys_descr:
            return  # the device did not say who it is; try again next poll
        self._detected_at = time.monotonic()
        # Candidates recognised by what an object answers: one GET for all of them.
        probes = sorted(
            {o for p in self.device.candidates if p.match is not None for o in p.match.oid_value}
        )
        answers: dict[str, str] = {}
        for chunk in _chunks([oid_tuple(o) for o in probes], self.device.max_varbinds):
            for oid, raw in (await session.get(chunk)).items():
                if not isinstance(raw, Missing):
                    answers[".".join(map(str, oid))] = (
                        decode_text(raw) if isinstance(raw, bytes) else str(raw)
                    )
        profiles = select_profiles(self.device, sys_object_id, sys_descr, answers)
        if tuple(p.name for p in profiles) != self.plan.profiles:
            log.info(
                "profiles selected device=%s sysObjectID=%s profiles=%s",
                self.device.name,
                sys_object_id,
                ",".join(p.name for p in profiles),
            )
            self.plan = Plan.of(profiles)

    async def _table(self, session: Session, table: CompiledTable) -> list[Group]:
        columns = [c.oid for c in table.columns] + table.tag_oids
        walked = await self.walk(session, columns)
        indexes: dict[Oid, None] = {}
        for col in table.columns:
            indexes.update(dict.fromkeys(walked[col.oid]))
        # Rows that lack a column with a fallback (e.g. no ifHCInOctets): walk the fallbacks.
        fallback_cols = [
            c
            for c in table.columns
            if c.fallback_oid is not None and any(i not in walked[c.oid] for i in indexes)
        ]
        fallback: dict[Oid, dict[Oid, SnmpValue]] = {}
        if fallback_cols:
            fallback = await self.walk(
                session, [c.fallback_oid for c in fallback_cols if c.fallback_oid is not None]
            )
            for c in fallback_cols:
                assert c.fallback_oid is not None
                indexes.update(dict.fromkeys(fallback[c.fallback_oid]))
        groups = []
        for index in indexes:
            tags = {table.index_tag: ".".join(map(str, index))}
            for tag, oids in table.tags:
                for oid in oids:
                    raw = walked[oid].get(index)
                    if raw is None or isinstance(raw, Missing):
                        continue
                    text = decode_text(raw) if isinstance(raw, bytes) else str(raw)
                    if len(text) > MAX_TEXT_CHARS:
                        self._conv.errors[BAD_VALUE] += 1  # a 10 MB "name": try the next one
                        continue
                    if text.strip():
                        tags[tag] = text.strip()
                        break
            fields = []
            for col in table.columns:
                raw = walked[col.oid].get(index)
                if raw is not None:
                    value = self._conv.value(col, raw)
                elif col.fallback_oid is not None and index in fallback.get(col.fallback_oid, {}):
                    value = self._conv.value(
                        col, fallback[col.fallback_oid][index], col.fallback_scale
                    )
                else:
                    continue
                if value is not None:
                    fields.append(Field(col.name, col.kind, value))
            if any(col.multiply_by for col in table.columns):
                fields = _multiply(table, fields, self._conv.errors)
            measurement = table.measurement
            if table.transform is not None:
                measurement, fields = table.transform(
                    {f.name: f.value for f in fields}, tags, measurement, errors=self._conv.errors
                )
            if fields:
                groups.append(Group(measurement, tags, fields))
        return groups

    async def walk(
        self,
        session: Session,
        columns: list[Oid],
    ) -> dict[Oid, dict[Oid, SnmpValue]]:
        """Walk columns together with GETBULK (GETNEXT without bulk); {column: {index: value}}.

        An agent that returns OIDs out of order (aviat-wtm does) is followed, and counted, as
        long as it does not repeat itself; nothing it returned is thrown away.
        """
        out: dict[Oid, dict[Oid, SnmpValue]] = {c: {} for c in columns}
        for chunk in _chunks(list(dict.fromkeys(columns)), self.device.max_varbinds):
            position = {c: c for c in chunk}
            while position:
                active = list(position)
                rows = await session.next_rows(
                    [position[c] for c in active], self.device.max_repetitions, self.device.bulk
                )
                done: set[Oid] = set()
                for row in rows:
                    for col, (oid, value) in zip(active, row, strict=False):
                        if col in done:
                            continue
                        if value is END_OF_MIB or oid[: len(col)] != col or len(oid) == len(col):
                            done.add(col)
                            continue
                        index = oid[len(col) :]
                        if oid <= position[col]:
                            self._conv.errors["oid_not_increasing"] += 1
                            if index in out[col]:
                                done.add(col)  # the agent loops: stop this column
                                continue
                        out[col][index] = value
                        position[col] = oid
                        if len(out[col]) >= MAX_ROWS:
                            self._conv.errors["too_many_rows"] += 1
                            done.add(col)
                for col in done:
                    position.pop(col, None)
        return out
