"""Logs: one line per event on stdout, key=value text or JSON (`log.format`), the level from
`log.level`, repeated warnings and errors held back with a count, journald priorities."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import pytest

from devstack import procs
from devstack.servers import free_port
from pantau.logs import (
    JsonFormatter,
    RateLimitedLog,
    RepeatFilter,
    TextFormatter,
    setup_logging,
    split_message,
)

TEXT_LINE = re.compile(r"^ts=\S+Z level=(debug|info|warning|error|critical) logger=\S+ \S.*$")


def record(
    msg: str, *args: object, level: int = logging.WARNING, exc: bool = False
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("pantau.test", level, __file__, 1, msg, args, exc_info)


def test_text_is_one_key_value_line_per_event() -> None:
    fmt = TextFormatter(journal=False)
    line = fmt.format(record("poll failed device=%s reason=%s", "radio-1", "timeout"))
    assert TEXT_LINE.match(line), line
    assert line.endswith(
        "level=warning logger=pantau.test poll failed device=radio-1 reason=timeout"
    )
    line = fmt.format(record("cannot start: %s", "two\nlines", level=logging.ERROR, exc=True))
    assert "\n" not in line and "two\\nlines" in line
    assert 'exc="Traceback (most recent call last):\\n' in line and "boom\\nsecond" in line


def test_json_is_one_object_per_line_with_the_message_split_into_fields() -> None:
    fmt = JsonFormatter()
    doc = json.loads(
        fmt.format(
            record(
                "broker unavailable host=%s port=%s error=%r retry_in=%.1fs pending=%d",
                "noc.example.net",
                8883,
                "[Errno 111] Connection refused",
                2.5,
                17,
            )
        )
    )
    assert doc["level"] == "warning" and doc["logger"] == "pantau.test"
    assert doc["msg"] == "broker unavailable"
    assert doc["host"] == "noc.example.net" and doc["port"] == 8883 and doc["pending"] == 17
    assert doc["error"] == "[Errno 111] Connection refused" and doc["retry_in"] == "2.5s"
    line = fmt.format(record("oops", level=logging.ERROR, exc=True))
    assert "\n" not in line and json.loads(line)["exc"].startswith("Traceback")
    # a message whose tail is not all key=value stays whole
    assert split_message("message rejected reason=x detail=site 'b' differs") == (
        "message rejected reason=x detail=site 'b' differs",
        {},
    )
    assert split_message("outbox over budget: dropped device=d seq=1..4") == (
        "outbox over budget: dropped",
        {"device": "d", "seq": "1..4"},
    )


def test_repeated_warnings_are_held_back_and_counted() -> None:
    now = [0.0]
    f = RepeatFilter(period=60.0, clock=lambda: now[0])

    def passes(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord | None:
        r = record(msg, *args, level=level)
        return r if f.filter(r) else None

    first = passes("poll failed device=%s reason=%s", "radio-1", "timeout")
    assert first is not None and first.held_back == 0  # type: ignore[attr-defined]
    for i in range(5):
        now[0] += 1
        assert passes("poll failed device=%s reason=%s", "radio-1", "timeout") is None
        # numbers are not what makes an event different (backoff, queue lengths)
        assert passes("broker unavailable retry_in=%.1fs pending=%d", i / 3, i) is None or i == 0
    assert passes("poll failed device=%s reason=%s", "radio-2", "timeout") is not None
    assert passes("poll failed device=%s reason=%s", "radio-1", "auth") is not None
    assert passes("connected to broker", level=logging.INFO) is not None  # info: never held
    assert passes("connected to broker", level=logging.INFO) is not None
    now[0] += 60
    again = passes("poll failed device=%s reason=%s", "radio-1", "timeout")
    assert again is not None and again.held_back == 5  # type: ignore[attr-defined]
    line = TextFormatter(journal=False).format(again)
    assert line.endswith("reason=timeout held_back=5")
    assert json.loads(JsonFormatter().format(again))["held_back"] == 5


def test_rate_limited_log_keeps_its_api_and_reports_what_it_held(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limited = RateLimitedLog(logging.getLogger("pantau.test.rl"), period=10.0)
    with caplog.at_level(logging.WARNING, logger="pantau.test.rl"):
        assert limited.warning("site_mismatch", "message rejected topic=%s", "a", now=0.0)
        assert not limited.warning("site_mismatch", "message rejected topic=%s", "b", now=1.0)
        assert not limited.warning("site_mismatch", "message rejected topic=%s", "c", now=2.0)
        assert limited.warning("site_mismatch", "message rejected topic=%s", "d", now=11.0)
    assert [r.getMessage() for r in caplog.records] == [
        "message rejected topic=a",
        "message rejected topic=d",
    ]
    assert getattr(caplog.records[1], "held_back", 0) == 2


def test_journald_gets_priorities_and_no_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = (tmp_path / "journal").open("w+")
    st = os.fstat(out.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    try:
        for fmt in ("text", "json"):
            setup_logging("info", fmt, stream=out)
            logging.getLogger("pantau.test.j").warning("poll failed device=%s", f"r-{fmt}")
            logging.getLogger("pantau.test.j").info("connected")
            logging.getLogger("pantau.test.j").debug("not shown at level info")
        out.flush()
        lines = (tmp_path / "journal").read_text().splitlines()
        assert lines[0] == "<4>level=warning logger=pantau.test.j poll failed device=r-text"
        assert lines[1] == "<6>level=info logger=pantau.test.j connected"
        assert lines[2].startswith("<4>{") and json.loads(lines[2][3:])["device"] == "r-json"
        assert len(lines) == 4
        # a stream that is not the journal's (e.g. redirected to a file) keeps timestamps
        other = io.StringIO()
        setup_logging("info", "text", stream=other)
        logging.getLogger("pantau.test.j").warning("x")
        assert other.getvalue().startswith("ts=")
    finally:
        setup_logging("warning", "text")
        logging.getLogger().handlers[:] = []
        out.close()


def test_agent_process_logs_json_at_its_level_with_repeats_held_back(tmp_path: Path) -> None:
    # No broker and a device that never answers, polled every 0.3 s: the same two warnings
    # over and over. Each appears once; everything else is one JSON object per line.
    dead = procs.snmpsim_device("radio", "public", free_port("udp"))
    config = procs.agent_config(
        tmp_path / "agent.yaml",
        site="s1",
        broker_port=free_port(),
        devices=[dead],
        interval=0.3,
        timeout=0.1,
        log={"level": "info", "format": "json"},
    )
    with procs.agent(config, tmp_path / "agent.log") as agent:
        procs.wait_until(lambda: agent.log().count('"msg": "poll failed"') >= 1, 15, "a poll")
        time.sleep(3.0)
    docs = [json.loads(line) for line in agent.log().splitlines()]
    levels = {d["level"] for d in docs}
    assert levels <= {"info", "warning", "error"} and "debug" not in levels
    polls = [d for d in docs if d["msg"] == "poll failed"]
    assert len(polls) == 1 and polls[0]["device"] == "radio", polls
    assert len([d for d in docs if d["msg"] == "broker unavailable"]) == 1
    stopped = next(d["msg"] for d in docs if d["msg"].startswith("agent stopped"))
    unpublished = re.search(r"unpublished=(\d+)", stopped)
    assert unpublished and int(unpublished.group(1)) >= 8, stopped  # polled ~10 times

    # The same at level warning, in key=value text: no info lines at all.
    config = procs.agent_config(
        tmp_path / "agent2.yaml",
        site="s2",
        broker_port=free_port(),
        devices=[dead],
        interval=0.3,
        timeout=0.1,
        log={"level": "warning", "format": "text"},
    )
    with procs.agent(config, tmp_path / "agent2.log") as agent:
        procs.wait_until(lambda: "poll failed" in agent.log(), 15, "a poll")
    lines = agent.log().splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    assert not [line for line in lines if " level=info " in line], lines
