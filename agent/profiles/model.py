"""Device profiles: what a kind of device exposes, as data validated once into typed objects.

A profile names SNMP objects, says what kind of value each is and how to scale it. Built-in
profiles live as YAML files in config/profiles/ (installed as agent.profiles.shipped); a site
adds its own (`profile_files:`, inline `profiles:`). The poll loop only ever sees the compiled,
numeric form, never YAML.

Mistakes that would break monitoring without a word are refused here, each with file:line and
key: strings where numbers belong (no coercion), OIDs the encoder cannot send, documented
metric names (docs/metrics.md) with another kind or unit, one field with two kinds, two site
profiles of one name, and a site profile that replaces a shipped one without `replaces:`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from agent.profiles import spec
from agent.profiles.mibs import is_symbolic, resolve
from pantau.settings import (
    ConfigError,
    LineMap,
    Loc,
    StrictModel,
    format_loc,
    load_yaml,
    validate,
)

OID_RE = re.compile(r"^\.?[0-2](\.[0-9]+)+$")
NAME_RE = r"^[a-z][a-z0-9_]*$"
MAX_SUBID = 2**32 - 1  # SNMP sub-identifiers are unsigned 32-bit (RFC 2578 §3.5)
MAX_ARCS = 128  # and an OID has at most 128 of them


def _normalise_oid(value: str) -> str:
    value = str(value).strip()
    if is_symbolic(value):
        value = resolve(value)  # at load time only: the poll loop sees numbers
    elif not OID_RE.match(value):
        raise ValueError(f"not a numeric OID or MODULE::name: {value!r}")
    value = value.lstrip(".")
    check_oid(value)
    return value


def check_oid(oid: str) -> None:
    """ValueError unless the BER encoder can send `oid` (dotted numbers): the first two arcs
    share one byte (first × 40 + second), so the first is 0, 1 or 2 and, under 0 and 1, the
    second is below 40; SNMP allows 2..128 arcs of at most 2^32 - 1."""
    arcs = [int(a) for a in oid.split(".")]
    if len(arcs) < 2 or len(arcs) > MAX_ARCS:
        raise ValueError(f"OID {oid}: {len(arcs)} arcs; SNMP allows 2 to {MAX_ARCS}")
    if arcs[0] > 2:
        raise ValueError(f"OID {oid}: the first arc must be 0, 1 or 2")
    if arcs[0] < 2 and arcs[1] >= 40:
        raise ValueError(f"OID {oid}: under {arcs[0]} the second arc must be below 40")
    if max(arcs) > MAX_SUBID:
        raise ValueError(f"OID {oid}: an arc is above {MAX_SUBID} (SNMP's 32-bit limit)")


Oid = Annotated[str, pydantic.BeforeValidator(_normalise_oid)]
Name = Annotated[str, pydantic.StringConstraints(pattern=NAME_RE, max_length=64)]
TagName = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
KindName = Literal["gauge", "counter", "state", "info"]


def _help_text(value: str) -> str:
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError("help is one line of text: no newlines, tabs or control characters")
    return value


Help = Annotated[
    str, pydantic.StringConstraints(max_length=200), pydantic.AfterValidator(_help_text)
]
"""Shown by `probe --json` and `discover`; one line, as a Prometheus HELP line must be."""

DOCUMENTED: dict[str, tuple[KindName, str]] = {
    # The names alerts and dashboards rely on (docs/metrics.md): kind and unit. A profile may
    # leave the unit out; it may not give another. tests/test_profile_mistakes.py keeps this
    # table and the document in step.
    "rsl_dbm": ("gauge", "dBm"),
    "tx_power_dbm": ("gauge", "dBm"),
    "rx_power_dbm": ("gauge", "dBm"),
    "snr_db": ("gauge", "dB"),
    "esno_db": ("gauge", "dB"),
    "cn_db": ("gauge", "dB"),
    "ebno_db": ("gauge", "dB"),
    "link_margin_db": ("gauge", "dB"),
    "mse_db": ("gauge", "dB"),
    "xpi_db": ("gauge", "dB"),
    "modulation": ("state", ""),
    "capacity_bps": ("gauge", "bit/s"),
    "lock": ("gauge", ""),
    "rsrp_dbm": ("gauge", "dBm"),
    "rsrq_db": ("gauge", "dB"),
    "sinr_db": ("gauge", "dB"),
    "rssi_dbm": ("gauge", "dBm"),
    "technology": ("info", ""),
    "operator": ("info", ""),
    "battery_voltage_volts": ("gauge", "V"),
    "dc_bus_voltage_volts": ("gauge", "V"),
    "battery_current_amperes": ("gauge", "A"),
    "rectifier_current_amperes": ("gauge", "A"),
    "load_current_amperes": ("gauge", "A"),
    "battery_charge_percent": ("gauge", "%"),
    "battery_runtime_minutes": ("gauge", "min"),
    "battery_temperature_celsius": ("gauge", "°C"),
    "on_battery": ("gauge", ""),
    "mains_ok": ("gauge", ""),
    "generator_running": ("gauge", ""),
    "fuel_percent": ("gauge", "%"),
    "input_voltage_volts": ("gauge", "V"),
    "output_voltage_volts": ("gauge", "V"),
    "uptime_seconds": ("gauge", "s"),
    "name": ("info", ""),
    "descr": ("info", ""),
    "object_id": ("info", ""),
    "oper_status": ("state", ""),
    "admin_status": ("state", ""),
    "in_octets": ("counter", "bytes"),
    "out_octets": ("counter", "bytes"),
    "in_errors": ("counter", ""),
    "out_errors": ("counter", ""),
    "in_discards": ("counter", ""),
    "out_discards": ("counter", ""),
    "speed_bps": ("gauge", "bit/s"),
    "rtt_seconds": ("gauge", "s"),
    "loss_ratio": ("gauge", ""),
}
_KIND_WORDS = {
    "gauge": "a gauge",
    "counter": "a counter",
    "state": "a state",
    "info": "text (info)",
}


class _ProfileModel(StrictModel):
    """Profile data is typed strictly: `scale: "0.1"` is an error, not silently 0.1."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, strict=True)


