"""Counters that were counted but never left their process: the outbox's PUBACK 16 count
(`unrouted`) in the heartbeat and /metrics, a device's restarted event numbering
(EventState.renumbered) in /metrics, and the trap receiver's counters in InfluxDB's pantau_site
point. Each with the checks and compatibility of the status message, and the docs."""

from __future__ import annotations

import re
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_agent_config
from agent.outbox import NO_SUBSCRIBERS, Outbox
from agent.service import Agent
from collector.events import TRAP_DROP_REASONS, TRAP_RECEIVER_KINDS, EventState
from collector.lineproto import status_line
from collector.state import State
from collector.validate import Rejected, check_status
from devstack import procs
from pantau.wire import Event, Status, decode_status, encode_status
from tests.support.recording import scrape

SITE = (("site", "s"),)
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"


def _agent_config(tmp_path: Path) -> Any:
    (tmp_path / "a.yaml").write_text(
        f"site: s\noutbox: {{path: {tmp_path / 'outbox.sqlite'}}}\n"
        "devices:\n  - {name: a, host: 127.0.0.1}\n"
    )
    return load_agent_config(tmp_path / "a.yaml")


def _heartbeat(**kw: Any) -> Status:
    return Status(v=1, site="s", online=True, ts_ms=1_800_000_000_000, **kw)


# -- unrouted: PUBACK 16 "no matching subscribers" ---------------------------------------------


def test_unrouted_items_reach_the_heartbeat_metrics_and_influx(tmp_path: Path) -> None:
    cfg = _agent_config(tmp_path)
    with Outbox(cfg.outbox.path, max_bytes=1 << 20, max_age_s=3600) as box:
        now = int(time.time() * 1000)
        for _ in range(2):
            box.put("pantau/s/a/metrics", b"p" * 10, device="a", seq=box.next_seq("a"), ts_ms=now)
        for _ in range(2):
            item = box.take()
            assert item is not None
            box.ack(item, NO_SUBSCRIBERS)  # what Mosquitto answers with no collector session
        assert box.unrouted == 2 and len(box) == 2  # kept
        status = Agent(cfg, box).status(box, 0.0)
    assert status.unrouted_total == 2
    received = check_status("s", encode_status(status), 65536)
    assert received.unrouted_total == 2
    state = State(900)
    state.on_status(received)
    assert scrape(state)[("pantau_agent_outbox_unrouted_total", SITE)] == 2
    assert ",unrouted_total=2i," in status_line(received, 0)


def test_unrouted_total_is_compatible_both_ways() -> None:
    """0 is left out of the JSON (an agent that never saw a PUBACK 16 sends what older agents
    sent); an older agent's heartbeat reads as 0; an older collector ignores the key."""
    assert b"unrouted" not in encode_status(_heartbeat())
    old = b'{"v":1,"site":"s","online":true,"ts_ms":1800000000000,"forgotten_total":1}'
    assert check_status("s", old, 65536).unrouted_total == 0
    newer = encode_status(_heartbeat(unrouted_total=7))
    assert b'"unrouted_total":7' in newer
    # what an older collector does with it: its Status has no such field (unknown keys ignored)
    import msgspec

    class OldStatus(msgspec.Struct):
        v: int
        site: str
        online: bool
        ts_ms: int
        forgotten_total: int = 0

    assert msgspec.json.decode(newer, type=OldStatus).site == "s"
    assert decode_status(newer).unrouted_total == 7


@pytest.mark.parametrize("bad", [-1, 2**63])
def test_an_unrouted_total_out_of_range_is_refused(bad: int) -> None:
    payload = encode_status(_heartbeat()).replace(b"}", f',"unrouted_total":{bad}}}'.encode())
    with pytest.raises(Rejected) as err:
        check_status("s", payload, 65536)
    assert err.value.reason in ("bad_value", "malformed")


# -- a device's event numbering restarted -------------------------------------------------------


def _event(seq: int, ts_ms: int, site: str = "s") -> Event:
    return Event(site, "d1", seq, ts_ms, LINK_DOWN, "linkDown", "major", {"ifIndex": 3},
                 alarm="linkDown:ifIndex=3")  # fmt: skip


def test_restarted_event_numbering_is_exported_by_site() -> None:
    state = State(900)
    events: EventState = state.events
    now = int(time.time() * 1000)
    events.on_event(_event(5, now))
    events.on_event(_event(6, now + 1))
    events.on_event(_event(4, now - 100))  # an older event arriving late: a drained backlog
    assert ("pantau_device_events_renumbered_total", SITE) not in scrape(state)  # none yet
    events.on_event(_event(1, now + 5_000))  # a recreated outbox numbers from 1 again
    assert events.snapshot().renumbered == {"s": 1} and events.renumbered == 1
    assert scrape(state)[("pantau_device_events_renumbered_total", SITE)] == 1
    events.on_event(_event(2, now + 6_000, site="t"))
    assert ("pantau_device_events_renumbered_total", (("site", "t"),)) not in scrape(state)
    events.forget_site("s")
    assert events.snapshot().renumbered == {}


