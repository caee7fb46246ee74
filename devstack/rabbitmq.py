"""A real RabbitMQ cluster on loopback for tests: three (or N) nodes as plain processes.

Why a real cluster and not one node: what the clustered path must get right lives in the
cluster: a quorum queue's leader dies with its node and a follower takes over, an
unacknowledged message goes back to the queue when its consumer's connection dies, a single
active consumer hands over to the next. One node shows none of it.

Each node runs Debian's `rabbitmq-server` (3.10.8) from a directory of its own under the
caller's `workdir`, configured only through RABBITMQ_* variables and files written there: its
node name, AMQP, MQTT and Erlang distribution ports (free ports on 127.0.0.1), its data
(mnesia), logs, enabled plugins (rabbitmq_mqtt, rabbitmq_consistent_hash_exchange) and config.
The nodes share an Erlang cookie (HOME points at `workdir`, which holds `.erlang.cookie`) and an
epmd that this module starts on a free port of its own (ERL_EPMD_PORT), so a cluster here never
meets another test's or the system's RabbitMQ. `/usr/lib/rabbitmq/bin/…` is run, not
`/usr/sbin/…`: Debian's wrapper there switches to the `rabbitmq` user, which could not write
the temp dirs.

What was seen on this machine (2 cores, shared): the first node starts alone, the others are
told by `cluster_formation.classic_config` to join it at their first boot and start together;
the three serve about 27 s after the start. A node killed with SIGKILL comes back with its data
in about 5 s and rejoins on its own. `rabbitmqctl` costs 1–2 s of Erlang start-up per call, so
the readiness check is the node's MQTT (and MQTT TLS, with `tls`) and AMQP ports (the MQTT listener opens after the core,
the plugins and the cluster join). After a SIGKILL the script this module started is reaped at
once but beam.smp, its child, lets go of its ports a moment later (and, orphaned, stays a
zombie where PID 1 does not reap): kill() waits for the ports to close. The consistent-hash
exchange plugin is enabled for experiments; pantau's routing binds sites explicitly
(collector/amqp_intake.py says why).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from devstack.servers import HOST, signal_group, tcp_port_open

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
EPMD = "/usr/bin/epmd"
PLUGINS = ("rabbitmq_mqtt", "rabbitmq_consistent_hash_exchange")
STARTUP_TIMEOUT = 90.0


def _binary(name: str) -> str:
    path = RABBIT_BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} not found; install it: apt-get install rabbitmq-server")
    return str(path)


def _epmd() -> str:
    found = shutil.which("epmd") or (EPMD if Path(EPMD).exists() else None)
    if found is None:
        lib = sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))
        if not lib:
            raise RuntimeError("epmd not found; install it: apt-get install erlang-base")
        found = str(lib[-1])
    return found


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the nodes' MQTT TLS listener (ssl_options.*): the CA that signed the
    certificate, the certificate (its names are what agents check) and its key."""

    ca: Path
    cert: Path
    key: Path


_LIVE: set[RabbitCluster] = set()


@atexit.register
def _kill_leftovers() -> None:
    """A test that crashed past its fixture leaves no node behind (as devstack/servers.py)."""
    for cluster in list(_LIVE):
        cluster.close()


_TAKEN: set[int] = set()


def listen_port() -> int:
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range, for a listener that
    must come back on the same port after a kill.

    Why not free_port(): it hands out ephemeral ports, and while a killed node is down its
    port is free for any outgoing connection to take as its local port, and polling it with
    connect() can even connect the socket to itself (TCP simultaneous open) and leave it in
    TIME_WAIT: the restarted node then failed with eaddrinuse (seen here, 1 restart in ~10).
    Ports below the ephemeral range are never picked for outgoing connections."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    floor = max(1024, low - 12000)
    for _ in range(1000):
        port = random.randrange(floor, low)
        if port not in _TAKEN and _bindable(port):
            _TAKEN.add(port)
            return port
    raise RuntimeError(f"no free port in [{floor}, {low})")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