class ValueSpec(_ProfileModel):
    """One value: where to read it and how to turn the raw SNMP value into a number or text."""

    name: Name
    oid: Oid
    kind: KindName = pydantic.Field("gauge", validate_default=True)
    unit: str = ""
    help: Help = ""

    @pydantic.field_validator("kind")
    @classmethod
    def _documented_kind(cls, kind: KindName, info: pydantic.ValidationInfo) -> KindName:
        name = info.data.get("name")
        if name in DOCUMENTED and DOCUMENTED[name][0] != kind:
            want, unit = DOCUMENTED[name]
            published = f"pantau_<measurement>_{name}" + ("_total" if kind == "counter" else "")
            if kind == "info":
                published = "a label of pantau_<measurement>_info"
            raise ValueError(
                f"{name} is documented as {_KIND_WORDS[want]}"
                f"{' in ' + unit if unit else ''} (docs/metrics.md), not {kind}: as {kind} "
                f"it would be published as {published} and break the alerts and dashboards "
                "that use it; use the documented kind or another name"
            )
        return kind

    @pydantic.field_validator("unit")
    @classmethod
    def _documented_unit(cls, unit: str, info: pydantic.ValidationInfo) -> str:
        name = info.data.get("name")
        if unit and name in DOCUMENTED and unit != DOCUMENTED[name][1]:
            want = DOCUMENTED[name][1]
            raise ValueError(
                f"{name} is documented in {want or 'no unit'} (docs/metrics.md), not {unit}: "
                + ("scale the value to it" if want else "leave unit out")
                + " or use another name"
            )
        return unit

    scale: float | None = None
    offset: float | None = None
    states: dict[int, str] | None = None
    invalid: list[int | float | str] = []  # sentinel raw values that mean "no reading"
    pattern: str | None = None  # regex whose first group (or whole match) is the number/text
    fallback_oid: Oid | None = None
    fallback_scale: float | None = None  # scale for fallback_oid, which often has other units
    bit: int | None = pydantic.Field(None, ge=0, le=63)  # publish only this bit (0/1)
    map: dict[int | str, float] | None = None  # raw number or text → number ("Locked" → 1)
    map_default: float | None = None  # for raw numbers `map` does not list; else absent
    multiply_by: Name | None = None  # another column of the same row (tables only)
    convert: Literal["mw_to_dbm"] | None = None  # after scale/offset; <= 0 mW gives no value
    tags: dict[TagName, str] = {}  # constant tags (scalars): e.g. {demod: "2"} for a 2nd unit

    @pydantic.model_validator(mode="after")
    def _check(self) -> ValueSpec:
        if self.kind != "gauge" and (
            self.bit is not None or self.map is not None or self.multiply_by is not None
        ):
            raise ValueError("bit, map and multiply_by make a gauge: use kind: gauge")
        if self.map_default is not None and self.map is None:
            raise ValueError("map_default needs map")
        if self.convert is not None and self.kind != "gauge":
            raise ValueError("convert makes a gauge: use kind: gauge")
        if self.kind in ("counter", "info") and (self.scale is not None or self.offset is not None):
            raise ValueError(f"{self.kind} values are sent raw: scale/offset are not allowed")
        if self.fallback_scale is not None and self.fallback_oid is None:
            raise ValueError("fallback_scale needs fallback_oid")
        if self.states is not None and self.kind != "state":
            raise ValueError("states are only allowed on kind: state")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return self


