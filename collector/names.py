"""What the agents' profiles call their values: enumeration names and help texts, per device.

The collector loads no profiles, and one vendor-neutral field is numbered differently per vendor
(a modem's `lock_state` 1 is "locked" on one, "searching" on another), so each agent sends the
names of the profiles it polls each device with, retained on `pantau/<site>/names`
(pantau.wire.Names, agent/names.py). The status page shows "locked (1)" instead of "1", and
/metrics HELP lines carry the profile's help text.

A names message is checked like every message (a bad one is counted, logged and set aside by the
pipeline): its bounds by the codec, and here that it names only devices its site has (the
devices of the site's newest birth or heartbeat). What is kept is bounded by those checks: at
most one message's worth per site, for the sites State keeps.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass

from collector.validate import Rejected
from pantau.wire import Names, WireError, decode_names

FieldKey = tuple[str, str]
"""(measurement, field)"""


ProfileNames = tuple[dict[FieldKey, dict[int, str]], dict[FieldKey, str]]
"""One profile's (state names, help texts) by field."""


@dataclass(frozen=True, slots=True)
class DeviceNames:
    """The names one device's profiles give its fields: the profiles it is polled with, in
    order, each looked up in turn (the first profile naming a field wins).

    The profiles' maps are shared by every device that uses them, never copied: a names
    message of a few KB listing many devices, each with another order of many profiles, must
    not cost the collector a copy of every profile per device (review of issue 12: 8.5 KB
    made 240 MB that way). What is kept is the decoded message plus a tuple per device."""

    profiles: tuple[ProfileNames, ...] = ()

    def state_name(self, measurement: str, name: str, value: float) -> str | None:
        if value != int(value):
            return None
        key = (measurement, name)
        for states, _ in self.profiles:
            named = states.get(key)
            if named is not None:
                return named.get(int(value))
        return None

    def help_text(self, measurement: str, name: str) -> str | None:
        key = (measurement, name)
        for _, helps in self.profiles:
            text = helps.get(key)
            if text is not None:
                return text
        return None


def check_names(site: str, payload: bytes) -> Names:
    """Decode a names message (pantau.wire.decode_names checks its bounds); Rejected with
    the codec's reason otherwise."""
    try:
        return decode_names(payload)
    except WireError as exc:
        raise Rejected(exc.reason, exc.detail) from None


def per_device(names: Names) -> dict[str, DeviceNames]:
    """Each device's names. Each profile's maps are built once (bounded by the codec's
    MAX_NAMES_FIELDS and MAX_NAMES_STATES over the whole message) and shared; a device holds
    a tuple of references to them."""
    profiles: list[ProfileNames] = []
    for entries in names.profiles:
        states: dict[FieldKey, dict[int, str]] = {}
        helps: dict[FieldKey, str] = {}
        for f in entries:
            k = (f.measurement, f.field)
            if f.states:
                states.setdefault(k, f.states)
            if f.help:
                helps.setdefault(k, f.help)
        profiles.append((states, helps))
    built: dict[tuple[int, ...], DeviceNames] = {}
    out: dict[str, DeviceNames] = {}
    for device, indexes in names.devices.items():
        key = tuple(indexes)
        if key not in built:
            built[key] = DeviceNames(tuple(profiles[i] for i in indexes))
        out[device] = built[key]
    return out


class NameBook:
    """The names of every site's devices; written by the pipeline, read by every scrape."""

    def __init__(self, max_sites: int) -> None:
        self.max_sites = max_sites
        self._lock = threading.Lock()
        self._sites: dict[str, dict[str, DeviceNames]] = {}

    def put(self, site: str, names: Names, devices: Collection[str]) -> None:
        """Keep a site's names. `devices`: what the site has (its newest birth/heartbeat);
        a message naming others is refused whole (`unknown_device`): it is not from an agent
        of this site's configuration."""
        unknown = sorted(set(names.devices) - set(devices))
        if unknown:
            shown = ", ".join(repr(d[:64]) for d in unknown[:5])
            raise Rejected(
                "unknown_device",
                f"names for {len(unknown)} device(s) the site does not have: {shown}",
            )
        book = per_device(names)
        with self._lock:
            if site not in self._sites and len(self._sites) >= self.max_sites:
                raise Rejected("too_many_sites", f"names of more than {self.max_sites} sites")
            self._sites[site] = book

    def device(self, site: str, device: str) -> DeviceNames | None:
        with self._lock:
            return self._sites.get(site, {}).get(device)

    def forget_site(self, site: str) -> None:
        with self._lock:
            self._sites.pop(site, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sites)
