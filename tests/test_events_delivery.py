"""Trap events confirmed by the NOC, not by the broker (docs/delivery.md, docs/traps.md).

The collector acknowledges each event it wrote under "<device>/event" (the events' own
sequence numbers) and says so in every acknowledgement (`Ack.events`); the agent keeps an event
until then, as it keeps sample sets. First without servers (codec, outbox, publisher, the
collector's pipeline), then with real processes: net-snmp's snmptrap → agent → Mosquitto
(killed with -9 after its PUBACK, never having saved) → collector → VictoriaMetrics without
deduplication, so every point written is counted.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import AgentConfig, load_agent_config
from agent.outbox import Outbox
from agent.publisher import Publisher
from collector.acks import Acker, events_key
from collector.intake import Inbound
from collector.pipeline import Batch, Pipeline, RejectedStore
from collector.state import State
from devstack import procs
from devstack.servers import Mosquitto, free_port
from pantau.wire import (
    Ack,
    Event,
    ack_ranges,
    decode_ack,
    device_ack,
    encode_ack,
    encode_event,
    event_topic,
)
from pantau.wire.codec import peek_event_seq
from tests.support.recording import RecordingMetrics
from tests.test_delivery import victoria_raw  # noqa: F401  (fixture "victoria": no dedup)

HOUR = 3600.0
SITE = "trap-07"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"


def event(seq: int, device: str = "gw", severity: str = "info", site: str = "s") -> Event:
    return Event(site, device, seq, int(time.time() * 1000), COLD_START, "coldStart", severity)


# -- the acknowledgement says whether its collector confirms events ---------------------------


class OlderDeviceAck(msgspec.Struct, array_like=True):
    device: str
    upto: int
    span: int = 0
    above: list[int] = []
    gaps: list[int] = []


class OlderAck(msgspec.Struct, array_like=True):
    """The Ack as agents older than `events` decode it."""

    devices: list[OlderDeviceAck]


def test_the_events_flag_costs_one_byte_and_older_agents_ignore_it() -> None:
    devices = [device_ack("gw/event", [(1, 3)]), device_ack("gw", [(7, 7)])]
    without, with_flag = encode_ack(Ack(devices)), encode_ack(Ack(devices, events=True))
    assert len(with_flag) == len(without) + 1
    assert decode_ack(with_flag).events is True
    assert decode_ack(without).events is False  # what a collector older than it sends
    assert ack_ranges(decode_ack(with_flag).devices[0]) == [(1, 3)]

    older = msgspec.msgpack.decode(with_flag[1:], type=OlderAck)
    assert [(d.device, d.upto, d.span) for d in older.devices] == [("gw/event", 3, 2), ("gw", 7, 0)]


def test_peek_event_seq_reads_what_fails_the_other_checks() -> None:
    def peek(payload: bytes) -> int | None:
        return peek_event_seq(payload, site="s", device="gw")

    assert peek(encode_event(event(42, severity="catastrophic"))) == 42
    assert peek(encode_event(event(42, site="other"))) is None  # not the topic's site
    assert peek(b"\x01\x00\xc1") is None  # not MessagePack
    assert peek(b"\x02\x00" + encode_event(event(1))[2:]) is None  # unknown version
    assert peek(b"\x01\x00\x92\xa1s\xa2gw") is None  # too short: no seq


def test_the_acker_confirms_events_in_every_message() -> None:
    sent: list[bytes] = []

    def publish(topic: str, payload: bytes) -> bool:
        sent.append(payload)
        return True

    acker = Acker(publish, 1.0)
    acker.stored("s", events_key("gw"), 4)
    acker.stored("s", "gw", 9)
    assert acker.flush() == 1
    ack = decode_ack(sent[0])
    assert ack.events is True
    assert {d.device: ack_ranges(d) for d in ack.devices} == {"gw": [(9, 9)], "gw/event": [(4, 4)]}


# -- the agent's outbox and publisher --------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr("agent.outbox.time.monotonic", lambda: now[0])
    return now


def open_box(path: Path, end_to_end: bool = True) -> Outbox:
    box = Outbox(
        path, max_bytes=10**12, max_age_s=HOUR, ack_batch_s=HOUR, resend_after=60, resend_max=600
    ).open()
    box.end_to_end = end_to_end
    return box


def put_event(box: Outbox, device: str = "a") -> int:
    key = f"{device}/event"
    seq = box.next_seq(key)
    box.put(f"x/{device}/event", b"e", device=key, seq=seq, ts_ms=int(time.time() * 1000))
    return seq


def publish_all(box: Outbox) -> list[int]:
    """Take everything (as the publisher does) and PUBACK it."""
    out = []
    while (item := box.take()) is not None:
        box.ack(item)
        out.append(item.seq)
    return out


def test_an_event_waits_for_the_collector_and_is_resent_until_then(
    tmp_path: Path, clock: list[float]
) -> None:
    with open_box(tmp_path / "o.sqlite") as box:
        assert box.confirm_events is None  # not known yet: events wait, as sample sets do
        put_event(box)
        assert publish_all(box) == [1]
        assert len(box) == 1 and box.unconfirmed() == 1  # PUBACK is not enough
        clock[0] += 61
        assert publish_all(box) == [1]  # the broker may have lost it: sent again
        assert box.resent == 1
        assert box.confirm("a/event", [(1, 1)]) == 1
        clock[0] += 10_000
        assert box.empty() and box.take() is None


def test_events_go_at_puback_when_the_collectors_do_not_confirm_them(
    tmp_path: Path, clock: list[float]
) -> None:
    """An older collector acknowledges sample sets only: its events would be resent forever."""
    with open_box(tmp_path / "o.sqlite") as box:
        put_event(box)
        publish_all(box)  # waits (not known yet) ...
        assert box.set_confirm_events(False) and not box.set_confirm_events(False)
        put_event(box)
        publish_all(box)
        assert len(box) == 1  # ... the new one went at PUBACK
        clock[0] += 61
        assert publish_all(box) == [1]  # the waiting one: sent once more, then gone
        assert box.empty()
    with open_box(tmp_path / "o.sqlite") as box:
        assert box.confirm_events is False  # remembered across a restart
        assert box.set_confirm_events(True)
        put_event(box)
        publish_all(box)
        assert box.unconfirmed() == 1
    with open_box(tmp_path / "o.sqlite") as box:
        assert box.confirm_events is True


def test_without_end_to_end_an_event_goes_at_puback(tmp_path: Path) -> None:
    """broker.confirm off, or auto before any acknowledgement: the broker's PUBACK."""
    with open_box(tmp_path / "o.sqlite", end_to_end=False) as box:
        box.set_confirm_events(True)
        put_event(box)
        publish_all(box)
        assert box.empty()