TransformName = Literal["entity_sensor"]


class TableSpec(_ProfileModel):
    """A conceptual table walked with GETBULK: the row index and tag columns identify a row.

    A tag may list several columns: the first one with a non-empty value names the row (e.g.
    entPhysicalName, else entPhysicalDescr). A `transform` turns a row's raw columns into
    vendor-neutral fields where plain scaling cannot (see agent/transforms.py).
    """

    measurement: Name
    index_tag: TagName = "index"
    tags: dict[TagName, Oid | list[Oid]] = {}
    columns: list[ValueSpec] = pydantic.Field(min_length=1)
    transform: TransformName | None = None
    transform_options: dict[str, int | float | str] = {}

    @pydantic.model_validator(mode="after")
    def _unique(self) -> TableSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {', '.join(dupes)}")
        for c in self.columns:
            if c.tags:
                raise ValueError(
                    f"{c.name}: constant tags are for scalars; a table's rows are "
                    "named by index_tag and tags"
                )
            if c.multiply_by is not None and c.multiply_by not in names:
                raise ValueError(
                    f"{c.name}: multiply_by {c.multiply_by!r} is not a column of this table"
                )
        return self


class Match(_ProfileModel):
    """When a profile applies to a device it was not named for: by sysObjectID prefix, or (as
    a fallback, for devices that report a generic sysObjectID) by a sysDescr pattern."""

    sys_object_id: list[Oid] = []
    sys_descr: list[str] = []
    # For devices whose sysObjectID and sysDescr are generic (an embedded net-snmp): objects
    # that must answer with text matching these patterns, e.g. a vendor's model name OID.
    oid_value: dict[Oid, str] = {}

    @pydantic.field_validator("sys_descr")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            _regex(p)
        return patterns

    @pydantic.field_validator("oid_value")
    @classmethod
    def _value_regexes(cls, patterns: dict[str, str]) -> dict[str, str]:
        for p in patterns.values():
            _regex(p)
        return patterns

    def matches(
        self, sys_object_id: str, sys_descr: str, values: dict[str, str] | None = None
    ) -> int:
        """0 if no match; else a score (agent.profiles.spec.match_score)."""
        return spec.match_score(self, sys_object_id, sys_descr, values)


def _regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


TrapName = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
Severity = Literal["critical", "major", "minor", "warning", "info", "clear"]


class TrapVarbind(_ProfileModel):
    """A varbind of a trap that matters: its name in the event and the OID it starts with (a
    column such as IF-MIB::ifIndex; the instance the device appends is not part of it)."""

    name: TagName
    oid: Oid


class ClearWhen(_ProfileModel):
    """An alarm trap that also says when its condition ends (vendors' one trap with an on/off
    varbind, e.g. Eltek SP2-MIB alarmSubsysStatusOnOff): with `varbind` equal to one of
    `values` it clears its own alarm instead of raising it. Compared as text: the profile
    cannot know whether a device sends the on/off as INTEGER or OCTET STRING ("0" is 0)."""

    varbind: TagName
    values: list[int | str] = pydantic.Field(min_length=1)


