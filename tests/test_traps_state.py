"""Trap state the collector must not lose (docs/traps.md): events the agent dropped arrive as
event gap records and are counted as lost (and acknowledged, so the agent stops resending
them); raised alarms outlive a collector restart with `alarm_state_file`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector.events import EventState, check_event_gap
from collector.validate import Rejected
from devstack import procs
from devstack.servers import free_port
from pantau.wire import Event, Gap, encode_gap, parse_topic
from pantau.wire.topics import event_gap_topic

SITE = "trapstate-01"
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"


def _event(seq: int, **kw: Any) -> Event:
    base: dict[str, Any] = dict(
        site="s1", device="d1", seq=seq, ts_ms=1_800_000_000_000 + seq, trap_oid=LINK_DOWN,
        trap="linkDown", severity="major", varbinds={"ifIndex": 3}, alarm="linkDown:ifIndex=3",
    )  # fmt: skip
    base.update(kw)
    return Event(**base)


# -- fast -------------------------------------------------------------------------------------


def test_event_gap_topic_and_record_are_checked_and_counted_once() -> None:
    topic = event_gap_topic("s1", "d1")
    assert topic == "pantau/s1/d1/event/gap" and parse_topic(topic) == ("event_gap", "s1", "d1")
    gap = Gap("s1", "d1/event", 4, 9, 6, 1_800_000_000_000)
    assert check_event_gap("s1", "d1", encode_gap(gap), 65536) == gap
    for bad in (Gap("s1", "d1", 4, 9, 6, 1), Gap("s1", "d2/event", 4, 9, 6, 1)):
        with pytest.raises(Rejected) as exc:
            check_event_gap("s1", "d1", encode_gap(bad), 65536)
        assert exc.value.reason == "device_mismatch"
    with pytest.raises(Rejected):
        check_event_gap("s1", "d1", encode_gap(Gap("s1", "d1/event", 4, 9, 2, 1)), 65536)
    state = EventState()
    state.on_event_gap("s1", "d1", gap)
    state.on_event_gap("s1", "d1", gap)  # redelivered
    state.on_event_gap("s1", "d1", Gap("s1", "d1/event", 12, 12, 1, 1))
    assert state.snapshot().lost == {("s1", "d1"): 7}


def test_alarm_state_file_round_trip_keeps_sequence_order(tmp_path: Path) -> None:
    path = tmp_path / "alarms.json"
    state = EventState()
    state.load(path)  # none yet
    state.on_event(_event(5))
    state.on_event(_event(6, varbinds={"ifIndex": 4}, alarm="linkDown:ifIndex=4"))
    state.on_event(_event(7, trap="linkUp", trap_oid=LINK_UP, severity="clear", alarm="",
                          clears=["linkDown:ifIndex=4"]))  # fmt: skip
    assert state.save() and path.exists()
    assert state.save()  # nothing changed: nothing written
    again = EventState()
    again.load(path)
    assert again.snapshot().alarms == {("s1", "d1", "linkDown:ifIndex=3"): "major"}
    # an older linkUp of ifIndex 3 still arriving does not clear the newer linkDown
    again.on_event(_event(4, trap="linkUp", trap_oid=LINK_UP, severity="clear", alarm="",
                          clears=["linkDown:ifIndex=3"]))  # fmt: skip
    assert again.snapshot().alarms == {("s1", "d1", "linkDown:ifIndex=3"): "major"}
    # nor does the older linkDown of ifIndex 4 raise again what seq 7 cleared
    again.on_event(_event(6, varbinds={"ifIndex": 4}, alarm="linkDown:ifIndex=4"))
    assert len(again.snapshot().alarms) == 1


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 2, "devices": []}',
        '{"version": 1, "devices": [{"site": "s", "device": "d", "alarms": [["x\\ny", 1, true, "major"]]}]}',
        '{"version": 1, "devices": [{"site": "s", "device": "d", "alarms": [["a", 1, true, "panic"]]}]}',
        '{"version": 1}',
        "null",  # valid JSON that is no object
        "[]",
        '{"version": 1, "devices": [{"site": "s\\nX", "device": "d", "alarms": []}]}',
    ],
)
def test_an_unreadable_alarm_state_is_logged_and_moved_aside(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "alarms.json"
    path.write_text(content)
    state = EventState()
    state.load(path)
    assert state.snapshot().alarms == {}
    assert "alarm state unreadable" in caplog.text
    assert not path.exists() and (tmp_path / "alarms.json.bad").read_text() == content
    state.on_event(_event(1))
    assert state.save() and json.loads(path.read_text())["version"] == 1


def test_a_failed_save_is_counted_and_retried(tmp_path: Path) -> None:
    state = EventState()
    state.load(tmp_path / "missing-dir" / "alarms.json")
    state.on_event(_event(1))
    assert not state.save() and state.snapshot().save_errors == 1
    (tmp_path / "missing-dir").mkdir()
    assert state.save() and (tmp_path / "missing-dir" / "alarms.json").exists()


# -- with real servers ------------------------------------------------------------------------


def _snmptrap(port: int, trap: str, if_index: int) -> None:
    done = subprocess.run(
        ["snmptrap", "-M", "/dev/null", "-m", "", "-v", "2c", "-c", "public",
         f"127.0.0.1:{port}", "", trap, f"{IF_INDEX}.{if_index}", "i", str(if_index)],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _metric(http: int, name: str, **labels: str) -> float | None:
    key = (name, tuple(sorted({"site": SITE, **labels}.items())))
    return procs.scrape(http).get(key)


def _saved(path: Path) -> dict[str, bool]:
    """alarm → raised, as the collector's alarm_state_file has it."""
    doc = json.loads(path.read_text())
    return {a[0]: a[2] for d in doc["devices"] for a in d["alarms"]}


