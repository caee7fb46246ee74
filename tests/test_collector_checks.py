"""Collector-side checks and line protocol: pure functions, tested without servers."""

from __future__ import annotations

import pytest

from collector.lineproto import sample_set_lines, status_line
from collector.validate import Rejected, check_sample_set, parse_topic
from pantau.wire import Field, Group, Kind, SampleSet, Status, encode_sample_set

NOW = 1_790_000_000_000


def ss(**over) -> SampleSet:
    base = dict(
        site="s1",
        device="radio",
        seq=7,
        ts_ms=NOW,
        duration_ms=250,
        up=True,
        reason="",
        groups=[
            Group(
                "interface",
                {"ifIndex": "1", "ifName": "eth 0,a=b"},
                [
                    Field("in_octets", Kind.COUNTER, 123),
                    Field("oper_status", Kind.STATE, 1),
                    Field("speed_bps", Kind.GAUGE, 1000),
                    Field("alias", Kind.INFO, 'say "hi"\\'),
                ],
            )
        ],
    )
    base.update(over)
    return SampleSet(**base)


def test_topic_parsing():
    assert parse_topic("pantau/s1/radio/metrics") == ("metrics", "s1", "radio")
    assert parse_topic("pantau/s1/status") == ("status", "s1", None)
    for bad in ("pantau/s1/radio/other", "x/s1/radio/metrics", "pantau/s 1/status", "pantau"):
        with pytest.raises(Rejected) as err:
            parse_topic(bad)
        assert err.value.reason == "bad_topic"


@pytest.mark.parametrize(
    ("sample", "topic_site", "reason"),
    [
        (ss(site="s2"), "s1", "site_mismatch"),
        (ss(device="other"), "s1", "device_mismatch"),
        (ss(ts_ms=1000), "s1", "bad_timestamp"),
        (ss(ts_ms=NOW + 3 * 86400_000), "s1", "bad_timestamp"),
        (ss(groups=[Group("Bad Name", {}, [Field("x", Kind.GAUGE, 1)])]), "s1", "bad_name"),
        (ss(groups=[Group("m", {"site": "x"}, [Field("x", Kind.GAUGE, 1)])]), "s1", "bad_name"),
        (ss(groups=[Group("m", {}, [Field("x", Kind.COUNTER, -1)])]), "s1", "bad_value"),
        (ss(groups=[Group("m", {}, [Field("x", Kind.COUNTER, 1.5)])]), "s1", "bad_value"),
        (ss(groups=[Group("m", {}, [Field("x", Kind.GAUGE, "12")])]), "s1", "bad_value"),
        (ss(groups=[Group("m", {}, [Field("x", Kind.GAUGE, float("nan"))])]), "s1", "bad_value"),
        (ss(groups=[Group("m", {}, [Field("x", Kind.INFO, 3)])]), "s1", "bad_value"),
    ],
)
def test_bad_sample_sets_are_rejected_with_reason(sample, topic_site, reason):
    with pytest.raises(Rejected) as err:
        check_sample_set(topic_site, "radio", encode_sample_set(sample), 1 << 20, now_ms=NOW)
    assert err.value.reason == reason


def test_oversize_is_rejected_before_decoding():
    with pytest.raises(Rejected) as err:
        check_sample_set("s1", "radio", b"\x01\x00" + b"x" * 5000, 4096, now_ms=NOW)
    assert err.value.reason == "oversize"


def test_line_protocol_types_and_escaping():
    lines = sample_set_lines(
        check_sample_set("s1", "radio", encode_sample_set(ss()), 1 << 20, now_ms=NOW)
    )
    assert lines[0] == (
        f"pantau_poll,device=radio,site=s1 up=1i,duration_seconds=0.25,seq=7i,"
        f'rebooted=0i,reason="" {NOW}'
    )
    assert lines[1] == (
        r"interface,device=radio,ifIndex=1,ifName=eth\ 0\,a\=b,site=s1 "
        r'in_octets=123u,oper_status=1i,speed_bps=1000.0,alias="say \"hi\"\\" '
        f"{NOW}"
    )


def test_redelivered_sample_set_gives_identical_lines():
    payload = encode_sample_set(ss())
    first = sample_set_lines(check_sample_set("s1", "radio", payload, 1 << 20, now_ms=NOW))
    again = sample_set_lines(check_sample_set("s1", "radio", payload, 1 << 20, now_ms=NOW))
    assert first == again


def test_status_line_uses_receive_time_for_a_will():
    will = Status(v=1, site="s1", online=False, ts_ms=0, reason="connection lost")
    assert status_line(will, 99) == 'pantau_site,site=s1 online=0i,reason="connection lost" 99'


def test_trailing_backslash_in_tag_cannot_swallow_the_next_tag():
    sample = ss(
        groups=[
            Group(
                "interface",
                {"ifAlias": "uplink\\", "ifIndex": "3"},
                [Field("oper_status", Kind.STATE, 1)],
            )
        ]
    )
    (_, line) = sample_set_lines(sample)
    assert line.startswith("interface,device=radio,ifAlias=uplink,ifIndex=3,site=s1 ")
