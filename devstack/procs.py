"""Run pantau's own agent and collector as real processes, with configs written for a test stack.

Shared by the end-to-end tests, the demo and the benchmarks, so all three exercise the same
command lines a systemd unit would run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def agent_config(
    path: Path,
    *,
    site: str,
    broker_port: int,
    devices: list[dict[str, Any]],
    interval: float = 2.0,
    timeout: float = 0.5,
    retries: int = 0,
    **extra: Any,
) -> Path:
    doc: dict[str, Any] = {
        "site": site,
        "broker": {
            "host": "127.0.0.1",
            "port": broker_port,
            "reconnect_min": 0.2,
            "reconnect_max": 2.0,
        },
        "defaults": {"interval": interval, "timeout": timeout, "retries": retries},
        "devices": devices,
        "outbox": {"path": str(path.parent / f"{site}-outbox.sqlite"), "heartbeat": 2.0},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return _write(path, doc)


def snmpsim_device(name: str, community: str, port: int, **extra: Any) -> dict[str, Any]:
    dev = {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "snmp": {"version": "2c", "community": community},
    }
    dev.update(extra)
    return dev


def collector_config(
    path: Path, *, broker_port: int, influx_url: str, http_port: int, **extra: Any
) -> Path:
    doc: dict[str, Any] = {
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "influx": {"url": influx_url, "flush_interval": 0.2, "retry_min": 0.2, "retry_max": 2.0},
        "http": {"listen": f"127.0.0.1:{http_port}"},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return _write(path, doc)


class Proc:
    """A pantau process with its output in a log file; stop() sends SIGTERM, kill() SIGKILL."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Proc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def agent(config: Path, log_path: Path, env: dict[str, str] | None = None) -> Proc:
    return Proc([str(BIN / "pantau-agent"), "run", "--config", str(config)], log_path, env)


def collector(config: Path, log_path: Path, env: dict[str, str] | None = None) -> Proc:
    return Proc([str(BIN / "pantau-collector"), "run", "--config", str(config)], log_path, env)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse a collector's /metrics into {(name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = http_get(f"http://127.0.0.1:{port}/metrics")
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # retried until the deadline; reported if it never passes
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
