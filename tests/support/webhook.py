"""An Alertmanager webhook receiver for tests: records every notification it is sent (arrival
time, path, body), so a test can count pages and check what each said."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack import procs
from devstack.servers import free_port


class Webhook:
    """An HTTP receiver recording each Alertmanager notification with its arrival time."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        received, lock = self.received, self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append(
                        {"at": time.time(), "path": self.path, "body": json.loads(body)}
                    )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def notifications(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def dump(self, path: Path) -> None:
        """Every notification, for the post-mortem of a failed assertion."""
        path.write_text(json.dumps(self.notifications(), indent=1))

    def wait(self, what: str, timeout: float, **match: str) -> tuple[dict[str, Any], dict]:
        """The first notification (and alert in it) holding an alert whose status and labels
        match `match` (status=..., alertname=..., ...)."""
        found: list[tuple[dict[str, Any], dict]] = []

        def seen() -> bool:
            for n in self.notifications():
                for alert in n["body"]["alerts"]:
                    if matches(alert, match):
                        found.append((n, alert))
                        return True
            return False

        procs.wait_until(seen, timeout, what)
        return found[0]


def matches(alert: dict[str, Any], match: dict[str, str]) -> bool:
    return all(
        (alert["status"] if k == "status" else alert["labels"].get(k)) == v
        for k, v in match.items()
    )
