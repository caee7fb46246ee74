"""End-to-end acknowledgements without servers: the ack codec, the outbox's confirm/resend logic,
and the collector's Acker (docs/delivery.md, "Confirmation by the NOC")."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from agent.config import AgentConfig, load_agent_config
from agent.outbox import NO_SUBSCRIBERS, Dropped, Outbox
from agent.publisher import PubAck, Publisher
from agent.service import Agent
from collector.acks import Acker, runs
from collector.config import InfluxConfig
from collector.intake import Inbound
from collector.lineproto import status_line
from collector.pipeline import Batch, Pipeline, RejectedStore
from collector.sink import InfluxSink
from collector.state import State
from collector.validate import check_status
from pantau.wire import (
    ACK_VERSION,
    Ack,
    Event,
    Field,
    Gap,
    Group,
    Kind,
    SampleSet,
    WireError,
    ack_gaps,
    ack_ranges,
    ack_topic,
    decode_ack,
    device_ack,
    encode_ack,
    encode_event,
    encode_gap,
    encode_sample_set,
    encode_status,
)
from pantau.wire.codec import peek_event_seq, peek_gap, peek_seq
from tests.support.recording import RecordingMetrics, scrape
from tests.test_write_path import FakeInflux
from tests.test_write_path import sample_set as write_path_sample_set

HOUR = 3600.0


# -- codec -------------------------------------------------------------------------------------


def test_ack_round_trip_and_layout() -> None:
    ack = Ack(
        [
            device_ack("radio-01", [(1, 40), (45, 45), (50, 60)]),
            device_ack("gw", [], ((3, 9),)),
            device_ack("lte", [(7, 7)]),
        ]
    )
    payload = encode_ack(ack)
    assert payload[0] == ACK_VERSION
    back = decode_ack(payload)
    assert back == ack
    assert ack_ranges(back.devices[0]) == [(1, 40), (45, 45), (50, 60)]
    assert ack_ranges(back.devices[1]) == [] and ack_gaps(back.devices[1]) == [(3, 9)]
    assert ack_ranges(back.devices[2]) == [(7, 7)] and ack_gaps(back.devices[2]) == []
    assert ack_topic("vsat-07") == "pantau/vsat-07/ack"


def test_ack_is_compact() -> None:
    """One device with one new sample set costs its name plus 3 bytes (array, seq)."""
    one = encode_ack(Ack([device_ack("radio-01", [(1234, 1234)])]))
    # version, Ack, devices, entry (arrays), str header, name, uint16
    assert len(one) == 1 + 1 + 1 + 1 + 1 + len("radio-01") + 3
    twenty = encode_ack(Ack([device_ack(f"dev-{i:02}", [(70_000, 70_000)]) for i in range(20)]))
    assert len(twenty) <= 20 * 14 + 4


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", "malformed"),
        (b"\x09\x90", "unknown_version"),
        (bytes([ACK_VERSION]) + b"\xc1", "malformed"),
        (bytes([ACK_VERSION]) + b"\x91\x91\x91\xa1a", "invalid_schema"),  # no upto
    ],
)
def test_bad_acks_are_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as err:
        decode_ack(payload)
    assert err.value.reason == reason


def test_ack_with_negative_range_is_refused() -> None:
    bad = encode_ack(Ack([device_ack("a", [(1, 1)])]))[:-1] + b"\x05"  # upto 5
    decode_ack(bad)  # fine
    from pantau.wire import DeviceAck

    with pytest.raises(WireError):
        decode_ack(encode_ack(Ack([DeviceAck("a", 3, 5)])))
    with pytest.raises(WireError):
        decode_ack(encode_ack(Ack([DeviceAck("a", 3, 0, [4])])))


# -- the outbox ------------------------------------------------------------------------------


def gap_payload(drop: Dropped) -> tuple[str, bytes]:
    return f"x/{drop.device}/gap", f"{drop.first_seq}-{drop.last_seq}".encode()


def open_box(path: Path, **kw: object) -> Outbox:
    args: dict[str, object] = {
        "max_bytes": 10**12,
        "max_age_s": HOUR,
        "ack_batch_s": HOUR,
        "gap_encoder": gap_payload,
        "resend_after": 60.0,
        "resend_max": 600.0,
    }
    args.update(kw)
    box = Outbox(path, **args).open()  # type: ignore[arg-type]
    box.end_to_end = True
    return box


def put(box: Outbox, device: str, n: int, size: int = 10) -> None:
    now = int(time.time() * 1000)
    for _ in range(n):
        seq = box.next_seq(device)
        box.put(f"x/{device}/metrics", b"p" * size, device=device, seq=seq, ts_ms=now)


def drain(box: Outbox) -> list[tuple[str, int]]:
    """Take everything (as the publisher does) and PUBACK it."""
    out = []
    while (item := box.take()) is not None:
        box.ack(item)
        out.append((item.device, item.seq))
    return out


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr("agent.outbox.time.monotonic", lambda: now[0])
    return now


def test_puback_keeps_the_item_until_confirmed(tmp_path: Path, clock: list[float]) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        box.end_to_end = True
        put(box, "a", 3)
        assert len(drain(box)) == 3
        assert len(box) == 3 and box.unconfirmed() == 3 and box.idle()
        assert box.stats().pending_from == {"a": 1}  # still waiting here: the NOC may not have it
        assert box.confirm("a", [(1, 2)]) == 2
        assert len(box) == 1 and box.unconfirmed() == 1
        assert box.stats().pending_from == {"a": 3}
        assert box.confirm("a", [(1, 2)]) == 0  # again: nothing left to do
        assert box.confirm("a", [(3, 3)]) == 1
        assert box.empty()
    with Outbox(tmp_path / "o.sqlite", max_bytes=10**12, max_age_s=HOUR) as box:
        assert box.empty() and box.confirm_seen is False


def test_off_mode_puback_is_delivery(tmp_path: Path) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        box.end_to_end = False
        put(box, "a", 3)
        drain(box)
        assert box.empty()


def test_unconfirmed_items_are_sent_again_with_backoff(tmp_path: Path, clock: list[float]) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        put(box, "a", 2)
        assert drain(box) == [("a", 2), ("a", 1)]  # the newest first, then the backlog
        clock[0] += 59
        assert box.take() is None
        assert box.resend_due_in() == pytest.approx(1.0)
        clock[0] += 1
        assert drain(box) == [("a", 1), ("a", 2)]  # oldest first
        assert box.resent == 2
        clock[0] += 60
        assert box.take() is None  # second wait: 120 s
        clock[0] += 60
        assert [s for _, s in drain(box)] == [1, 2]
        for _ in range(10):  # capped at resend_max
            clock[0] += 600
            assert len(drain(box)) == 2
        box.confirm("a", [(1, 2)])
        clock[0] += 10_000
        assert box.take() is None and box.empty()


def test_live_data_goes_out_ahead_of_resends(tmp_path: Path, clock: list[float]) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        put(box, "a", 3)
        drain(box)
        clock[0] += 61
        put(box, "a", 1)
        item = box.take()
        assert item is not None and item.seq == 4 and item.live
        assert [s for _, s in drain(box)] == [1, 2, 3]


def test_confirm_in_flight_and_pending_items(tmp_path: Path, clock: list[float]) -> None:
    """A confirmation may arrive for an item in flight (sent again) or never taken in this
    process (the previous one published it): both are gone, and a late PUBACK does nothing."""
    with open_box(tmp_path / "o.sqlite") as box:
        put(box, "a", 3)
        inflight = box.take()
        assert inflight is not None
        assert box.confirm("a", [(1, 3)]) == 3
        box.ack(inflight)
        assert box.empty() and box.unconfirmed() == 0 and box.take() is None


def test_union_of_several_collectors(tmp_path: Path, clock: list[float]) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        put(box, "a", 10)
        drain(box)
        box.confirm("a", [(1, 1), (3, 3), (5, 5), (7, 7), (9, 9)])  # collector 1
        box.confirm("a", [(2, 2), (4, 4), (6, 6)])  # collector 2
        box.confirm("a", [(6, 8), (10, 10)])  # collector 2 later, overlapping
        assert box.empty()


def test_release_keeps_unconfirmed_items_waiting(tmp_path: Path, clock: list[float]) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        put(box, "a", 2)
        drain(box)
        box.release()  # connection lost: the broker may still have them
        assert box.take() is None
        clock[0] += 61
        assert len(drain(box)) == 2


def test_gap_records_wait_for_confirmation_too(tmp_path: Path, clock: list[float]) -> None:
    with open_box(tmp_path / "o.sqlite", max_bytes=25) as box:
        put(box, "a", 5)  # 50 bytes: 3 dropped
        assert box.dropped_total == 3
        gap = box.take()
        assert gap is not None and gap.kind == 1
        box.ack(gap)
        assert box.confirm("a", [], [(1, 2)]) == 0  # another range: not this record
        assert box.confirm("a", [], [(1, 3)]) == 1
        assert box.dropped_total == 3


def test_published_items_over_budget_are_forgotten_not_dropped(
    tmp_path: Path, clock: list[float]
) -> None:
    """Oldest first as ever, but what was published may be stored: no gap record claims it."""
    with open_box(tmp_path / "o.sqlite", max_bytes=60) as box:
        put(box, "a", 3)
        drain(box)  # 1..3 published, unconfirmed
        put(box, "b", 3)  # 60 bytes: full
        put(box, "b", 1)  # over: the oldest goes, a/1
        assert box.dropped_total == 0 and box.forgotten_total == 1
        assert box.unconfirmed() == 2
        assert box.stats().pending_from["a"] == 2
        put(box, "b", 3)  # a/2, a/3 forgotten, then b/1.. (never published) dropped
        assert box.forgotten_total == 3 and box.dropped_total >= 1
        gap = box.take()
        assert gap is not None and gap.kind == 1 and gap.device == "b"


def test_in_flight_at_a_broken_connection_counts_as_published(tmp_path: Path) -> None:
    with open_box(tmp_path / "o.sqlite", max_bytes=30) as box:
        put(box, "a", 1)
        assert box.take() is not None
        box.release()  # connection broke before the PUBACK
        put(box, "a", 3)  # 40 bytes: a/1 must go
        assert box.forgotten_total == 1 and box.dropped_total == 0


def test_end_to_end_is_remembered(tmp_path: Path) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        box.end_to_end = False
        box.set_end_to_end()
    with Outbox(tmp_path / "o.sqlite", max_bytes=10**12, max_age_s=HOUR) as box:
        assert box.confirm_seen


def test_trap_events_are_done_at_puback_when_collectors_do_not_confirm_them(
    tmp_path: Path,
) -> None:
    """An older collector's acknowledgements lack `events` (tests/test_events_delivery.py)."""
    with open_box(tmp_path / "o.sqlite") as box:
        box.set_confirm_events(False)
        now = int(time.time() * 1000)
        box.put("x/a/event", b"e", device="a/event", seq=box.next_seq("a/event"), ts_ms=now)
        drain(box)
        assert box.empty()


