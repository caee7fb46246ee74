"""A maintenance window: the record, the checks on an operator's request, its line protocol.

One module decides what a valid window is, so the HTTP API, the CLI's messages and the store
agree. A request that is wrong is refused with the name of the field to fix (BadRequest.field):
an operator at 2 a.m. must see "end: must be after start", not a stack trace.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import pydantic

from collector.lineproto import _STRING, _tag_value
from pantau.errors import PantauError
from pantau.settings import StrictModel
from pantau.wire.topics import IDENTIFIER

Scope = Literal["site", "device", "link"]
State = Literal["planned", "cancelled"]

MEASUREMENT = "pantau_maintenance"
MAX_REASON_CHARS = 200
DEFAULT_MAX_DAYS = 31
MAX_AHEAD_S = 366 * 86400
"""A window may be declared up to a year ahead; further is a typo (a wrong year)."""
MAX_LATE_S = 300
"""A start this far back is an operator declaring work just begun; further back it would take
past outages out of the SLA, so it needs `force`."""
_EARLIEST, _LATEST = 946684800, 4102444800  # 2000-01-01 .. 2100-01-01 UTC


class BadRequest(PantauError):
    """A request the operator must correct; `field` names what to fix."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__("bad_request", f"{field}: {detail}")
        self.field = field


class Inventory(Protocol):
    """What the checks need of collector.inventory.Inventory."""

    @property
    def sites(self) -> Sequence[Any]: ...

    @property
    def links(self) -> Sequence[Any]: ...

    def site(self, name: str) -> object | None: ...

    def link(self, name: str) -> Any: ...

    def links_ending_at(self, site: str | None, device: str | None) -> tuple[str, ...]: ...


Matchers = list[tuple[str, str]]


