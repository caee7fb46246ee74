"""One device's poll: profiles compiled to a request plan, answers turned into a SampleSet.

A poll never raises: a device that times out, refuses the credentials or answers garbage still
yields a SampleSet (up = False and the reason), because a failed poll is data the NOC needs.
Per-varbind anomalies (noSuchObject, wrong types, non-increasing OIDs) are counted per device.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.config import Device
from agent.profile import Profile, TableSpec, ValueSpec
from agent.snmp import (
    END_OF_MIB,
    Missing,
    Oid,
    SnmpClient,
    SnmpError,
    SnmpSession,
    SnmpValue,
    oid_tuple,
)
from agent.snmp import Credentials as SnmpCredentials
from agent.wire import Field, Group, Kind, SampleSet

MAX_ROWS = 10_000
"""Rows per column before a walk is cut short (and counted): protects against looping agents."""

_KINDS = {"gauge": Kind.GAUGE, "counter": Kind.COUNTER, "state": Kind.STATE, "info": Kind.INFO}
_NUMBER = re.compile(rb"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True, slots=True)
class CompiledValue:
    name: str
    kind: Kind
    oid: Oid
    scale: float | None
    offset: float | None
    invalid: frozenset[int | float | str]
    fallback_oid: Oid | None
    fallback_scale: float | None

    @classmethod
    def of(cls, spec: ValueSpec) -> CompiledValue:
        return cls(
            name=spec.name,
            kind=_KINDS[spec.kind],
            oid=oid_tuple(spec.oid),
            scale=spec.scale,
            offset=spec.offset,
            invalid=frozenset(spec.invalid),
            fallback_oid=oid_tuple(spec.fallback_oid) if spec.fallback_oid else None,
            fallback_scale=spec.fallback_scale if spec.fallback_scale is not None else spec.scale,
        )


@dataclass(frozen=True, slots=True)
class CompiledTable:
    measurement: str
    index_tag: str
    tags: tuple[tuple[str, Oid], ...]
    columns: tuple[CompiledValue, ...]

    @classmethod
    def of(cls, spec: TableSpec) -> CompiledTable:
        return cls(
            measurement=spec.measurement,
            index_tag=spec.index_tag,
            tags=tuple((k, oid_tuple(v)) for k, v in spec.tags.items()),
            columns=tuple(CompiledValue.of(c) for c in spec.columns),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """What to ask a device for, in numeric form, built once per device at start."""

    scalars: tuple[tuple[str, tuple[CompiledValue, ...]], ...]  # (measurement, values)
    tables: tuple[CompiledTable, ...]

    @classmethod
    def of(cls, profiles: tuple[Profile, ...]) -> Plan:
        scalars: dict[str, list[CompiledValue]] = {}
        tables: list[CompiledTable] = []
        for profile in profiles:
            if profile.scalars:
                assert profile.measurement is not None
                scalars.setdefault(profile.measurement, []).extend(
                    CompiledValue.of(s) for s in profile.scalars
                )
            tables.extend(CompiledTable.of(t) for t in profile.tables)
        return cls(tuple((m, tuple(v)) for m, v in scalars.items()), tuple(tables))


def decode_text(raw: bytes) -> str:
    """Device strings: UTF-8 when valid and printable, else Latin-1 when printable, else hex."""
    raw = raw.rstrip(b"\x00")
    for codec in ("utf-8", "latin-1"):
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if text.isprintable():
            return text
    return "0x" + raw.hex()


@dataclass(slots=True)
class Converter:
    """Applies a CompiledValue to a raw SNMP value, counting what it cannot use."""

    errors: Counter[str] = field(default_factory=Counter)

    def value(self, spec: CompiledValue, raw: SnmpValue, scale: float | None = None,
              ) -> int | float | str | None:
        if isinstance(raw, Missing):
            self.errors[raw.reason] += 1
            return None
        if spec.kind is Kind.INFO:
            if isinstance(raw, bytes):
                return decode_text(raw)
            return str(raw)
        number: int | float
        if isinstance(raw, int):
            number = raw
        elif isinstance(raw, bytes):
            match = _NUMBER.search(raw)  # vendors that report numbers as text ("-40", "10.0 dB")
            if match is None:
                self.errors["wrong_type"] += 1
                return None
            text = match.group().decode()
            number = float(text) if any(c in text for c in ".eE") else int(text)
        else:
            self.errors["wrong_type"] += 1
            return None
        if number in spec.invalid:
            return None
        if spec.kind is Kind.COUNTER:
            if not isinstance(number, int) or number < 0:
                self.errors["wrong_type"] += 1
                return None
            return number
        if spec.kind is Kind.STATE:
            return int(number)
        scale = spec.scale if scale is None else scale
        was_int = isinstance(number, int)
        if scale is not None:
            number = number * scale
        if spec.offset is not None:
            number = number + spec.offset
        if isinstance(number, float):
            if not math.isfinite(number):
                self.errors["wrong_type"] += 1
                return None
            if was_int and number.is_integer() and abs(number) < 2**53:
                return int(number)  # e.g. ifHighSpeed x 1e6: keep exact integers exact
        return number


def _chunks(items: list[Oid], size: int) -> list[list[Oid]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class DevicePoller:
    """Polls one device; holds its compiled plan and its cumulative anomaly counters."""

    def __init__(self, site: str, device: Device, client: SnmpClient,
                 next_seq: Callable[[str], int]) -> None:
        self.site = site
        self.device = device
        self.plan = Plan.of(device.profiles)
        self._client = client
        self._next_seq = next_seq
        self._conv = Converter()
        self._session: SnmpSession | None = None
        snmp = device.snmp
        self._creds = SnmpCredentials(
            version=snmp.version, community=snmp.community_value, user=snmp.user or "",
            auth_protocol=snmp.auth_protocol, auth_key=snmp.auth_key,
            priv_protocol=snmp.priv_protocol, priv_key=snmp.priv_key, context=snmp.context,
        )

    @property
    def errors(self) -> Counter[str]:
        return self._conv.errors

    async def poll(self) -> SampleSet:
        started = time.time()
        t0 = time.monotonic()
        groups: list[Group] = []
        reason = ""
        try:
            async with asyncio.timeout(self.device.deadline):
                groups = await self._collect()
        except TimeoutError:
            reason = "deadline"
        except SnmpError as exc:
            reason = exc.reason
            if exc.reason == "engine":
                self._session = None  # rediscover the v3 engine on the next poll
        if reason:
            self._conv.errors[reason] += 1
            groups = []
        return SampleSet(
            site=self.site,
            device=self.device.name,
            seq=self._next_seq(self.device.name),
            ts_ms=int(started * 1000),
            duration_ms=int((time.monotonic() - t0) * 1000),
            up=not reason,
            reason=reason,
            groups=groups,
            errors=dict(self._conv.errors),
        )

    async def _get_session(self) -> SnmpSession:
        if self._session is None:
            d = self.device
            self._session = await self._client.session(
                d.host, d.port, self._creds, timeout=d.timeout, retries=d.retries
            )
        return self._session

    async def _collect(self) -> list[Group]:
        session = await self._get_session()
        groups: list[Group] = []
        for measurement, values in self.plan.scalars:
            raw: dict[Oid, SnmpValue] = {}
            for chunk in _chunks([v.oid for v in values], self.device.max_varbinds):
                raw.update(await session.get(chunk))
            fields = []
            for spec in values:
                value = self._conv.value(spec, raw.get(spec.oid, END_OF_MIB))
                if value is not None:
                    fields.append(Field(spec.name, spec.kind, value))
            groups.append(Group(measurement, {}, fields))
        for table in self.plan.tables:
            groups.extend(await self._table(session, table))
        return groups

    async def _table(self, session: SnmpSession, table: CompiledTable) -> list[Group]:
        columns = [c.oid for c in table.columns] + [oid for _, oid in table.tags]
        walked = await self.walk(session, columns)
        indexes: dict[Oid, None] = {}
        for col in table.columns:
            indexes.update(dict.fromkeys(walked[col.oid]))
        # Rows that lack a column with a fallback (e.g. no ifHCInOctets): walk the fallbacks.
        fallback_cols = [c for c in table.columns if c.fallback_oid is not None
                         and any(i not in walked[c.oid] for i in indexes)]
        fallback: dict[Oid, dict[Oid, SnmpValue]] = {}
        if fallback_cols:
            fallback = await self.walk(session, [c.fallback_oid for c in fallback_cols
                                                 if c.fallback_oid is not None])
            for c in fallback_cols:
                assert c.fallback_oid is not None
                indexes.update(dict.fromkeys(fallback[c.fallback_oid]))
        groups = []
        for index in indexes:
            tags = {table.index_tag: ".".join(map(str, index))}
            for tag, oid in table.tags:
                raw = walked[oid].get(index)
                if raw is not None and not isinstance(raw, Missing):
                    text = decode_text(raw) if isinstance(raw, bytes) else str(raw)
                    if text:
                        tags[tag] = text
            fields = []
            for col in table.columns:
                raw = walked[col.oid].get(index)
                if raw is not None:
                    value = self._conv.value(col, raw)
                elif col.fallback_oid is not None and index in fallback.get(col.fallback_oid, {}):
                    value = self._conv.value(col, fallback[col.fallback_oid][index],
                                             col.fallback_scale)
                else:
                    continue
                if value is not None:
                    fields.append(Field(col.name, col.kind, value))
            if fields:
                groups.append(Group(table.measurement, tags, fields))
        return groups

    async def walk(self, session: SnmpSession, columns: list[Oid]) -> dict[Oid, dict[Oid, SnmpValue]]:
        """Walk columns together with GETBULK (GETNEXT without bulk); {column: {index: value}}."""
        out: dict[Oid, dict[Oid, SnmpValue]] = {c: {} for c in columns}
        for chunk in _chunks(list(dict.fromkeys(columns)), self.device.max_varbinds):
            position = {c: c for c in chunk}
            while position:
                active = list(position)
                rows = await session.next_rows([position[c] for c in active],
                                               self.device.max_repetitions, self.device.bulk)
                done: set[Oid] = set()
                for row in rows:
                    for col, (oid, value) in zip(active, row, strict=False):
                        if col in done:
                            continue
                        if value is END_OF_MIB or oid[:len(col)] != col or len(oid) == len(col):
                            done.add(col)
                            continue
                        index = oid[len(col):]
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