# -- the collector's side --------------------------------------------------------------------


def test_runs() -> None:
    assert runs({5, 1, 2, 3, 9, 10}) == [(1, 3), (5, 5), (9, 10)]
    assert runs(set()) == []


def test_acker_sends_one_message_per_site_and_keeps_what_was_not_sent() -> None:
    sent: list[tuple[str, bytes]] = []
    up = [False]

    def publish(topic: str, payload: bytes) -> bool:
        if up[0]:
            sent.append((topic, payload))
        return up[0]

    acker = Acker(publish, 1.0)
    for seq in (1, 2, 3, 5):
        acker.stored("s1", "radio", seq)
    acker.gap("s1", "radio", 6, 8)
    acker.stored("s2", "gw", 7)
    assert acker.flush() == 0 and sent == []
    up[0] = True
    acker.stored("s1", "lte", 1)
    assert acker.flush() == 2
    by_topic = {t: decode_ack(p) for t, p in sent}
    s1 = {d.device: d for d in by_topic["pantau/s1/ack"].devices}
    assert ack_ranges(s1["radio"]) == [(1, 3), (5, 5)]
    assert ack_gaps(s1["radio"]) == [(6, 8)]
    assert ack_ranges(s1["lte"]) == [(1, 1)]
    assert [ack_ranges(d) for d in by_topic["pantau/s2/ack"].devices] == [[(7, 7)]]
    assert acker.flush() == 0  # nothing new
    assert acker.sent == {"s1": 1, "s2": 1}