# -- the trap receiver's counters --------------------------------------------------------------


def test_duplicate_informs_are_exported_with_the_receiver_counters() -> None:
    state = State(900)
    state.on_status(
        check_status(
            "s",
            encode_status(_heartbeat(traps={"received": 5, "stored": 3, "duplicate_inform": 2})),
            65536,
        )
    )
    metrics = scrape(state)
    kind = ("pantau_agent_traps_receiver_total", (("kind", "duplicate_inform"), ("site", "s")))
    assert metrics[kind] == 2
    assert metrics[("pantau_agent_traps_stored_total", SITE)] == 3


def test_trap_counters_go_into_the_status_point() -> None:
    line = status_line(_heartbeat(traps={"received": 5, "duplicate_inform": 1, "Bad=x y": 9}), 0)
    assert ",traps_duplicate_inform=1i," in line and ",traps_received=5i " in line
    assert "Bad" not in line  # a name no agent sends is left out, not escaped into a key
    will = Status(v=1, site="s", online=False, ts_ms=0, reason="connection lost")
    assert "traps_" not in status_line(will, 9) and "unrouted" not in status_line(will, 9)


@pytest.mark.servers
@pytest.mark.skipif(shutil.which("influxd") is None, reason="InfluxDB (Debian influxdb)")
def test_influxdb_stores_the_status_points_counters(tmp_path: Path) -> None:
    from tests.test_lineproto import _InfluxDB1

    counters = {"received": 7, "stored": 4, "unknown_source": 1, "duplicate_inform": 2}
    line = status_line(_heartbeat(unrouted_total=3, traps=counters), 0)
    with _InfluxDB1(tmp_path / "influxd") as influx:
        influx.request("/query?" + urllib.parse.urlencode({"q": "CREATE DATABASE t"}), b"")
        status, body = influx.request("/write?db=t&precision=ms", line.encode())
        assert status == 204, (line, body)
        fields = dict(influx.query('SHOW FIELD KEYS FROM "pantau_site"'))
        rows = influx.query(
            'SELECT "unrouted_total", "traps_duplicate_inform", "traps_received" FROM "pantau_site"'
        )
    assert fields["unrouted_total"] == "integer" == fields["traps_duplicate_inform"]
    assert [list(row[1:]) for row in rows] == [[3, 2, 7]]  # type: ignore[comparison-overlap]


# -- end to end: a real agent, Mosquitto without a collector session, then the collector ------


@pytest.mark.servers
def test_puback_16_reaches_the_collectors_metrics(
    tmp_path: Path, mosquitto: Any, victoria: Any, snmpsim: Any
) -> None:
    """The agent publishes while no collector ever subscribed: Mosquitto answers PUBACK 16.
    Once the collector runs, the agent's heartbeats tell it how many, and it exports them."""
    from tests.test_delivery import SITE as SITE_NAME
    from tests.test_delivery import Stack

    stack = Stack(tmp_path, mosquitto, victoria, snmpsim)
    agent = stack.start_agent()
    try:
        procs.wait_until(
            lambda: "no matching subscribers" in agent.log(), 30, "a PUBACK 16 in the log"
        )
        stack.collector.start()
        site = (("site", SITE_NAME),)
        procs.wait_until(
            lambda: (
                procs.scrape(stack.http).get(("pantau_agent_outbox_unrouted_total", site), 0) >= 1
            ),
            30,
            "pantau_agent_outbox_unrouted_total in the collector's /metrics",
        )
        procs.wait_until(
            lambda: any(
                max(s["values"]) >= 1
                for s in victoria.export(f'pantau_site_unrouted_total{{site="{SITE_NAME}"}}')
            ),
            30,
            "pantau_site.unrouted_total in the time series store",
        )
    finally:
        agent.stop()
        stack.collector.stop()


# -- docs ---------------------------------------------------------------------------------------


def test_the_new_names_are_documented(repo_root: Path) -> None:
    metrics = (repo_root / "docs" / "metrics.md").read_text()
    for name in (
        "pantau_agent_outbox_unrouted_total",
        "pantau_device_events_renumbered_total",
        "duplicate_inform",
    ):
        assert name in metrics, name
    wire = (repo_root / "docs" / "wire-format.md").read_text()
    assert re.search(r"^\| `unrouted_total` \| int \| `0` \|", wire, re.M)
    schema = (repo_root / "docs" / "influx-schema.md").read_text()
    assert "`unrouted_total`" in schema and "`traps_<name>`" in schema
    traps = (repo_root / "docs" / "traps.md").read_text()
    for kind in (*TRAP_DROP_REASONS, *TRAP_RECEIVER_KINDS):
        assert f"`{kind}`" in traps and f"`{kind}`" in metrics, kind
