"""What traps leave at the NOC besides events: the alarms and recent traps on the status page
(collector/statusalarms.py), the agent's trap receiver counters in its heartbeat and in /metrics
(Status.traps → pantau_agent_traps_*), and the agent's snmpEngineBoots growing across restarts
(agent/traps/engineboots.py, RFC 3414 §2.2).

Rendering, bounds and state-file compatibility are tested in process; the rest with net-snmp's
snmptrap/snmpinform against real agent processes, Mosquitto and a real collector."""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent.traps.engineboots import BOOTS_FILE, next_boots
from collector import statusalarms, statuspage
from collector.events import RECENT_PER_SITE, EventState
from collector.state import State
from collector.validate import Rejected, check_status
from devstack import procs
from devstack.servers import free_port
from pantau.wire import Event, Status, decode_status, encode_status

SITE = "trap-st-01"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
NOW = 1_790_000_000.0

needs_net_snmp = pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp tools")


def _event(device: str, seq: int, ts: float, trap: str = "linkDown", **kw: Any) -> Event:
    return Event(
        site=kw.pop("site", SITE),
        device=device,
        seq=seq,
        ts_ms=int(ts * 1000),
        trap_oid=kw.pop("trap_oid", LINK_DOWN),
        trap=trap,
        severity=kw.pop("severity", "major"),
        **kw,
    )


# -- the status page (in process) -----------------------------------------------------------


def test_raised_alarms_show_device_severity_since_and_trap_and_clears_remove_them() -> None:
    ev = EventState()
    ev.on_event(_event("gw", 1, NOW - 600, alarm="linkDown:ifIndex=2"))
    ev.on_event(
        _event(
            "rect", 1, NOW - 60, "alarmBatteryTrap", severity="critical",
            trap_oid="1.3.6.1.4.1.12148.10.1.2.2", alarm="alarmBatteryTrap:statusOid=x",
        )
    )  # fmt: skip
    raised = {a.alarm: a for a in ev.snapshot().raised}
    assert raised["linkDown:ifIndex=2"].since_ms == int((NOW - 600) * 1000)
    assert raised["linkDown:ifIndex=2"].trap == "linkDown"
    text = statusalarms.alarms_html(list(ev.snapshot().raised), NOW)
    assert 'data-alarm="linkDown:ifIndex=2" data-severity="major"' in text
    assert "for 10 min" in text and 'from trap <span class="trap">linkDown</span>' in text
    # the critical one of the other device is listed under its own device
    assert re.search(r'data-device="rect".*alarmBatteryTrap:statusOid=x.*critical', text)
    assert statusalarms.summary(ev.snapshot()) == ", 2 alarms raised"

    ev.on_event(
        _event("gw", 2, NOW - 30, "linkUp", severity="clear", trap_oid=LINK_UP,
               clears=["linkDown:ifIndex=2"])
    )  # fmt: skip
    assert [a.alarm for a in ev.snapshot().raised] == ["alarmBatteryTrap:statusOid=x"]
    recent = ev.snapshot().recent[SITE]
    assert [(e.device, e.trap) for e in recent] == [
        ("gw", "linkUp"),
        ("rect", "alarmBatteryTrap"),
        ("gw", "linkDown"),
    ]
    events_text = statusalarms.events_html(recent, NOW)
    assert "clears linkDown:ifIndex=2" in events_text and "raises alarmBatteryTrap" in events_text


def test_alarm_raised_again_is_since_the_new_trap_and_names_it() -> None:
    ev = EventState()
    ev.on_event(_event("gw", 1, NOW - 900, alarm="linkDown:ifIndex=2"))
    ev.on_event(
        _event("gw", 2, NOW - 800, "linkUp", severity="clear", clears=["linkDown:ifIndex=2"])
    )
    ev.on_event(_event("gw", 3, NOW - 100, alarm="linkDown:ifIndex=2"))
    (a,) = ev.snapshot().raised
    assert a.since_ms == int((NOW - 100) * 1000) and a.trap == "linkDown"
    # a repeated raise of a raised alarm keeps its first time
    ev.on_event(_event("gw", 4, NOW - 10, alarm="linkDown:ifIndex=2"))
    (a,) = ev.snapshot().raised
    assert a.since_ms == int((NOW - 100) * 1000)


def test_recent_events_are_the_newest_by_agent_time_and_bounded() -> None:
    ev = EventState()
    # an outbox drains the newest first, then its backlog
    ev.on_event(_event("gw", 100, NOW - 1, trap="coldStart", trap_oid="1.3.6.1.6.3.1.1.5.1"))
    for seq in range(1, 60):
        ev.on_event(_event("gw", seq, NOW - 1000 + seq))
    recent = ev.snapshot().recent[SITE]
    assert len(recent) == RECENT_PER_SITE
    assert recent[0].seq == 100 and [e.seq for e in recent[1:4]] == [59, 58, 57]
    text = statusalarms.events_html(recent, NOW)
    assert text.count('class="event"') == statusalarms.MAX_EVENTS_LISTED