def test_unconfirmed_items_are_a_bounded_window(tmp_path: Path, clock: list[float]) -> None:
    """While no collector confirms (a NOC outage with the broker up), at most
    `max_unconfirmed` items wait in memory; the rest stay on disk, and the publisher is idle
    (not stalled: the watchdog must not restart it). A confirmation opens the window again."""
    with open_box(tmp_path / "o.sqlite", max_unconfirmed=10) as box:
        put(box, "a", 25)
        sent = drain(box)
        assert len(sent) == 10
        assert box.unconfirmed() == 10 and len(box) == 25
        assert box.take() is None and box.window_full() and box.idle()
        put(box, "a", 1)  # new polls are kept, not handed out
        assert box.take() is None and len(box) == 26
        assert box.confirm("a", [(seq, seq) for _, seq in sent]) == 10
        assert not box.window_full() and not box.idle() and len(box) == 16
        assert len(drain(box)) == 10  # the next window
        assert box.take() is None and len(box) == 16
        # a resend deadline frees the window too: the items go out again, nothing is lost
        clock[0] += 61
        assert box.take() is not None


def test_a_full_window_is_not_a_stalled_publisher(tmp_path: Path) -> None:
    with open_box(tmp_path / "o.sqlite", max_unconfirmed=3) as box:
        put(box, "a", 5)
        drain(box)
        assert box.idle()  # agent.service's publisher watch reads idle(): no watchdog restart
        assert box.leave_end_to_end() == 3  # acks off: PUBACK is delivery, nothing waits
        assert not box.window_full() and not box.idle()
        assert len(drain(box)) == 5 and box.empty()  # sent once more, gone at PUBACK