class Window(StrictModel):
    """A window as stored. `start`/`end` are unix seconds; `end` moves to the moment an
    operator ended a running window early (the time before it stays maintenance); a window
    cancelled before it began has state "cancelled". The silence and InfluxDB fields are the
    collector's bookkeeping, kept in the file so a restart resumes what was not done."""

    id: str = pydantic.Field(pattern=r"^[a-z0-9-]{1,32}$")
    scope: Scope
    site: str | None = None
    device: str | None = None
    link: str | None = None
    start: int
    end: int
    reason: str
    created: int
    state: State = "planned"
    forced: bool = False
    ended: int | None = None  # when an operator ended or cancelled it
    # What the work cuts off (from the inventory, when declared): the links it takes down (the
    # window's link, or the links the window's device is an end of) and the sites whose
    # upstream is one of them. Their alerts are silenced too: see silence_groups().
    cuts: tuple[str, ...] = ()
    behind: tuple[str, ...] = ()
    silences: dict[str, str] = {}  # silence_key(matchers) → Alertmanager's silence id
    silence_expired: bool = False
    written: str = ""  # fingerprint() last accepted by InfluxDB

    @pydantic.model_validator(mode="after")
    def _scope_fits(self) -> Window:
        names = {"site": self.site, "device": self.device, "link": self.link}
        for key, value in names.items():
            if value is not None and not IDENTIFIER.match(value):
                raise ValueError(f"{key}: not a valid name")
        for value in (*self.cuts, *self.behind):
            if not IDENTIFIER.match(value):
                raise ValueError(f"cuts, behind: {value[:40]!r} is not a valid name")
        wanted = {"site": {"site"}, "device": {"site", "device"}, "link": {"link"}}[self.scope]
        given = {k for k, v in names.items() if v is not None}
        if not wanted <= given or given - wanted - ({"site"} if self.scope == "link" else set()):
            raise ValueError(f"a {self.scope} window names {', '.join(sorted(wanted))} only")
        if self.end <= self.start:
            raise ValueError("end is not after start")
        return self

    def status(self, now: float) -> str:
        """cancelled, upcoming, active or over."""
        if self.state == "cancelled":
            return "cancelled"
        if now < self.start:
            return "upcoming"
        return "active" if now < self.end else "over"

    def fingerprint(self) -> str:
        """What InfluxDB must hold for this window: rewritten when it changes."""
        return f"{self.state}:{self.start}:{self.end}"

    def matchers(self) -> Matchers:
        """The window's own alert labels (a silence matches all of them, equality)."""
        if self.scope == "link":
            return [("link", self.link or "")]
        if self.scope == "device":
            return [("site", self.site or ""), ("device", self.device or "")]
        return [("site", self.site or "")]

    def silence_groups(self) -> list[Matchers]:
        """One silence each (Alertmanager ANDs a silence's matchers, so "or" takes several):
        the window's own labels, then for every link the work takes down its own alerts
        (`link`), the alerts it is the cause of (`cause`: the sites behind a microwave hop
        page with cause=<hop> before LinkDown, 1 min, could inhibit them), and every alert of
        each site directly behind it (`site`: behind a VSAT link, which reads unknown, the site
        is its own root). Sites further behind are inhibited by those silenced alerts."""
        groups = [self.matchers()]
        groups += [[("link", k)] for k in self.cuts]
        groups += [[("cause", k)] for k in self.cuts]
        groups += [[("site", s)] for s in self.behind]
        unique: list[Matchers] = []
        for g in groups:
            if g not in unique:
                unique.append(g)
        return unique

    def silences_missing(self) -> list[Matchers]:
        """The groups whose silence is not placed yet."""
        return [g for g in self.silence_groups() if silence_key(g) not in self.silences]

    def target(self) -> str:
        """What it covers, for people: `site kasongan-pop`, `device s/radio-1`, `link mw-a-b`."""
        if self.scope == "link":
            return f"link {self.link}"
        if self.scope == "device":
            return f"device {self.site}/{self.device}"
        return f"site {self.site}"

    def public(self, now: float) -> dict[str, Any]:
        """The API's view of it."""
        return {
            "id": self.id,
            "scope": self.scope,
            "site": self.site,
            "device": self.device,
            "link": self.link,
            "start": self.start,
            "end": self.end,
            "start_utc": iso(self.start),
            "end_utc": iso(self.end),
            "reason": self.reason,
            "created": self.created,
            "state": self.state,
            "status": self.status(now),
            "forced": self.forced,
            "ended": self.ended,
            "cuts": list(self.cuts),
            "behind": list(self.behind),
            "silence": {
                "id": self.silences.get(silence_key(self.matchers())),
                "all": dict(self.silences),
                "state": (
                    "expired"
                    if self.silence_expired
                    else "none"
                    if not self.silences
                    else "partial"
                    if self.silences_missing()
                    else "active"
                ),
            },
            "written_to_influx": self.written == self.fingerprint(),
        }


def silence_key(matchers: Matchers) -> str:
    """`site="a",device="b"`: a silence's matchers as one text (the store's key)."""
    return ",".join(f'{k}="{v}"' for k, v in matchers)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def line(window: Window) -> str:
    """The contract's `pantau_maintenance` point (docs/maintenance.md): stamped with the
    window's start, so a change rewrites the same point."""
    tags = {
        "device": window.device,
        "id": window.id,
        "link": window.link,
        "scope": window.scope,
        "site": window.site,
    }
    tag_text = "".join(f",{k}={_tag_value(v)}" for k, v in sorted(tags.items()) if v)
    reason = window.reason.translate(_STRING)
    return (
        f"{MEASUREMENT}{tag_text} start_s={window.start}i,end_s={window.end}i,"
        f'reason="{reason}",state="{window.state}" {window.start * 1000}'
    )


def new_id(taken: set[str]) -> str:
    while True:
        candidate = "m-" + secrets.token_hex(4)
        if candidate not in taken:
            return candidate


# -- an operator's request ---------------------------------------------------------------------

_FIELDS = {"site", "device", "link", "start", "end", "duration", "reason", "force"}