def test_many_alarms_of_one_device_stay_a_few_lines() -> None:
    ev = EventState()
    for i in range(1, 41):
        ev.on_event(_event("sw", i, NOW - 100 + i, alarm=f"linkDown:ifIndex={i}"))
    text = statusalarms.alarms_html(list(ev.snapshot().raised), NOW)
    assert text.count('<li class="alarm" ') == statusalarms.MAX_ALARMS_LISTED
    assert "+30 more raised" in text
    assert 'data-alarms="40"' in text


def test_names_from_agents_are_escaped_on_the_page() -> None:
    ev = EventState()
    hostile = "<script>alert(1)</script>"
    ev.on_event(
        _event("gw", 1, NOW - 5, "x", alarm="x:k=<i>\"'", varbinds={"k": hostile}, source=hostile)
    )
    text = statusalarms.alarms_html(list(ev.snapshot().raised), NOW)
    text += statusalarms.events_html(ev.snapshot().recent[SITE], NOW)
    assert "<i>" not in text and "<script>" not in text and "&lt;i&gt;&quot;&#x27;" in text


def test_status_page_shows_alarms_under_their_site() -> None:
    state = State(stale_after=900)
    state.on_status(Status(v=1, site=SITE, online=True, ts_ms=int(NOW * 1000)), now=NOW)
    ev = EventState()
    ev.on_event(_event("gw", 1, NOW - 120, alarm="linkDown:ifIndex=7"))
    ev.on_event(_event("gw", 1, NOW - 120, site="other-site", alarm="linkDown:ifIndex=9"))
    page = statuspage.render(state.snapshot(), now=NOW, events=ev.snapshot())
    section = page[page.index(f'data-site="{SITE}"') :]
    section = section[: section.index("</section>")]
    assert "linkDown:ifIndex=7" in section and "ifIndex=9" not in section
    assert "2 alarms raised" in page  # the summary counts every site's
    # without events (a stand-in state) the page renders as before
    assert "Alarms raised" not in statuspage.render(state.snapshot(), now=NOW)


def test_alarm_state_file_keeps_since_and_trap_and_reads_the_older_format(tmp_path: Path) -> None:
    path = tmp_path / "alarms.json"
    ev = EventState()
    ev.load(path)
    ev.on_event(_event("gw", 1, NOW - 300, alarm="linkDown:ifIndex=2"))
    assert ev.save()
    again = EventState()
    again.load(path)
    (a,) = again.snapshot().raised
    assert (a.since_ms, a.trap) == (int((NOW - 300) * 1000), "linkDown")
    # a file of the collector before this: [name, seq, raised, severity]
    path.write_text(
        json.dumps(
            {"version": 1, "devices": [
                {"site": SITE, "device": "gw", "alarms": [["linkDown:ifIndex=3", 4, True, "major"]]}
            ]}
        )
    )  # fmt: skip
    old = EventState()
    old.load(path)
    (a,) = old.snapshot().raised
    assert (a.alarm, a.since_ms, a.trap) == ("linkDown:ifIndex=3", 0, "")
    assert "since before the collector restarted" in statusalarms.alarms_html([a], NOW)
    # a wrong type in the new columns is refused like any other: moved aside
    path.write_text(
        json.dumps(
            {"version": 1, "devices": [
                {"site": SITE, "device": "gw", "alarms": [["a", 4, True, "major", "x", 5]]}
            ]}
        )
    )  # fmt: skip
    bad = EventState()
    bad.load(path)
    assert bad.snapshot().raised == () and (tmp_path / "alarms.json.bad").exists()


# -- Status.traps (in process) --------------------------------------------------------------


def test_status_trap_counters_are_optional_on_the_wire_and_checked() -> None:
    old = b'{"v":1,"site":"s1","online":true,"ts_ms":1790000000000}'
    assert decode_status(old).traps == {}
    st = Status(v=1, site="s1", online=True, ts_ms=1, traps={"received": 3, "unknown_source": 2})
    assert b'"traps":{"received":3,"unknown_source":2}' in encode_status(st)
    assert b"traps" not in encode_status(Status(v=1, site="s1", online=True, ts_ms=1))
    assert check_status("s1", encode_status(st), 65536).traps["unknown_source"] == 2
    for traps in ({"received": -1}, {f"k{i}": 1 for i in range(33)}):
        bad = encode_status(Status(v=1, site="s1", online=True, ts_ms=1, traps=traps))
        with pytest.raises(Rejected) as exc:
            check_status("s1", bad, 65536)
        assert exc.value.reason == "bad_value"
    with pytest.raises(Rejected):  # not a number
        check_status("s1", old[:-1] + b',"traps":{"received":"x"}}', 65536)
    assert msgspec.json.decode(encode_status(st))["traps"]["received"] == 3