class RabbitNode:
    """One RabbitMQ node of a `RabbitCluster`: start, kill (SIGKILL), stop, restart."""

    def __init__(self, cluster: RabbitCluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.name = f"pantau{index}@localhost"
        self.dir = cluster.workdir / f"node{index}"
        self.amqp_port = listen_port()
        self.mqtt_port = listen_port()
        self.dist_port = listen_port()
        # MQTT over TLS (the agents' listener in deploy/rabbitmq/rabbitmq.conf), when the
        # cluster was given a certificate
        self.mqtts_port = listen_port() if cluster.tls is not None else None
        self.log_path = self.dir / "stdout.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def env(self) -> dict[str, str]:
        return {
            **self.cluster.env(),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.dir / "plugins-expanded"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.cluster.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
        }

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        seed = self.cluster.nodes[0].name
        tls = ""
        if self.cluster.tls is not None:
            tls = (
                f"mqtt.listeners.ssl.default = {HOST}:{self.mqtts_port}\n"
                f"ssl_options.cacertfile = {self.cluster.tls.ca}\n"
                f"ssl_options.certfile = {self.cluster.tls.cert}\n"
                f"ssl_options.keyfile = {self.cluster.tls.key}\n"
                "ssl_options.verify = verify_none\n"
                "ssl_options.fail_if_no_peer_cert = false\n"
            )
        (self.dir / "rabbitmq.conf").write_text(
            f"""\
# written by devstack/rabbitmq.py
listeners.tcp.default = {HOST}:{self.amqp_port}
mqtt.listeners.tcp.default = {HOST}:{self.mqtt_port}
mqtt.allow_anonymous = true
loopback_users = none
log.file.level = info
log.console = false
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = {seed}
# the test machine's disk may be nearly full; a node that blocks publishers would hide the
# behaviour under test
disk_free_limit.absolute = 1MB
vm_memory_high_watermark.relative = 0.9
{tls}{self.cluster.extra_conf}
"""
        )
        (self.dir / "advanced.config").write_text("[].\n")

    def start(self, wait: bool = True) -> Self:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._prepare()
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start {self.name}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [_binary("rabbitmq-server")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=self.env(),
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def ready(self) -> bool:
        return (
            tcp_port_open(self.mqtt_port)
            and tcp_port_open(self.amqp_port)
            and (self.mqtts_port is None or tcp_port_open(self.mqtts_port))
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise RuntimeError(
                    f"{self.name} exited with code {code} during start-up:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the node's process group: a crash, nothing is flushed or handed over."""
        proc = self._proc
        if proc is None:
            return
        signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=20)
        self._proc = None
        self._wait_ports_closed()

    def _wait_ports_closed(self, timeout: float = 20.0) -> None:
        # The script that was started is reaped first; beam.smp, its child, lets go of its
        # sockets a moment later: until then the node would look ready to a new start.
        # Likewise epmd forgets the node's name only once it sees the node's connection
        # close, and the distribution port must be free again: a restart before that fails
        # ("name … seems to be in use", or the port taken).
        deadline = time.monotonic() + timeout
        while (
            tcp_port_open(self.mqtt_port)
            or tcp_port_open(self.amqp_port)
            or (self.mqtts_port is not None and tcp_port_open(self.mqtts_port))
            or self.name.split("@")[0] in self.cluster.epmd_names()
            or not _bindable(self.dist_port)
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: still holding on {timeout} s after it ended")
            time.sleep(0.05)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (RabbitMQ stops cleanly on it), SIGKILL if it hangs."""
        proc = self._proc
        if proc is None:
            return
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=20)
        self._proc = None
        self._wait_ports_closed()

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run `rabbitmqctl -n <this node> ARGS` and return its output (raise on failure)."""
        done = subprocess.run(
            [_binary("rabbitmqctl"), "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.name} failed ({done.returncode}):\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        texts = []
        for path in [self.log_path, *sorted((self.dir / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                texts.append(
                    f"== {path}\n"
                    + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n".join(texts) or "(no log)"

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<RabbitNode {self.name} amqp {self.amqp_port} mqtt {self.mqtt_port} {state}>"


class RabbitCluster:
    """N RabbitMQ nodes clustered on loopback, with their own epmd and Erlang cookie."""

    def __init__(
        self, workdir: Path, size: int = 3, extra_conf: str = "", tls: TlsFiles | None = None
    ) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_conf = extra_conf
        self.tls = tls
        self.epmd_port = listen_port()
        self._epmd: subprocess.Popen[bytes] | None = None
        self.nodes: list[RabbitNode] = []
        self.nodes = [RabbitNode(self, i) for i in range(1, size + 1)]

    def env(self) -> dict[str, str]:
        """What every node and every `rabbitmqctl` call needs: cookie (HOME), epmd, no /etc."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
        }

    def _prepare(self) -> None:
        cookie = self.workdir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20))
            cookie.chmod(0o400)
        (self.workdir / "rabbitmq-env.conf").write_text("# empty: every setting is in the env\n")
        (self.workdir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")

    def start(self) -> Self:
        """Start epmd, the first node, then the others together; return once all serve."""
        self._prepare()
        _LIVE.add(self)
        try:
            self._epmd = subprocess.Popen(
                [_epmd(), "-port", str(self.epmd_port), "-address", HOST],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while not tcp_port_open(self.epmd_port):
                if time.monotonic() > deadline:
                    raise TimeoutError("epmd did not listen within 10 s")
                time.sleep(0.05)
            self.nodes[0].start()
            for node in self.nodes[1:]:
                node.start(wait=False)
            for node in self.nodes[1:]:
                node.wait_ready()
            self.wait_clustered()
        except BaseException:
            self.close()
            raise
        return self

    def epmd_names(self) -> set[str]:
        """Node names (without @host) registered with this cluster's epmd right now."""
        done = subprocess.run(
            [_epmd(), "-port", str(self.epmd_port), "-names"],
            env=self.env(),
            capture_output=True,
            timeout=10,
            check=False,
        )
        # "name pantau1 at port 41234" lines
        return {
            line.split()[1]
            for line in done.stdout.decode(errors="replace").splitlines()
            if line.startswith("name ")
        }

    def running_nodes(self, via: RabbitNode | None = None) -> list[str]:
        node = via or next(n for n in self.nodes if n.running)
        status: dict[str, Any] = json.loads(node.ctl("cluster_status", "--formatter", "json"))
        return sorted(status.get("running_nodes", []))

    def wait_clustered(self, timeout: float = 60.0) -> None:
        """Until every running node sees every other running node."""
        want = sorted(n.name for n in self.nodes if n.running)
        deadline = time.monotonic() + timeout
        while True:
            got = self.running_nodes()
            if got == want:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster: running {got}, expected {want}")
            time.sleep(1)

    @property
    def mqtt_ports(self) -> list[int]:
        return [n.mqtt_port for n in self.nodes]

    @property
    def mqtts_ports(self) -> list[int]:
        """The nodes' MQTT TLS ports (a cluster started with `tls`)."""
        return [n.mqtts_port for n in self.nodes if n.mqtts_port is not None]

    @property
    def amqp_ports(self) -> list[int]:
        return [n.amqp_port for n in self.nodes]

    def close(self) -> None:
        """Stop every node (SIGKILL: a test's data is thrown away) and the epmd."""
        _LIVE.discard(self)
        for node in self.nodes:
            node.kill()
        if self._epmd is not None:
            signal_group(self._epmd, signal.SIGKILL)
            self._epmd.wait(timeout=10)
            self._epmd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
