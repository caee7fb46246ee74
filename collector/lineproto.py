"""Sample sets as InfluxDB line protocol (see docs/influx-schema.md).

Written by hand rather than through influxdb-client's Point objects, which are about four times
slower; the escaping rules are the documented ones and are unit-tested. Each field kind always
has the same line-protocol type (gauges float, states integer, counters unsigned, info string),
because InfluxDB refuses a field whose type changes. A redelivered sample set yields the very same
lines (same measurement, tags and timestamp), so duplicates collapse in the database.
"""

from __future__ import annotations

from agent.wire import Gap, Kind, SampleSet, Status

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n"})

POLL_MEASUREMENT = "pantau_poll"
SITE_MEASUREMENT = "pantau_site"
GAP_MEASUREMENT = "pantau_gap"


def _tag_value(value: str) -> str:
    # Line protocol has no escape for a trailing backslash: it would escape the separator
    # after it and swallow the next tag. Trailing backslashes carry no meaning in device
    # names or aliases, so they are dropped.
    return value.rstrip("\\").translate(_KEY)


def _tagset(tags: dict[str, str]) -> str:
    return "".join(
        f",{k.translate(_KEY)}={_tag_value(v)}" for k, v in sorted(tags.items())
        if v.rstrip("\\")
    )


def _field(kind: Kind, value: object) -> str:
    if kind is Kind.GAUGE:
        return repr(float(value))  # type: ignore[arg-type]
    if kind is Kind.STATE:
        return f"{value}i"
    if kind is Kind.COUNTER:
        return f"{value}u"
    return '"' + str(value).translate(_STRING) + '"'


def sample_set_lines(ss: SampleSet) -> list[str]:
    base = f",device={ss.device.translate(_KEY)},site={ss.site.translate(_KEY)}"
    ts = ss.ts_ms
    lines = [
        f"{POLL_MEASUREMENT}{base} up={int(ss.up)}i,duration_seconds={ss.duration_ms / 1000!r},"
        f'seq={ss.seq}i,rebooted={int(ss.rebooted)}i,reason="{ss.reason.translate(_STRING)}" '
        f"{ts}"
    ]
    for group in ss.groups:
        if not group.fields:
            continue
        tags = dict(group.tags)
        tags["site"] = ss.site
        tags["device"] = ss.device
        fields = ",".join(f"{f.name}={_field(f.kind, f.value)}" for f in group.fields)
        lines.append(f"{group.measurement.translate(_MEASUREMENT)}{_tagset(tags)} {fields} {ts}")
    return lines


def gap_line(gap: Gap) -> str:
    """Sample sets the agent dropped over its budget, stamped with the last dropped number."""
    return (f"{GAP_MEASUREMENT},device={gap.device.translate(_KEY)},"
            f"site={gap.site.translate(_KEY)} first_seq={gap.first_seq}i,"
            f"last_seq={gap.last_seq}i,count={gap.count}i {gap.ts_ms}")


def status_line(status: Status, received_ms: int) -> str:
    """Birth, heartbeat (with the agent's outbox health) or will; a will has no timestamp of
    its own (the broker sends it), so it gets the time it was received."""
    ts = status.ts_ms or received_ms
    health = ""
    if status.online:
        health = (f",outbox_pending={status.outbox_pending}i,outbox_bytes={status.outbox_bytes}i,"
                  f"outbox_oldest_age_seconds={float(status.outbox_oldest_age_s)!r},"
                  f"dropped_total={status.dropped_total}i,"
                  f"publish_latency_seconds={float(status.publish_latency_s)!r}")
    return (f"{SITE_MEASUREMENT},site={status.site.translate(_KEY)} online={int(status.online)}i,"
            f'reason="{status.reason.translate(_STRING)}"{health} {ts}')