@pytest.fixture
def stack(tmp_path: Path, mosquitto: Any, victoria: Any) -> Any:
    http, trap_port = free_port(), free_port("udp")
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http,
        alarm_state_file=str(tmp_path / "alarms.json"),
    )
    device = {"name": "gw", "host": "127.0.0.1", "port": free_port("udp"), "ping": False}
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=[device],
        interval=30.0,
        traps={"listen": f"127.0.0.1:{trap_port}", "rate": 1000, "burst": 1000},
        outbox={"max_bytes": 4096},
    )
    coll = procs.collector(ccfg, tmp_path / "collector.log").start()
    agent = procs.agent(acfg, tmp_path / "agent.log").start()
    procs.wait_until(
        lambda: _metric(http, "pantau_site_online") == 1.0, 30, "the site online at the NOC"
    )
    yield {"http": http, "trap": trap_port, "collector": coll, "agent": agent,
           "mosquitto": mosquitto, "path": tmp_path / "alarms.json"}  # fmt: skip
    agent.stop()
    coll.stop()


@pytest.mark.servers
def test_raised_alarms_survive_a_collector_restart_and_a_crash(stack: Any) -> None:
    http, coll = stack["http"], stack["collector"]
    _snmptrap(stack["trap"], LINK_DOWN, 2)
    _snmptrap(stack["trap"], LINK_DOWN, 3)
    alarm2 = {"device": "gw", "alarm": "linkDown:ifIndex=2", "severity": "major"}
    alarm3 = {**alarm2, "alarm": "linkDown:ifIndex=3"}
    procs.wait_until(lambda: _metric(http, "pantau_device_alarm", **alarm3) == 1.0, 15, "raised")
    assert coll.stop() == 0  # a clean stop saves
    coll.start()
    procs.wait_until(lambda: _metric(http, "pantau_device_alarm", **alarm2) == 1.0, 30, "kept")
    assert _metric(http, "pantau_device_alarm", **alarm3) == 1.0
    # cleared after the restart, then a crash (SIGKILL) more than a second later
    _snmptrap(stack["trap"], LINK_UP, 2)
    procs.wait_until(
        lambda: _metric(http, "pantau_device_alarm", **alarm2) is None, 15, "linkUp cleared"
    )
    procs.wait_until(lambda: _saved(stack["path"]).get("linkDown:ifIndex=2") is False, 5, "saved")
    coll.kill()
    coll.start()
    procs.wait_until(lambda: _metric(http, "pantau_device_alarm", **alarm3) == 1.0, 30, "kept")
    assert _metric(http, "pantau_device_alarm", **alarm2) is None
    assert "alarm state loaded" in coll.log()


@pytest.mark.servers
def test_events_the_agent_dropped_are_counted_lost_and_not_resent(stack: Any) -> None:
    http, broker = stack["http"], stack["mosquitto"]
    broker.stop()
    for i in range(60):  # ~200 bytes each: over the 4 KiB outbox while the broker is away
        _snmptrap(stack["trap"], LINK_DOWN, 100 + i)
    broker.restart()
    lost = procs.wait_until(
        lambda: _metric(http, "pantau_device_events_lost_total", device="gw"), 60, "lost counted"
    )
    # every event is either counted or lost, once all arrived (the first count may be early)
    procs.wait_until(
        lambda: (
            (_metric(http, "pantau_device_traps_total", device="gw", trap="linkDown") or 0)
            + (_metric(http, "pantau_device_events_lost_total", device="gw") or 0)
            == 60
        ),
        30,
        "the events kept",
    )
    lost = _metric(http, "pantau_device_events_lost_total", device="gw") or 0.0
    traps = _metric(http, "pantau_device_traps_total", device="gw", trap="linkDown") or 0.0
    assert lost > 0 and lost + traps == 60, (lost, traps)
    # the collector acknowledged the gap records: the agent's outbox empties
    procs.wait_until(
        lambda: _metric(http, "pantau_agent_outbox_pending") == 0.0, 60, "agent outbox empty"
    )