def agent_config(tmp_path: Path, confirm: str) -> AgentConfig:
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: p\n    measurement: m\n    scalars:\n"
        "      - {name: v, oid: 1.3.6.1.2.1.1.3.0}\n"
    )
    (tmp_path / "a.yaml").write_text(
        f"site: s\nbroker: {{port: 1883, confirm: {confirm}}}\nprofile_files: [p.yaml]\n"
        f"outbox: {{path: {tmp_path / 'outbox.sqlite'}}}\n"
        "devices:\n  - {name: a, host: 127.0.0.1, profiles: [p]}\n"
    )
    return load_agent_config(tmp_path / "a.yaml")


@pytest.mark.parametrize("confirm", ["auto", "on"])
def test_the_publisher_follows_what_the_acknowledgements_say(
    tmp_path: Path, clock: list[float], confirm: str
) -> None:
    cfg = agent_config(tmp_path, confirm)
    with open_box(cfg.outbox.path, end_to_end=confirm == "on") as box:
        publisher = Publisher(cfg, box, lambda o, s: None)  # type: ignore[arg-type,return-value]
        put_event(box)
        publish_all(box)
        assert len(box) == (1 if confirm == "on" else 0)  # auto: PUBACK until the first ack
        publisher.on_ack(encode_ack(Ack([device_ack("a", [(1, 1)])], events=True)))
        assert box.end_to_end and box.confirm_events is True
        put_event(box)
        publish_all(box)
        assert box.unconfirmed() == len(box) >= 1
        publisher.on_ack(encode_ack(Ack([device_ack("a/event", [(1, 2)])], events=True)))
        assert box.empty()
        publisher.on_ack(encode_ack(Ack([device_ack("a", [(2, 2)])])))  # an older collector
        assert box.confirm_events is False
        put_event(box)
        publish_all(box)
        assert box.empty()


