"""Profiles compiled for the hot path, and the conversion of raw SNMP values by them.

Compiling happens once per set of profiles, shared by every device that polls that set (and
again only when detection picks a set not compiled yet): OIDs become tuples, regexes are
compiled, profile-wide sentinels are merged into each value. The poll loop then only does tuple
lookups and arithmetic.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from agent.profiles.spec import Profile, TableSpec, ValueSpec
from agent.profiles.transforms import TRANSFORMS
from agent.snmp.values import Missing, Oid, SnmpValue, oid_tuple
from pantau.wire import Field, Kind

STATE_MAX = 2**63 - 1
"""Largest magnitude of a state (InfluxDB's `i`; the collector refuses more as bad_value)."""
_KINDS = {"gauge": Kind.GAUGE, "counter": Kind.COUNTER, "state": Kind.STATE, "info": Kind.INFO}
_NUMBER = re.compile(rb"[-+]?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\b(?i:inf(?:inity)?|nan)\b)")

BAD_VALUE = "bad_value"
"""Error kind of a value the device sent that no number or text can be made of: not finite
(`inf`, `nan`, `1e400`), beyond 64 bits, beyond what a scale or factor can keep finite, or
absurdly long. The value is left out; the rest of the poll goes on."""
WIRE_INT_MIN = -(2**63)
WIRE_INT_MAX = 2**64 - 1  # integers the wire format (MessagePack) carries
MAX_NUMBER_CHARS = 64  # a number written as text, sign, point and exponent included
MAX_TEXT_CHARS = 4096  # an info value or a tag (DisplayString is at most 255 octets)
MAX_RAW_BYTES = 65535  # an OCTET STRING a conversion even looks at


def wire_number(number: int | float) -> bool:
    """Whether a number can travel: a finite float, or an integer MessagePack can encode."""
    if isinstance(number, float):
        return math.isfinite(number)
    return WIRE_INT_MIN <= number <= WIRE_INT_MAX


class Transform(Protocol):
    """A row transform (agent/profiles/transforms.py): counts what it cannot read in `errors`."""

    def __call__(
        self,
        values: dict[str, int | float | str],
        tags: dict[str, str],
        measurement: str,
        *,
        errors: Counter[str] | None = None,
    ) -> tuple[str, list[Field]]: ...


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
    pattern: re.Pattern[bytes] | None = None
    bit: int | None = None
    mapping: dict[int | str, float] | None = None
    map_default: float | None = None
    multiply_by: str | None = None
    convert: str | None = None

    @classmethod
    def of(
        cls,
        spec: ValueSpec,
        invalid: list[int | float | str] | None = None,
    ) -> CompiledValue:
        return cls(
            name=spec.name,
            kind=_KINDS[spec.kind],
            oid=oid_tuple(spec.oid),
            scale=spec.scale,
            offset=spec.offset,
            invalid=frozenset([*spec.invalid, *(invalid or [])]),
            fallback_oid=oid_tuple(spec.fallback_oid) if spec.fallback_oid else None,
            fallback_scale=spec.fallback_scale if spec.fallback_scale is not None else spec.scale,
            pattern=re.compile(spec.pattern.encode()) if spec.pattern else None,
            bit=spec.bit,
            mapping=spec.map,
            map_default=spec.map_default,
            multiply_by=spec.multiply_by,
            convert=spec.convert,
        )


@dataclass(frozen=True, slots=True)
class CompiledTable:
    measurement: str
    index_tag: str
    tags: tuple[tuple[str, tuple[Oid, ...]], ...]  # tag → columns, first non-empty wins
    columns: tuple[CompiledValue, ...]
    transform: Transform | None = None

    @classmethod
    def of(cls, spec: TableSpec, invalid: list[int | float | str]) -> CompiledTable:
        return cls(
            measurement=spec.measurement,
            index_tag=spec.index_tag,
            tags=tuple(
                (k, tuple(oid_tuple(o) for o in (v if isinstance(v, list) else [v])))
                for k, v in spec.tags.items()
            ),
            columns=tuple(CompiledValue.of(c, invalid) for c in spec.columns),
            transform=functools.partial(TRANSFORMS[spec.transform], **spec.transform_options)
            if spec.transform
            else None,
        )

    @property
    def tag_oids(self) -> list[Oid]:
        return [oid for _, oids in self.tags for oid in oids]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to ask a device for, in numeric form."""

    profiles: tuple[str, ...]
    # (measurement, constant tags, values): one group per distinct measurement and tags
    scalars: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[CompiledValue, ...]], ...]
    tables: tuple[CompiledTable, ...]

    @classmethod
    def of(cls, profiles: tuple[Profile, ...]) -> Plan:
        """The plan of these profiles, compiled once and shared: every device that polls the
        same profiles (50 radios of one model) holds the same immutable plan, not a copy each
        (about 12 KiB a device with the shipped profiles)."""
        key = tuple(map(id, profiles))
        hit = _PLANS.get(key)
        if hit is not None:
            return hit[0]
        plan = cls._compile(profiles)
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()  # a process that loads many configs (tests) does not grow without end
        # The profiles are kept with their plan so that their ids cannot be reused meanwhile.
        _PLANS[key] = (plan, profiles)
        return plan

    @classmethod
    def _compile(cls, profiles: tuple[Profile, ...]) -> Plan:
        scalars: dict[tuple[str, tuple[tuple[str, str], ...]], list[CompiledValue]] = {}
        tables: list[CompiledTable] = []
        for profile in profiles:
            assert profile.measurement is not None or not profile.scalars
            for s in profile.scalars:
                key = (profile.measurement or "", tuple(sorted(s.tags.items())))
                scalars.setdefault(key, []).append(CompiledValue.of(s, profile.invalid))
            tables.extend(CompiledTable.of(t, profile.invalid) for t in profile.tables)
        return cls(
            tuple(p.name for p in profiles),
            tuple((m, tags, tuple(v)) for (m, tags), v in scalars.items()),
            tuple(tables),
        )


_PLANS_MAX = 256
_PLANS: dict[tuple[int, ...], tuple[Plan, tuple[Profile, ...]]] = {}
"""Compiled plans by the identities of their profiles (Plan.of)."""


def decode_text(raw: bytes) -> str:
    """Device strings: UTF-8 when valid and printable, else Latin-1 when printable, else hex."""
    raw = raw.rstrip(b"\x00")
    for codec in ("utf-8", "latin-1"):
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        # Line breaks and tabs are text (Cisco's multi-line sysDescr), other controls are not.
        flat = " ".join(text.split()) if any(c in text for c in "\r\n\t") else text
        if flat.isprintable():
            return flat
    return "0x" + raw.hex()


@dataclass(slots=True)
class Converter:
    """Applies a CompiledValue to a raw SNMP value, counting what it cannot use.

    Total over device data: whatever a device sends, `value` returns a value or None (counted
    by kind in `errors`: `wrong_type`, `bad_value`, ...), never raises because of the data."""

    errors: Counter[str] = field(default_factory=Counter)

    def value(
        self,
        spec: CompiledValue,
        raw: SnmpValue,
        scale: float | None = None,
    ) -> int | float | str | None:
        try:
            return self._value(spec, raw, scale)
        except (ArithmeticError, ValueError):
            # The checks below are meant to catch every unusable value first; this is the net
            # for arithmetic they did not foresee (Python's own limits: digits, float range).
            self.errors[BAD_VALUE] += 1
            return None

    def _bad(self) -> None:
        self.errors[BAD_VALUE] += 1

    def _value(
        self,
        spec: CompiledValue,
        raw: SnmpValue,
        scale: float | None,
    ) -> int | float | str | None:
        if isinstance(raw, Missing):
            self.errors[raw.reason] += 1
            return None
        if isinstance(raw, bytes) and len(raw) > MAX_RAW_BYTES:
            self._bad()
            return None
        if isinstance(raw, bytes) and spec.pattern is not None:
            found = spec.pattern.search(raw)
            if found is None:
                return None  # e.g. "no signal", "N/A": no reading, not an error
            raw = found.group(1) if found.groups() else found.group()
            if raw is None:
                return None  # the pattern matched without its group: no reading either
        if spec.mapping is not None and isinstance(raw, bytes):
            mapped_text = spec.mapping.get(decode_text(raw).strip())
            if mapped_text is not None:  # vendors that say "Locked"/"Unlocked"
                return int(mapped_text) if float(mapped_text).is_integer() else mapped_text
        if spec.kind is Kind.INFO:
            text = decode_text(raw) if isinstance(raw, bytes) else str(raw)
            if len(text) > MAX_TEXT_CHARS:
                self._bad()
                return None
            return None if text in spec.invalid else text
        number: int | float
        if isinstance(raw, int):
            number = raw
        elif isinstance(raw, bytes):
            text = decode_text(raw).strip()
            if text in spec.invalid:
                return None
            match = _NUMBER.search(raw)  # vendors that report numbers as text ("-40", "10.0 dB")
            if match is None:
                self.errors["wrong_type"] += 1
                return None
            digits = match.group().decode()
            if len(digits) > MAX_NUMBER_CHARS:
                self._bad()  # 5,000 digits: no instrument has that precision
                return None
            number = float(digits) if any(c in digits for c in ".eEnN") else int(digits)
        else:
            self.errors["wrong_type"] += 1
            return None
        if not wire_number(number):
            self._bad()  # inf, nan, 1e400, beyond 64 bits
            return None
        if number == 0:
            number = type(number)(0)  # -0.0 is zero: no sign, nothing for a dashboard to show
        if number in spec.invalid:
            return None
        if spec.kind is Kind.COUNTER:
            if not isinstance(number, int) or number < 0:
                self.errors["wrong_type"] += 1
                return None
            return number
        if spec.kind is Kind.STATE:
            state = int(number)
            if not -STATE_MAX <= state <= STATE_MAX:
                self._bad()  # a state is a signed 64-bit integer on the wire and in InfluxDB
                return None
            return state
        if spec.bit is not None:
            number = (int(number) >> spec.bit) & 1
        if spec.mapping is not None:
            mapped = spec.mapping.get(int(number), spec.map_default)
            if mapped is None:
                return None
            number = int(mapped) if float(mapped).is_integer() else mapped
        scale = spec.scale if scale is None else scale
        was_int = isinstance(number, int)
        if scale is not None:
            number = number * scale
        if spec.offset is not None:
            number = number + spec.offset
        if not wire_number(number):
            self._bad()  # a huge reading times a scale
            return None
        if spec.convert == "mw_to_dbm":
            if number <= 0:
                return None  # no light: absent, not minus infinity
            return round(10 * math.log10(number), 3)
        if isinstance(number, float):
            if number == 0:
                return 0.0  # not -0.0 (a negative scale times zero)
            if was_int and number.is_integer() and abs(number) < 2**53:
                return int(number)  # e.g. ifHighSpeed x 1e6: keep exact integers exact
            return round(number, 9)  # 0.1 x 123 is 12.3, not 12.300000000000001
        return number
