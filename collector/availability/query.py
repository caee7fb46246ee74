"""Reads a period's history from InfluxDB with InfluxQL over HTTP `/query`.

InfluxQL, not Flux: InfluxDB 1.8+, 2.x (through a DBRP mapping, docs/deploy.md) and 3.x all
serve it on `/query`. The standard library's urllib is enough for one POST per statement, so no
client library is tied to one InfluxDB major version. A token is sent as
`Authorization: Token …` (2.x and 3.x; 1.x with auth off ignores it) and appears in no log line
or error. Responses are requested chunked, so no server-side row limit truncates a month.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from collector.availability.compute import History, Point, Window
from collector.availability.timeline import MAX_COVER_MS
from collector.inventory import Inventory
from pantau.errors import PantauError
from pantau.settings import Secret

DAY_MS = 86_400_000
CHUNK_ROWS = 10_000


class QueryError(PantauError):
    """InfluxDB did not answer a statement (unreachable, refused, or an InfluxQL error)."""


def quote(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxQLClient:
    def __init__(
        self, url: str, database: str, token: Secret | None = None, timeout: float = 30.0
    ) -> None:
        self.url = url.rstrip("/") + "/query"
        self.database = database
        self._token = token
        self.timeout = timeout

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Every series the statement returned, chunks joined (same name and tags → one)."""
        params = {
            "db": self.database,
            "q": influxql,
            "epoch": "ms",
            "chunked": "true",
            "chunk_size": str(CHUNK_ROWS),
        }
        req = urllib.request.Request(
            self.url, data=urllib.parse.urlencode(params).encode(), method="POST"
        )
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        if self._token is not None:
            req.add_header("Authorization", f"Token {self._token.reveal()}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace").strip()
            reason = {401: "unauthorized", 403: "forbidden"}.get(exc.code, "http_error")
            raise QueryError(reason, f"{self.url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise QueryError("unreachable", f"{self.url}: {why}") from None
        return _series(body, influxql, self.url)


def _series(body: str, influxql: str, url: str) -> list[dict[str, Any]]:
    """The series of a /query answer, chunks joined (same name and tags → one). The answer
    shapes of 1.x, 2.x and 3.x: `results[]` with or without `series` (nothing matched) and
    `statement_id`, an `error` per statement or for the whole request, `partial: true` on
    every chunk but the last. An answer that still says `partial` at its end was cut short
    (a server row limit, a chunk lost): refused, never taken for the whole period."""
    series: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    partial = False
    for doc in _documents(body):
        if "error" in doc:
            raise QueryError("influxql", f"{doc['error']} in: {influxql}")
        results = doc.get("results")
        if not isinstance(results, list):
            raise QueryError("bad_answer", f"{url}: an answer without results: {body[:120]!r}")
        partial = bool(doc.get("partial"))
        for result in results:
            if not isinstance(result, dict):
                raise QueryError("bad_answer", f"{url}: a result is not an object")
            if "error" in result:
                raise QueryError("influxql", f"{result['error']} in: {influxql}")
            partial = partial or bool(result.get("partial"))
            for s in result.get("series") or []:
                partial = partial or bool(s.get("partial"))
                values = s.get("values") or []
                key = (s.get("name", ""), tuple(sorted((s.get("tags") or {}).items())))
                if key in series:
                    series[key]["values"] += values
                else:
                    series[key] = {**s, "values": list(values)}
    if partial:
        raise QueryError("partial", f"{url}: the answer was cut short (partial) for: {influxql}")
    return list(series.values())


def _documents(body: str) -> Iterator[dict[str, Any]]:
    """The JSON documents of a (possibly chunked) /query answer, one after the other."""
    decoder = json.JSONDecoder()
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i].isspace():
            i += 1
        if i >= n:
            break
        try:
            doc, i = decoder.raw_decode(body, i)
        except json.JSONDecodeError as exc:
            raise QueryError("bad_answer", f"not JSON at {exc.pos}: {body[i : i + 80]!r}") from None
        if not isinstance(doc, dict):
            raise QueryError("bad_answer", f"not a JSON object: {body[:80]!r}")
        yield doc


def _time(start_ms: int, end_ms: int) -> str:
    return f"time >= {start_ms}ms AND time < {end_ms}ms"


def _points(series: dict[str, Any], column: str) -> list[Point]:
    """(time, value) rows of one column; a float (a writer that sent `1.0`, 3.x's unsigned
    read back as float) is taken as its integer."""
    cols = series.get("columns") or []
    if "time" not in cols or column not in cols:
        raise QueryError("bad_answer", f"a series without time or {column}: {cols}")
    t, v = cols.index("time"), cols.index(column)
    return [(int(row[t]), int(row[v])) for row in series["values"] if row[v] is not None]


def fetch_history(
    client: InfluxQLClient, start_ms: int, end_ms: int, inventory: Inventory | None = None
) -> History:
    """Polls, link ports, site status and maintenance windows for `[start_ms, end_ms)`; polls
    and ports from MAX_COVER_MS earlier, so readings just before the start cover into it. Read
    a day at a time, so no single answer holds a month."""
    history = History(start_ms, end_ms)
    since = start_ms - MAX_COVER_MS
    history.polls = fetch_polls(client, since, end_ms)
    for key3 in port_keys(inventory):
        history.ports[key3] = fetch_port(client, key3, since, end_ms)
    history.online = fetch_online(client, start_ms, end_ms)
    history.windows = fetch_windows(client, start_ms, end_ms)
    return history