# -- the collector's pipeline ----------------------------------------------------------------


class RecordingAcks:
    def __init__(self) -> None:
        self.stored_seqs: list[tuple[str, str, int]] = []
        self.gaps: list[tuple[str, str, int, int]] = []

    def stored(self, site: str, device: str, seq: int) -> None:
        self.stored_seqs.append((site, device, seq))

    def gap(self, site: str, device: str, first: int, last: int) -> None:
        self.gaps.append((site, device, first, last))


class StoringSink:
    """Accepts every write (the write path itself is tested against a real server)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: list[str]) -> None:
        self.lines += lines


def pipeline(tmp_path: Path, acks: RecordingAcks, sink: StoringSink | None = None) -> Pipeline:
    return Pipeline(
        sink=sink,  # type: ignore[arg-type]
        state=State(900),
        metrics=RecordingMetrics(),
        ack=lambda m: None,
        rejected=RejectedStore(tmp_path / "rejected.jsonl", 1 << 20),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=60.0,
        acks=acks,
    )


def test_a_written_event_is_acknowledged_under_its_own_key(tmp_path: Path) -> None:
    acks, sink = RecordingAcks(), StoringSink()
    pipe = pipeline(tmp_path, acks, sink)
    pipe.handle(Inbound(event_topic("s", "gw"), encode_event(event(5)), 1, 1, 0))
    assert acks.stored_seqs == []  # not before InfluxDB has it
    batch, pipe._batch = pipe._batch, Batch()
    assert pipe.flush(batch, threading.Event())
    assert len(sink.lines) == 1 and sink.lines[0].startswith("pantau_event,")
    assert acks.stored_seqs == [("s", "gw/event", 5)]


def test_a_refused_event_is_acknowledged_so_that_it_is_not_sent_again(tmp_path: Path) -> None:
    acks = RecordingAcks()
    pipe = pipeline(tmp_path, acks)
    pipe.handle(Inbound(event_topic("s", "gw"), encode_event(event(6, severity="doom")), 1, 1, 0))
    pipe.handle(Inbound(event_topic("s", "gw"), encode_event(event(7, site="other")), 2, 1, 0))
    pipe.handle(Inbound(event_topic("s", "gw"), b"\x01\x00\xc1junk", 3, 1, 0))  # no number
    # another site's event on s's topic confirms nothing to s (it would delete s's event 7)
    assert acks.stored_seqs == [("s", "gw/event", 6)]
    assert len((tmp_path / "rejected.jsonl").read_text().splitlines()) == 3


# -- real processes ----------------------------------------------------------------------------

RESEND = {"resend_after": 1.0, "resend_max": 2.0}


@pytest.fixture
def lazy_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that saves rarely: kill -9 loses what it queued since it started."""
    with Mosquitto(tmp_path / "lazy-mosquitto", extra_conf="autosave_interval 3600\n") as b:
        yield b