class TrapSpec(_ProfileModel):
    """A trap (or inform) the device may send: its OID (snmpTrapOID; for SNMPv1 traps the one
    RFC 3584 builds from enterprise and specific trap), a name, a severity, the varbinds that
    matter, whether it raises an alarm (`alarm: true`, one per value of `key`), which alarms
    it clears (by trap name, for the same `key` values; or by a varbind: `clear_when`) and
    whether it asks for a poll now."""

    name: TrapName
    oid: Oid
    severity: Severity
    help: Help = ""
    varbinds: list[TrapVarbind] = []
    alarm: bool = False
    key: list[TagName] = []  # varbind names that tell one alarm of this kind from another
    clears: list[TrapName] = []
    clear_when: ClearWhen | None = None  # the alarm trap's own varbind says "cleared"
    poll: bool = False  # poll the device at once (rate-limited) when it arrives

    @pydantic.model_validator(mode="after")
    def _check(self) -> TrapSpec:
        names = [v.name for v in self.varbinds]
        if len(set(names)) != len(names):
            raise ValueError("duplicate varbind names")
        unknown = [k for k in self.key if k not in names]
        if unknown:
            raise ValueError(f"key names no varbind: {', '.join(unknown)}")
        if self.alarm and self.severity in ("info", "clear"):
            raise ValueError(f"an alarm needs a severity above info, not {self.severity!r}")
        if self.alarm and self.clears:
            raise ValueError("a trap either raises an alarm or clears some, not both")
        if self.name in self.clears:
            raise ValueError("a trap cannot clear itself")
        if self.clear_when is not None:
            if not self.alarm:
                raise ValueError("clear_when is for a trap that raises an alarm")
            if self.clear_when.varbind not in names:
                raise ValueError(f"clear_when names no varbind: {self.clear_when.varbind}")
            if self.clear_when.varbind in self.key:  # on and off would be two alarms
                raise ValueError(
                    f"clear_when's varbind {self.clear_when.varbind} is in key: the raise and "
                    "the clear would name different alarms and never pair"
                )
        return self