# -- the forgotten count, end to end (agent status → collector → /metrics, InfluxDB) ---------


def agent_config(tmp_path: Path, **broker: object) -> AgentConfig:
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: p\n    measurement: m\n    scalars:\n      - {name: v, oid: 1.3.6.1.2.1.1.3.0}\n"
    )
    extra = "".join(f", {k}: {v}" for k, v in broker.items())
    (tmp_path / "a.yaml").write_text(
        f"site: s\nbroker: {{port: 1883{extra}}}\nprofile_files: [p.yaml]\n"
        f"outbox: {{path: {tmp_path / 'outbox.sqlite'}}}\n"
        "devices:\n  - {name: a, host: 127.0.0.1, profiles: [p]}\n"
    )
    return load_agent_config(tmp_path / "a.yaml")


def test_forgotten_items_reach_the_status_metrics_and_influx(
    tmp_path: Path, clock: list[float]
) -> None:
    cfg = agent_config(tmp_path)
    with open_box(cfg.outbox.path, max_bytes=60) as box:
        put(box, "a", 3)
        drain(box)  # published, unconfirmed
        put(box, "a", 6)  # 90 bytes: over budget, the three published ones are forgotten
        assert box.forgotten_total == 3 and box.dropped_total == 0
        status = Agent(cfg, box).status(box, 0.0)
    assert status.forgotten_total == 3
    received = check_status("s", encode_status(status), 65536)
    state = State(900)
    state.on_status(received)
    metrics = scrape(state)
    assert metrics[("pantau_agent_outbox_forgotten_total", (("site", "s"),))] == 3
    assert metrics[("pantau_agent_outbox_dropped_total", (("site", "s"),))] == 0
    assert ",forgotten_total=3i," in status_line(received, 0)
    # persisted, like dropped_total: a restarted agent reports the same count
    with Outbox(cfg.outbox.path, max_bytes=60, max_age_s=HOUR) as box:
        assert box.stats().forgotten_total == 3


# -- broker.confirm: auto goes back to PUBACK when acknowledgements stop, and returns -------


def silent_publisher(tmp_path: Path, clock: list[float], **broker: object) -> Publisher:
    """An auto agent in end-to-end mode with three items PUBACKed and waiting."""
    cfg = agent_config(tmp_path, **broker)
    box = open_box(cfg.outbox.path)
    box.set_end_to_end()
    publisher = Publisher(cfg, box, lambda o, s: None)  # type: ignore[arg-type,return-value]
    put(box, "a", 3)
    drain(box)
    assert box.unconfirmed() == 3
    return publisher


