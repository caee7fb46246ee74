"""Collector state stays bounded and honest whatever senders claim: bounded devices, error kinds,
holes and lost counts; trackers of silent devices forgotten after a long bound; current state
follows sequence numbers and distrusts future timestamps; one kind per measurement field; and
/metrics never holds two families of one name."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from collector.exposition import SelfMetrics, StateCollector, metrics_app
from collector.intake import Inbound
from collector.pipeline import Batch, Pipeline, RejectedStore
from collector.state import State
from collector.validate import Rejected
from pantau.wire import (
    Field,
    Gap,
    Group,
    Kind,
    SampleSet,
    Status,
    encode_sample_set,
    metrics_topic,
)
from tests.support.recording import scrape

NOW = 1_800_000_000.0
DAY = 86400.0


def ss(
    device: str = "radio",
    seq: int = 1,
    *,
    site: str = "site-a",
    ts: float = NOW,
    up: bool = True,
    groups: list[Group] | None = None,
    errors: dict[str, int] | None = None,
) -> SampleSet:
    return SampleSet(
        site=site,
        device=device,
        seq=seq,
        ts_ms=int(ts * 1000),
        duration_ms=5,
        up=up,
        reason="" if up else "timeout",
        groups=groups or [],
        errors=errors or {},
    )


def lines(state: State, now: float) -> int:
    """Sample lines /metrics would hold at `now`."""
    state.snapshot(now)  # what a scrape at `now` forgets
    metrics = SelfMetrics()
    metrics.registry.register(StateCollector(state))
    text = generate_latest(metrics.registry).decode()
    # the collector's snapshot runs at wall-clock time: only the one above used `now`
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


# -- item 1: bounds --------------------------------------------------------------------------


def test_invented_devices_are_capped_per_site_and_the_cut_is_counted():
    state = State(900, max_devices=100)
    now = time.time()
    for i in range(5_000):
        state.on_sample_set(ss(f"fake-{i}", 1, ts=now), now=now)
        state.written_sample_set("site-a", f"fake-{i}", 1, now=now)
    site = state.snapshot(now)["site-a"]
    assert len(site.devices) == 100 and len(site.sequences) == 100
    assert site.truncated["devices"] == 2 * 4_900  # current state and accounting, each
    got = scrape(state)
    assert got[("pantau_site_state_truncated_total", (("site", "site-a"), ("what", "devices")))]
    assert sum(1 for name, _ in got if name == "pantau_samples_received_total") == 100


def test_default_device_bound_is_a_thousand_per_site():
    state = State(900)
    for i in range(1_500):
        state.written_sample_set("site-a", f"d{i}", 1, now=NOW)
    assert len(state.snapshot(NOW)["site-a"].sequences) == 1_000


def test_trackers_of_devices_never_heard_again_are_pruned_after_a_long_bound():
    state = State(900, max_devices=10_000)
    for i in range(5_000):
        state.written_sample_set("site-a", f"fake-{i}", 1, now=NOW)
    state.written_sample_set("site-a", "real", 1, now=NOW)
    # An hour later: devices of a dark site keep their accounting (a backlog may still come).
    assert len(state.snapshot(NOW + 3600)["site-a"].sequences) == 5_001
    for day in range(1, 8):  # the real device keeps talking
        state.written_sample_set("site-a", "real", 1 + day, now=NOW + day * DAY)
    after = state.snapshot(NOW + 7 * DAY + 60)["site-a"]
    assert list(after.sequences) == ["real"]
    assert after.sequences["real"].received == 8
    # With nothing left of it and offline, the site itself goes.
    assert state.snapshot(NOW + 15 * DAY) == {}


def test_forget_after_is_a_constructor_argument_and_metrics_shrink():
    state = State(900, forget_after=3600, max_devices=10_000)
    now = time.time() - 7200
    for i in range(5_000):
        state.written_sample_set("site-a", f"fake-{i}", 1, now=now)
    assert lines(state, time.time()) < 100


def test_error_kinds_per_device_are_bounded():
    state = State(900)
    errors = {f"kind_{i:05d}": i for i in range(50_000)}
    state.on_sample_set(ss(errors=errors), now=NOW)
    site = state.snapshot(NOW)["site-a"]
    assert len(site.devices["radio"].errors) == 64
    assert site.truncated["error_kinds"] == 50_000 - 64
    # the kinds already shown keep their series when others appear
    shown = set(site.devices["radio"].errors)
    more = {"aaa_new": 1, **{k: v + 1 for k, v in errors.items()}}
    state.on_sample_set(ss(seq=2, errors=more), now=NOW)
    assert set(state.snapshot(NOW)["site-a"].devices["radio"].errors) == shown
    small = State(900, max_error_kinds=3)
    small.on_sample_set(ss(errors={"a": 1, "b": 2, "c": 3, "d": 4}), now=NOW)
    assert small.snapshot(NOW)["site-a"].devices["radio"].errors == {"a": 1, "b": 2, "c": 3}


def test_error_series_in_metrics_are_bounded():
    state = State(900)
    state.on_sample_set(ss(errors={f"k{i}": 1 for i in range(50_000)}, ts=time.time()))
    got = scrape(state)
    assert sum(1 for name, _ in got if name == "pantau_device_snmp_errors_total") == 64


def test_a_gap_record_cannot_claim_two_to_the_63_lost():
    state = State(900)
    state.written_sample_set("site-a", "radio", 1)
    state.written_gap(Gap("site-a", "radio", 0, 2**63 - 1, 2**63, int(NOW * 1000)))
    state.on_sample_set(ss(ts=time.time()))
    got = scrape(state)
    lost = got[("pantau_samples_lost_total", (("device", "radio"), ("site", "site-a")))]
    assert 0 < lost <= 7 * DAY
    cut = ("pantau_site_state_truncated_total", (("site", "site-a"), ("what", "implausible_gaps")))
    assert got[cut] == 1
    tracker = state.snapshot()["site-a"].sequences["radio"]
    assert tracker.lost + tracker.implausible == 2**63 - 1


def test_a_gap_counts_no_more_than_its_own_count_and_range():
    state = State(900)
    state.written_gap(Gap("site-a", "radio", 10, 1_000, 5, int(NOW * 1000)), now=NOW)
    assert state.snapshot(NOW)["site-a"].sequences["radio"].lost == 5
    state.written_gap(Gap("site-a", "radio", 2_000, 2_009, 10**9, int(NOW * 1000)), now=NOW)
    assert state.snapshot(NOW)["site-a"].sequences["radio"].lost == 15


def test_holes_per_device_are_bounded_and_counted_per_site():
    state = State(900, max_holes=50)
    for s in range(1, 400, 2):
        state.written_sample_set("site-a", "radio", s, now=NOW)
    site = state.snapshot(NOW)["site-a"]
    assert site.truncated["holes"] == 199 - 50


def test_sites_are_bounded():
    state = State(900, max_sites=3)
    for i in range(10):
        state.on_status(Status(v=1, site=f"s{i}", online=True, ts_ms=int(NOW * 1000)), now=NOW)
    assert len(state.snapshot(NOW)) == 3 and state.sites_cut == 7


# -- item 2: sequence order, not timestamps ---------------------------------------------------


def test_a_future_timestamp_does_not_pin_device_state():
    state = State(900)
    now = time.time()
    state.on_sample_set(ss(seq=1, ts=now + 23 * 3600, up=True), now=now)
    for i in range(3):
        state.on_sample_set(ss(seq=2 + i, ts=now + 60 * i, up=False), now=now + 60 * i)
    got = scrape(state)
    key = (("device", "radio"), ("site", "site-a"))
    assert got[("pantau_device_up", key)] == 0
    assert got[("pantau_site_future_samples_total", (("site", "site-a"),))] == 1
    assert got[("pantau_site_clock_skew_seconds", (("site", "site-a"),))] == 0


def test_current_state_follows_the_newest_sequence_number():
    state = State(900)
    state.on_sample_set(ss(seq=5, ts=NOW - 60, up=False), now=NOW)
    state.on_sample_set(ss(seq=6, ts=NOW - 120, up=True), now=NOW)  # agent clock stepped back
    assert state.snapshot(NOW)["site-a"].devices["radio"].last.seq == 6
    state.on_sample_set(ss(seq=3, ts=NOW - 600, up=False), now=NOW)  # backlog: no rollback
    assert state.snapshot(NOW)["site-a"].devices["radio"].last.seq == 6
    state.on_sample_set(ss(seq=1, ts=NOW - 1, up=False), now=NOW)  # agent lost its outbox db
    assert state.snapshot(NOW)["site-a"].devices["radio"].last.seq == 1


def test_clock_skew_allowance_is_a_constructor_argument():
    state = State(900, max_clock_skew=30)
    state.on_sample_set(ss(seq=1, ts=NOW + 20), now=NOW)
    site = state.snapshot(NOW)["site-a"]
    assert site.devices["radio"].last.seq == 1 and site.future_samples == 0
    assert site.clock_skew == pytest.approx(20)
    state.on_sample_set(ss(seq=2, ts=NOW + 40, up=False), now=NOW)
    site = state.snapshot(NOW)["site-a"]
    assert site.devices["radio"].last.seq == 1 and site.future_samples == 1
    assert site.clock_skew == pytest.approx(40)
    # A future-dated first sample set gives the device no current state at all.
    state.on_sample_set(ss("other", 1, ts=NOW + 3600), now=NOW)
    assert "other" not in state.snapshot(NOW)["site-a"].devices


def test_max_clock_skew_is_in_the_collector_config():
    from collector.config import CollectorFile

    assert CollectorFile().max_clock_skew == 300
    assert CollectorFile(max_clock_skew=60).max_clock_skew == 60


# -- item 3: one kind per measurement field, one family per name ----------------------------


def fields(measurement: str, *pairs: tuple[str, Kind, object]) -> list[Group]:
    return [Group(measurement, {"ifname": "eth0"}, [Field(n, k, v) for n, k, v in pairs])]


def test_a_conflicting_kind_rejects_that_message_only():
    state = State(900)
    state.on_sample_set(ss("r1", 1, groups=fields("if", ("in_octets", Kind.COUNTER, 5))), now=NOW)
    bad = ss("r2", 1, groups=fields("if", ("in_octets", Kind.GAUGE, 1.5), ("x", Kind.GAUGE, 1)))
    with pytest.raises(Rejected) as exc:
        state.on_sample_set(bad, now=NOW)
    assert exc.value.reason == "kind_conflict"
    assert "r2" not in state.snapshot(NOW)["site-a"].devices
    assert state.kinds.kind("if", "x") is None  # nothing remembered from a rejected message
    # the first kind stays; other devices with it are accepted
    state.on_sample_set(ss("r3", 1, groups=fields("if", ("in_octets", Kind.COUNTER, 7))), now=NOW)
    assert state.kinds.kind("if", "in_octets") is Kind.COUNTER
    # two kinds in one message: the second one conflicts with the first
    within = ss("r4", 1, groups=fields("cpu", ("load", Kind.GAUGE, 1.0), ("load", Kind.INFO, "x")))
    with pytest.raises(Rejected, match="load"):
        state.on_sample_set(within, now=NOW)


def test_field_registry_is_bounded():
    state = State(900, max_fields=3)
    state.on_sample_set(ss(groups=fields("m", ("a", Kind.GAUGE, 1), ("b", Kind.GAUGE, 1))), now=NOW)
    with pytest.raises(Rejected) as exc:
        state.on_sample_set(
            ss(seq=2, groups=fields("n", ("c", Kind.GAUGE, 1), ("d", Kind.GAUGE, 1))), now=NOW
        )
    assert exc.value.reason == "field_limit"
    # a week later the silent measurement is forgotten, and room is made
    state.on_sample_set(
        ss(seq=3, groups=fields("n", ("c", Kind.GAUGE, 1), ("d", Kind.GAUGE, 1))),
        now=NOW + 8 * DAY,
    )
    assert state.kinds.kind("m", "a") is None and state.kinds.kind("n", "c") is Kind.GAUGE


class _Sink:
    def write(self, lines: list[str]) -> None:
        self.lines = lines


def test_the_pipeline_rejects_a_kind_conflict_and_counts_it():
    metrics = SelfMetrics()
    state = State(900)
    acked: list[Inbound] = []
    sink = _Sink()
    pipe = Pipeline(
        sink=sink,  # type: ignore[arg-type]
        state=state,
        metrics=metrics,
        ack=acked.append,
        rejected=RejectedStore(None, 0),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=1.0,
    )
    now = time.time()
    first = ss("r1", 1, ts=now, groups=fields("if", ("in_octets", Kind.COUNTER, 5)))
    second = ss("r2", 1, ts=now, groups=fields("if", ("in_octets", Kind.GAUGE, 5.0)))
    for i, s in enumerate((first, second)):
        topic = metrics_topic(s.site, s.device)
        pipe.handle(Inbound(topic, encode_sample_set(s), i + 1, 1, 1))
    batch, pipe._batch = pipe._batch, Batch()
    assert len(batch.msgs) == 1 and [m.mid for m in acked] == [2]  # rejected: acked at once
    assert pipe.flush(batch, threading.Event())
    assert not any("in_octets=5.0" in line for line in sink.lines)
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in f.samples
    }
    assert got[("pantau_collector_messages_rejected_total", (("reason", "kind_conflict"),))] == 1


def test_metrics_never_hold_two_families_of_one_name():
    state = State(900)
    now = time.time()
    colliding = [
        ("r1", fields("a_b", ("c", Kind.GAUGE, 1.0))),  # pantau_a_b_c, a gauge
        ("r2", fields("a", ("b_c", Kind.COUNTER, 2))),  # pantau_a_b_c(_total), a counter
        ("r3", fields("site", ("online", Kind.GAUGE, 1.0))),  # pantau_site_online is fixed
        ("r4", fields("collector", ("points_written", Kind.COUNTER, 1))),  # a self-metric
        ("r5", fields("x", ("y", Kind.INFO, "text"))),  # pantau_x_info
        ("r6", fields("x", ("info", Kind.GAUGE, 1.0))),  # pantau_x_info again
        ("r7", fields("p", ("q_total", Kind.GAUGE, 1.0))),  # pantau_p_q_total
        ("r8", fields("p", ("q", Kind.COUNTER, 3))),  # pantau_p_q_total again
    ]
    for i, (device, groups) in enumerate(colliding):
        state.on_sample_set(ss(device, i + 1, ts=now, groups=groups), now=now)
    metrics = SelfMetrics()
    metrics.received("metrics")
    app = metrics_app(metrics, state)
    assert app is not None
    text = generate_latest(metrics.registry).decode()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    sample_owner: dict[str, str] = {}
    for f in families:
        for s in f.samples:
            assert sample_owner.setdefault(s.name, f.name) == f.name, s.name
    # OpenMetrics, whose parser refuses clashing names outright, agrees
    om = list(parse_om(generate_openmetrics(metrics.registry).decode()))
    assert len({f.name for f in om}) == len(om)
    got = {f.name: f for f in families}
    assert got["pantau_collector_metric_families_conflicting"].samples[0].value == 5
    assert "pantau_a_b_c" in got and "pantau_site_online" in got
