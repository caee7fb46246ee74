"""The collector's HTTP face: /metrics for Prometheus, /healthz (alive), /readyz (useful) and
the read-only status page at / (collector/statuspage.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from collector import statuspage
from collector.inventory import Inventory
from collector.maintenance.window import Window
from collector.rootcause import CauseHold
from collector.state import State

StartResponse = Callable[..., Any]
Ready = Callable[[], tuple[bool, str]]
WsgiApp = Callable[..., Iterable[bytes]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# The status page runs no scripts and loads nothing: say so, so a browser refuses anything else.
_PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


def make_app(
    metrics_app: WsgiApp,
    ready: Ready,
    state: State | None = None,
    *,
    maintenance_api: WsgiApp | None = None,
    in_maintenance: Callable[[], Sequence[Window]] | None = None,
    inventory: Inventory | None = None,
    alarms_app: WsgiApp | None = None,
    cause_hold: CauseHold | None = None,
) -> WsgiApp:
    """The WSGI app; `metrics_app` serves /metrics; without `state` there is no status page (/
    answers 404); `maintenance_api` serves /api/maintenance (collector/maintenance/api.py) and
    `in_maintenance` gives the windows in force, which the status page marks; `alarms_app`
    serves /metrics/alarms (only pantau_device_alarm, small enough to scrape every 5 s)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/", "/index.html") and state is not None:
            method = environ.get("REQUEST_METHOD", "GET")
            if method not in ("GET", "HEAD"):
                start_response(
                    "405 Method Not Allowed",
                    [("Content-Type", "text/plain"), ("Allow", "GET, HEAD")],
                )
                return [b"the status page is read-only\n"]
            windows = in_maintenance() if in_maintenance is not None else ()
            events = getattr(state, "events", None)  # alarms and recent traps
            page = statuspage.render(
                state.snapshot(),
                maintenance=windows,
                inventory=inventory,
                events=events.snapshot() if events is not None else None,
                cause_hold=cause_hold,
            ).encode()
            start_response("200 OK", [*_PAGE_HEADERS, ("Content-Length", str(len(page)))])
            return [] if method == "HEAD" else [page]
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/metrics/alarms" and alarms_app is not None:
            return alarms_app(environ, start_response)
        if maintenance_api is not None and (
            path == "/api/maintenance" or path.startswith("/api/maintenance/")
        ):
            return maintenance_api(environ, start_response)
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok, why = ready()
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
            )
            return [why.encode() + b"\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /, /metrics, /healthz or /readyz\n"]

    return app


class HttpServer:
    def __init__(self, address: tuple[str, int], app: WsgiApp) -> None:
        self._server = make_server(
            address[0], address[1], app, server_class=_Server, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