def snmptrap(port: int, *args: str) -> None:
    done = subprocess.run(
        ["snmptrap", "-M", "/dev/null", "-m", "", "-v", "2c", "-c", "public", f"127.0.0.1:{port}"]
        + ["", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr


class EventStack:
    """Collector (acks every 0.3 s), one agent with a trap receiver and a device `gw` polled
    every second, resending unconfirmed items after 1 s, then every 2 s."""

    def __init__(self, tmp: Path, broker: Mosquitto, victoria: Any, snmpsim: Any) -> None:
        self.tmp, self.broker, self.victoria = tmp, broker, victoria
        self.http, self.trap_port = free_port(), free_port("udp")
        ccfg = procs.collector_config(
            tmp / "collector.yaml",
            broker_port=broker.port,
            influx_url=victoria.url,
            http_port=self.http,
            acks={"interval": 0.3},
        )
        self.collector = procs.collector(ccfg, tmp / "collector.log")
        self.snmpsim = snmpsim
        self.outbox_path = tmp / f"{SITE}-outbox.sqlite"
        self.agent: procs.Proc | None = None

    def start_agent(self, confirm: str) -> procs.Proc:
        cfg = procs.agent_config(
            self.tmp / "agent.yaml",
            site=SITE,
            broker_port=self.broker.port,
            devices=[procs.snmpsim_device("gw", "routeros_rb750gr3", self.snmpsim.port)],
            interval=1.0,
            broker={"confirm": confirm},
            traps={"listen": f"127.0.0.1:{self.trap_port}"},
            outbox={"heartbeat": 1.0, "shutdown_timeout": 15.0, **RESEND},
        )
        agent = self.agent = procs.agent(cfg, self.tmp / "agent.log").start()
        procs.wait_until(lambda: "trap receiver listening" in agent.log(), 30, "the receiver")
        # the collector has subscribed (with broker.confirm off, what the broker routes before
        # that is gone: the event of the first step would be)
        up = ("pantau_device_up", (("device", "gw"), ("site", SITE)))
        procs.wait_until(lambda: up in procs.scrape(self.http), 30, "gw at the collector")
        return agent

    def events_waiting(self) -> list[int]:
        """Sequence numbers of gw's events still in the agent's outbox."""
        db = sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT seq FROM outbox WHERE device='gw/event' ORDER BY seq")
            return [r[0] for r in rows]
        finally:
            db.close()

    def stored(self) -> list[tuple[float, int]]:
        """(sequence number, timestamp) of every pantau_event point of gw, as often as written."""
        series = self.victoria.export(f'pantau_event_seq{{site="{SITE}",device="gw"}}')
        return [p for s in series for p in zip(s["values"], s["timestamps"], strict=True)]

    def metric(self, name: str, **labels: str) -> float:
        return procs.scrape(self.http).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def stack(tmp_path: Path, lazy_broker: Mosquitto, victoria: Any, snmpsim: Any) -> Iterator[Any]:
    s = EventStack(tmp_path, lazy_broker, victoria, snmpsim)
    s.collector.start()
    yield s
    if s.agent is not None:
        s.agent.stop()
    s.collector.stop()


class Witness:
    """A plain subscriber on the broker: an event it receives has been PUBACKed to the agent."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[bytes] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="witness")
        self.client.on_message = lambda c, u, m: self.got.append(bytes(m.payload))
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=0)
        self.client.loop_start()
        assert subscribed.wait(10), "the witness could not subscribe"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.servers
@pytest.mark.parametrize("confirm", ["auto", "off"])
def test_broker_killed_after_the_puback_of_an_event(stack: EventStack, confirm: str) -> None:
    """The collector is away; the broker PUBACKs an event and dies (kill -9, nothing saved).
    End to end (auto) the event is sent again and stored once; with broker.confirm off it is
    gone, which is what the acknowledgements are for."""
    agent = stack.start_agent(confirm)
    snmptrap(stack.trap_port, COLD_START)  # the normal path first
    procs.wait_until(lambda: [s for s, _ in stack.stored()] == [1], 30, "event 1 stored")
    if confirm == "auto":
        procs.wait_until(
            lambda: "confirms trap events too" in agent.log(), 20, "the collector confirming events"
        )
    procs.wait_until(lambda: stack.events_waiting() == [], 20, "event 1 leaving the outbox")

    stack.collector.stop()
    witness = Witness(stack.broker.port, event_topic(SITE, "gw"))
    try:
        snmptrap(stack.trap_port, LINK_DOWN, f"{IF_INDEX}.2", "i", "2")
        procs.wait_until(lambda: witness.got, 10, "the broker to have event 2")
    finally:
        witness.close()
    time.sleep(0.5)  # its PUBACK reaches the agent
    if confirm == "auto":
        assert stack.events_waiting() == [2]  # PUBACKed, kept: the NOC has not confirmed it
    else:
        procs.wait_until(lambda: stack.events_waiting() == [], 5, "off: gone at its PUBACK")
    stack.broker.kill()
    stack.broker.restart()
    stack.collector.start()

    if confirm == "off":
        time.sleep(6)  # three resend periods: nothing would come
        assert [s for s, _ in stack.stored()] == [1], "expected the broker crash to lose event 2"
        assert (
            stack.metric("pantau_device_traps_total", site=SITE, device="gw", trap="linkDown") == 0
        )
        return
    procs.wait_until(lambda: stack.events_waiting() == [], 30, "event 2 sent again, confirmed")
    assert "sending again" in agent.log()
    alarm = {"site": SITE, "device": "gw", "alarm": "linkDown:ifIndex=2", "severity": "major"}
    assert stack.metric("pantau_device_alarm", **alarm) == 1.0
    assert stack.metric("pantau_device_traps_total", site=SITE, device="gw", trap="linkDown") == 1
    duplicates = stack.metric("pantau_collector_events_duplicate_total")
    assert agent.stop(30) == 0
    points = stack.stored()
    stamps: dict[float, set[int]] = {}
    for seq, ts in points:
        stamps.setdefault(seq, set()).add(ts)
    assert sorted(stamps) == [1, 2]  # each stored ...
    assert all(len(ts) == 1 for ts in stamps.values()), stamps  # ... as one point, and a
    # resend that arrived twice rewrote the identical point, counted by the collector (all of
    # event 2's writes happened in its second run)
    assert len(points) - len(stamps) == duplicates, (points, duplicates)
    print("event rewrites", len(points) - len(stamps))


@pytest.mark.servers
def test_a_refused_event_is_acknowledged_and_not_sent_forever(stack: EventStack) -> None:
    """An event the collector refuses (set aside: an unknown severity) is confirmed all the
    same, so the agent stops sending it; the device's next event is stored as usual."""
    with open_box(stack.outbox_path, end_to_end=False) as box:  # from an earlier run
        box.set_end_to_end()
        box.set_confirm_events(True)
        seq = box.next_seq("gw/event")
        bad = encode_event(event(seq, severity="catastrophic", site=SITE))
        box.put(
            event_topic(SITE, "gw"), bad, device="gw/event", seq=seq, ts_ms=int(time.time() * 1000)
        )
    stack.start_agent("on")
    refused = ("pantau_collector_messages_rejected_total", (("reason", "bad_value"),))
    procs.wait_until(lambda: procs.scrape(stack.http).get(refused) == 1.0, 30, "refused")
    procs.wait_until(lambda: stack.events_waiting() == [], 20, "the refused event confirmed")
    # Sent at most once more (had its acknowledgement been slower than the 1 s resend), and
    # never again: resend_max 2 s, so unconfirmed it would come back twice in 5 s.
    times = procs.scrape(stack.http).get(refused)
    assert times in (1.0, 2.0)
    time.sleep(5)
    assert procs.scrape(stack.http).get(refused) == times
    snmptrap(stack.trap_port, COLD_START)
    procs.wait_until(lambda: [s for s, _ in stack.stored()] == [2], 30, "event 2 stored")
    procs.wait_until(lambda: stack.events_waiting() == [], 20, "event 2 confirmed")
