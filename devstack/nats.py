"""A real NATS cluster (JetStream + MQTT) on loopback: the other clustered broker Debian ships.

Why: docs/scaling.md compares it with RabbitMQ on the same questions (does a QoS 1 message
PUBACKed by one node survive that node's SIGKILL; how long until the cluster serves again).
Each node runs Debian's `nats-server` (2.9.10) with a config file written into its own
directory: client, cluster-route and MQTT ports (free ports on 127.0.0.1), JetStream storage,
a server name (the MQTT listener needs one, and JetStream). All nodes list all routes.
"""

from __future__ import annotations

import atexit
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from devstack.rabbitmq import listen_port
from devstack.servers import HOST, signal_group, tcp_port_open

BINARY = "/usr/sbin/nats-server"


_LIVE: set[NatsCluster] = set()


@atexit.register
def _kill_leftovers() -> None:
    for cluster in list(_LIVE):
        cluster.close()


class NatsNode:
    def __init__(self, cluster: NatsCluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.name = f"pantau-nats-{index}"
        self.dir = cluster.workdir / f"node{index}"
        self.client_port = listen_port()
        self.route_port = listen_port()
        self.mqtt_port = listen_port()
        self.log_path = self.dir / "nats.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://{HOST}:{n.route_port}" for n in self.cluster.nodes)
        conf = self.dir / "nats.conf"
        conf.write_text(
            f"""\
# written by devstack/nats.py
server_name: {self.name}
listen: {HOST}:{self.client_port}
jetstream {{ store_dir: "{self.dir / "jetstream"}" }}
mqtt {{ listen: {HOST}:{self.mqtt_port} }}
cluster {{ name: pantau, listen: {HOST}:{self.route_port}, routes: [{routes}] }}
"""
        )
        return conf

    def start(self, wait: bool = True) -> Self:
        if not Path(BINARY).exists():
            raise RuntimeError(f"{BINARY} not found; install it: apt-get install nats-server")
        conf = self._prepare()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [BINARY, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until an MQTT client with a persistent session is accepted: the MQTT listener opens
        before JetStream has its streams (seen here: a CONNECT 4 s after start is refused,
        "lookup sessions stream … timeout"), so an open port is not enough."""
        deadline = time.monotonic() + timeout
        while not (tcp_port_open(self.mqtt_port) and self._mqtt_session_ok()):
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} MQTT not ready after {timeout} s")
            time.sleep(0.2)

    def _mqtt_session_ok(self) -> bool:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        result: list[bool] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"devstack-probe-{self.index}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        client.on_connect = lambda c, u, f, rc, p: result.append(not rc.is_failure)
        try:
            client.connect(HOST, self.mqtt_port, keepalive=10)
            end = time.monotonic() + 10
            while not result and time.monotonic() < end:
                client.loop(0.2)
            client.disconnect()
        except OSError:
            return False
        return bool(result and result[0])

    def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=20)
        self._proc = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class NatsCluster:
    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes: list[NatsNode] = []
        self.nodes = [NatsNode(self, i) for i in range(1, size + 1)]

    @property
    def mqtt_ports(self) -> list[int]:
        return [n.mqtt_port for n in self.nodes]

    def start(self) -> Self:
        _LIVE.add(self)
        try:
            for node in self.nodes:
                node.start(wait=False)
            for node in self.nodes:
                node.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        _LIVE.discard(self)
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