@pytest.mark.parametrize("flag", [None, b"on", b"", b"bogus"])
def test_silence_alone_never_falls_back(
    tmp_path: Path, clock: list[float], flag: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    """No acknowledgement for hours may be a stopped collector (or InfluxDB) with the broker
    queueing for it, unsaved: without the collectors' "off", everything is kept and resent."""
    publisher = silent_publisher(tmp_path, clock, confirm_timeout=600)
    box = publisher.outbox
    with box:
        if flag is not None:
            publisher.on_confirm_flag(flag)
        for t in (0, 600, 1200, 100_000):
            assert not publisher.check_silence(clock[0] + t)
        assert box.end_to_end and publisher.confirm_mode == "end-to-end"
        assert len(box) == 3 and publisher.fallbacks == 0
        assert "taken as a collector or InfluxDB outage" in caplog.text
        clock[0] += 700
        assert len(drain(box)) == 3  # resent, still waiting
        assert box.unconfirmed() == 3


def test_auto_falls_back_when_the_collectors_say_off_and_returns_on_the_next_ack(
    tmp_path: Path, clock: list[float]
) -> None:
    publisher = silent_publisher(tmp_path, clock, confirm_timeout=600)
    box = publisher.outbox
    cfg = publisher.cfg
    with box:
        publisher.on_confirm_flag(b"off")
        assert publisher.collectors_confirm is False
        assert not publisher.check_silence(clock[0])
        assert not publisher.check_silence(clock[0] + 599)
        publisher.on_ack(encode_ack(Ack([device_ack("a", [(1, 1)])])))  # an ack: clock resets
        assert not publisher.check_silence(clock[0] + 700)
        assert not publisher.check_silence(clock[0] + 1299)
        assert publisher.check_silence(clock[0] + 1300)
        assert publisher.confirm_mode == "waiting" and not box.end_to_end
        # What waited is pending again, not deleted (its PUBACK proved nothing): sent once
        # more, and that PUBACK is delivery
        assert len(box) == 2 and box.unconfirmed() == 0 and not box.idle()
        assert sorted(drain(box)) == [("a", 2), ("a", 3)]
        assert box.empty() and box.dropped_total == 0 and box.forgotten_total == 0
        put(box, "a", 2)
        drain(box)
        assert box.empty()
        clock[0] += 10_000
        assert box.take() is None
        # and back to end-to-end at the next acknowledgement
        publisher.on_ack(encode_ack(Ack([device_ack("a", [(4, 5)])])))
        assert publisher.confirm_mode == "end-to-end" and box.end_to_end
        put(box, "a", 1)
        drain(box)
        assert box.unconfirmed() == 1
    with Outbox(cfg.outbox.path, max_bytes=10**12, max_age_s=HOUR) as box:
        assert box.confirm_seen  # remembered again across a restart


def test_the_fallback_is_remembered_across_a_restart(tmp_path: Path, clock: list[float]) -> None:
    publisher = silent_publisher(tmp_path, clock, confirm_timeout=60)
    cfg = publisher.cfg
    with publisher.outbox:
        publisher.on_confirm_flag(b"off")
        publisher.check_silence(clock[0])
        assert publisher.check_silence(clock[0] + 60)
    with Outbox(cfg.outbox.path, max_bytes=10**12, max_age_s=HOUR) as box:
        assert Publisher(cfg, box, lambda o, s: None).confirm_mode == "waiting"  # type: ignore[arg-type,return-value]
        assert len(box) == 3  # still to be sent once more


@pytest.mark.parametrize("confirm", ["on", "off"])
def test_only_auto_falls_back(tmp_path: Path, clock: list[float], confirm: str) -> None:
    cfg = agent_config(tmp_path, confirm=confirm, confirm_timeout=60)
    with open_box(cfg.outbox.path) as box:
        box.end_to_end = confirm == "on"
        publisher = Publisher(cfg, box, lambda o, s: None)  # type: ignore[arg-type,return-value]
        publisher.on_confirm_flag(b"off")
        put(box, "a", 2)
        drain(box)
        for t in (0, 61, 10_000):
            assert not publisher.check_silence(clock[0] + t)
        assert box.end_to_end is (confirm == "on")


# -- PUBACK 16 "no matching subscribers": thrown away by the broker, never delivery ----------


@pytest.mark.parametrize("end_to_end", [True, False])
def test_no_matching_subscribers_is_never_delivery(
    tmp_path: Path, clock: list[float], end_to_end: bool
) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        box.end_to_end = end_to_end
        put(box, "a", 2)
        first = box.take()
        assert first is not None
        box.ack(first, NO_SUBSCRIBERS)
        assert box.unrouted == 1 and len(box) == 2 and box.unconfirmed() == 1
        second = box.take()
        assert second is not None and box.take() is None
        box.ack(second, NO_SUBSCRIBERS)
        assert box.unrouted == 2 and len(box) == 2 and box.idle()
        clock[0] += 59
        assert box.take() is None  # a resend deadline, not a hot loop
        clock[0] += 2
        again = [box.take(), box.take()]
        assert sorted(i.seq for i in again if i is not None) == [1, 2]
        for item in again:
            assert item is not None
            box.ack(item)  # code 0: the broker routed it
        assert box.unrouted == 2
        assert box.empty() is not end_to_end  # end to end: now waits for the collector
        assert box.confirm("a", [(1, 2)]) == (2 if end_to_end else 0)
        assert box.empty()


def test_items_the_broker_threw_away_are_a_bounded_window_in_every_mode(
    tmp_path: Path, clock: list[float]
) -> None:
    """Days without a collector session under `off`: memory stays bounded as end to end."""
    with open_box(tmp_path / "o.sqlite", max_unconfirmed=2) as box:
        box.end_to_end = False
        put(box, "a", 3)
        for _ in range(2):
            item = box.take()
            assert item is not None
            box.ack(item, NO_SUBSCRIBERS)
        assert box.window_full() and box.idle() and box.take() is None
        assert len(box) == 3
        clock[0] += 61
        assert box.take() is not None  # the deadline opens it again


def test_no_matching_subscribers_restarts_the_fallback_clock(
    tmp_path: Path, clock: list[float]
) -> None:
    """A 16 proves no collector session exists: the silence is not "acknowledgements off"."""

    class Broker:  # answers every publish "no matching subscribers", as Mosquitto does then
        async def publish_acked(self, topic: str, payload: bytes, **kw: object) -> PubAck:
            return PubAck(NO_SUBSCRIBERS, "No matching subscribers")

    publisher = silent_publisher(tmp_path, clock, confirm_timeout=600)
    box = publisher.outbox
    with box:
        publisher.on_confirm_flag(b"off")
        assert not publisher.check_silence(clock[0])
        put(box, "a", 1)
        item = box.take()
        assert item is not None
        clock[0] += 500
        asyncio.run(publisher._publish(Broker(), item))  # type: ignore[arg-type]
        assert box.unrouted == 1 and publisher.sent == 0 and len(box) == 4
        assert not publisher.check_silence(clock[0])  # the clock starts again here
        assert not publisher.check_silence(clock[0] + 599)
        assert publisher.check_silence(clock[0] + 600)


# -- gap records: only the exact range acknowledged ------------------------------------------


def test_a_wide_acknowledged_range_deletes_no_gap_record_inside_it(
    tmp_path: Path, clock: list[float]
) -> None:
    """Review 1213 item 2: a set-aside gap record with a wide range (another device's payload)
    must not delete this device's records that were never sent."""
    with open_box(tmp_path / "o.sqlite", max_bytes=25) as box:
        put(box, "a", 5)  # 3 dropped: record 1..3, never taken
        assert box.confirm("a", [], [(1, 1000)]) == 0
        assert box.confirm("a", [], [(2, 3)]) == 0
        assert len(box) == 3
        assert box.confirm("a", [], [(1, 3)]) == 1


@pytest.mark.parametrize(("events", "waits"), [(None, True), (True, True), (False, False)])
def test_event_gap_records_wait_as_events_do(
    tmp_path: Path, events: bool | None, waits: bool
) -> None:
    """Review 1213 item 6: a collector that does not confirm events neither subscribes to their
    gap records nor acknowledges them: waiting would resend them until forgotten."""
    with open_box(tmp_path / "o.sqlite") as box:
        if events is not None:
            box.set_confirm_events(events)
        assert box.waits("pantau/s/a/event/gap") is waits
        assert box.waits("pantau/s/a/event") is waits
        assert box.waits("pantau/s/a/gap") and box.waits("pantau/s/a/metrics")
        box.end_to_end = False
        assert not box.waits("pantau/s/a/event/gap") and not box.waits("pantau/s/a/gap")


# -- messages the collector sets aside are acknowledged, so the agent stops sending them -----


class RecordingAcks:
    def __init__(self) -> None:
        self.stored_seqs: list[tuple[str, str, int]] = []
        self.gaps: list[tuple[str, str, int, int]] = []

    def stored(self, site: str, device: str, seq: int) -> None:
        self.stored_seqs.append((site, device, seq))

    def gap(self, site: str, device: str, first: int, last: int) -> None:
        self.gaps.append((site, device, first, last))


def rejecting_pipeline(tmp_path: Path, acks: RecordingAcks, max_fields: int = 1000) -> Pipeline:
    return Pipeline(
        sink=None,  # type: ignore[arg-type]  # nothing is written: every message is rejected
        state=State(900, max_fields=max_fields),
        metrics=RecordingMetrics(),
        ack=lambda m: None,
        rejected=RejectedStore(tmp_path / "rejected.jsonl", 1 << 20),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=60.0,
        acks=acks,
    )


def test_rejected_messages_are_acknowledged_to_their_site(tmp_path: Path) -> None:
    """Payloads at fault themselves (bad names, values, a timestamp before 2000) are confirmed
    to their site; one in the future is not (it may be the collector's clock)."""
    acks = RecordingAcks()
    mqtt_acked: list[int] = []
    metrics = RecordingMetrics()
    pipe = Pipeline(
        sink=None,  # type: ignore[arg-type]  # nothing is written: every message is rejected
        state=State(900),
        metrics=metrics,
        ack=lambda m: mqtt_acked.append(m.mid),
        rejected=RejectedStore(tmp_path / "rejected.jsonl", 1 << 20),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=60.0,
        acks=acks,
    )
    now = int(time.time() * 1000)
    future = SampleSet("s", "radio", 7, now + 10 * 86400 * 1000, 1, True, "")
    bad_field = SampleSet(
        "s", "radio", 8, now, 1, True, "", [Group("m", {}, [Field("Bad-Name", Kind.GAUGE, 1)])]
    )
    v1 = SampleSet("s", "lte", 3, 1000, 1, True, "")  # version 1, timestamp in 1970
    bad_gap = encode_gap(Gap("s", "radio", 9, 12, 99, now))  # count inconsistent
    messages = [
        ("pantau/s/radio/metrics", encode_sample_set(future)),  # bad_timestamp, future
        ("pantau/s/radio/metrics", encode_sample_set(bad_field)),  # bad_name
        ("pantau/s/lte/metrics", encode_sample_set(v1, 1)),  # bad_timestamp, version 1
        ("pantau/s/radio/gap", bad_gap),  # bad_value
        ("pantau/s/radio/metrics", b"\x02\x00" + encode_sample_set(future)[2:6] + b"\xc1"),
        ("pantau/s/status", b"{}"),  # not a sample set: nothing to acknowledge
    ]
    for mid, (topic, payload) in enumerate(messages):
        pipe.handle(Inbound(topic, payload, mid, 1, 0))
    assert mqtt_acked == list(range(len(messages)))
    assert metrics.rejections == [
        "bad_timestamp",
        "bad_name",
        "bad_timestamp",
        "bad_value",
        "malformed",
        "invalid_schema",
    ]
    assert acks.stored_seqs == [("s", "radio", 8), ("s", "lte", 3)]
    assert acks.gaps == [("s", "radio", 9, 12)]
    lines = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert len(lines) == len(messages)  # set aside: that is where they are kept


def send(pipe: Pipeline, site: str, device: str, seq: int, kind: Kind, name: str = "up") -> None:
    """One sample set of one field, handled as if received on its own topic."""
    now = int(time.time() * 1000)
    fields = [Group("system", {}, [Field(name, kind, 5)])]
    payload = encode_sample_set(SampleSet(site, device, seq, now, 1, True, "", fields))
    pipe.handle(Inbound(f"pantau/{site}/{device}/metrics", payload, seq, 1, 0))


def test_a_refusal_another_site_caused_is_not_acknowledged(tmp_path: Path) -> None:
    """Site "evil" sends system.uptime as a counter first: site s's gauge is refused
    (kind_conflict) and set aside, but not confirmed, so s's agent keeps it and sends it again
    (review of issue 13: one site made the NOC delete another site's data)."""
    acks = RecordingAcks()
    pipe = rejecting_pipeline(tmp_path, acks)
    send(pipe, "evil", "box", 1, Kind.COUNTER)
    send(pipe, "s", "radio", 42, Kind.GAUGE)
    record = json.loads((tmp_path / "rejected.jsonl").read_text())
    assert record["reason"] == "kind_conflict"
    assert acks.stored_seqs == []


def test_a_full_field_registry_is_not_acknowledged(tmp_path: Path) -> None:
    acks = RecordingAcks()
    pipe = rejecting_pipeline(tmp_path, acks, max_fields=1)
    send(pipe, "evil", "box", 1, Kind.GAUGE, "a")
    send(pipe, "s", "radio", 42, Kind.GAUGE, "b")
    record = json.loads((tmp_path / "rejected.jsonl").read_text())
    assert record["reason"] == "field_limit"
    assert acks.stored_seqs == []


def test_another_devices_payload_confirms_nothing(tmp_path: Path) -> None:
    """A payload published under radio's topic but encoded for another device or site is
    refused as a mismatch, and its number is not confirmed to radio, even when the payload is
    otherwise broken (a v2 header whose checks do not match, a v1 payload naming another
    site, a gap or event of another device)."""
    acks = RecordingAcks()
    pipe = rejecting_pipeline(tmp_path, acks)
    now = int(time.time() * 1000)
    bad = [Group("m", {}, [Field("Bad-Name", Kind.GAUGE, 1)])]
    other_v2 = encode_sample_set(SampleSet("s", "lte", 500, now, 1, True, "", bad))
    other_v1 = encode_sample_set(SampleSet("t", "radio", 600, now, 1, True, "", bad), 1)
    broken_v2 = other_v2[:6] + b"\xff\xff"  # lte's header, a body that does not inflate
    other_gap = encode_gap(Gap("s", "lte", 9, 12, 99, now))
    other_event = encode_event(Event("s", "lte", 7, 1000, "1.3.6.1", "", "info"))
    for mid, (topic, payload) in enumerate(
        [
            ("pantau/s/radio/metrics", other_v2),
            ("pantau/s/radio/metrics", other_v1),
            ("pantau/s/radio/metrics", broken_v2),
            ("pantau/s/radio/gap", other_gap),
            ("pantau/s/radio/event", other_event),
        ]
    ):
        pipe.handle(Inbound(topic, payload, mid, 1, 0))
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "rejected.jsonl").open()]
    assert reasons == ["device_mismatch", "site_mismatch"] + ["device_mismatch"] * 3
    assert acks.stored_seqs == [] and acks.gaps == []


