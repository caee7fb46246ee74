"""Delivery confirmed by the NOC, not by the broker: real agent, Mosquitto, collector and
VictoriaMetrics, with the broker crashing (kill -9) where its PUBACK has already made today's
agent forget what it sent.

The broker here saves its state only every hour (`autosave_interval 3600`; Mosquitto 2.0.11
answers PUBACK before anything is on disk, /work/shared/TESTING-NOTES.md), so kill -9 loses
everything it queued. Each scenario ends as tests/test_delivery.py's do: the agent stops cleanly
with an empty outbox, and every sequence number of every device is in storage, counted without
deduplication (VictoriaMetrics keeps every point written here): once, or rewritten as the
identical point (a resend; InfluxDB overwrites it), and each rewrite counted; nothing dropped,
no gap record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import procs
from devstack.netcut import NetCut
from devstack.servers import Mosquitto, free_port
from tests.test_delivery import (
    DEVICES,
    INTERVAL,
    SITE,
    Stack,
    victoria_raw,  # noqa: F401  (fixture "victoria": no dedup)
)

pytestmark = pytest.mark.servers

RESEND = {"resend_after": 1.0, "resend_max": 2.0}


@pytest.fixture
def lazy_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that saves rarely: kill -9 loses what it queued since it started."""
    with Mosquitto(tmp_path / "lazy-mosquitto", extra_conf="autosave_interval 3600\n") as b:
        yield b


class AckStack(Stack):
    def __init__(self, tmp_path: Path, mosquitto: Mosquitto, victoria: Any, snmpsim: Any):
        super().__init__(tmp_path, mosquitto, victoria, snmpsim)
        # Acknowledgements every 0.3 s (default 5 s), so the scenarios stay short.
        self.ccfg = procs.collector_config(
            tmp_path / "collector.yaml",
            broker_port=mosquitto.port,
            influx_url=victoria.url,
            http_port=self.http,
            acks={"interval": 0.3},
        )
        self.collector = procs.collector(self.ccfg, tmp_path / "collector.log")

    def start_confirming_agent(
        self, confirm: str = "auto", broker_port: int | None = None, **broker: object
    ) -> procs.Proc:
        devices = [procs.snmpsim_device(n, c, self.snmpsim.port) for n, c in DEVICES.items()]
        cfg = procs.agent_config(
            self.tmp / "agent.yaml",
            site=SITE,
            broker_port=broker_port or self.mosquitto.port,
            devices=devices,
            interval=INTERVAL,
            broker={"confirm": confirm, **broker},
            outbox={"shutdown_timeout": 15.0, "heartbeat": 1.0, **RESEND},
        )
        self.agent = procs.agent(cfg, self.tmp / "agent.log").start()
        return self.agent

    def wait_end_to_end(self) -> None:
        assert self.agent is not None
        agent = self.agent
        procs.wait_until(
            lambda: "delivery is confirmed end to end" in agent.log(),
            30,
            "the first acknowledgement from the collector",
        )

    def missing(self) -> dict[str, list[int]]:
        seqs = self.outbox()[0]
        out = {}
        for device in DEVICES:
            got = set(self.seqs_in_influx(device))
            out[device] = sorted(set(range(1, seqs[device] + 1)) - got)
        return out

    def check_exact(self) -> None:
        """Everything stored exactly once, nothing dropped, no gap record, and the collector
        shows the site confirming end to end."""
        self.stop_agent_and_check()
        assert self.outbox()[2] == 0  # dropped_total = 0 = what is missing (checked above)
        assert self.victoria.export(f'pantau_gap_first_seq{{site="{SITE}"}}') == []


@pytest.fixture
def stack(tmp_path, lazy_broker, victoria, snmpsim):
    s = AckStack(tmp_path, lazy_broker, victoria, snmpsim)
    s.collector.start()
    yield s
    if s.agent is not None:
        s.agent.stop()
    s.collector.stop()


def crash_broker_while_collector_is_away(stack: AckStack) -> None:
    stack.wait_polls(2)
    stack.collector.stop()
    before = stack.outbox()[0]["radio"]
    stack.wait_polls(before + 4)  # published and PUBACKed, queued for the collector only
    stack.mosquitto.kill()
    stack.mosquitto.restart()
    stack.collector.start()


def test_broker_killed_while_the_collector_is_stopped_loses_nothing(stack: AckStack) -> None:
    stack.start_confirming_agent()
    stack.wait_end_to_end()
    crash_broker_while_collector_is_away(stack)
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    procs.wait_until(
        lambda: stack.scrape_sum("pantau_agent_confirm_end_to_end") == 1,
        20,
        "the collector to show the site confirming end to end",
    )
    stack.check_exact()
    assert "sending again" in stack.agent.log()


