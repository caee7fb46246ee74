"""End-to-end confirmation, the remaining cases (issue 13), with real processes: a real agent
(snmpsim devices), Mosquitto, a real collector and VictoriaMetrics.

- Sample sets the collector refuses are set aside in its rejected file and acknowledged like
  stored ones: the agent stops sending them (it used to resend them until its budget forgot them).
- `broker.confirm: auto` goes back to the broker's PUBACK when the collectors stop acknowledging
  (a collector restarted with `acks.enabled: false`), and back to end-to-end confirmation when
  acknowledgements arrive again; nothing is lost on the way.
"""

from __future__ import annotations

import base64
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
from pantau.wire import Field, Group, Kind, SampleSet, encode_sample_set, metrics_topic
from pantau.wire.codec import peek_seq
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


def test_refused_sample_sets_are_acknowledged_and_not_sent_again(stack: AckStack) -> None:
    """A field kind conflict (another site sent `system.uptime_seconds` as a counter first)
    makes the collector refuse every sample set of the site that carries it: each is counted,
    set aside, and acknowledged, so the agent's outbox empties and nothing is sent again."""
    seed = SampleSet(
        "seeder",
        "box",
        1,
        int(time.time() * 1000),
        1,
        True,
        "",
        [Group("system", {}, [Field("uptime_seconds", Kind.COUNTER, 5)])],
    )
    procs.wait_until(
        lambda: procs.http_get(f"http://127.0.0.1:{stack.http}/readyz")[0] == 200,
        20,
        "the collector subscribed",
    )
    publish(stack.mosquitto.port, metrics_topic("seeder", "box"), encode_sample_set(seed))
    procs.wait_until(
        lambda: total(stack, "pantau_collector_messages_received_total", type="metrics") >= 1,
        20,
        "the seeding sample set",
    )
    agent = stack.start_confirming_agent(confirm="on")
    stack.wait_polls(6)
    procs.wait_until(
        lambda: (
            total(stack, "pantau_collector_messages_rejected_total", reason="kind_conflict")
            >= 5 * len(DEVICES)
        ),
        30,
        "the site's sample sets refused",
    )
    # Acknowledged: the outbox holds at most what is in flight, nothing waits to be resent ...
    procs.wait_until(lambda: stack.outbox()[1] <= len(DEVICES), 20, "the outbox to empty")
    polled = stack.outbox()[0]["radio"]
    stack.wait_polls(polled + 4)  # resend_after is 1 s: four rounds of it
    assert "sending again" not in agent.log()
    assert stack.outbox()[1] <= len(DEVICES)
    # ... each sample set is in the rejected file or (a poll that failed, without the
    # conflicting field) in storage: once, nothing dropped, nothing sent twice.
    assert agent.stop(30) == 0
    seqs, pending, dropped = stack.outbox()
    assert pending == 0 and dropped == 0
    records = [json.loads(line) for line in (stack.tmp / "rejected.jsonl").read_text().splitlines()]
    refused: dict[str, list[int | None]] = {}
    for r in records:
        if r["topic"].startswith(f"pantau/{SITE}/"):
            assert r["reason"] == "kind_conflict", r
            device = r["topic"].split("/")[2]
            refused.setdefault(device, []).append(peek_seq(base64.b64decode(r["payload_b64"])))
    assert set(refused) == set(DEVICES)
    for device in DEVICES:
        mine = refused[device]
        stored = set(stack.seqs_in_influx(device))
        assert len(mine) == len(set(mine)), f"{device}: a refused sample set sent twice"
        assert not set(mine) & stored, device
        assert sorted([*mine, *stored]) == list(range(1, seqs[device] + 1)), device


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
