"""End-to-end confirmation, the remaining cases (issue 13), with real processes: a real agent
(snmpsim devices), Mosquitto, a real collector and VictoriaMetrics.

- Sample sets the collector refuses for their own fault are set aside in its rejected file and
  acknowledged like stored ones: the agent stops sending them (it used to resend them until its
  budget forgot them). Refusals that depend on the collector (a kind another site sent first)
  and other devices' payloads are not acknowledged: the agent keeps that data.
- `broker.confirm: auto` goes back to the broker's PUBACK when the collectors stop acknowledging
  (a collector restarted with `acks.enabled: false`), and back to end-to-end confirmation when
  acknowledgements arrive again; nothing is lost on the way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.servers import Mosquitto
from pantau.wire import (
    Field,
    Group,
    Kind,
    SampleSet,
    ack_ranges,
    ack_topic,
    decode_ack,
    encode_sample_set,
    metrics_topic,
)
from tests.test_delivery import (
    DEVICES,
    SITE,
    victoria_raw,  # noqa: F401  (fixture "victoria": no dedup)
)
from tests.test_end_to_end_acks import AckStack

pytestmark = pytest.mark.servers


def publish(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="seeder", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def total(stack: AckStack, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(
        v for (n, lbl), v in procs.scrape(stack.http).items() if n == name and want <= set(lbl)
    )


@pytest.fixture
def lazy_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """As tests/test_end_to_end_acks.py's: it saves rarely."""
    with Mosquitto(tmp_path / "lazy-mosquitto", extra_conf="autosave_interval 3600\n") as b:
        yield b


@pytest.fixture
def stack(tmp_path: Path, lazy_broker: Mosquitto, victoria: Any, snmpsim: Any) -> Any:
    s = AckStack(tmp_path, lazy_broker, victoria, snmpsim)
    s.ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=lazy_broker.port,
        influx_url=victoria.url,
        http_port=s.http,
        acks={"interval": 0.3},
        rejected_file=str(tmp_path / "rejected.jsonl"),
    )
    s.collector = procs.collector(s.ccfg, tmp_path / "collector.log")
    s.collector.start()
    yield s
    if s.agent is not None:
        s.agent.stop()
    s.collector.stop()


def seed_conflict(stack: AckStack) -> None:
    """Another site ("seeder") sends `system.uptime_seconds` as a counter first: the
    collector then refuses every sample set carrying it as the gauge it is (kind_conflict)."""
    procs.wait_until(
        lambda: procs.http_get(f"http://127.0.0.1:{stack.http}/readyz")[0] == 200,
        20,
        "the collector subscribed",
    )
    seed = sample_set("seeder", "box", 1, [Field("uptime_seconds", Kind.COUNTER, 5)])
    publish(stack.mosquitto.port, metrics_topic("seeder", "box"), encode_sample_set(seed))
    procs.wait_until(
        lambda: total(stack, "pantau_collector_messages_received_total", type="metrics") >= 1,
        20,
        "the seeding sample set",
    )


def sample_set(site: str, device: str, seq: int, fields: list[Field], ts_ms: int = 0) -> SampleSet:
    ts_ms = ts_ms or int(time.time() * 1000)
    return SampleSet(site, device, seq, ts_ms, 1, True, "", [Group("system", {}, fields)])


def test_sample_sets_at_fault_are_acknowledged_and_no_others(stack: AckStack) -> None:
    """What the collector refuses for the payload's own fault (a bad name or value, a
    timestamp before 2000) is acknowledged to the site like a stored sample set, so its agent
    stops sending it. What it refuses for reasons of its own is not: a kind another site sent
    first, a timestamp ahead of the collector's clock, another device's payload published
    under this device's topic (issue 13 review: one site made another's agent delete data)."""
    seed_conflict(stack)
    acked: set[int] = set()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-site", protocol=mqtt.MQTTv5)

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        for d in decode_ack(bytes(message.payload)).devices:
            if d.device == "radio":
                acked.update(n for lo, hi in ack_ranges(d) for n in range(lo, hi + 1))

    client.on_message = on_message
    client.connect("127.0.0.1", stack.mosquitto.port)
    client.loop_start()
    try:
        client.subscribe(ack_topic("raw"), qos=1)
        now = int(time.time() * 1000)
        good = [Field("load", Kind.GAUGE, 0.5)]
        lte_payload = encode_sample_set(
            sample_set("raw", "lte", 6, [Field("Bad-Name", Kind.GAUGE, 1)])
        )
        messages: list[SampleSet | bytes] = [
            sample_set("raw", "radio", 1, [Field("Bad-Name", Kind.GAUGE, 1)]),  # bad_name
            sample_set("raw", "radio", 2, [Field("load", Kind.COUNTER, -1)]),  # bad_value
            sample_set("raw", "radio", 3, good, ts_ms=1000),  # bad_timestamp, 1970
            sample_set("raw", "radio", 4, good, ts_ms=now + 3 * 86400_000),  # ahead: not final
            sample_set("raw", "radio", 5, [Field("uptime_seconds", Kind.GAUGE, 9.0)]),  # conflict
            lte_payload,  # device_mismatch on radio's topic: confirms neither radio's 6 nor lte's
            sample_set("raw", "radio", 7, good),  # stored
        ]
        for m in messages:
            payload = m if isinstance(m, bytes) else encode_sample_set(m)
            publish(stack.mosquitto.port, metrics_topic("raw", "radio"), payload)
        # The refusals are confirmed when handled, the stored one after its write: once 7 is
        # acknowledged, every acknowledgement the others could cause has been sent.
        procs.wait_until(lambda: 7 in acked, 20, "the stored sample set acknowledged")
        time.sleep(1.0)  # three more acknowledgement intervals: nothing else arrives
    finally:
        client.disconnect()
        client.loop_stop()
    assert acked == {1, 2, 3, 7}
    reasons = [
        json.loads(line)["reason"]
        for line in (stack.tmp / "rejected.jsonl").read_text().splitlines()
        if json.loads(line)["topic"].startswith("pantau/raw/")
    ]
    assert reasons == [
        "bad_name",
        "bad_value",
        "bad_timestamp",
        "bad_timestamp",
        "kind_conflict",
        "device_mismatch",
    ]


