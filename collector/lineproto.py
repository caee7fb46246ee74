r"""Sample sets as InfluxDB line protocol (see docs/influx-schema.md).

Written by hand rather than through influxdb-client's Point objects, which are about four times
slower; the escaping rules are the documented ones (a backslash escapes the next character, and
`\\` stands for one backslash), unit-tested and round-tripped through VictoriaMetrics. Two
things line protocol cannot carry are replaced (docs/influx-schema.md, "Escaping"): a newline or
carriage return in a name or tag becomes a space (in a string field the text `\n`), and trailing
backslashes of a name or tag are dropped, because InfluxDB's parser takes any backslash before a
separator as escaping it and would refuse the line. Each field kind always has the same
line-protocol type (gauges float, states integer, counters unsigned, info string), because
InfluxDB refuses a field whose type changes. A redelivered sample set yields the very same
lines (same measurement, tags and timestamp), so duplicates collapse in the database.
"""

from __future__ import annotations

import re

from pantau.wire import Gap, Kind, SampleSet, Status

# Every element escapes the backslash itself, then its own separators, so that no backslash in a
# value can escape a separator (names and tags also lose trailing backslashes: see _tag_value). A
# newline or carriage return would end the line: in names and tags it becomes an (escaped)
# space, which InfluxDB and VictoriaMetrics store alike; in string fields the text `\n` / `\r`.
_BLANK = {"\n": r"\ ", "\r": r"\ "}
_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": r"\,", " ": r"\ ", **_BLANK})
_KEY = str.maketrans({"\\": "\\\\", ",": r"\,", "=": r"\=", " ": r"\ ", **_BLANK})
_STRING = str.maketrans({"\\": "\\\\", '"': r"\"", "\n": "\\\\n", "\r": "\\\\r"})

POLL_MEASUREMENT = "pantau_poll"
SITE_MEASUREMENT = "pantau_site"
GAP_MEASUREMENT = "pantau_gap"
_TRAP_COUNTER = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""Trap receiver counter names written as `traps_<name>` fields; others (no agent sends
them) are left out rather than escaped into odd field keys."""


def _tag_value(value: str) -> str:
    r"""A tag key or value (or field key) escaped: `\`, `,`, `=`, space; a newline becomes a
    space. Trailing backslashes are dropped: InfluxDB's parser takes a backslash before a
    separator as escaping it whatever precedes it (even an escaped `\\`), so no escaping can
    keep one there; they carry no meaning in names, indexes or aliases."""
    return value.rstrip("\\").translate(_KEY)


def _measurement(name: str) -> str:
    return name.rstrip("\\").translate(_MEASUREMENT)


# The hot path builds every line of every message, so it avoids per-value function calls and
# the sort of every row's tags: the order of a row's tags (with site and device merged in) is
# worked out once per set of tag keys, and escaped tag values are remembered (interface names,
# indexes and aliases repeat in every poll). Both caches are bounded, and start afresh when full.
_MAX_CACHED = 100_000
_escaped: dict[str, str] = {}
_field_keys: dict[str, str] = {}  # field name → escaped (names are validated: usually as is)
_layouts: dict[tuple[str, ...], list[tuple[str, str | None]]] = {}
_SITE, _DEVICE = "site", "device"
_COUNTER, _GAUGE, _STATE = Kind.COUNTER, Kind.GAUGE, Kind.STATE


def _layout(keys: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(",<escaped key>=", the group's key, or None for site/device), in sorted key order."""
    merged = sorted({*keys, _SITE, _DEVICE})
    layout = [(f",{_tag_value(k)}=", None if k in (_SITE, _DEVICE) else k) for k in merged]
    if len(_layouts) >= 1000:
        _layouts.clear()
    _layouts[keys] = layout
    return layout


def _escape_tag_value(value: str) -> str:
    out = _tag_value(value)
    if len(_escaped) >= _MAX_CACHED:
        _escaped.clear()
    _escaped[value] = out
    return out


def _field_key(name: str) -> str:
    out = _tag_value(name)
    if len(_field_keys) >= _MAX_CACHED:
        _field_keys.clear()
    _field_keys[name] = out
    return out


def sample_set_lines(ss: SampleSet) -> list[str]:
    site, device = _tag_value(ss.site), _tag_value(ss.device)
    ts = f" {ss.ts_ms}"
    lines = [
        f"{POLL_MEASUREMENT},device={device},site={site}"
        f" up={int(ss.up)}i,duration_seconds={ss.duration_ms / 1000!r},"
        f'seq={ss.seq}i,rebooted={int(ss.rebooted)}i,reason="{ss.reason.translate(_STRING)}"'
        f"{ts}"
    ]
    escaped, layouts, field_keys = _escaped, _layouts, _field_keys
    for group in ss.groups:
        if not group.fields:
            continue
        tags = group.tags
        keys = tuple(tags)
        layout = layouts.get(keys) or _layout(keys)
        parts = [_measurement(group.measurement)]
        for prefix, key in layout:
            if key is None:
                text = site if prefix == ",site=" else device
            else:
                raw = tags[key]
                found = escaped.get(raw)
                text = found if found is not None else _escape_tag_value(raw)
            if text:
                parts.append(prefix)
                parts.append(text)
        sep = " "
        for f in group.fields:
            kind, v = f.kind, f.value
            name = field_keys.get(f.name) or _field_key(f.name)
            if kind is _COUNTER:
                parts.append(f"{sep}{name}={v}u")
            elif kind is _GAUGE:
                parts.append(f"{sep}{name}={float(v)!r}")
            elif kind is _STATE:
                parts.append(f"{sep}{name}={v}i")
            else:
                parts.append(f'{sep}{name}="{str(v).translate(_STRING)}"')
            sep = ","
        parts.append(ts)
        lines.append("".join(parts))
    return lines


def gap_line(gap: Gap) -> str:
    """Sample sets the agent dropped over its budget, stamped with the last dropped number."""
    return (
        f"{GAP_MEASUREMENT},device={_tag_value(gap.device)},"
        f"site={_tag_value(gap.site)} first_seq={gap.first_seq}i,"
        f"last_seq={gap.last_seq}i,count={gap.count}i {gap.ts_ms}"
    )


def status_line(status: Status, received_ms: int) -> str:
    """Birth, heartbeat (with the agent's outbox health) or will; a will has no timestamp of
    its own (the broker sends it), so it gets the time it was received."""
    ts = status.ts_ms or received_ms
    health = ""
    if status.online:
        health = (
            f",outbox_pending={status.outbox_pending}i,outbox_bytes={status.outbox_bytes}i,"
            f"outbox_oldest_age_seconds={float(status.outbox_oldest_age_s)!r},"
            f"dropped_total={status.dropped_total}i,"
            f"forgotten_total={status.forgotten_total}i,"
            f"unrouted_total={status.unrouted_total}i,"
            f"publish_latency_seconds={float(status.publish_latency_s)!r}"
        )
        # the trap receiver's counters (Status.traps: at most 32, checked by collector.validate)
        for name, count in sorted(status.traps.items()):
            if _TRAP_COUNTER.match(name):
                health += f",traps_{name}={count}i"
    return (
        f"{SITE_MEASUREMENT},site={_tag_value(status.site)} online={int(status.online)}i,"
        f'reason="{status.reason.translate(_STRING)}"{health} {ts}'
    )