ProfileName = Annotated[str, pydantic.StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Category = Literal["generic", "vsat", "microwave", "fiber", "cellular", "power", "gateway"]


class Profile(_ProfileModel):
    name: ProfileName
    # A site profile with a shipped profile's name replaces it only when it says so; with
    # another name it takes the shipped one out of detection and adds itself.
    replaces: ProfileName | None = None
    description: str = ""
    category: Category = "generic"
    match: Match | None = None
    measurement: Name | None = None
    invalid: list[int | float | str] = []  # sentinels for every value of this profile
    scalars: list[ValueSpec] = []
    tables: list[TableSpec] = []
    traps: list[TrapSpec] = []  # what the device may say on its own (docs/traps.md)

    @pydantic.model_validator(mode="after")
    def _check(self) -> Profile:
        if not self.scalars and not self.tables:
            raise ValueError("a profile needs scalars or tables")
        trap_names = [t.name for t in self.traps]
        if len(set(trap_names)) != len(trap_names):
            raise ValueError("duplicate trap names")
        trap_oids = [t.oid for t in self.traps]
        if len(set(trap_oids)) != len(trap_oids):
            raise ValueError("two traps with one OID")
        unknown = sorted({c for t in self.traps for c in t.clears} - set(trap_names))
        if unknown:
            raise ValueError(f"clears names no trap of this profile: {', '.join(unknown)}")
        raising = {t.name: t for t in self.traps if t.alarm}
        for t in self.traps:
            for c in t.clears:
                if c not in raising:
                    raise ValueError(f"{t.name} clears {c}, which raises no alarm")
                if raising[c].key != t.key:
                    raise ValueError(f"{t.name} clears {c}: their key must be the same")
        if self.scalars and self.measurement is None:
            raise ValueError("measurement is required when the profile has scalars")
        keys = [(s.name, tuple(sorted(s.tags.items()))) for s in self.scalars]
        dupes = sorted({k[0] for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"duplicate scalar names (with the same tags): {', '.join(dupes)}")
        if any(s.multiply_by for s in self.scalars):
            raise ValueError("multiply_by is for table columns")
        return self


class ProfileFile(_ProfileModel):
    profiles: list[Profile] = pydantic.Field(min_length=1)


def load_profile_file(path: Path) -> list[Profile]:
    return [source.profile for source in load_profile_sources(path)]


@dataclass(frozen=True)
class ProfileSource:
    """A loaded profile and where it is written, for the checks that need several profiles."""

    profile: Profile
    path: Path
    lines: LineMap
    loc: Loc  # the profile's key path in its file, ("profiles", i)
    shipped: bool = False

    def line(self, *keys: str | int) -> int:
        return self.lines.line((*self.loc, *keys))

    def where(self, *keys: str | int) -> str:
        """'file:line: key' of one of this profile's keys, as every config error starts."""
        return f"{self.path}:{self.line(*keys)}: {format_loc((*self.loc, *keys))}"


def load_profile_sources(
    path: Path, *, shipped: bool = False, lines: LineMap | None = None
) -> list[ProfileSource]:
    """The profiles of one file. `lines`: the line map the sources keep (the one just parsed
    if None); it is only read for error messages."""
    data, parsed = load_yaml(path)
    doc = validate(ProfileFile, data, parsed, path)
    kept = parsed if lines is None else lines
    return [
        ProfileSource(profile, path, kept, ("profiles", i), shipped)
        for i, profile in enumerate(doc.profiles)
    ]


class _ShippedLines(LineMap):
    """A shipped file's line map, parsed again only when a message names one of its lines.
    The shipped files are valid, so a running agent never asks; the agent keeps their profiles
    for detection for as long as it runs, and their line maps (about 0.7 MiB of key paths for
    41 profiles) need not stay with them."""

    def __init__(self, entry: Traversable) -> None:
        super().__init__()
        self._entry = entry
        self._parsed: LineMap | None = None

    def line(self, loc: Loc) -> int:
        if self._parsed is None:
            with resources.as_file(self._entry) as path:
                self._parsed = load_yaml(Path(path))[1]
        return self._parsed.line(loc)


def published_values(profile: Profile) -> Iterator[tuple[str, ValueSpec, Loc]]:
    """(measurement, value, its key path in the profile) of every field the profile publishes.
    A transform's input columns are not published (the transform names what it makes)."""
    for j, scalar in enumerate(profile.scalars):
        yield profile.measurement or "", scalar, ("scalars", j)
    for k, table in enumerate(profile.tables):
        if table.transform is None:
            for j, column in enumerate(table.columns):
                yield table.measurement, column, ("tables", k, "columns", j)


def check_kinds(sources: Sequence[ProfileSource]) -> list[str]:
    """One (measurement, field) has one kind in every profile: InfluxDB refuses a field whose
    type changes, and Prometheus would publish two different series. The later profile is
    reported, naming the earlier one."""
    errors: list[str] = []
    first: dict[tuple[str, str], tuple[ProfileSource, ValueSpec, Loc]] = {}
    for source in sources:
        for measurement, value, loc in published_values(source.profile):
            key = (measurement, value.name)
            if key not in first:
                first[key] = (source, value, loc)
                continue
            other, other_value, other_loc = first[key]
            if other_value.kind != value.kind:
                errors.append(
                    f"{source.where(*loc, 'kind')}: {measurement}.{value.name} is "
                    f"{_KIND_WORDS[value.kind]} here but {_KIND_WORDS[other_value.kind]} in "
                    f"profile {other.profile.name!r} ({other.path}:{other.line(*other_loc)}); "
                    "a field has one kind everywhere (InfluxDB refuses a field whose type "
                    "changes): use the same kind or another name"
                )
    return errors


SHIPPED_PACKAGE = "agent.profiles.shipped"
"""The data package config/profiles/ is installed as (pyproject.toml maps it)."""


@cache
def builtin_sources() -> dict[str, ProfileSource]:
    """The profiles shipped in config/profiles/*.yaml (installed as agent.profiles.shipped), by
    name, with where each is written."""
    out: dict[str, ProfileSource] = {}
    errors: list[str] = []
    folder = resources.files(SHIPPED_PACKAGE)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        with resources.as_file(entry) as path:
            for source in load_profile_sources(
                Path(path), shipped=True, lines=_ShippedLines(entry)
            ):
                name = source.profile.name
                if name in out:
                    errors.append(
                        f"{source.where('name')}: profile {name!r} is defined twice "
                        f"(also {out[name].path}:{out[name].line('name')})"
                    )
                    continue
                if source.profile.replaces is not None:
                    errors.append(f"{source.where('replaces')}: replaces is for site profiles")
                out[name] = source
    errors += check_kinds(list(out.values()))
    if errors:
        raise ConfigError(errors)
    return out


@cache
def builtin_profiles() -> dict[str, Profile]:
    """The shipped profiles by name."""
    return {name: source.profile for name, source in builtin_sources().items()}


@dataclass(frozen=True)
class MergedProfiles:
    """The profiles a config can use: the shipped ones and the site's, merged."""

    known: dict[str, Profile]  # by name
    site: dict[str, ProfileSource]  # the site's own, by name
    replaced: dict[str, ProfileSource]  # a shipped name -> the site profile that replaces it
    errors: list[str]


def merge_profiles(
    shipped: Mapping[str, ProfileSource], site: Sequence[ProfileSource]
) -> MergedProfiles:
    """Add the site's profiles to the shipped ones. A name defined twice by the site is an
    error naming both places (the last would silently win); a site profile with a shipped
    profile's name is an error unless it says `replaces: <that name>`; a replaced shipped
    profile is neither detected nor known by name any more."""
    errors: list[str] = []
    own: dict[str, ProfileSource] = {}
    for source in site:
        name = source.profile.name
        if name in own:
            first = own[name]
            errors.append(
                f"{source.where('name')}: profile {name!r} is defined twice: here and at "
                f"{first.path}:{first.line('name')}; rename one (the last one would silently "
                "win)"
            )
            continue
        own[name] = source
    replaced: dict[str, ProfileSource] = {}
    for name, source in own.items():
        target = source.profile.replaces
        if target is not None:
            if target not in shipped:
                errors.append(
                    f"{source.where('replaces')}: replaces {target!r}: no shipped profile has "
                    f"that name (shipped: {', '.join(sorted(shipped))})"
                )
            elif target in replaced:
                other = replaced[target]
                errors.append(
                    f"{source.where('replaces')}: the shipped profile {target!r} is already "
                    f"replaced by {other.profile.name!r} ({other.path}:"
                    f"{other.line('replaces')})"
                )
            else:
                replaced[target] = source
        if name in shipped and target != name:
            errors.append(
                f"{source.where('name')}: profile {name!r} has the name of a shipped profile "
                f"({shipped[name].path}) and would replace it for every device: write "
                f"`replaces: {name}` if that is meant, else choose another name"
            )
    effective = [s for n, s in shipped.items() if n not in replaced and n not in own]
    errors += check_kinds([*effective, *own.values()])
    known = {s.profile.name: s.profile for s in effective}
    known.update((name, s.profile) for name, s in own.items())
    return MergedProfiles(known, own, replaced, errors)


_PLAIN: dict[type[pydantic.BaseModel], type[Any]] = {
    ValueSpec: spec.ValueSpec,
    TableSpec: spec.TableSpec,
    Match: spec.Match,
    TrapVarbind: spec.TrapVarbind,
    ClearWhen: spec.ClearWhen,
    TrapSpec: spec.TrapSpec,
    Profile: spec.Profile,
}


def plain_profile(profile: Profile, memo: dict[int, Any] | None = None) -> spec.Profile:
    """The validated profile as the running agent keeps it (agent.profiles.spec): the same
    fields, as plain objects. `memo` (by id) keeps one plain object per model, so profiles
    that devices share stay shared (Plan.of compiles once per set of profile objects)."""
    out: spec.Profile = _plain(profile, {} if memo is None else memo)
    return out


def _plain(value: Any, memo: dict[int, Any]) -> Any:
    if isinstance(value, pydantic.BaseModel):
        done = memo.get(id(value))
        if done is None:
            target = _PLAIN[type(value)]
            done = target(**{f.name: _plain(getattr(value, f.name), memo) for f in fields(target)})
            memo[id(value)] = done
        return done
    if isinstance(value, list):
        return [_plain(v, memo) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, memo) for k, v in value.items()}
    return value
