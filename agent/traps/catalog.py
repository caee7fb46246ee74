"""Trap definitions (the `traps:` of profiles) and the events they turn traps into.

A device's catalog holds the traps of every profile it may be polled with (its own and its
detection candidates): a trap OID names one kind of trap wherever it comes from. A trap whose OID
no profile defines still becomes an event (name "", severity info), with its varbinds by OID.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.profiles.spec import Profile, TrapSpec
from agent.snmp.values import Missing, Oid, SnmpValue, oid_str, oid_tuple
from agent.traps.decode import Trap
from pantau.wire import Value
from pantau.wire.model import MAX_EVENT_VARBINDS, MAX_TAG_CHARS


@dataclass(frozen=True, slots=True)
class Classified:
    """What the definitions make of one trap (site, device, seq and time are added later)."""

    trap_oid: str
    trap: str
    severity: str
    varbinds: dict[str, Value]
    alarm: str
    clears: list[str]
    poll: bool


class Catalog:
    def __init__(self, profiles: Iterable[Profile]) -> None:
        self.by_oid: dict[str, TrapSpec] = {}
        for profile in profiles:
            for spec in profile.traps:
                self.by_oid.setdefault(spec.oid, spec)
        self._prefixes: dict[str, list[tuple[Oid, str]]] = {
            spec.oid: [(oid_tuple(v.oid), v.name) for v in spec.varbinds]
            for spec in self.by_oid.values()
        }

    def classify(self, trap: Trap) -> Classified:
        spec = self.by_oid.get(trap.trap_oid)
        prefixes = self._prefixes.get(trap.trap_oid, [])
        varbinds: dict[str, Value] = {}
        for oid, value in trap.varbinds:
            name = next((n for p, n in prefixes if oid[: len(p)] == p), None)
            key = oid_str(oid) if name is None else name
            if key in varbinds:
                continue
            if len(varbinds) >= MAX_EVENT_VARBINDS:
                break
            varbinds[key] = wire_value(value)
        if spec is None:
            return Classified(trap.trap_oid, "", "info", varbinds, "", [], False)
        instance = alarm_instance(spec.key, varbinds)
        cw = spec.clear_when
        if cw is not None and _clearing(varbinds.get(cw.varbind), cw.values):
            return Classified(
                trap.trap_oid,
                spec.name,
                "clear",
                varbinds,
                "",
                [alarm_name(spec.name, instance)],
                spec.poll,
            )
        return Classified(
            trap.trap_oid,
            spec.name,
            spec.severity,
            varbinds,
            alarm_name(spec.name, instance) if spec.alarm else "",
            [alarm_name(c, instance) for c in spec.clears],
            spec.poll,
        )


def _clearing(value: Value | None, values: list[int | str]) -> bool:
    """Whether a clear_when varbind says "cleared": as text, since an INTEGER 0 and an OCTET
    STRING "0" mean the same on/off (a missing varbind never clears)."""
    return value is not None and str(value) in {str(v) for v in values}


def alarm_instance(key: list[str], varbinds: dict[str, Value]) -> str:
    """`ifIndex=3` for key [ifIndex]; a missing key varbind counts as empty."""
    return ",".join(f"{k}={varbinds.get(k, '')}" for k in key)


def alarm_name(trap: str, instance: str) -> str:
    """The alarm label: the raising trap's name, with its instance when it has a key."""
    return f"{trap}:{instance}" if instance else trap


def wire_value(value: SnmpValue) -> Value:
    """A varbind value as the event carries it: numbers as they are, text as text (printable
    UTF-8, else hex), OIDs and addresses dotted, missing values by their reason."""
    if isinstance(value, Missing):
        return value.reason
    if isinstance(value, bytes):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            return value.hex()[:MAX_TAG_CHARS]
        return (text if text.isprintable() else value.hex())[:MAX_TAG_CHARS]
    if isinstance(value, int):
        return value
    return str(value)
