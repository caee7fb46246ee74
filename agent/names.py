"""The names a site's profiles give its fields, for the NOC: enumeration names and help texts.

The collector loads no profiles (it must not import the agent), and one vendor-neutral field is
numbered differently per vendor (a modem's `lock_state` 1 is "locked" on one, "searching" on
another). So the agent tells the NOC, per device, the `states:` names and `help:` texts of the
profiles it polls that device with: one retained message on `pantau/<site>/names`
(pantau.wire.Names), published once per connection and again when a device's profiles change
(detection after the first poll, or every day), never per poll. Each profile's names travel
once, however many devices use it (docs/wire-format.md, Names).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from agent.profiles.spec import Profile, ValueSpec
from pantau.wire import FieldNames, Names, encode_names
from pantau.wire.model import MAX_NAMES_BYTES, MAX_STATE_CHARS, MAX_STATES

log = logging.getLogger("pantau.agent.names")


def _one_line(text: str) -> str:
    """A state name or help text as the wire allows it: control characters become spaces."""
    return "".join(" " if ord(c) < 0x20 or c == "\x7f" else c for c in text).strip()


def _entry(measurement: str, spec: ValueSpec, with_help: bool) -> FieldNames | None:
    states: dict[int, str] = {}
    for value, name in sorted((spec.states or {}).items())[:MAX_STATES]:
        text = _one_line(name)[:MAX_STATE_CHARS]
        if text:
            states[value] = text
    help_text = _one_line(spec.help) if with_help else ""
    if not states and not help_text:
        return None
    return FieldNames(measurement, spec.name, help_text, states)


def profile_fields(profile: Profile, *, with_help: bool = True) -> list[FieldNames]:
    """The named fields of one profile. Tables with a transform are left out: their columns
    are the transform's input, not what is published."""
    specs = [(profile.measurement or "", s) for s in profile.scalars]
    specs += [(t.measurement, c) for t in profile.tables if t.transform is None for c in t.columns]
    out: dict[tuple[str, str], FieldNames] = {}
    for measurement, spec in specs:
        entry = _entry(measurement, spec, with_help)
        if entry is not None:
            out.setdefault((measurement, spec.name), entry)
    return list(out.values())


def site_names(
    devices: Iterable[tuple[str, Sequence[Profile]]], *, with_help: bool = True
) -> Names:
    """The names message of a site: each device with the profiles it is polled with, each
    profile's fields once (a profile no device names a field with is left out)."""
    profiles: list[list[FieldNames]] = []
    index: dict[str, int] = {}
    by_device: dict[str, list[int]] = {}
    for device, chosen in devices:
        mine = by_device[device] = []
        for profile in chosen:
            if profile.name not in index:
                fields = profile_fields(profile, with_help=with_help)
                index[profile.name] = len(profiles) if fields else -1
                if fields:
                    profiles.append(fields)
            if index[profile.name] >= 0:
                mine.append(index[profile.name])
    return Names(profiles, by_device)


def names_payload(devices: Sequence[tuple[str, Sequence[Profile]]]) -> bytes | None:
    """The encoded message, within MAX_NAMES_BYTES: without help texts if it must be (logged),
    None (logged) if even the state names do not fit (the agent then publishes an empty
    retained message, agent/service.py: the NOC's older names may be wrong now)."""
    payload = encode_names(site_names(devices))
    if len(payload) <= MAX_NAMES_BYTES:
        return payload
    lean = encode_names(site_names(devices, with_help=False))
    if len(lean) <= MAX_NAMES_BYTES:
        log.warning(
            "names message without help texts: %d bytes with them > %d",
            len(payload),
            MAX_NAMES_BYTES,
        )
        return lean
    log.error(
        "names message not sent: %d bytes even without help texts > %d; an empty one "
        "withdraws the older names, the NOC shows enumerations as numbers",
        len(lean),
        MAX_NAMES_BYTES,
    )
    return None
