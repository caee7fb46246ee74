"""A small message must not cause a large amount of work: the decoder counts a sample set's rows
and values against limits (pantau/wire/model.py) before it builds a single group, and the
collector rejects what lies beyond them as `too_many_points`, counted like any rejection.

Before the limits, the 3,945-byte message below (one table of 4,000,000 rows × 1 column,
DEFLATE with the preset dictionary) passed every check and cost 10.8 s of CPU and 7 GB of RAM
to decode. The tests assert on the reason, not on timing."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import msgspec
import pytest

from collector.intake import Inbound
from collector.pipeline import Pipeline, RejectedStore
from collector.state import State
from collector.validate import Rejected, check_sample_set
from pantau.wire import Kind, SampleSet, WireError, decode_sample_set
from pantau.wire.codec import name_check
from pantau.wire.dictionaries import DICTIONARIES
from pantau.wire.model import (
    DICTIONARY_ID,
    MAX_POINTS_PER_MESSAGE,
    MAX_VALUES_PER_MESSAGE,
    _Column,
    _SampleSetV2,
    _Table,
)
from tests.support.recording import RecordingMetrics

SITE, DEVICE = "s1", "d1"
TOPIC = f"pantau/{SITE}/{DEVICE}/metrics"


def v2_payload(tables: list[_Table]) -> bytes:
    """A version 2 payload holding exactly these tables, as an agent (or an attacker) sends it."""
    body = msgspec.msgpack.encode(
        _SampleSetV2(1, int(time.time() * 1000), 1, True, "", tables, {}, 0, False)
    )
    deflater = zlib.compressobj(
        9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARIES[DICTIONARY_ID]
    )
    packed = deflater.compress(body) + deflater.flush()
    return (
        bytes((2, DICTIONARY_ID))
        + name_check(SITE).to_bytes(2, "big")
        + name_check(DEVICE).to_bytes(2, "big")
        + packed
    )


def table(rows: int, columns: int = 1, tags: int = 0) -> _Table:
    return _Table(
        "m",
        [f"t{j}" for j in range(tags)],
        [_Column(f"c{j}", Kind.STATE) for j in range(columns)],
        rows,
        [],
        ["x"] * (rows * tags),
        [0] * (rows * columns),
    )


def crafted() -> bytes:
    payload = v2_payload([table(4_000_000)])
    assert len(payload) < 4096  # a few kilobytes: far below any size limit
    return payload


def test_four_million_rows_in_four_kilobytes_is_refused() -> None:
    with pytest.raises(Rejected) as err:
        check_sample_set(SITE, DEVICE, crafted(), 256 * 1024)
    assert err.value.reason == "too_many_points"
    assert "4000000 rows" in err.value.detail


def test_the_decoder_refuses_before_building_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """No group object is created for a message over the limit."""
    import pantau.wire.codec as codec

    built = 0
    real = codec.Group

    def counting(*args: object) -> object:
        nonlocal built
        built += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(codec, "Group", counting)
    payload = v2_payload([table(3, columns=2), table(MAX_POINTS_PER_MESSAGE, columns=1)])
    with pytest.raises(WireError) as err:
        decode_sample_set(payload, site=SITE, device=DEVICE)
    assert err.value.reason == "too_many_points"
    assert built == 0


def test_values_are_bounded_as_well_as_rows() -> None:
    """Fewer rows than the limit, but rows × (columns + tags) beyond the value limit."""
    rows = MAX_POINTS_PER_MESSAGE // 2
    columns = MAX_VALUES_PER_MESSAGE // rows  # with one tag: just over the limit
    with pytest.raises(Rejected) as err:
        check_sample_set(SITE, DEVICE, v2_payload([table(rows, columns, tags=1)]), 1 << 20)
    assert err.value.reason == "too_many_points"
    ss = check_sample_set(SITE, DEVICE, v2_payload([table(rows, columns - 1, tags=1)]), 1 << 20)
    assert len(ss.groups) == rows


def test_a_message_at_the_limits_is_accepted_and_the_limits_are_the_callers() -> None:
    payload = v2_payload([table(MAX_POINTS_PER_MESSAGE // 2), table(MAX_POINTS_PER_MESSAGE // 2)])
    assert len(check_sample_set(SITE, DEVICE, payload, 256 * 1024).groups) == (
        MAX_POINTS_PER_MESSAGE
    )
    small = v2_payload([table(3, columns=2)])
    assert len(check_sample_set(SITE, DEVICE, small, 4096, max_points=3).groups) == 3
    for limits in ({"max_points": 2}, {"max_values": 5}):
        with pytest.raises(Rejected) as err:
            check_sample_set(SITE, DEVICE, small, 4096, **limits)  # type: ignore[arg-type]
        assert err.value.reason == "too_many_points"


def test_version_1_counts_its_groups_before_decoding_them() -> None:
    """Version 1 is row-wise and zlib-compressed: 200,000 empty groups fit in a few KB."""
    ss = SampleSet(SITE, DEVICE, 1, int(time.time() * 1000), 1, True, "")
    body = msgspec.msgpack.encode(ss)
    items = msgspec.msgpack.decode(body)
    items[7] = [["m", {}, []]] * 200_000
    payload = bytes((1, 1)) + zlib.compress(msgspec.msgpack.encode(items), 9)
    assert len(payload) < 16_384
    with pytest.raises(Rejected) as err:
        check_sample_set(SITE, DEVICE, payload, 256 * 1024)
    assert err.value.reason == "too_many_points"


class _NoSink:
    def write(self, lines: list[str]) -> None:
        raise AssertionError("nothing may be written")


def test_the_collector_counts_and_acknowledges_the_refusal(tmp_path: Path) -> None:
    metrics = RecordingMetrics()
    acked: list[int] = []
    pipe = Pipeline(
        sink=_NoSink(),  # type: ignore[arg-type]
        state=State(900),
        metrics=metrics,
        ack=lambda m: acked.append(m.mid),
        rejected=RejectedStore(tmp_path / "rejected.jsonl", 1 << 20),
        max_message_bytes=256 * 1024,
        batch_size=100,
        flush_interval=0.1,
    )
    pipe.handle(Inbound(TOPIC, crafted(), 7, 1, 1))
    assert metrics.rejections == ["too_many_points"]
    assert acked == [7]
    assert '"reason": "too_many_points"' in (tmp_path / "rejected.jsonl").read_text()
    assert not pipe._batch.msgs  # nothing of it waits to be written
