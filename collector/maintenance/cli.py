"""`pantau-collector maintenance add|list|end`: talks to the running collector's HTTP API.

The collector owns the windows (its store, its silences); the command is only a client, so it
works from any shell that reaches the collector's port and needs no access to its files. Times
on the command line are the operator's: `now`, `+30m`, or an ISO 8601 time (without an offset:
this machine's local time zone, which is what a technician at a Kalimantan NOC means). `now`
is sent as "now", so the collector's clock decides it (this machine's may be minutes off, and
a start more than 5 minutes back needs --force); `--end +2h` counts from the start, like --for.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9877"
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class UsageError(Exception):
    """A command-line value that cannot be used (exit 2)."""


def duration(text: str) -> int:
    """Seconds from `90m`, `2h`, `1h30m`, `3d`, or a plain number of seconds."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    pos, total = 0, 0.0
    for m in _SPAN.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or total <= 0:
        raise UsageError(f"not a duration: {text!r} (e.g. 90m, 2h, 1h30m, 3d)")
    return int(total)


def when(text: str, now: float) -> int:
    """Unix seconds from `now`, `+30m`, unix seconds, or ISO 8601 (local time without offset)."""
    text = text.strip()
    if text.lower() == "now":
        return int(now)
    if text.startswith("+"):
        return int(now) + duration(text[1:])
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (now, +30m, 2026-12-07T02:00, 2026-12-07T02:00+07:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # the local zone of this machine
    return int(parsed.timestamp())


def add_parser(sub: Any) -> None:
    """The `maintenance` subcommand and its own subcommands."""
    p = sub.add_parser("maintenance", help="declare, list or end planned maintenance windows")
    p.add_argument(
        "--url",
        default=os.environ.get("PANTAU_COLLECTOR_URL", DEFAULT_URL),
        help=f"the collector's HTTP address (default $PANTAU_COLLECTOR_URL or {DEFAULT_URL})",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        help="file holding the API token (maintenance.api_token_file), if the collector has one",
    )
    msub = p.add_subparsers(dest="action", required=True)
    add = msub.add_parser("add", help="declare a window")
    add.add_argument("--site", help="the site (for a device: its site)")
    target = add.add_mutually_exclusive_group()
    target.add_argument("--device", help="a device of --site")
    target.add_argument("--link", help="an inventory link")
    add.add_argument("--start", default="now", help="now (default), +30m, or an ISO 8601 time")
    span = add.add_mutually_exclusive_group(required=True)
    span.add_argument("--end", help="+2h (after the start) or an ISO 8601 time")
    span.add_argument("--for", dest="length", help="how long: 90m, 2h, 1d")
    add.add_argument("--reason", required=True, help="why (the silence's comment)")
    add.add_argument(
        "--force",
        action="store_true",
        help="allow a window longer than the limit, starting over 5 minutes ago, or past",
    )
    listing = msub.add_parser("list", help="list the windows")
    end = msub.add_parser("end", help="end a running window now, or cancel one not begun")
    end.add_argument("id")
    for action in (add, listing, end):
        action.add_argument("--json", action="store_true", help="print the API's JSON answer")


def _request(args: argparse.Namespace, method: str, path: str, body: object = None) -> Any:
    url = args.url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read {args.token_file}: {exc.strerror}") from None
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            doc = json.loads(exc.read())
            what = doc.get("error", "")
            if doc.get("field"):
                what = f"{doc['field']}: {what}" if not what.startswith(doc["field"]) else what
        except ValueError:
            what = exc.reason
        raise UsageError(f"the collector refused (HTTP {exc.code}): {what}") from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise UsageError(f"cannot reach the collector at {args.url}: {why}") from None


def _row(w: dict[str, Any]) -> str:
    what = {"site": w["site"], "device": f"{w['site']}/{w['device']}", "link": w["link"]}
    return (
        f"{w['id']:<11} {w['status']:<9} {w['scope']:<6} {what[w['scope']]:<28} "
        f"{_local(w['start'])} → {_local(w['end'])}  silence={w['silence']['state']:<7} "
        f"{w['reason']}"
    )


def _local(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M %z", time.localtime(ts))


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        print(f"pantau-collector maintenance: {exc}", file=sys.stderr)
        return 2


def request_body(args: argparse.Namespace, now: float) -> dict[str, Any]:
    """The POST body of `add`: "now" stays "now" (the collector's clock), `--end +X` becomes
    a duration (X after the start, wherever the start is)."""
    if args.site is None and args.link is None:
        raise UsageError("--site is required (or --link)")
    start_text = args.start.strip()
    start: int | str = "now" if start_text.lower() == "now" else when(start_text, now)
    body: dict[str, Any] = {"start": start, "reason": args.reason}
    for key in ("site", "device", "link"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    end_text = None if args.end is None else args.end.strip()
    if args.length is not None:
        body["duration"] = duration(args.length)
    elif end_text is not None and end_text.startswith("+"):
        body["duration"] = duration(end_text[1:])
    elif end_text is not None and end_text.lower() == "now":
        body["end"] = "now"
    else:
        body["end"] = when(args.end, now)
    if args.force:
        body["force"] = True
    return body


def _run(args: argparse.Namespace) -> int:
    now = time.time()
    if args.action == "add":
        body = request_body(args, now)
        window = _request(args, "POST", "/api/maintenance", body)
        print(json.dumps(window, indent=1) if args.json else f"declared {_row(window)}")
        return 0
    if args.action == "list":
        doc = _request(args, "GET", "/api/maintenance")
        if args.json:
            print(json.dumps(doc, indent=1))
        elif not doc["windows"]:
            print("no maintenance windows")
        for w in doc["windows"] if not args.json else ():
            print(_row(w))
        return 0
    window = _request(args, "DELETE", f"/api/maintenance/{args.id}")
    print(json.dumps(window, indent=1) if args.json else f"{window['status']} {_row(window)}")
    return 0
