"""Profiles as the running agent holds them: plain immutable objects, no validation library.

agent.profiles.model validates profile files with pydantic (strict, file:line errors) and
turns each valid profile into these classes (`model.plain_profile`); the poll plan, detection,
the names message and the trap catalog read only these. `pantau-agent run` validates in a
short-lived process and keeps only these objects, so the running agent never imports pydantic
(about 10 MiB of a site gateway's memory, docs/performance.md, Footprint). The fields are the
model's, one for one; nothing here checks them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

KindName = Literal["gauge", "counter", "state", "info"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueSpec:
    """One value: where to read it and how to turn the raw SNMP value into a number or text."""

    name: str
    oid: str
    kind: KindName
    unit: str
    help: str
    scale: float | None
    offset: float | None
    states: dict[int, str] | None
    invalid: list[int | float | str]
    pattern: str | None
    fallback_oid: str | None
    fallback_scale: float | None
    bit: int | None
    map: dict[int | str, float] | None
    map_default: float | None
    multiply_by: str | None
    convert: Literal["mw_to_dbm"] | None
    tags: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TableSpec:
    """A conceptual table walked with GETBULK (see model.TableSpec)."""

    measurement: str
    index_tag: str
    tags: dict[str, str | list[str]]
    columns: list[ValueSpec]
    transform: Literal["entity_sensor"] | None
    transform_options: dict[str, int | float | str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """When a profile applies to a device it was not named for (see model.Match)."""

    sys_object_id: list[str]
    sys_descr: list[str]
    oid_value: dict[str, str]

    def matches(
        self, sys_object_id: str, sys_descr: str, values: dict[str, str] | None = None
    ) -> int:
        return match_score(self, sys_object_id, sys_descr, values)


class _MatchFields(Protocol):
    @property
    def sys_object_id(self) -> list[str]: ...
    @property
    def sys_descr(self) -> list[str]: ...
    @property
    def oid_value(self) -> dict[str, str]: ...


def match_score(
    match: _MatchFields, sys_object_id: str, sys_descr: str, values: dict[str, str] | None
) -> int:
    """0 if no match; else a score: sysObjectID prefixes (longer first), then answering
    OIDs (`oid_value`), then sysDescr. One function for the model and the plain Match."""
    oid = sys_object_id.strip(".")
    best = 0
    for prefix in match.sys_object_id:
        if oid == prefix or oid.startswith(prefix + "."):
            best = max(best, 1000 + prefix.count("."))
    if (
        not best
        and match.oid_value
        and values is not None
        and all(o in values and re.search(p, values[o]) for o, p in match.oid_value.items())
    ):
        best = 500
    if not best and any(re.search(p, sys_descr) for p in match.sys_descr):
        best = 1
    return best


@dataclass(frozen=True, slots=True, kw_only=True)
class TrapVarbind:
    name: str
    oid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearWhen:
    varbind: str
    values: list[int | str]


Severity = Literal["critical", "major", "minor", "warning", "info", "clear"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrapSpec:
    """A trap (or inform) the device may send (see model.TrapSpec)."""

    name: str
    oid: str
    severity: Severity
    help: str
    varbinds: list[TrapVarbind]
    alarm: bool
    key: list[str]
    clears: list[str]
    clear_when: ClearWhen | None
    poll: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """What a kind of device exposes (see model.Profile)."""

    name: str
    replaces: str | None
    description: str
    category: str
    match: Match | None
    measurement: str | None
    invalid: list[int | float | str]
    scalars: list[ValueSpec]
    tables: list[TableSpec]
    traps: list[TrapSpec]
