"""/api/maintenance on the collector's HTTP server (docs/maintenance.md#http-api).

GET lists (or shows one), POST declares, DELETE ends or cancels. Answers are JSON; an error is
`{"error": ..., "field": ...}` with the field to fix. The collector's port also serves
/metrics, often to a wider network than the NOC's operators: a change (POST, DELETE) needs the
API token when one is configured, and otherwise is accepted from loopback only. A POST must say
`Content-Type: application/json`, which a browser cannot send across sites without asking first.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from collector.maintenance.manager import Conflict, Maintenance, NotFound
from collector.maintenance.window import BadRequest
from pantau.settings import Secret

log = logging.getLogger("pantau.collector.maintenance")

PREFIX = "/api/maintenance"
MAX_BODY = 64 * 1024
StartResponse = Callable[..., Any]


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def make_api(
    maintenance: Maintenance, token: Secret | None = None
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def answer(
        start_response: StartResponse,
        status: str,
        doc: object,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> list[bytes]:
        body = json.dumps(doc, indent=1).encode() + b"\n"
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("Content-Length", str(len(body))),
                *extra,
            ],
        )
        return [body]

    def error(
        start_response: StartResponse, status: str, text: str, field: str | None = None
    ) -> list[bytes]:
        doc: dict[str, str] = {"error": text}
        if field is not None:
            doc["field"] = field
        return answer(start_response, status, doc)

    def allowed(environ: dict[str, Any]) -> str | None:
        """Why a change is refused, or None."""
        if token is not None:
            given = environ.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token.reveal()}".encode()):
                return "a change needs the API token (Authorization: Bearer …)"
            return None
        if not _loopback(environ.get("REMOTE_ADDR", "")):
            return "changes are accepted from loopback only (configure maintenance.api_token_file)"
        return None

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        rest = path[len(PREFIX) :].strip("/")
        now = maintenance.clock()
        if method in ("GET", "HEAD"):
            if not rest:
                doc = {"windows": [w.public(now) for w in maintenance.windows()]}
                return answer(start_response, "200 OK", doc)
            try:
                return answer(start_response, "200 OK", maintenance.get(rest).public(now))
            except NotFound as exc:
                return error(start_response, "404 Not Found", exc.detail)
        if method not in ("POST", "DELETE") or (method == "POST") == bool(rest):
            start_response(
                "405 Method Not Allowed",
                [
                    ("Content-Type", "text/plain"),
                    ("Allow", "GET, POST" if not rest else "GET, DELETE"),
                ],
            )
            return [b"GET or POST /api/maintenance; GET or DELETE /api/maintenance/<id>\n"]
        refused = allowed(environ)
        if refused is not None:
            return error(start_response, "403 Forbidden", refused)
        if method == "DELETE":
            try:
                return answer(start_response, "200 OK", maintenance.end(rest).public(now))
            except NotFound as exc:
                return error(start_response, "404 Not Found", exc.detail)
            except Conflict as exc:
                return error(start_response, "409 Conflict", exc.detail)
            except OSError as exc:
                # the operator sees the 500; the NOC's log must say why the window did not end
                log.warning(
                    "DELETE %s/%s refused: cannot save %s: %s", PREFIX, rest, maintenance.path, exc
                )
                return error(start_response, "500 Internal Server Error", f"cannot save: {exc}")
        ctype = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return error(
                start_response, "415 Unsupported Media Type", "send Content-Type: application/json"
            )
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return error(
                start_response, "400 Bad Request", f"a JSON body of 1..{MAX_BODY} bytes", "body"
            )
        raw = environ["wsgi.input"].read(length)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return error(start_response, "400 Bad Request", f"not JSON: {exc}", "body")
        try:
            window = maintenance.create(body)
        except BadRequest as exc:
            return error(start_response, "400 Bad Request", exc.detail, exc.field)
        except Conflict as exc:
            return error(start_response, "409 Conflict", exc.detail)
        except OSError as exc:
            log.warning("POST %s refused: cannot save %s: %s", PREFIX, maintenance.path, exc)
            return error(start_response, "500 Internal Server Error", f"cannot save: {exc}")
        return answer(
            start_response,
            "201 Created",
            window.public(now),
            (("Location", f"{PREFIX}/{window.id}"),),
        )

    return app