def parse_time(field: str, value: object, now: float) -> int:
    """Unix seconds from a number, "now", or an ISO 8601 text with its UTC offset."""
    if isinstance(value, bool):
        raise BadRequest(field, "a time is a number of unix seconds or an ISO 8601 text")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not _EARLIEST <= value <= _LATEST:
            raise BadRequest(field, "unix seconds between 2000 and 2100")
        return int(value)
    if not isinstance(value, str):
        raise BadRequest(field, "a time is a number of unix seconds or an ISO 8601 text")
    if value.strip().lower() == "now":
        return int(now)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(field, f"not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise BadRequest(field, "give the UTC offset (e.g. +07:00 or Z): which zone is meant?")
    ts = parsed.timestamp()
    if not _EARLIEST <= ts <= _LATEST:
        raise BadRequest(field, "a time between 2000 and 2100")
    return int(ts)


def _name(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise BadRequest(field, "a name of letters, digits, '.', '_' or '-' (at most 63)")
    return value


def parse_request(
    body: object,
    *,
    now: float,
    taken: set[str],
    inventory: Inventory | None,
    max_days: int = DEFAULT_MAX_DAYS,
) -> Window:
    """A new window from a POSTed JSON object, or BadRequest naming the field to fix."""
    if not isinstance(body, dict):
        raise BadRequest("body", "a JSON object is expected")
    for key in body:
        if key not in _FIELDS:
            raise BadRequest(str(key)[:40], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    site, device, link = _name(body, "site"), _name(body, "device"), _name(body, "link")
    if device is not None and link is not None:
        raise BadRequest("link", "a window covers a site, a device or a link: not both")
    if link is None and site is None:
        raise BadRequest("site", "required (the site, or the site of the device)")
    scope: Scope = "link" if link is not None else "device" if device is not None else "site"
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest("reason", "required: say why (it becomes the silence's comment)")
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS or any(ord(c) < 32 for c in reason):
        raise BadRequest("reason", f"one line of at most {MAX_REASON_CHARS} characters")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest("force", "true or false")
    start = parse_time("start", body.get("start", "now"), now)
    if "end" in body and "duration" in body:
        raise BadRequest("duration", "give end or duration, not both")
    if "duration" in body:
        duration = body["duration"]
        if (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not math.isfinite(duration)
            or duration <= 0
        ):
            raise BadRequest("duration", "seconds, more than 0")
        end = start + math.ceil(min(duration, _LATEST))
    elif "end" in body:
        end = parse_time("end", body["end"], now)
    else:
        raise BadRequest("end", "required (or duration)")
    if end <= start:
        raise BadRequest("end", f"must be after start ({iso(start)})")
    if not force:
        if end - start > max_days * 86400:
            raise BadRequest(
                "end", f"the window is longer than {max_days} days; send force: true if meant"
            )
        if end <= now:
            raise BadRequest("end", "the window is already over; send force: true to record it")
        if start > now + MAX_AHEAD_S:
            raise BadRequest("start", "more than a year ahead; send force: true if meant")
        if start < now - MAX_LATE_S:
            raise BadRequest(
                "start",
                f"{iso(start)} is more than {MAX_LATE_S // 60} minutes in the past: it would take"
                " past outages out of the SLA; send force: true to record past work",
            )
    if inventory is not None:
        if site is not None and inventory.site(site) is None:
            raise BadRequest("site", f"unknown site {site!r}: not in the inventory")
        if link is not None:
            entry = inventory.link(link)
            if entry is None:
                raise BadRequest("link", f"unknown link {link!r}: not in the inventory")
            ends = {entry.a.site, entry.b.site} - {None}
            if site is not None and site not in ends:
                raise BadRequest("site", f"link {link} does not end at site {site}")
    cuts: tuple[str, ...] = (link,) if link is not None else ()
    behind: tuple[str, ...] = ()
    if inventory is not None:
        if device is not None:
            cuts = tuple(sorted(inventory.links_ending_at(site, device)))
        behind = tuple(sorted(s.name for s in inventory.sites if s.upstream in cuts))
    return Window(
        id=new_id(taken),
        scope=scope,
        site=site,
        device=device,
        link=link,
        start=start,
        end=end,
        reason=reason,
        created=int(now),
        forced=force,
        cuts=cuts,
        behind=behind,
    )
