"""The systemd units and the sd_notify protocol.

Units: `systemd-analyze security --offline=yes` must rate each at 2.0 or lower and
`systemd-analyze verify` must be silent. verify checks that ExecStart= programs exist and are
executable, so it runs with --root on a scratch root holding the host's own system units and the
two programs at /opt/pantau/venv/bin (small scripts that exec this venv's console scripts).
tests/test_install.py verifies the units again as install.sh lays them out, with the real venv.

Notify: a test binds a unix datagram socket, passes it as NOTIFY_SOCKET (with WATCHDOG_USEC) to
the real `pantau-agent run` and `pantau-collector run`, and reads what they send. That a stuck
poller withholds the watchdog ping is shown in-process, with a poll that ignores its deadline:
a real poll cannot overrun (asyncio.timeout bounds it), which is why a stuck one is a bug worth
a restart.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack import procs
from devstack.servers import Mosquitto, free_port
from pantau import systemd as sdnotify
from pantau.systemd import Liveness, Notifier, Supervisor

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "deploy" / "systemd"
COMPONENTS = ("agent", "collector")
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None and not os.environ.get("CI"),
    reason="systemd-analyze missing: apt-get install systemd (make setup does)",
)


def unit(component: str) -> Path:
    return UNITS / f"pantau-{component}.service"


def directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


# ------------------------------------------------------------------------------------------
# the unit files


@needs_analyze
@pytest.mark.parametrize("component", COMPONENTS)
def test_unit_exposure_is_at_most_2(component: str) -> None:
    result = subprocess.run(
        [
            str(ANALYZE),
            "security",
            "--offline=yes",
            "--threshold=20",
            "--no-pager",
            str(unit(component)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    exposure = float(found.group(1))
    print(f"pantau-{component}.service exposure {exposure}")
    assert exposure <= 2.0, result.stdout
    assert result.returncode == 0, result.stderr  # --threshold=20: exposure above 2.0 fails


def scratch_root(base: Path) -> Path:
    """A root for `systemd-analyze verify --root`: the host's system units, our units in
    /etc/systemd/system and runnable programs where ExecStart= looks for them."""
    root = base / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    bin_dir = root / "opt/pantau/venv/bin"
    bin_dir.mkdir(parents=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for component in COMPONENTS:
        program = bin_dir / f"pantau-{component}"
        program.write_text(f'#!/bin/sh\nexec {procs.BIN}/pantau-{component} "$@"\n')
        program.chmod(0o755)
        shutil.copy(unit(component), root / "etc/systemd/system")
    return root


def verify(root: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANALYZE), "verify", f"--root={root}", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_analyze
def test_units_verify_clean(tmp_path: Path) -> None:
    root = scratch_root(tmp_path)
    result = verify(root, "pantau-agent.service", "pantau-collector.service")
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
    # the check is not vacuous: a typo and a missing program are both reported
    broken = root / "etc/systemd/system/pantau-agent.service"
    broken.write_text(broken.read_text().replace("WatchdogSec=", "WatchDogSec="))
    (root / "opt/pantau/venv/bin/pantau-collector").unlink()
    result = verify(root, "pantau-agent.service", "pantau-collector.service")
    assert "Unknown key 'WatchDogSec'" in result.stderr
    assert "pantau-collector is not executable" in result.stderr


@pytest.mark.parametrize("component", COMPONENTS)
def test_unit_runs_the_service_the_way_the_code_expects(component: str) -> None:
    d = directives(unit(component))
    config = f"--config /etc/pantau/{component}.yaml"
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["ExecStartPre"] == [f"/opt/pantau/venv/bin/pantau-{component} check-config {config}"]
    assert d["ExecStart"] == [f"/opt/pantau/venv/bin/pantau-{component} run {config}"]
    assert d["Restart"] == ["on-failure"]
    assert int(d["WatchdogSec"][0]) >= 10  # pinged every WatchdogSec/2; Liveness grace is 5 s
    # READY may take the broker wait plus start-up (check-config, imports) on a slow gateway
    assert int(d["TimeoutStartSec"][0]) > sdnotify.READY_WAIT + 30
    assert d["StateDirectory"] == [f"pantau-{component}"]
    assert d["User"] == [f"pantau-{component}"]
    assert (UNITS / f"pantau-{component}.sysusers").read_text().split()[:2] == [
        "u",
        f"pantau-{component}",
    ]
    assert "ExecReload" not in d  # no reload: a restart loses nothing (docs/deploy.md)
    assert "AF_UNIX" in d["RestrictAddressFamilies"][0]  # the notify socket and journald


# ------------------------------------------------------------------------------------------
# the protocol


class NotifySocket:
    """A stand-in for systemd's notification socket."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            name = f"pantau-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def env(self, watchdog_usec: int | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": self.address}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def collect(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll()

    def poll(self) -> None:
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, timeout: float, value: str = "1") -> dict[str, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for _, fields in self.messages:
                if fields.get(key) == value:
                    return fields
            self.poll()
        raise TimeoutError(f"no {key}={value} within {timeout}s; got {self.messages}")

    def times(self, key: str) -> list[float]:
        return [t for t, fields in self.messages if key in fields]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Any:
    sock = NotifySocket()
    yield sock
    sock.close()


def test_notifier_speaks_the_protocol(tmp_path: Path) -> None:
    path_sock = NotifySocket(tmp_path / "notify")
    abstract = NotifySocket()
    try:
        for sock in (path_sock, abstract):
            n = Notifier(sock.env(watchdog_usec=3_000_000))
            assert n.enabled and n.watchdog_s == 3.0
            assert n.ready("line one\nline two")
            assert n.watchdog()
            assert n.status("line one line two") is False  # unchanged: not sent again
            assert n.stopping()
            sock.collect(0.2)
            assert [m for _, m in sock.messages] == [
                {"READY": "1", "STATUS": "line one line two"},
                {"WATCHDOG": "1"},
                {"STOPPING": "1", "STATUS": "stopping"},
            ]
            n.close()
    finally:
        path_sock.close()
        abstract.close()
    # not under systemd, or the watchdog meant for another process: nothing, and no error
    assert not Notifier({}).enabled and not Notifier({}).ready()
    assert (
        Notifier(
            {
                "NOTIFY_SOCKET": "/x",
                "WATCHDOG_USEC": "5000000",
                "WATCHDOG_PID": str(os.getpid() + 1),
            }
        ).watchdog_s
        == 0
    )
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    assert gone.ready() is False and gone.watchdog() is False


def test_liveness_and_supervisor_withhold_pings_from_a_stuck_loop(notify: NotifySocket) -> None:
    now = [100.0]
    live = Liveness(grace=1.0, clock=lambda: now[0])
    sup = Supervisor(
        Notifier(notify.env(watchdog_usec=2_000_000)),
        status=lambda: "fine",
        overdue=live.overdue,
        ready_wait=5.0,
        clock=lambda: now[0],
    )
    live.expect("radio", 10.0)  # asleep until its next poll
    live.expect("modem", None)  # waiting for a slot: watched through the slot's holders
    sup.tick(started=False)
    assert not sup.is_ready  # neither started nor past ready_wait
    now[0] += 5.0
    sup.tick(started=False)  # the broker never answered: ready anyway, after ready_wait
    assert sup.is_ready and sup.period == 1.0
    now[0] += 6.5  # radio overslept its promise by more than the grace
    assert live.overdue() == ["radio"]
    sup.tick(started=True)
    live.expect("radio", 2.0)  # it came back and started a poll
    sup.tick(started=True)
    live.forget("radio")
    sup.stopping()
    notify.collect(0.2)
    assert [m for _, m in notify.messages] == [
        {"READY": "1", "STATUS": "fine"},
        {"WATCHDOG": "1"},
        {"STATUS": "stuck: no progress from radio"},
        {"WATCHDOG": "1"},
        {"STATUS": "fine"},
        {"STOPPING": "1", "STATUS": "stopping"},
    ]


def test_agent_withholds_the_watchdog_while_a_poller_is_stuck(
    tmp_path: Path, notify: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.config import load_agent_config
    from agent.poller import DevicePoller
    from agent.service import Agent, open_outbox
    from pantau.wire import SampleSet

    config = procs.agent_config(
        tmp_path / "agent.yaml",
        site="s1",
        broker_port=free_port(),
        interval=0.3,
        devices=[
            procs.snmpsim_device("fine", "public", free_port("udp")),
            procs.snmpsim_device("stuck", "public", free_port("udp")),
        ],
    )
    seq = iter(range(1, 10**6))

    async def poll(self: DevicePoller) -> SampleSet:
        if self.device.name == "stuck" and time.monotonic() > stuck_after:
            await asyncio.sleep(3600)  # a poll that ignores its deadline: a bug
        await asyncio.sleep(0.01)
        return SampleSet(
            site="s1",
            device=self.device.name,
            seq=next(seq),
            ts_ms=int(time.time() * 1000),
            duration_ms=10,
            up=False,
            reason="timeout",
        )

    monkeypatch.setattr(DevicePoller, "poll", poll)
    for key, value in notify.env(watchdog_usec=200_000).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = load_agent_config(config)
    outbox = open_outbox(cfg)
    agent = Agent(cfg, outbox)
    agent.liveness = Liveness(grace=0.2)
    stuck_after = time.monotonic() + 1.5

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await asyncio.get_running_loop().run_in_executor(None, notify.collect, 4.0)
        stop.set()
        await task

    try:
        asyncio.run(main())
    finally:
        outbox.close()
    notify.collect(0.2)
    ready = notify.times("READY")
    pings = notify.times("WATCHDOG")
    assert ready and len([t for t in pings if t < ready[0] + 1.0]) >= 5, notify.messages
    # stuck from 1.5 s; overdue after its deadline (0.27 s) and the grace: pings end by ~2.3 s
    last = pings[-1] - ready[0]
    assert last < 2.6, notify.messages
    assert notify.times("STOPPING")[-1] - pings[-1] > 1.0
    statuses = [m["STATUS"] for _, m in notify.messages if "STATUS" in m]
    assert "stuck: no progress from stuck" in statuses, statuses


# ------------------------------------------------------------------------------------------
# the real processes


def agent_yaml(tmp_path: Path, broker_port: int) -> Path:
    return procs.agent_config(
        tmp_path / "agent.yaml",
        site="s1",
        broker_port=broker_port,
        interval=0.5,
        devices=[procs.snmpsim_device("radio", "public", free_port("udp"))],
    )


def test_agent_process_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, mosquitto: Mosquitto, notify: NotifySocket
) -> None:
    config = agent_yaml(tmp_path, mosquitto.port)
    agent = procs.agent(config, tmp_path / "agent.log", notify.env(watchdog_usec=1_000_000))
    with agent:
        ready = notify.wait_for("READY", 20)
        assert "broker connected" in ready["STATUS"], ready
        notify.collect(2.0)
        pings = [t for t in notify.times("WATCHDOG") if t > notify.times("READY")[0]]
        assert len(pings) >= 3, notify.messages  # every 0.5 s (half of WATCHDOG_USEC)
        assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) < 0.9
        # a frozen process sends nothing: systemd would kill it after WatchdogSec
        assert agent.popen is not None
        agent.popen.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(1.5)
        agent.popen.send_signal(signal.SIGCONT)
        notify.collect(1.5)
        thawed = [t for t in notify.times("WATCHDOG") if t > frozen_at]
        assert thawed and thawed[0] - frozen_at >= 1.4, "pings resume only once it runs again"
        assert agent.stop() == 0
    notify.collect(0.3)
    assert notify.wait_for("STOPPING", 1)
    assert "told systemd: ready" in agent.log()


