"""The publisher against a real Mosquitto: a stop with a backlog keeps to outbox.shutdown_timeout,
and publishes the broker refuses (ACL, MQTT 5 reason code 135) stay in the outbox.

Both run agent.publisher.Publisher in process on a pre-filled outbox, so the test controls
exactly what is pending; the broker is a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import AgentConfig, load_agent_config
from agent.outbox import Outbox
from agent.publisher import Publisher
from devstack import procs
from devstack.servers import Mosquitto, free_port
from pantau.wire import Status, decode_status, status_topic

REPO = Path(__file__).resolve().parent.parent
ACL = REPO / "deploy" / "mosquitto" / "pantau.acl"


class Latency:
    """A TCP relay that holds every broker→agent chunk for `delay` seconds (a VSAT hop's
    PUBACKs), in order: with a window of 32 in flight it caps the agent at ~32/delay per second."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream = upstream_port
        self.delay = delay
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Latency:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            server.settimeout(None)
            self._spawn(self._pipe, client, server, 0.0)
            self._spawn(self._pipe, server, client, self.delay)

    def _pipe(self, src: socket.socket, dst: socket.socket, delay: float) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def send() -> None:
            while True:
                due, data = chunks.get()
                if not data:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    dst.sendall(data)
                except OSError:
                    break
            for s in (src, dst):
                s.close()

        self._spawn(send)
        try:
            while data := src.recv(65536):
                chunks.put((time.monotonic() + delay, data))
        except OSError:
            pass
        chunks.put((0.0, b""))


def agent_cfg(tmp_path: Path, port: int, site: str = "s1", **extra: Any) -> AgentConfig:
    device = procs.snmpsim_device("radio", "public", free_port("udp"))
    path = procs.agent_config(
        tmp_path / f"agent-{site}-{port}.yaml",
        site=site,
        broker_port=port,
        devices=[device],
        **extra,
    )
    return load_agent_config(path)


def status_fn(site: str) -> Any:
    def status(outbox: Outbox, latency: float) -> Status:
        stats = outbox.stats()
        return Status(
            v=1,
            site=site,
            online=True,
            ts_ms=int(time.time() * 1000),
            outbox_pending=stats.pending,
            pending_from=stats.pending_from,
        )

    return status


def prefill(path: Path, site: str, n: int) -> None:
    """`n` pending sample sets of device radio, written straight into the database (put()
    fsyncs each one: 10,000 of them would take the test's time, not the agent's)."""
    Outbox(path, max_bytes=1 << 40, max_age_s=86400).open().close()
    now = int(time.time() * 1000)
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO outbox (kind, device, seq, first, ts_ms, topic, payload) "
        "VALUES (0, 'radio', ?, ?, ?, ?, ?)",
        [
            (i, i, now - (n - i) * 1000, f"pantau/{site}/radio/metrics", payload(i))
            for i in range(1, n + 1)
        ],
    )
    db.execute("INSERT INTO sequences VALUES ('radio', ?)", (n,))
    db.commit()
    db.close()


def payload(i: int) -> bytes:
    """600 bytes that say which item they are."""
    return i.to_bytes(4, "big") * 150


def open_box(cfg: AgentConfig) -> Outbox:
    return Outbox(cfg.outbox.path, max_bytes=cfg.outbox.max_bytes, max_age_s=cfg.outbox.max_age)