def test_peeks_read_only_the_topics_own_payloads() -> None:
    """The readers behind those confirmations, on payloads that fail only their origin (a
    CRC of another name in a v2 header, other names in v1, gaps and events)."""
    now = int(time.time() * 1000)
    ss = SampleSet("s", "radio", 42, now, 1, True, "")
    for version in (1, 2):
        payload = encode_sample_set(ss, version)
        assert peek_seq(payload, site="s", device="radio") == 42
        assert peek_seq(payload, site="s", device="lte") is None
        assert peek_seq(payload, site="t", device="radio") is None
    gap = encode_gap(Gap("s", "radio/event", 3, 9, 7, now))
    assert peek_gap(gap, site="s", device="radio/event") == (3, 9)
    assert peek_gap(gap, site="s", device="radio") is None
    assert peek_gap(gap, site="t", device="radio/event") is None
    event = encode_event(Event("s", "gw", 5, now, "1.3.6.1", "", "info"))
    assert peek_event_seq(event, site="s", device="gw") == 5
    assert peek_event_seq(event, site="s", device="lte") is None
    assert peek_event_seq(event, site="t", device="gw") is None
    assert peek_event_seq(b"\x01\x00\x92\xa1s\xa2gw", site="s", device="gw") is None  # no seq


def test_without_acknowledgements_nothing_is_told(tmp_path: Path) -> None:
    pipe = Pipeline(
        sink=None,  # type: ignore[arg-type]
        state=State(900),
        metrics=RecordingMetrics(),
        ack=lambda m: None,
        rejected=RejectedStore(None, 0),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=60.0,
    )
    pipe.handle(Inbound("pantau/s/radio/metrics", b"\x02\x01junk", 1, 1, 0))  # no error