def test_broker_confirmation_alone_loses_data_on_a_broker_crash(stack: AckStack) -> None:
    """The same crash with broker.confirm: off (today's behaviour, and an agent talking to a
    collector without acknowledgements): PUBACK was taken for delivery, the data is gone."""
    stack.start_confirming_agent(confirm="off")
    crash_broker_while_collector_is_away(stack)
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    assert stack.agent is not None and stack.agent.stop(30) == 0
    time.sleep(2)
    assert any(stack.missing().values()), "expected the broker crash to lose sample sets"
    assert "delivery is confirmed end to end" not in stack.agent.log()


def test_broker_killed_right_after_its_pubacks(stack: AckStack) -> None:
    stack.start_confirming_agent()
    stack.wait_end_to_end()
    for _ in range(3):
        stack.wait_polls(stack.outbox()[0]["radio"] + 2)
        stack.mosquitto.kill()
        stack.mosquitto.restart()
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    stack.check_exact()


def test_collector_away_for_long_keeps_everything_and_resends(stack: AckStack) -> None:
    """Dozens of resend rounds (resend_max 2 s stands for an hour) without a collector, and
    the broker crashing meanwhile: the agent still has every sample set."""
    stack.start_confirming_agent(confirm="on")
    stack.collector.stop()
    agent = stack.agent
    assert agent is not None
    procs.wait_until(lambda: agent.log().count("sending again") >= 10, 90, "ten resend rounds")
    seqs, pending, dropped = stack.outbox()
    assert pending >= sum(seqs.values()) - len(DEVICES) and dropped == 0  # all kept
    stack.mosquitto.kill()
    stack.mosquitto.restart()
    stack.collector.start()
    stack.wait_polls(stack.outbox()[0]["radio"] + 3)
    stack.check_exact()


def test_one_way_uplink_forgets_nothing(stack: AckStack) -> None:
    """Agent → broker passes, nothing comes back (no PUBACK, no acknowledgement, no CONNACK):
    the collector stores what arrives, the agent keeps everything, and after the repair
    everything is confirmed."""
    cut = NetCut(stack.mosquitto.port)
    with cut:
        stack.start_confirming_agent(broker_port=cut.port, keepalive=5)
        stack.wait_end_to_end()
        stack.wait_polls(stack.outbox()[0]["radio"] + 1)
        cut.one_way()
        before = stack.outbox()[0]["radio"]
        stack.wait_polls(before + 8)
        seqs, pending, dropped = stack.outbox()
        assert pending >= 8 * len(DEVICES) and dropped == 0
        cut.restore()
        stack.wait_polls(stack.outbox()[0]["radio"] + 3)
        stack.check_exact()


def test_two_collectors_in_a_shared_group_each_confirm_their_share(
    tmp_path: Path, lazy_broker: Mosquitto, victoria: Any, snmpsim: Any
) -> None:
    """Each member of a shared-subscription group acknowledges what it wrote; the agent takes
    the union. The broker crashes with the group away, and still nothing is lost."""
    stack = AckStack(tmp_path, lazy_broker, victoria, snmpsim)
    members = []
    for n in (1, 2):
        http = free_port()
        cfg = procs.collector_config(
            tmp_path / f"member-{n}.yaml",
            broker_port=lazy_broker.port,
            influx_url=victoria.url,
            http_port=http,
            mqtt={"client_id": f"member-{n}", "shared_group": "noc"},
            acks={"interval": 0.3},
        )
        members.append((procs.collector(cfg, tmp_path / f"member-{n}.log").start(), http))
    try:
        stack.start_confirming_agent(confirm="on")
        stack.wait_polls(6)

        def acks(http: int) -> float:
            return sum(
                v
                for (name, labels), v in procs.scrape(http).items()
                if name == "pantau_collector_acks_sent_total"
            )

        procs.wait_until(
            lambda: all(acks(h) > 0 for _, h in members), 30, "both members acknowledging"
        )
        for proc, _ in members:
            proc.stop()
        stack.wait_polls(stack.outbox()[0]["radio"] + 3)
        lazy_broker.kill()
        lazy_broker.restart()
        for proc, _ in members:
            proc.start()
        stack.wait_polls(stack.outbox()[0]["radio"] + 3)
        stack.check_exact()
    finally:
        if stack.agent is not None:
            stack.agent.stop()
        for proc, _ in members:
            proc.stop()