# -- snmpEngineBoots (in process) -----------------------------------------------------------


def test_engine_boots_grow_per_start_and_restart_for_a_new_engine_id(tmp_path: Path) -> None:
    eid = bytes.fromhex("80004fb8047331")
    assert [next_boots(tmp_path, eid) for _ in range(3)] == [1, 2, 3]
    assert next_boots(tmp_path, bytes.fromhex("80004fb8047332")) == 1
    doc = json.loads((tmp_path / BOOTS_FILE).read_text())
    assert doc == {"version": 1, "engine_id": "80004fb8047332", "boots": 1}


def test_unreadable_engine_boots_file_is_moved_aside_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    eid = bytes.fromhex("80004fb8047331")
    (tmp_path / BOOTS_FILE).write_text(
        '{"version": 1, "engine_id": "80004fb8047331", "boots": "7"}'
    )
    assert next_boots(tmp_path, eid) == 1
    assert (tmp_path / (BOOTS_FILE + ".bad")).exists()
    assert "snmpEngineBoots file unreadable" in caplog.text
    assert next_boots(tmp_path, eid) == 2


def test_engine_boots_that_cannot_be_kept_raise(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "outbox.sqlite"  # a state directory that is a file
    not_a_dir.write_text("")
    with pytest.raises(OSError):
        next_boots(not_a_dir, bytes.fromhex("80004fb8047331"))


# -- real senders, real agent, Mosquitto and collector ---------------------------------------


def _net_snmp(
    tool: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "-M", "/dev/null", "-m", "", *args],
        capture_output=True, text=True, timeout=30, check=False, env=env,
    )  # fmt: skip


def _metric(http: int, name: str, **labels: str) -> float | None:
    key = (name, tuple(sorted({"site": SITE, **labels}.items())))
    return procs.scrape(http).get(key)


def _count_in(path: Path, text: str) -> int:
    return path.read_text().count(text)


def _page_with(http: int, needle: str) -> str | None:
    """The status page once it shows `needle`."""
    code, text = procs.http_get(f"http://127.0.0.1:{http}/")
    assert code == 200
    return text if needle in text else None


@needs_net_snmp
def test_trap_alarm_on_status_page_and_receiver_drops_in_metrics(
    tmp_path: Path, mosquitto: Any, victoria: Any
) -> None:
    http_port, trap_port = free_port(), free_port("udp")
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http_port,
    )
    # gw answers no poll (nothing listens on its port): traps are matched by address only
    devices = [{"name": "gw", "host": "127.0.0.1", "port": free_port("udp"), "interval": 30.0,
                "ping": False}]  # fmt: skip
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=devices,
        traps={"listen": f"127.0.0.1:{trap_port}", "communities": ["public"]},
        outbox={"heartbeat": 1.0},
    )
    coll = procs.collector(ccfg, tmp_path / "collector.log").start()
    agent = procs.agent(acfg, tmp_path / "agent.log").start()
    try:
        procs.wait_until(
            lambda: (
                "trap receiver listening" in (tmp_path / "agent.log").read_text()
                and _metric(http_port, "pantau_site_online") == 1.0
            ),
            30,
            "the agent's receiver and its site at the collector",
        )
        target = f"127.0.0.1:{trap_port}"
        down = _net_snmp(
            "snmptrap", "-v", "2c", "-c", "public", target, "", LINK_DOWN, f"{IF_INDEX}.2", "i", "2"
        )
        assert down.returncode == 0, down.stderr
        page = procs.wait_until(
            lambda: _page_with(http_port, "linkDown:ifIndex=2"),
            20,
            "the alarm on the status page",
        )
        section = page[page.index(f'data-site="{SITE}"') :]
        section = section[: section.index("</section>")]
        alarm = re.search(
            r'<li class="alarm" data-alarm="linkDown:ifIndex=2"[^>]*>(.*?)</li>', section
        )
        assert alarm is not None, section
        text = html.unescape(re.sub(r"<[^>]+>", "", alarm.group(1)))
        assert "major" in text and "since " in text and "from trap linkDown" in text
        assert 'data-device="gw"' in section and "Recent traps" in section
        assert "1 alarm raised" in page

        # Dropped by the receiver, in no event: an unknown sender and a wrong community.
        stranger = _net_snmp(
            "snmptrap", "-v", "2c", "-c", "public", "--clientaddr=127.0.0.3", target, "",
            LINK_DOWN,
        )  # fmt: skip
        assert stranger.returncode == 0, stranger.stderr
        wrong = _net_snmp("snmptrap", "-v", "2c", "-c", "guess", target, "", LINK_DOWN)
        assert wrong.returncode == 0, wrong.stderr
        procs.wait_until(
            lambda: (
                _metric(http_port, "pantau_agent_traps_dropped_total", reason="bad_community")
                == 1.0
            ),
            15,
            "the receiver's drops in the heartbeat",
        )
        assert _metric(http_port, "pantau_agent_traps_dropped_total", reason="unknown_source") == 1
        assert _metric(http_port, "pantau_agent_traps_dropped_total", reason="auth_failure") == 0
        assert _metric(http_port, "pantau_agent_traps_received_total") == 3
        assert _metric(http_port, "pantau_agent_traps_stored_total") == 1
        assert _metric(http_port, "pantau_agent_traps_receiver_total", kind="polls_skipped") == 0

        up = _net_snmp(
            "snmptrap", "-v", "2c", "-c", "public", target, "", LINK_UP, f"{IF_INDEX}.2", "i", "2"
        )
        assert up.returncode == 0, up.stderr
        page = procs.wait_until(
            lambda: _page_with(http_port, "clears linkDown:ifIndex=2"),
            20,
            "the clearing trap on the status page",
        )
        assert 'data-alarm="linkDown:ifIndex=2"' not in page
        assert "alarm raised" not in page
    finally:
        agent.stop()
        coll.stop()