def test_what_influxdb_refuses_is_not_acknowledged_to_the_site(tmp_path: Path) -> None:
    """A message InfluxDB refuses (think: a field type conflict, which depends on what the
    shard already holds) is set aside and acknowledged to the broker, but not to its site: the
    agent keeps it. The rest of the batch is acknowledged as stored."""
    acks = RecordingAcks()
    with FakeInflux() as influx:
        pipe = Pipeline(
            sink=InfluxSink(InfluxConfig(url=influx.url, timeout=5)),  # type: ignore[arg-type]
            state=State(900),
            metrics=RecordingMetrics(),
            ack=lambda m: None,
            rejected=RejectedStore(tmp_path / "rejected.jsonl", 1 << 20),
            max_message_bytes=65536,
            batch_size=10_000,
            flush_interval=60,
            acks=acks,
        )
        for seq in range(1, 5):
            payload = encode_sample_set(write_path_sample_set("s", seq, poison=seq == 3))
            pipe.handle(Inbound("pantau/s/radio/metrics", payload, seq, 1, 1))
        batch, pipe._batch = pipe._batch, Batch()
        assert pipe.flush(batch, threading.Event())
    assert json.loads((tmp_path / "rejected.jsonl").read_text())["reason"] == "influx_refused"
    assert sorted(acks.stored_seqs) == [("s", "radio", 1), ("s", "radio", 2), ("s", "radio", 4)]
