"""`broker.confirm: auto` goes back to the broker's PUBACK only when the collectors say so, and a
PUBACK 16 ("no matching subscribers") is never delivery (review 1213, item 3): real agent,
Mosquitto, collector and VictoriaMetrics, the broker killed (kill -9) where a fallback on
silence alone, or a 16 taken as delivery, would have lost what it held.

Counted as tests/test_end_to_end_acks.py counts: every sequence number of every device stored,
without deduplication, nothing dropped, no gap record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.servers import Mosquitto, free_port
from pantau.wire import confirm_topic
from tests.test_delivery import DEVICES
from tests.test_delivery import victoria_raw as victoria_raw
from tests.test_end_to_end_acks import AckStack
from tests.test_end_to_end_acks import lazy_broker as lazy_broker  # fixtures
from tests.test_end_to_end_acks import stack as stack

pytestmark = pytest.mark.servers

OUTAGE_WARNING = "taken as a collector or InfluxDB outage"


def retained_flag(broker: Mosquitto) -> bytes | None:
    """What the broker holds on pantau/confirm (None: nothing retained)."""
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(confirm_topic(), qos=1)
    client.loop_start()
    try:
        procs.wait_until(lambda: bool(got), 3, "the retained pantau/confirm")
    except AssertionError:
        return None
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0]


def test_collector_away_longer_than_confirm_timeout_then_a_broker_crash_loses_nothing(
    stack: AckStack,
) -> None:
    """The review's case: the collector (with acknowledgements) is stopped for several
    confirm_timeouts while the broker queues for its persistent session (PUBACK 0, unsaved);
    then the broker is killed. The agent did not take silence for "acknowledgements off":
    it kept everything, and everything arrives."""
    agent = stack.start_confirming_agent(confirm="auto", confirm_timeout=2.0)
    stack.wait_end_to_end()
    procs.wait_until(
        lambda: "acknowledgements are on (pantau/confirm)" in agent.log(),
        20,
        "the collector's retained flag",
    )
    assert retained_flag(stack.mosquitto) == b"on"
    stack.collector.stop()
    before = stack.outbox()[0]["radio"]
    procs.wait_until(lambda: OUTAGE_WARNING in agent.log(), 30, "a confirm_timeout of silence")
    stack.wait_polls(before + 8)  # four confirm_timeouts (the warning is logged once a minute)
    seqs, pending, dropped = stack.outbox()
    # every poll since the collector left is still here (and a few from before)
    assert pending >= sum(seqs.values()) - (before + 1) * len(DEVICES) and dropped == 0
    assert "PUBACK is delivery again" not in agent.log()
    stack.mosquitto.kill()  # what it queued for the collector is gone
    stack.mosquitto.restart()
    stack.collector.start()
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    stack.check_exact()
    assert "PUBACK is delivery again" not in agent.log()
    assert retained_flag(stack.mosquitto) == b"on"  # said again after the crash


def test_no_matching_subscribers_is_kept_until_a_collector_subscribes(
    tmp_path: Path, lazy_broker: Mosquitto, victoria: Any, snmpsim: Any
) -> None:
    """No collector session at all (never connected, or its session expired): Mosquitto
    answers PUBACK 16 and throws the message away. The agent keeps every item and sends it
    again until one is routed; nothing is lost, not even in PUBACK mode."""
    bare = AckStack(tmp_path, lazy_broker, victoria, snmpsim)
    try:
        agent = bare.start_confirming_agent(confirm="off")
        bare.wait_polls(4)
        procs.wait_until(
            lambda: "no matching subscribers" in agent.log(), 20, "a PUBACK 16 in the log"
        )
        seqs, pending, dropped = bare.outbox()
        assert pending >= sum(seqs.values()) - len(DEVICES)  # kept, not deleted at PUBACK
        assert dropped == 0
        bare.collector.start()
        bare.wait_polls(bare.outbox()[0]["radio"] + 3)
        bare.check_exact()
    finally:
        if bare.agent is not None:
            bare.agent.stop()
        bare.collector.stop()


def test_a_collector_without_acknowledgements_says_off(
    tmp_path: Path, lazy_broker: Mosquitto, victoria: Any
) -> None:
    """The positive signal the fallback waits for: retained, said at every connection."""
    cfg = procs.collector_config(
        tmp_path / "quiet.yaml",
        broker_port=lazy_broker.port,
        influx_url=victoria.url,
        http_port=free_port(),
        acks={"enabled": False},
    )
    quiet = procs.collector(cfg, tmp_path / "quiet.log").start()
    try:
        procs.wait_until(
            lambda: "said pantau/confirm off" in quiet.log(), 20, "the collector's flag"
        )
        assert retained_flag(lazy_broker) == b"off"
    finally:
        quiet.stop()
    assert retained_flag(lazy_broker) == b"off"  # a stopped collector's last word stays