_BOOTS = re.compile(r"engineID 80 00 4F B8 04 ([0-9A-F ]+?) ?: boots=(\d+)")


@needs_net_snmp
def test_inform_sender_sees_engine_boots_grow_across_agent_restarts(
    tmp_path: Path, mosquitto: Any
) -> None:
    trap_port = free_port("udp")
    (tmp_path / "net-snmp").mkdir()
    env = {
        **os.environ,
        "PANTAU_TRAP_AUTH": "noc-auth-secret-1",
        "PANTAU_TRAP_PRIV": "noc-priv-secret-1",
    }
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site="boots-01",
        broker_port=mosquitto.port,
        devices=[
            {
                "name": "gw",
                "host": "127.0.0.1",
                "port": free_port("udp"),
                "interval": 30.0,
                "ping": False,
            }
        ],  # fmt: skip
        traps={
            "listen": f"127.0.0.1:{trap_port}",
            "users": [
                {
                    "user": "noc",
                    "auth_protocol": "SHA",
                    "auth_key_env": "PANTAU_TRAP_AUTH",
                    "priv_protocol": "AES",
                    "priv_key_env": "PANTAU_TRAP_PRIV",
                }
            ],
        },  # fmt: skip
    )
    seen = []
    for run in range(1, 3):  # two agent processes, one after the other (one log, appended)
        # a fresh /tmp per start, as systemd's PrivateTmp=yes gives the unit: pysnmp's own
        # boots file (in the temp directory) is gone, only the agent's state directory stays
        private_tmp = tmp_path / f"tmp{run}"
        private_tmp.mkdir()
        agent = procs.agent(
            acfg, tmp_path / "agent.log", env={**env, "TMPDIR": str(private_tmp)}
        ).start()
        try:
            listening = functools.partial(_count_in, tmp_path / "agent.log", "receiver listening")
            procs.wait_until(lambda: listening() == run, 20, "the receiver listening")  # noqa: B023
            done = _net_snmp(
                "snmpinform", "-Dlcd_set_enginetime", "-v", "3", "-u", "noc", "-l", "authPriv",
                "-a", "SHA", "-A", env["PANTAU_TRAP_AUTH"], "-x", "AES", "-X",
                env["PANTAU_TRAP_PRIV"], "-t", "2", "-r", "1", f"127.0.0.1:{trap_port}", "",
                "1.3.6.1.6.3.1.1.5.1",
                env={**env, "SNMP_PERSISTENT_DIR": str(tmp_path / "net-snmp"),
                     "HOME": "/nonexistent"},
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            # what net-snmp learnt of our engine: the discovery Report and the Response
            boots = {int(b) for _, b in _BOOTS.findall(done.stderr)} - {0}
            assert len(boots) == 1, done.stderr
            seen.append(boots.pop())
        finally:
            agent.stop()
        assert (tmp_path / "agent.log").read_text().count("engine_boots=") == len(seen)
    assert seen == [1, 2]
    kept = json.loads((tmp_path / BOOTS_FILE).read_text())
    assert kept["boots"] == 2 and kept["engine_id"] == "80004fb804" + b"boots-01".hex()