class Subscriber:
    """A paho client that records what arrives on `topic` (retained messages included)."""

    def __init__(
        self, port: int, topic: str, username: str | None = None, password: str | None = None
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "subscriber never got its SUBACK"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def topics(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- item 1: stop keeps to shutdown_timeout ------------------------------------------------------

PENDING = 10_000
SHUTDOWN_TIMEOUT = 1.0
MARGIN = 3.0  # a behaviour bound, not a benchmark


def test_stop_with_a_backlog_keeps_to_shutdown_timeout(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pantau.agent")
    with Latency(mosquitto.port, delay=0.1) as hop:  # ~320 publishes/s: the backlog is ~30 s
        cfg = agent_cfg(
            tmp_path, hop.port, outbox={"shutdown_timeout": SHUTDOWN_TIMEOUT, "heartbeat": 60.0}
        )
        prefill(cfg.outbox.path, "s1", PENDING)
        box = open_box(cfg).open()
        assert len(box) == PENDING
        publisher = Publisher(cfg, box, status_fn("s1"))
        elapsed: float | None = None

        async def main() -> None:
            nonlocal elapsed
            stop = asyncio.Event()
            task = asyncio.create_task(publisher.run(stop))
            await asyncio.wait_for(publisher.connected.wait(), 15)
            await asyncio.sleep(0.5)  # the backlog is flowing
            t0 = time.monotonic()
            stop.set()
            done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_TIMEOUT + MARGIN)
            elapsed = time.monotonic() - t0
            if done:
                task.result()
            else:  # the bug: it would drain the whole backlog first; do not wait for that
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        try:
            asyncio.run(main())
        finally:
            box.close()
    print(f"stop took {elapsed:.2f}s with {PENDING} pending")
    assert elapsed is not None and elapsed < SHUTDOWN_TIMEOUT + MARGIN, (
        f"run() took {elapsed:.1f}s to return after stop (shutdown_timeout {SHUTDOWN_TIMEOUT}s)"
    )
    sent = publisher.sent

    # the clean "agent stopped" status is the retained status
    sub = Subscriber(mosquitto.port, status_topic("s1"))
    try:
        procs.wait_until(lambda: sub.topics("/status"), 10, "the retained status")
        status = decode_status(sub.topics("/status")[-1])
    finally:
        sub.close()
    assert (status.online, status.reason) == (False, "agent stopped")

    # what was not sent is still on disk
    with open_box(cfg) as again:
        left = len(again)
        assert again.stats().pending == left
    assert left == PENDING - sent
    assert left > 0, "the backlog was meant to outlast the shutdown timeout"
    assert any("stay in the outbox on disk" in r.getMessage() for r in caplog.records)


# -- item 2: publishes the broker refuses are not acknowledged ----------------------------------


class AclBroker:
    """Mosquitto with the shipped ACL, a password file made here and no anonymous access."""

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        acl = workdir / "pantau.acl"
        shutil.copy(ACL, acl)
        passwd = workdir / "pantau.passwd"
        for i, (user, password) in enumerate(users.items()):
            flags = ["-c"] if i == 0 else []
            subprocess.run(
                ["mosquitto_passwd", "-b", *flags, str(passwd), user, password],
                check=True,
                capture_output=True,
                timeout=10,
            )
        conf = f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n"
        self.server = Mosquitto(workdir / "mosquitto", extra_conf=conf)

    def __enter__(self) -> Mosquitto:
        self.server.start()
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


N_REFUSED = 50


def test_publishes_the_broker_refuses_stay_in_the_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    users = {"site-a": "pw-a", "site-b": "pw-b", "pantau-collector": "pw-c"}
    caplog.set_level(logging.INFO, logger="pantau.agent")
    with AclBroker(tmp_path / "broker", users) as broker:
        noc = Subscriber(broker.port, "pantau/#", "pantau-collector", "pw-c")
        try:

            def cfg_as(username: str) -> AgentConfig:
                login = {
                    "username": username,
                    "password_file": str(secret(tmp_path / f"{username}.pw", users[username])),
                    "reconnect_min": 0.2,
                    "reconnect_max": 1.0,
                }
                return agent_cfg(
                    tmp_path,
                    broker.port,
                    site="site-b",
                    broker=login,
                    outbox={"shutdown_timeout": 2.0, "heartbeat": 0.5},
                )

            # site-b logs in as site-a: the ACL lets it write pantau/site-a/# only
            wrong = cfg_as("site-a")
            prefill(wrong.outbox.path, "site-b", N_REFUSED)
            box = open_box(wrong).open()
            publisher = Publisher(wrong, box, status_fn("site-b"))
            seen: dict[str, Any] = {}

            async def run_for(seconds: float) -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(publisher.run(stop))
                await asyncio.wait_for(publisher.connected.wait(), 15)
                await asyncio.sleep(seconds)
                seen["refusing"] = getattr(publisher, "refusing", None)
                seen["ready"] = getattr(publisher, "ready", None)
                seen["status"] = publisher.describe() if hasattr(publisher, "describe") else ""
                stop.set()
                await asyncio.wait_for(task, 10)

            try:
                asyncio.run(run_for(3.0))
            finally:
                box.close()
            with open_box(wrong) as again:
                assert len(again) == N_REFUSED, "refused publishes were acknowledged"
            refused = publisher.refused
            print(f"refused {refused} publishes in 3 s; last: {publisher.last_refusal}")
            assert refused > 0
            assert refused < 2000, "a refused publish must be retried with backoff, not at once"
            assert "135" in publisher.last_refusal
            assert seen["refusing"] is True and seen["ready"] is False
            assert "REFUSES" in seen["status"] and "site-b" in seen["status"]
            errors = [
                r.getMessage()
                for r in caplog.records
                if r.name == "pantau.agent.publisher" and r.levelno >= logging.ERROR
            ]
            assert errors, "no error logged for the refused publishes"
            assert "topic=pantau/site-b/" in errors[0] and "reason_code=135" in errors[0]
            assert len(errors) <= 2, f"refusal errors are not repeat-limited: {len(errors)}"
            assert not noc.topics("/metrics"), "the broker was expected to drop them"

            # fixed: the right login, and everything is delivered
            right = cfg_as("site-b")
            box = open_box(right).open()
            publisher = Publisher(right, box, status_fn("site-b"))

            async def run_until_empty() -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(publisher.run(stop))
                deadline = time.monotonic() + 20
                while not box.empty() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert not publisher.refusing and publisher.ready
                stop.set()
                await asyncio.wait_for(task, 10)

            try:
                asyncio.run(run_until_empty())
            finally:
                box.close()
            assert publisher.refused == 0
            with open_box(right) as again:
                assert len(again) == 0
            procs.wait_until(
                lambda: len(noc.topics("/metrics")) >= N_REFUSED, 10, "every sample set at the NOC"
            )
            got = sorted(int.from_bytes(p[:4], "big") for p in noc.topics("/metrics"))
            assert set(got) == set(range(1, N_REFUSED + 1))
        finally:
            noc.close()
