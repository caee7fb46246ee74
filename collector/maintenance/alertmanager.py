"""Silences in Alertmanager through its API v2: create one for a window, expire it.

The standard library's HTTP client is enough for two calls, and keeps the one-importer rule for
urllib3 (collector/sink.py). Every failure is a SilenceFailed with a stable reason for the
counter (connection, timeout, http_<code>, unauthorized, bad_answer); the caller retries.

A created silence is found again before a new one is made (same creator, matchers, end and
comment): a request that timed out after Alertmanager stored the silence, or a collector that
stopped between creating it and saving its id, must not leave two silences behind. The comment
carries the window's id (`<reason> [pantau m-…]`), so two overlapping windows with the same
target, end and reason each get a silence of their own: ending one leaves the other's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from collector.maintenance.window import Matchers, Window, iso
from pantau.errors import PantauError
from pantau.settings import Secret

CREATED_BY = "pantau"


def comment(window: Window) -> str:
    """The silence's comment: the operator's reason, and the window it belongs to."""
    return f"{window.reason} [pantau {window.id}]"


def _without_userinfo(url: str) -> str:
    """The URL as logs may show it: a `user:password@` (refused by the config, but this class
    may be built elsewhere) is dropped."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


class SilenceFailed(PantauError):
    """Alertmanager could not be asked or refused; `reason` labels the failure counter."""


class Alertmanager:
    def __init__(self, url: str, token: Secret | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.shown_url = _without_userinfo(self.url)  # for messages
        self._token = token
        self.timeout = timeout
        # no proxy: an environment's proxy must not see (or break) NOC-internal calls
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, path: str, body: object | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token is not None:
            request.add_header("Authorization", f"Bearer {self._token.reveal()}")
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace").strip()
            reason = "unauthorized" if exc.code in (401, 403) else f"http_{exc.code}"
            raise SilenceFailed(reason, f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except TimeoutError:
            raise SilenceFailed(
                "timeout", f"{method} {path}: no answer in {self.timeout} s"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise SilenceFailed("connection", f"{method} {self.shown_url}{path}: {why}") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise SilenceFailed("bad_answer", f"{method} {path}: not JSON") from None

    def find(self, window: Window, matchers: Matchers) -> str | None:
        """The id of an unexpired silence pantau made for this very window and these
        matchers, if any."""
        filters = [f'{k}="{v}"' for k, v in matchers]
        query = urllib.parse.urlencode([("filter", f) for f in filters])
        found = self._call("GET", f"/api/v2/silences?{query}")
        if not isinstance(found, list):
            raise SilenceFailed("bad_answer", "GET /api/v2/silences: not a list")
        want = sorted(matchers)
        for s in found:
            if not isinstance(s, dict):
                continue
            mine = sorted(
                (m.get("name"), m.get("value"))
                for m in s.get("matchers", [])
                if isinstance(m, dict) and m.get("isEqual", True) and not m.get("isRegex")
            )
            if (
                s.get("createdBy") == CREATED_BY
                and s.get("comment") == comment(window)
                and mine == want
                and str(s.get("endsAt", "")).startswith(iso(window.end)[:-1])
                and (s.get("status") or {}).get("state") in ("active", "pending")
            ):
                return str(s["id"])
        return None

    def create(self, window: Window, matchers: Matchers, now: float) -> str:
        """A silence of `matchers` over the window (from now, if it began already); its id."""
        existing = self.find(window, matchers)
        if existing is not None:
            return existing
        answer = self._call(
            "POST",
            "/api/v2/silences",
            {
                "matchers": [
                    {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers
                ],
                "startsAt": iso(max(window.start, int(now))),
                "endsAt": iso(window.end),
                "createdBy": CREATED_BY,
                "comment": comment(window),
            },
        )
        if not isinstance(answer, dict) or not answer.get("silenceID"):
            raise SilenceFailed("bad_answer", "POST /api/v2/silences: no silenceID")
        return str(answer["silenceID"])

    def expire(self, silence_id: str) -> None:
        """Expire the silence; one that is gone or already expired counts as done."""
        path = f"/api/v2/silence/{urllib.parse.quote(silence_id, safe='')}"
        try:
            self._call("DELETE", path)
        except SilenceFailed as exc:
            if exc.reason == "http_404":
                return
            if exc.reason == "http_500" and "already expired" in exc.detail:
                return
            raise