def port_keys(inventory: Inventory | None) -> list[tuple[str, str, str]]:
    """(site, device, interface) of every inventory link end that names an interface."""
    keys: list[tuple[str, str, str]] = []
    for link in inventory.links if inventory else ():
        for end in (link.a, link.b):
            if end.site and end.device and end.interface:
                key = (end.site, end.device, end.interface)
                if key not in keys:
                    keys.append(key)
    return keys


def fetch_polls(
    client: InfluxQLClient, start_ms: int, end_ms: int, only: tuple[str, str] | None = None
) -> dict[tuple[str, str], list[Point]]:
    """`pantau_poll.up` of every device (or of `only`, a (site, device)) in `[start_ms,
    end_ms)`, a day a statement, each series sorted by time."""
    where = (
        "" if only is None else f' AND "site" = {quote(only[0])} AND "device" = {quote(only[1])}'
    )
    polls: dict[tuple[str, str], list[Point]] = {}
    for a in range(start_ms, end_ms, DAY_MS):
        b = min(a + DAY_MS, end_ms)
        for s in client.query(
            f'SELECT "up" FROM "pantau_poll" WHERE {_time(a, b)}{where} GROUP BY "site", "device"'
        ):
            tags = s.get("tags") or {}
            key = (tags.get("site", ""), tags.get("device", ""))
            polls.setdefault(key, []).extend(_points(s, "up"))
    for points in polls.values():
        points.sort()
    return polls


def fetch_online(client: InfluxQLClient, start_ms: int, end_ms: int) -> dict[str, list[Point]]:
    """Each site's status messages in `[start_ms, end_ms)`, after the last one before it."""
    online: dict[str, list[Point]] = {}
    for s in client.query(
        f'SELECT last("online") AS "online" FROM "pantau_site" WHERE time < {start_ms}ms '
        'GROUP BY "site"'
    ) + client.query(
        f'SELECT "online" FROM "pantau_site" WHERE {_time(start_ms, end_ms)} GROUP BY "site"'
    ):
        site = (s.get("tags") or {}).get("site", "")
        online.setdefault(site, []).extend(_points(s, "online"))
    for points in online.values():
        points.sort()
    return online


def fetch_port(
    client: InfluxQLClient, key: tuple[str, str, str], since: int, end_ms: int
) -> list[Point]:
    """oper_status of a link end's interface: the rows whose ifName matches, else ifDescr,
    else ifIndex (docs/inventory.md)."""
    site, device, name = key
    found: dict[str, list[Point]] = {"ifName": [], "ifDescr": [], "ifIndex": []}
    for a in range(since, end_ms, DAY_MS):
        b = min(a + DAY_MS, end_ms)
        for s in client.query(
            f'SELECT "oper_status" FROM "interface" WHERE {_time(a, b)} AND "site" = {quote(site)}'
            f' AND "device" = {quote(device)} AND ("ifName" = {quote(name)} OR '
            f'"ifDescr" = {quote(name)} OR "ifIndex" = {quote(name)}) '
            'GROUP BY "ifName", "ifDescr", "ifIndex"'
        ):
            tags = s.get("tags") or {}
            for tag, points in found.items():
                if tags.get(tag) == name:
                    points.extend(_points(s, "oper_status"))
    for points in found.values():
        if points:
            return sorted(points)
    return []


def fetch_windows(client: InfluxQLClient, start_ms: int, end_ms: int) -> list[Window]:
    """Maintenance windows (measurement `pantau_maintenance`, docs/maintenance.md) that overlap
    the period and are not cancelled; a window rewritten keeps its latest row."""
    latest: dict[str, tuple[int, Window | None]] = {}
    for s in client.query(
        'SELECT "start_s", "end_s", "reason", "state" FROM "pantau_maintenance" '
        f'WHERE time < {end_ms}ms GROUP BY "id", "scope", "site", "device", "link"'
    ):
        tags = s.get("tags", {})
        cols = s["columns"]
        for row in s["values"]:
            r = dict(zip(cols, row, strict=True))
            if r.get("start_s") is None or r.get("end_s") is None:
                continue
            wid = tags.get("id", "")
            window = (
                None
                if r.get("state") == "cancelled"
                else Window(
                    id=wid,
                    scope=tags.get("scope", ""),
                    start_ms=int(r["start_s"]) * 1000,
                    end_ms=int(r["end_s"]) * 1000,
                    site=tags.get("site", ""),
                    device=tags.get("device", ""),
                    link=tags.get("link", ""),
                    reason=str(r.get("reason") or ""),
                )
            )
            if wid not in latest or int(r["time"]) >= latest[wid][0]:
                latest[wid] = (int(r["time"]), window)
    return [
        w
        for _, w in sorted(latest.values(), key=lambda item: item[0])
        if w is not None and w.end_ms > start_ms and w.start_ms < end_ms
    ]