def test_a_refusal_another_site_caused_deletes_nothing(stack: AckStack) -> None:
    """The reviewer's case with a real agent: while another site's counter makes the collector
    refuse this site's `system.uptime_seconds` gauge, the refused sample sets are set aside but
    not acknowledged; the agent keeps them and sends them again, and once the collector no
    longer refuses them (restarted: the kinds are forgotten) all are stored, nothing lost."""
    seed_conflict(stack)
    agent = stack.start_confirming_agent(confirm="on")
    stack.wait_polls(4)
    procs.wait_until(
        lambda: (
            total(stack, "pantau_collector_messages_rejected_total", reason="kind_conflict")
            >= 3 * len(DEVICES)
        ),
        30,
        "the site's sample sets refused",
    )
    procs.wait_until(lambda: "sending again" in agent.log(), 20, "the refused ones sent again")
    kept = stack.outbox()[1]
    assert kept >= 2 * len(DEVICES), kept  # not deleted: waiting for a confirmation
    records = [json.loads(line) for line in (stack.tmp / "rejected.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["topic"].startswith(f"pantau/{SITE}/")]
    assert mine and {r["reason"] for r in mine} == {"kind_conflict"}
    stack.collector.stop()
    stack.collector.start()
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    stack.check_exact()  # every sequence number stored, nothing dropped, no gap record


def test_auto_goes_back_to_puback_when_acks_stop_and_returns_when_they_come_back(
    stack: AckStack, tmp_path: Path
) -> None:
    agent = stack.start_confirming_agent(confirm="auto", confirm_timeout=3.0)
    stack.wait_end_to_end()
    procs.wait_until(
        lambda: total(stack, "pantau_agent_confirm_end_to_end", site=SITE) == 1,
        20,
        "the collector to show end-to-end",
    )
    # The collector comes back without acknowledgements (acks.enabled: false).
    quiet_cfg = procs.collector_config(
        tmp_path / "collector-quiet.yaml",
        broker_port=stack.mosquitto.port,
        influx_url=stack.victoria.url,
        http_port=stack.http,
        acks={"enabled": False},
    )
    stack.collector.stop()
    quiet = procs.collector(quiet_cfg, tmp_path / "collector-quiet.log").start()
    try:
        procs.wait_until(
            lambda: "PUBACK is delivery again" in agent.log(), 30, "the fallback to PUBACK"
        )
        procs.wait_until(
            lambda: total(stack, "pantau_agent_confirm_end_to_end", site=SITE) == 0,
            20,
            "the collector to show PUBACK mode",
        )
        # PUBACK deletes again: the outbox does not grow while nobody confirms
        stack.wait_polls(stack.outbox()[0]["radio"] + 4)
        assert stack.outbox()[1] <= len(DEVICES)
        resends = agent.log().count("sending again")
        stack.wait_polls(stack.outbox()[0]["radio"] + 3)
        assert agent.log().count("sending again") == resends
    finally:
        quiet.stop()
    # Acknowledgements again: end-to-end again, at the first one.
    stack.collector.start()
    procs.wait_until(
        lambda: agent.log().count("delivery is confirmed end to end") == 2,
        30,
        "end-to-end again",
    )
    procs.wait_until(
        lambda: total(stack, "pantau_agent_confirm_end_to_end", site=SITE) == 1,
        20,
        "the collector to show end-to-end again",
    )
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    # the heartbeat's forgotten count reaches /metrics (nothing forgotten here)
    forgotten = ("pantau_agent_outbox_forgotten_total", (("site", SITE),))
    assert procs.scrape(stack.http)[forgotten] == 0
    stack.check_exact()  # nothing lost on the way, nothing dropped
