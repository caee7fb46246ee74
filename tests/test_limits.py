"""The agent never sends what the collector refuses: tags trimmed, rows capped, messages kept
under the byte limit, each cut counted; the collector's own checks accept every result."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from agent.limits import MESSAGE_CAPPED, ROWS_CAPPED, TAG_TRUNCATED, encode_within, fit_groups
from collector.validate import check_sample_set
from pantau.wire import Field, Group, Kind, SampleSet, encode_sample_set, metrics_topic
from pantau.wire.model import (
    MAX_MESSAGE_BYTES,
    MAX_POINTS_PER_MESSAGE,
    MAX_TAG_CHARS,
    MAX_VALUES_PER_MESSAGE,
)

NOW = int(time.time() * 1000)


def rows(n: int, alias: str = "uplink", fields: int = 2) -> list[Group]:
    return [
        Group(
            "interface",
            {"ifIndex": str(i), "ifAlias": alias},
            [Field(f"f{j}", Kind.COUNTER, i * 1000 + j) for j in range(fields)],
        )
        for i in range(n)
    ]


def sample(groups: list[Group], errors: dict[str, int] | None = None) -> SampleSet:
    return SampleSet("s1", "sw", 1, NOW, 5, True, "", groups, errors or {})


def accepted(ss: SampleSet, payload: bytes) -> SampleSet:
    return check_sample_set("s1", "sw", payload, MAX_MESSAGE_BYTES)


def test_groups_within_every_limit_pass_unchanged():
    groups = rows(40)
    errors: Counter[str] = Counter()
    assert fit_groups(groups, errors) == groups and not errors


@pytest.mark.parametrize("length", [MAX_TAG_CHARS + 1, 4096, 1_000_000])
def test_a_long_tag_value_is_trimmed_and_counted(length: int):
    errors: Counter[str] = Counter()
    (group,) = fit_groups(rows(1, alias="x" * length), errors)
    assert group.tags["ifAlias"] == "x" * MAX_TAG_CHARS and group.tags["ifIndex"] == "0"
    assert errors == {TAG_TRUNCATED: 1}
    ss = sample([group])
    assert accepted(ss, encode_sample_set(ss)).groups == [group]


def test_a_never_ending_table_is_capped_at_the_collectors_row_limit():
    errors: Counter[str] = Counter()
    kept = fit_groups(rows(MAX_POINTS_PER_MESSAGE + 2345, fields=1), errors)
    assert len(kept) == MAX_POINTS_PER_MESSAGE
    assert errors == {ROWS_CAPPED: 2345}
    assert kept[-1].tags["ifIndex"] == str(MAX_POINTS_PER_MESSAGE - 1)  # the first rows stay


def test_values_are_capped_too():
    errors: Counter[str] = Counter()
    wide = rows(1000, fields=400)  # 402 values a row: 497 rows fit in 200,000
    kept = fit_groups(wide, errors)
    assert len(kept) == MAX_VALUES_PER_MESSAGE // 402
    assert errors == {ROWS_CAPPED: 1000 - len(kept)}


def noise(seed: int, n: int) -> str:
    """Text DEFLATE cannot shrink much (a linear congruential sequence of letters)."""
    out, x = [], seed + 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2**31
        out.append(chr(33 + x % 90))
    return "".join(out)


def test_an_oversized_message_leaves_out_its_last_groups_until_it_fits():
    # random-looking text does not compress: 400 rows of 3 KB each is far over 256 KiB
    groups = [
        Group("system", {"index": str(i)}, [Field("descr", Kind.INFO, noise(i, 3000))])
        for i in range(400)
    ]
    ss = sample(groups)
    assert len(encode_sample_set(ss)) > MAX_MESSAGE_BYTES
    cut: list[int] = []

    def count(n: int) -> dict[str, int]:
        cut.append(n)
        return {MESSAGE_CAPPED: n}

    fitted, payload = encode_within(ss, count)
    assert len(payload) <= MAX_MESSAGE_BYTES
    assert fitted.groups == groups[: len(fitted.groups)] and len(fitted.groups) < 400
    assert cut == [400 - len(fitted.groups)] and fitted.errors == {MESSAGE_CAPPED: cut[0]}
    assert accepted(fitted, payload).groups == fitted.groups
    # and no more was cut than needed: one more group would not have fitted
    one_more = sample(groups[: len(fitted.groups) + 1])
    assert len(encode_sample_set(one_more)) > MAX_MESSAGE_BYTES


def test_a_message_that_fits_is_encoded_once_and_counted_nothing():
    ss = sample(rows(10))
    fitted, payload = encode_within(ss, lambda n: pytest.fail("nothing to cut"))
    assert fitted is ss and payload == encode_sample_set(ss)
    assert metrics_topic("s1", "sw")  # the topic the payload travels on stays valid


def test_a_poll_with_a_huge_alias_and_sysdescr_is_sent_and_accepted(tmp_path):
    """Through the real poller: what a hostile device answers costs only what exceeds."""
    import asyncio

    from agent.config import load_agent_config
    from agent.poller import DevicePoller
    from tests.support.fake_snmp import FakeClient, FakeSession

    e = "1.3.6.1.4.1.99999"
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: p\n    measurement: m\n    scalars:\n"
        f"      - {{name: descr, oid: {e}.1.0, kind: info}}\n"
        "    tables:\n      - measurement: port\n        index_tag: ifIndex\n"
        f"        tags: {{alias: {e}.2.1.2}}\n        columns:\n"
        f"          - {{name: octets, oid: {e}.2.1.3, kind: counter}}\n"
    )
    (tmp_path / "a.yaml").write_text(
        "site: s1\nprofile_files: [p.yaml]\ndevices:\n  - name: sw\n    host: 127.0.0.1\n"
        "    ping: false\n    profiles: [p]\n"
    )
    records = [(f"{e}.1.0", b"d" * 5000)]
    for i in range(1, 4):
        records += [(f"{e}.2.1.2.{i}", b"a" * (100 * i * i)), (f"{e}.2.1.3.{i}", 10 * i)]
    dev = load_agent_config(tmp_path / "a.yaml").devices[0]
    poller = DevicePoller("s1", dev, FakeClient(FakeSession(records, sort=True)), lambda _: 1)
    ss, payload = encode_within(asyncio.run(poller.poll()), poller.message_capped)
    got = accepted(ss, payload)  # the collector's own checks
    aliases = {
        g.tags["ifIndex"]: g.tags.get("alias") for g in got.groups if g.measurement == "port"
    }
    assert aliases == {"1": "a" * 100, "2": "a" * 256, "3": "a" * 256}
    assert got.errors["tag_truncated"] == 2 and got.errors["bad_value"] == 1  # the descr
    assert {f.name for g in got.groups for f in g.fields if g.measurement == "port"} == {"octets"}
