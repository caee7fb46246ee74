"""Eight hours without a broker, compressed: the agent keeps trying, then delivers everything.

What failed in the field: the reconnect backoff overflowed at attempt 1,024 (about 8.7 h of
outage at the defaults), the publisher task died and nothing was sent again until a restart.
Time is compressed by shrinking the backoff bounds, not the number of attempts: the test waits
for more than 1,100 failed connection attempts (at the defaults, reconnect_min 1 s and
reconnect_max 60 s, that many attempts take about 1,100 × 30.5 s ≈ 9.3 h), then brings the broker
back and counts every sequence number in storage.
"""

from __future__ import annotations

import re

import pytest

from devstack import procs
from tests.test_delivery import DEVICES, Stack

ATTEMPTS = 1_100  # > 1,024, where the old backoff overflowed


@pytest.fixture
def stack(tmp_path, mosquitto, victoria, snmpsim):
    with Stack(tmp_path, mosquitto, victoria, snmpsim) as s:
        yield s


def attempts(agent: procs.Proc) -> int:
    """Failed connection attempts in the agent's log: its repeat limiter folds identical lines
    into one that says how many it held back."""
    lines = [line for line in agent.log().splitlines() if "broker unavailable" in line]
    held = sum(int(m[1]) for line in lines if (m := re.search(r"held_back=(\d+)", line)))
    return len(lines) + held


def test_hours_of_broker_outage_then_everything_is_delivered(stack: Stack) -> None:
    agent = stack.start_agent(broker={"reconnect_min": 0.01, "reconnect_max": 0.02})
    stack.wait_polls(2)
    stack.mosquitto.stop()
    procs.wait_until(
        lambda: attempts(agent) >= ATTEMPTS or not agent.running,
        180,
        f"{ATTEMPTS} reconnect attempts",
    )
    assert agent.running, agent.log()[-2000:]
    assert "Traceback" not in agent.log(), agent.log()[-3000:]
    backlog = stack.outbox()[1]
    assert backlog >= len(DEVICES), "the polls of the outage were kept on disk"
    stack.mosquitto.restart()
    procs.wait_until(
        lambda: "connected to broker" in agent.log().split("broker unavailable")[-1],
        30,
        "the agent to reconnect",
    )
    stack.wait_polls(stack.outbox()[0]["radio"] + 2)
    stack.stop_agent_and_check()  # every sequence number in VictoriaMetrics exactly once
