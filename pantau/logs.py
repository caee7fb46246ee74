"""Logging set-up: one line per event on stdout, key=value text or JSON, repeats held back.

Every module writes its messages as "what happened key=value key=value" (`poll failed
device=radio-1 reason=timeout`). The text format keeps that as it is, after `level=` and
`logger=` (and `ts=`, except under journald, which stamps lines itself), so a technician can grep
for `device=radio-1`; the JSON format splits it into "msg" and one member per key. Newlines
(tracebacks included) are escaped, so one event is always one line.

Under systemd, stdout is a journald stream ($JOURNAL_STREAM names it): each line then starts with
the syslog priority as "<N>" (sd-daemon(3)), which journald strips and records, so
`journalctl -p warning` works.

A warning or error that repeats (same logger, same message, same non-numeric arguments) is
logged once per `repeat_period`; the next one that gets through carries `held_back=N`, the
number of repeats not logged since. A site with 40 dead radios must not flood the journal.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import IO, Any

REPEAT_PERIOD = 60.0
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
_VALUE = r'(?:"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[^\s"\']*)'
_FIELD = re.compile(r"\s+([A-Za-z_][A-Za-z0-9_.]*)=(" + _VALUE + ")")
_TAIL = re.compile(r"(?:\s+[A-Za-z_][A-Za-z0-9_.]*=" + _VALUE + r")+\s*\Z")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?\Z")
_RESERVED = {"ts", "level", "logger", "msg", "exc", "held_back"}


def split_message(text: str) -> tuple[str, dict[str, str]]:
    """'poll failed device=a reason=timeout' -> ('poll failed', {'device': 'a', ...}).

    Only a tail made entirely of key=value pairs is split off; otherwise the whole text is the
    message and there are no fields."""
    if len(text) > 4096 or "=" not in text:
        return text, {}
    for start in (m.start() for m in re.finditer(r"\s+[A-Za-z_][A-Za-z0-9_.]*=", text)):
        if _TAIL.match(text, start):
            fields = {}
            for m in _FIELD.finditer(text, start):
                value = m.group(2)
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                key = m.group(1)
                fields[key + "_" if key in _RESERVED else key] = value
            return text[:start], fields
    return text, {}


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' ="\\\n\r\t'):
        return value
    return (
        '"'
        + value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        + '"'
    )


def _journal_stream(stream: IO[str]) -> bool:
    """True when `stream` is the journald stream systemd connected us to ($JOURNAL_STREAM)."""
    dev_ino = os.environ.get("JOURNAL_STREAM", "")
    if not dev_ino:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return dev_ino == f"{st.st_dev}:{st.st_ino}"


class _Formatter(logging.Formatter):
    def __init__(self, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def _ts(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"

    def _prefix(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>" if self.journal else ""


class TextFormatter(_Formatter):
    """`ts=… level=warning logger=pantau.agent poll failed device=radio-1 reason=timeout`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [] if self.journal else [f"ts={self._ts(record)}"]
        parts += [
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            _one_line(record.getMessage()),
        ]
        held = getattr(record, "held_back", 0)
        if held:
            parts.append(f"held_back={held}")
        if record.exc_info:
            parts.append("exc=" + _quote(self.formatException(record.exc_info)))
        return self._prefix(record) + " ".join(parts)


class JsonFormatter(_Formatter):
    """{"ts": …, "level": "warning", "logger": …, "msg": "poll failed", "device": "radio-1"}."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__(journal)

    def format(self, record: logging.LogRecord) -> str:
        msg, fields = split_message(record.getMessage())
        doc: dict[str, Any] = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": msg,
        }
        for key, value in fields.items():
            doc[key] = (
                (float(value) if "." in value else int(value)) if _NUMBER.match(value) else value
            )
        held = getattr(record, "held_back", 0)
        if held:
            doc["held_back"] = held
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return self._prefix(record) + json.dumps(doc, ensure_ascii=False)


class RepeatFilter(logging.Filter):
    """Lets a warning or error through once per `period` for each distinct event.

    Two records are the same event when logger, level, message template and the arguments that
    are not numbers are equal: `broker unavailable host=%s ... retry_in=%.1fs pending=%d` repeats
    while the host and the error stay the same, whatever the backoff and the queue length say.
    """

    def __init__(self, period: float = REPEAT_PERIOD, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.period = period
        self.clock = clock
        self._last: dict[tuple[Any, ...], float] = {}
        self._held: dict[tuple[Any, ...], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or self.period <= 0:
            return True
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        key = (
            record.name,
            record.levelno,
            str(record.msg),
            tuple(str(a) for a in args if not isinstance(a, (int, float))),
        )
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._last) > 1000:  # forget events that have not recurred (months of them)
            for old in [k for k, t in self._last.items() if now - t >= self.period]:
                self._last.pop(old, None)
                self._held.pop(old, None)  # bounded with it
        self._last[key] = now
        record.held_back = getattr(record, "held_back", 0) + self._held.pop(key, 0)
        return True


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    *,
    stream: IO[str] | None = None,
    repeat_period: float = REPEAT_PERIOD,
) -> None:
    """Route every logger to one stdout handler in `fmt` ("text" = key=value, or "json")."""
    out = sys.stdout if stream is None else stream
    journal = _journal_stream(out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(journal) if fmt == "json" else TextFormatter(journal))
    handler.addFilter(RepeatFilter(repeat_period))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pysnmp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RateLimitedLog:
    """Logs at most one line per key every `period` seconds; the next line that gets through
    says how many were held back (`held_back=N`). For events that differ in their arguments but
    should be limited together (one key per rejection reason, whatever the topic).

    A site that floods bad messages must not flood the journal too.
    """

    def __init__(self, logger: logging.Logger, period: float = 10.0) -> None:
        self.logger = logger
        self.period = period
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        self._last[key] = now
        self.logger.warning(msg, *args, extra={"held_back": held} if held else None)
        return True
