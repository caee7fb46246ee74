"""Checks every incoming message before anything is written: a bad one is rejected with a reason.

Decoding alone proves the payload has the right shape; these checks add what a type system cannot:
the topic and the payload agree on site and device, names are safe to become InfluxDB keys and
Prometheus labels, values match their kind, and the timestamp is plausible.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pantau.errors import PantauError
from pantau.wire import (
    BadTopic,
    Gap,
    Kind,
    SampleSet,
    Status,
    WireError,
    decode_gap,
    decode_sample_set,
)
from pantau.wire import decode_status as _decode_status
from pantau.wire import parse_topic as wire_parse_topic
from pantau.wire.model import (
    MAX_DECODED_BYTES,
    MAX_POINTS_PER_MESSAGE,
    MAX_STATUS_TRAP_COUNTERS,
    MAX_TAG_CHARS,
    MAX_TEXT_CHARS,
    MAX_VALUES_PER_MESSAGE,
)

T = TypeVar("T")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RESERVED_TAGS = {"site", "device", "__name__"}
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
MIN_TS_MS = 946684800000  # 2000-01-01: older means a device or agent clock is broken
FUTURE_SLACK_MS = 86400 * 1000


class Rejected(PantauError):
    """A message set aside; `reason` labels pantau_collector_messages_rejected_total.

    `final`: the payload itself is at fault, so sending it again cannot change the answer, and
    the collector acknowledges it to its site (collector/pipeline.py) to stop the resends. A
    refusal that depends on the collector (what other sites sent first, its limits, its
    version, its clock) is not final: acknowledging it would make the agent delete data that
    a repaired collector would store."""

    FINAL_REASONS = frozenset({"malformed", "invalid_schema", "bad_name", "bad_value"})

    def __init__(self, reason: str, detail: str, *, final: bool | None = None) -> None:
        super().__init__(reason, detail)
        self.final = reason in self.FINAL_REASONS if final is None else final


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """(kind, site, device) of a pantau topic (pantau.wire.parse_topic); Rejected('bad_topic')
    otherwise."""
    try:
        return wire_parse_topic(topic)
    except BadTopic as exc:
        raise Rejected(exc.reason, exc.detail) from None


def check_sample_set(
    topic_site: str,
    topic_device: str,
    payload: bytes,
    max_bytes: int,
    now_ms: int | None = None,
    *,
    max_points: int = MAX_POINTS_PER_MESSAGE,
    max_values: int = MAX_VALUES_PER_MESSAGE,
    max_decoded: int = MAX_DECODED_BYTES,
) -> SampleSet:
    """Decode and check a sample set. The work it may cause is bounded before its groups are
    built (pantau.wire.codec.decode_sample_set): `max_points` rows, `max_values` values and
    `max_decoded` inflated bytes (never more than 16 × `max_bytes`); beyond them it is
    rejected as `too_many_points` (`oversize` for the inflated size)."""
    ss = _decoded(
        payload,
        max_bytes,
        lambda p: decode_sample_set(
            p,
            max_inflated=min(max_bytes * 16, max_decoded),
            site=topic_site,
            device=topic_device,
            max_points=max_points,
            max_values=max_values,
        ),
    )
    # Version 2 checks site and device against the topic while decoding (a CRC-16 of each is
    # in its header); version 1 carries them in full.
    _same_origin("payload", ss.site, ss.device, topic_site, topic_device)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not MIN_TS_MS <= ss.ts_ms <= now_ms + FUTURE_SLACK_MS:
        # Before 2000 is final; "in the future" may be the collector's clock.
        raise Rejected(
            "bad_timestamp", f"ts_ms {ss.ts_ms} is implausible", final=ss.ts_ms < MIN_TS_MS
        )
    if not 0 <= ss.seq <= INT64_MAX or not 0 <= ss.duration_ms <= INT64_MAX:
        raise Rejected("bad_value", "seq or duration_ms out of range")
    # The hot path (every value of every message): names are checked against the sets of
    # names already found valid before any regular expression runs, and each value is checked
    # inline by kind, most frequent first (an interface row is mostly counters).
    names, tag_keys = _valid_names, _valid_tag_keys
    for group in ss.groups:
        if group.measurement not in names and not _valid_name(group.measurement):
            raise Rejected("bad_name", f"measurement {group.measurement[:64]!r}")
        for key, tag_value in group.tags.items():
            if key not in tag_keys and not _valid_tag_key(key):
                raise Rejected("bad_name", f"tag key {key[:64]!r}")
            if len(tag_value) > MAX_TAG_CHARS:
                raise Rejected("bad_value", f"tag {key} value longer than {MAX_TAG_CHARS}")
        for f in group.fields:
            # `value` is Any on purpose: the checks below narrow it by exact type() for speed,
            # which a type checker cannot follow (isinstance would admit bool for int)
            name, kind = f.name, f.kind
            value: Any = f.value
            if name not in names and not _valid_name(name):
                raise Rejected("bad_name", f"field {name[:64]!r}")
            t = type(value)
            if kind is _COUNTER:
                if t is not int or value < 0 or value > UINT64_MAX:
                    _check_value(kind, value, name)
            elif kind is _GAUGE:
                # x - x is 0.0 for a finite float, nan for inf and nan
                if t is not float and t is not int or t is float and value - value != 0.0:
                    _check_value(kind, value, name)
            elif kind is _STATE:
                if t is not int or not -INT64_MAX <= value <= INT64_MAX:
                    _check_value(kind, value, name)
            elif t is not str or len(value) > MAX_TEXT_CHARS:
                _check_value(kind, value, name)
    for key, count in ss.errors.items():
        if not _NAME.match(key) or not 0 <= count <= INT64_MAX:
            raise Rejected("bad_value", f"errors[{key[:64]!r}]")
    return ss


# Names (measurements, fields, tag keys) come from profiles: a small vocabulary repeated in
# every message. Once one passed its regular expression it is remembered; the sets are bounded
# so that a sender inventing names cannot grow them without limit.
_MAX_REMEMBERED = 10_000
_valid_names: set[str] = set()
_valid_tag_keys: set[str] = set()
_COUNTER, _GAUGE, _STATE = Kind.COUNTER, Kind.GAUGE, Kind.STATE


def _valid_name(name: str) -> bool:
    if not _NAME.match(name):
        return False
    if len(_valid_names) < _MAX_REMEMBERED:
        _valid_names.add(name)
    return True


def _valid_tag_key(key: str) -> bool:
    if not _TAG.match(key) or key in _RESERVED_TAGS:
        return False
    if len(_valid_tag_keys) < _MAX_REMEMBERED:
        _valid_tag_keys.add(key)
    return True


def _check_value(kind: Kind, value: object, name: str) -> None:
    """The complete check of one value, and the reason it is refused (the hot loop above calls
    it only for values its quick tests did not pass)."""
    if kind is Kind.INFO:
        if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
            raise Rejected(
                "bad_value", f"{name}: info must be a string of at most {MAX_TEXT_CHARS}"
            )
    elif kind is Kind.COUNTER:
        if not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
            raise Rejected("bad_value", f"{name}: counter must be an unsigned 64-bit integer")
    elif kind is Kind.STATE:
        if not isinstance(value, int) or not -INT64_MAX <= value <= INT64_MAX:
            raise Rejected("bad_value", f"{name}: state must be an integer")
    elif (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise Rejected("bad_value", f"{name}: gauge must be a finite number")


def _decoded(payload: bytes, max_bytes: int, decode: Callable[[bytes], T]) -> T:
    """Size limit first, then decode; a wire error becomes a rejection with its reason."""
    if len(payload) > max_bytes:
        raise Rejected("oversize", f"{len(payload)} bytes > {max_bytes}")
    try:
        return decode(payload)
    except WireError as exc:
        raise Rejected(exc.reason, exc.detail) from None


def _same_origin(what: str, site: str, device: str, topic_site: str, topic_device: str) -> None:
    """A site may publish only under its own topic: the payload must say the same."""
    if site != topic_site:
        raise Rejected(
            "site_mismatch", f"{what} site {site[:64]!r} on topic of site {topic_site!r}"
        )
    if device != topic_device:
        raise Rejected(
            "device_mismatch", f"{what} device {device[:64]!r} on topic of device {topic_device!r}"
        )


def check_gap(topic_site: str, topic_device: str, payload: bytes, max_bytes: int) -> Gap:
    gap = _decoded(payload, max_bytes, decode_gap)
    _same_origin("gap for", gap.site, gap.device, topic_site, topic_device)
    if not (
        0 <= gap.first_seq <= gap.last_seq <= INT64_MAX
        and gap.count == gap.last_seq - gap.first_seq + 1
    ):
        raise Rejected("bad_value", "gap range is inconsistent")
    return gap


def check_status(topic_site: str, payload: bytes, max_bytes: int) -> Status:
    status = _decoded(payload, max_bytes, _decode_status)
    if status.site != topic_site:
        raise Rejected(
            "site_mismatch", f"status for {status.site[:64]!r} on topic of {topic_site!r}"
        )
    if len(status.traps) > MAX_STATUS_TRAP_COUNTERS or not all(
        0 <= n <= INT64_MAX for n in status.traps.values()
    ):
        raise Rejected("bad_value", "trap receiver counters: too many or out of range")
    if not 0 <= status.unrouted_total <= INT64_MAX:
        raise Rejected("bad_value", "unrouted_total out of range")
    return status
