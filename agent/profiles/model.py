"""Device profiles: what a kind of device exposes, as data validated once into typed objects.

A profile names SNMP objects, says what kind of value each is and how to scale it. Built-in
profiles live as YAML files in agent/profiles/; config files may add more. The poll loop only
ever sees the compiled, numeric form (`Profile`), never YAML.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from agent.profiles.mibs import is_symbolic, resolve
from pantau.settings import ConfigError, StrictModel, load_yaml, validate

OID_RE = re.compile(r"^\.?[0-2](\.[0-9]+)+$")
NAME_RE = r"^[a-z][a-z0-9_]*$"


def _normalise_oid(value: str) -> str:
    value = str(value).strip()
    if is_symbolic(value):
        return resolve(value)  # at load time only: the poll loop sees numbers
    if not OID_RE.match(value):
        raise ValueError(f"not a numeric OID or MODULE::name: {value!r}")
    return value.lstrip(".")


Oid = Annotated[str, pydantic.BeforeValidator(_normalise_oid)]
Name = Annotated[str, pydantic.StringConstraints(pattern=NAME_RE, max_length=64)]
TagName = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
KindName = Literal["gauge", "counter", "state", "info"]


class ValueSpec(StrictModel):
    """One value: where to read it and how to turn the raw SNMP value into a number or text."""

    name: Name
    oid: Oid
    kind: KindName = "gauge"
    unit: str = ""
    help: str = ""
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


class TableSpec(StrictModel):
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


class Match(StrictModel):
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
        """0 if no match; else a score: sysObjectID prefixes (longer first), then answering
        OIDs (`oid_value`), then sysDescr."""
        oid = sys_object_id.strip(".")
        best = 0
        for prefix in self.sys_object_id:
            if oid == prefix or oid.startswith(prefix + "."):
                best = max(best, 1000 + prefix.count("."))
        if (
            not best
            and self.oid_value
            and values is not None
            and all(o in values and re.search(p, values[o]) for o, p in self.oid_value.items())
        ):
            best = 500
        if not best and any(re.search(p, sys_descr) for p in self.sys_descr):
            best = 1
        return best


def _regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


Category = Literal["generic", "vsat", "microwave", "fiber", "cellular", "power", "gateway"]


class Profile(StrictModel):
    name: Annotated[str, pydantic.StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    description: str = ""
    category: Category = "generic"
    match: Match | None = None
    measurement: Name | None = None
    invalid: list[int | float | str] = []  # sentinels for every value of this profile
    scalars: list[ValueSpec] = []
    tables: list[TableSpec] = []

    @pydantic.model_validator(mode="after")
    def _check(self) -> Profile:
        if not self.scalars and not self.tables:
            raise ValueError("a profile needs scalars or tables")
        if self.scalars and self.measurement is None:
            raise ValueError("measurement is required when the profile has scalars")
        keys = [(s.name, tuple(sorted(s.tags.items()))) for s in self.scalars]
        dupes = sorted({k[0] for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"duplicate scalar names (with the same tags): {', '.join(dupes)}")
        if any(s.multiply_by for s in self.scalars):
            raise ValueError("multiply_by is for table columns")
        return self


class ProfileFile(StrictModel):
    profiles: list[Profile] = pydantic.Field(min_length=1)


def load_profile_file(path: Path) -> list[Profile]:
    data, lines = load_yaml(path)
    return list(validate(ProfileFile, data, lines, path).profiles)


SHIPPED_PACKAGE = "agent.profiles.shipped"
"""The data package config/profiles/ is installed as (pyproject.toml maps it)."""


@cache
def builtin_profiles() -> dict[str, Profile]:
    """The profiles shipped in config/profiles/*.yaml (installed as agent.profiles.shipped), by
    name."""
    out: dict[str, Profile] = {}
    folder = resources.files(SHIPPED_PACKAGE)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        with resources.as_file(entry) as path:
            for profile in load_profile_file(Path(path)):
                if profile.name in out:
                    raise ConfigError([f"{path}: profile {profile.name!r} defined twice"])
                out[profile.name] = profile
    return out