def test_agent_is_ready_without_its_broker_and_stops_on_sighup(
    tmp_path: Path, notify: NotifySocket
) -> None:
    # The site's uplink is down at boot: READY must come anyway, or systemd would kill the
    # agent that should be polling into its outbox.
    config = agent_yaml(tmp_path, free_port())
    agent = procs.agent(config, tmp_path / "agent.log", notify.env())
    with agent:
        started = time.monotonic()
        ready = notify.wait_for("READY", sdnotify.READY_WAIT + 10)
        assert time.monotonic() - started < sdnotify.READY_WAIT + 5
        assert "broker unreachable" in ready["STATUS"], ready
        assert agent.popen is not None
        agent.popen.send_signal(signal.SIGHUP)  # no reload: a graceful stop, like SIGTERM
        assert agent.popen.wait(20) == 0
    assert notify.wait_for("STOPPING", 1)
    assert "agent stopped" in agent.log()


def test_collector_process_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, mosquitto: Mosquitto, notify: NotifySocket
) -> None:
    http_port = free_port()
    config = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=f"http://127.0.0.1:{free_port()}",
        http_port=http_port,
    )
    coll = procs.collector(config, tmp_path / "collector.log", notify.env(watchdog_usec=1_000_000))
    with coll:
        ready = notify.wait_for("READY", 20)
        assert ready["STATUS"].startswith("broker: subscribed"), ready
        assert procs.http_get(f"http://127.0.0.1:{http_port}/metrics")[0] == 200  # HTTP was up
        notify.collect(2.0)
        pings = [t for t in notify.times("WATCHDOG") if t > notify.times("READY")[0]]
        assert len(pings) >= 3, notify.messages
        assert coll.stop() == 0
    notify.collect(0.3)
    assert notify.wait_for("STOPPING", 1)


def test_no_notify_socket_means_no_systemd_chatter(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = agent_yaml(tmp_path, mosquitto.port)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [str(procs.BIN / "pantau-agent"), "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "systemd" not in out, out
