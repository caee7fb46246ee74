"""`make demo`: the whole pantau stack on loopback, with simulated sites, until Ctrl-C.

Why this exists: a newcomer (or a reviewer) should see pantau work end to end in one command,
with nothing to install on a real network and nothing to configure. It starts the same real
servers and the same agent/collector command lines as the end-to-end tests (tests/support/
servers.py and procs.py), so what the demo shows is what production runs:

    snmpsim (recordings of real devices, community = recording name)
      -> one pantau-agent per site -> Mosquitto -> pantau-collector -> VictoriaMetrics
                                                                    -> /metrics, /readyz

Three simulated sites (VSAT, microwave/BTS, fiber) poll recordings from tests/data/devices; the
VSAT site also has a device whose community matches no recording, so it never answers and the
demo shows what a DOWN device looks like (reason "timeout"). The live summary is read from the
collector's own /metrics, i.e. it shows what Prometheus would scrape.

Fixed ports, so bookmarks keep working: VictoriaMetrics 8428 and the collector 9877 (the demo
refuses to start if either is taken); Mosquitto 1883, or a free port if 1883 is taken. Everything
(configs, data, logs) lives in .demo/ in the repository, wiped at every start. SIGINT/SIGTERM
stop the agents first, then the collector, then the servers; exit status 0 after a clean stop,
1 if a component failed to start, died on its own or did not stop cleanly.

Run from the repository root: `python -m devstack.demo` (or `make demo`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from devstack import procs
from devstack.servers import HOST, Mosquitto, SnmpSim, VictoriaMetrics, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = REPO_ROOT / ".demo"
DEVICES_DIR = REPO_ROOT / "tests" / "data" / "devices"

MQTT_PREFERRED_PORT = 1883
VM_PORT = 8428
HTTP_PORT = 9877

INTERVAL = 10.0  # seconds between polls of a device
TIMEOUT = 1.0  # SNMP request timeout
RETRIES = 1

TTY_REFRESH = 2.0  # seconds between screens when stdout is a terminal
PLAIN_REFRESH = 10.0  # seconds between compact summaries otherwise
CHECK_EVERY = 0.5  # seconds between liveness checks of the children

UNREACHABLE_COMMUNITY = "no-such-device"  # matches no recording: snmpsim never answers


@dataclass(frozen=True)
class DemoDevice:
    name: str
    community: str  # recording name (file stem in tests/data/devices), or one that matches none
    role: str


@dataclass(frozen=True)
class DemoSite:
    site: str
    kind: str
    devices: tuple[DemoDevice, ...]


SITES: tuple[DemoSite, ...] = (
    DemoSite(
        "katingan-vsat-01",
        "VSAT",
        (
            DemoDevice("vsat-terminal", "uhp", "UHP VSAT terminal"),
            DemoDevice("sat-receiver", "ciscosat", "Cisco D9854 satellite IRD"),
            DemoDevice("ups", "apc_smt750x-nmc2", "APC Smart-UPS 750"),
            DemoDevice("cctv-nvr", UNREACHABLE_COMMUNITY, "no reply, on purpose"),
        ),
    ),
    DemoSite(
        "katingan-bts-02",
        "microwave/BTS",
        (
            DemoDevice("mw-radio", "ceraos", "Ceragon IP-20 radio"),
            DemoDevice("lte-router", "rutos-rutx_rut955", "Teltonika RUT955 LTE router"),
            DemoDevice("dc-power", "enexus", "Eltek eNexus DC plant"),
        ),
    ),
    DemoSite(
        "katingan-fiber-03",
        "fiber",
        (
            DemoDevice("olt", "zxa10_c320", "ZTE C320 GPON OLT"),
            DemoDevice("switch", "xos_sfp", "Extreme X690 switch"),
            DemoDevice("gateway", "routeros_rb750gr3", "MikroTik hEX gateway"),
        ),
    ),
)

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class DemoError(Exception):
    """Something prevents the demo from starting or running; the message says what to do."""


class ChildDied(Exception):
    """A child process exited on its own; carries its name, exit code and log tail."""

    def __init__(self, name: str, code: int | None, log_path: Path, tail: str) -> None:
        super().__init__(f"{name} exited unexpectedly (exit code {code})")
        self.name = name
        self.code = code
        self.log_path = log_path
        self.tail = tail


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, so no `except Exception` swallows it."""


# ---------------------------------------------------------------------------------------------
# preflight


def _binary_ok(path: Path) -> bool:
    return (path.is_file() and os.access(path, os.X_OK)) or shutil.which(path.name) is not None


def check_binaries() -> None:
    """Refuse to start when a program is missing, naming the make target / package for it."""
    venv_bin = Path(sys.executable).parent
    needed = [
        (Path(Mosquitto.binary), "run `make deps` (as root), or: apt-get install mosquitto"),
        (
            Path(VictoriaMetrics.binary),
            "run `make deps` (as root), or: apt-get install victoria-metrics",
        ),
        (
            venv_bin / "snmpsim-command-responder",
            "run `make venv` (installs the test extra: snmpsim, pysmi), or: "
            f"{sys.executable} -m pip install -e '.[test]'",
        ),
        (venv_bin / "pantau-agent", f"run `make venv`, or: {sys.executable} -m pip install -e ."),
        (
            venv_bin / "pantau-collector",
            f"run `make venv`, or: {sys.executable} -m pip install -e .",
        ),
    ]
    missing = [
        f"  {path.name} not found (looked at {path} and on PATH): {hint}"
        for path, hint in needed
        if not _binary_ok(path)
    ]
    if missing:
        raise DemoError("missing programs:\n" + "\n".join(missing))
    recordings = sorted(
        {d.community for s in SITES for d in s.devices if d.community != UNREACHABLE_COMMUNITY}
    )
    absent = [r for r in recordings if not (DEVICES_DIR / f"{r}.snmprec").is_file()]
    if absent:
        raise DemoError(
            f"recordings missing from {DEVICES_DIR}: {', '.join(absent)} "
            "(copy them from the shared device recordings)"
        )


def tcp_port_free(port: int) -> bool:
    """True if nothing listens on HOST:port (SO_REUSEADDR: a TIME_WAIT leftover does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def check_fixed_port(port: int, who: str) -> None:
    if not tcp_port_free(port):
        raise DemoError(
            f"port {port} on {HOST} is already in use, and the demo needs it for {who}. "
            f"Stop whatever listens there (see: ss -ltnp 'sport = :{port}') and start again."
        )


def no_proxy_for_loopback() -> None:
    """procs.scrape()/http_get() use urllib, which honours http_proxy: keep loopback direct."""
    for var in ("no_proxy", "NO_PROXY"):
        current = [h for h in os.environ.get(var, "").split(",") if h]
        os.environ[var] = ",".join(
            [*current, *(h for h in (HOST, "localhost") if h not in current)]
        )


# ---------------------------------------------------------------------------------------------
# reading /metrics


def _by_name(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for (name, labels), value in metrics.items():
        out.setdefault(name, []).append((dict(labels), value))
    return out


@dataclass
class DeviceView:
    name: str
    up: bool | None = None  # None: not reported yet
    reason: str = ""
    last_poll: float | None = None
    duration: float | None = None
    interfaces: int = 0
    interfaces_up: int = 0
    uptime: float | None = None
    descr: str = ""  # sysDescr, as the device reports it
    role: str = ""  # what the demo config says the device is


@dataclass
class SiteView:
    site: str
    kind: str
    online: bool | None = None  # None: never heard from
    heard: float | None = None
    devices: dict[str, DeviceView] | None = None


@dataclass
class CollectorView:
    connected: bool | None = None
    points: float = 0.0
    write_errors: float = 0.0
    pending: float = 0.0
    rejected: float = 0.0


def build_views(metrics: Metrics) -> tuple[list[SiteView], CollectorView]:
    """Turn a scrape into per-site/per-device views, in config order (unknown ones last)."""
    named = _by_name(metrics)
    sites: dict[str, SiteView] = {}
    for s in SITES:
        sites[s.site] = SiteView(
            s.site, s.kind, devices={d.name: DeviceView(d.name, role=d.role) for d in s.devices}
        )

    def site(name: str) -> SiteView:
        if name not in sites:
            sites[name] = SiteView(name, "?", devices={})
        return sites[name]

    def device(labels: dict[str, str]) -> DeviceView:
        view = site(labels.get("site", "?"))
        assert view.devices is not None
        name = labels.get("device", "?")
        if name not in view.devices:
            view.devices[name] = DeviceView(name)
        return view.devices[name]

    for labels, value in named.get("pantau_site_online", []):
        site(labels["site"]).online = value == 1.0
    for labels, value in named.get("pantau_site_last_heard_timestamp_seconds", []):
        site(labels["site"]).heard = value
    for labels, value in named.get("pantau_device_up", []):
        device(labels).up = value == 1.0
    for labels, value in named.get("pantau_device_last_poll_timestamp_seconds", []):
        device(labels).last_poll = value
    for labels, value in named.get("pantau_device_poll_duration_seconds", []):
        device(labels).duration = value
    for labels, _ in named.get("pantau_device_down_reason_info", []):
        device(labels).reason = labels.get("reason", "")
    for labels, value in named.get("pantau_system_uptime_seconds", []):
        device(labels).uptime = value
    for labels, _ in named.get("pantau_system_info", []):
        device(labels).descr = " ".join(labels.get("descr", "").split())
    for labels, value in named.get("pantau_interface_oper_status", []):
        view = device(labels)
        view.interfaces += 1
        view.interfaces_up += value == 1.0

    coll = CollectorView()
    for _, value in named.get("pantau_collector_broker_connected", []):
        coll.connected = value == 1.0
    coll.points = sum(v for _, v in named.get("pantau_collector_points_written_total", []))
    coll.write_errors = sum(v for _, v in named.get("pantau_collector_write_errors_total", []))
    coll.pending = sum(v for _, v in named.get("pantau_collector_pending_points", []))
    coll.rejected = sum(v for _, v in named.get("pantau_collector_messages_rejected_total", []))
    return list(sites.values()), coll


# ---------------------------------------------------------------------------------------------
# formatting


def fmt_age(ts: float | None, now: float) -> str:
    if ts is None or ts <= 0:
        return "-"
    s = max(0, int(now - ts))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s ago"
    return f"{s // 3600}h{s % 3600 // 60:02d}m ago"


def fmt_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours:02d}h{minutes:02d}m" if days else f"{hours}h{minutes:02d}m"


def fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def fmt_ifaces(dev: DeviceView) -> str:
    if not dev.up:
        return "-"
    return f"{dev.interfaces} ({dev.interfaces_up} up)" if dev.interfaces else "0"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(dev: DeviceView, width: int = 23) -> str:
    return shorten(dev.descr, width) if dev.descr else f"({shorten(dev.role, width - 2)})"


class Style:
    """ANSI colours on a terminal, plain text otherwise (pad first, then colour)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31;1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)


def device_state(dev: DeviceView) -> tuple[str, bool | None]:
    if dev.up is None:
        return "waiting", None
    if dev.up:
        return "UP", True
    return f"DOWN ({dev.reason or 'unknown'})", False


def site_state(view: SiteView) -> tuple[str, bool | None]:
    if view.online is None:
        return "waiting for agent", None
    return ("ONLINE", True) if view.online else ("OFFLINE", False)


def _colour(style: Style, text: str, good: bool | None) -> str:
    if good is None:
        return style.dim(text)
    return style.good(text) if good else style.bad(text)


def render_table(sites: list[SiteView], coll: CollectorView, now: float, style: Style) -> list[str]:
    """The terminal screen's body: about 16 lines, at most 100 columns."""
    lines = [
        "collector: "
        + ("broker connected" if coll.connected else "broker NOT connected")
        + f", {coll.points:.0f} points written, {coll.write_errors:.0f} write errors, "
        f"{coll.pending:.0f} pending, {coll.rejected:.0f} messages rejected",
        "",
        style.dim(
            f"  {'DEVICE':<14} {'STATE':<16} {'LAST POLL':<9} {'POLL':>6}  "
            f"{'INTERFACES':<11} {'UPTIME':<12} DESCRIPTION"
        ),
    ]
    for view in sites:
        state, good = site_state(view)
        lines.append(
            style.bold(f"{view.site}")
            + f"  [{view.kind}]  "
            + _colour(style, state, good)
            + f"  last heard {fmt_age(view.heard, now)}"
        )
        for dev in (view.devices or {}).values():
            dstate, dgood = device_state(dev)
            lines.append(
                f"  {dev.name:<14} {_colour(style, f'{dstate:<16}', dgood)} "
                f"{fmt_age(dev.last_poll, now):<9} {fmt_duration(dev.duration):>6}  "
                f"{fmt_ifaces(dev):<11} {fmt_uptime(dev.uptime):<12} {describe(dev)}"
            )
    return lines


def render_compact(sites: list[SiteView], coll: CollectorView, now: float) -> list[str]:
    """For logs and pipes: a time-stamped block, one line per site and per device, no colours."""
    lines = [
        f"[{time.strftime('%H:%M:%S')}] collector: "
        + ("broker connected" if coll.connected else "broker NOT connected")
        + f", {coll.points:.0f} points written, {coll.write_errors:.0f} write errors"
    ]
    for view in sites:
        state, _ = site_state(view)
        lines.append(f"  {view.site} {state}, last heard {fmt_age(view.heard, now)}")
        for dev in (view.devices or {}).values():
            dstate, _ = device_state(dev)
            words = [f"    {dev.name:<14} {dstate:<18}"]
            if dev.last_poll is not None:
                words.append(
                    f"polled {fmt_age(dev.last_poll, now)} in {fmt_duration(dev.duration)}"
                )
            if dev.up:
                words.append(f"interfaces {fmt_ifaces(dev)}")
                words.append(f"uptime {fmt_uptime(dev.uptime)}")
            lines.append(f"{words[0]} {', '.join(words[1:])}".rstrip())
    return lines


# ---------------------------------------------------------------------------------------------
# the stack


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _exit_code(server: Any) -> int | None:
    proc = getattr(server, "_proc", None)  # servers.py keeps the Popen private
    return proc.poll() if proc is not None else None


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_dir = root / "config"
        self.log_dir = root / "logs"
        self.snmpsim: SnmpSim | None = None
        self.mosquitto: Mosquitto | None = None
        self.victoria: VictoriaMetrics | None = None
        self.collector: procs.Proc | None = None
        self.agents: dict[str, procs.Proc] = {}
        self.stopping = False
        self.started = False  # True once .demo/ was wiped and servers are being started
        self.tty = sys.stdout.isatty()
        self.style = Style(self.tty)

    # start -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.config_dir.mkdir(parents=True)
        self.log_dir.mkdir()
        self.started = True

    def start(self) -> None:
        check_binaries()
        check_fixed_port(VM_PORT, "VictoriaMetrics")
        check_fixed_port(HTTP_PORT, "the collector's HTTP (/metrics, /readyz)")
        mqtt_port = MQTT_PREFERRED_PORT
        if not tcp_port_free(mqtt_port):
            mqtt_port = free_port()
            say(f"port {MQTT_PREFERRED_PORT} is taken: Mosquitto will listen on {mqtt_port}")
        self.prepare()

        recordings = sorted(
            {d.community for s in SITES for d in s.devices if d.community != UNREACHABLE_COMMUNITY}
        )
        say(f"starting snmpsim with {len(recordings)} recordings ...")
        self.snmpsim = SnmpSim(
            self.root / "snmpsim", [DEVICES_DIR / f"{r}.snmprec" for r in recordings]
        )
        self.snmpsim.start()
        say(f"starting Mosquitto on {HOST}:{mqtt_port} ...")
        self.mosquitto = Mosquitto(self.root / "mosquitto", port=mqtt_port)
        self.mosquitto.start()
        say(f"starting VictoriaMetrics on {HOST}:{VM_PORT} ...")
        self.victoria = VictoriaMetrics(self.root / "victoria-metrics", port=VM_PORT)
        self.victoria.start()

        say(f"starting pantau-collector (HTTP on {HOST}:{HTTP_PORT}) ...")
        ccfg = procs.collector_config(
            self.config_dir / "collector.yaml",
            broker_port=mqtt_port,
            influx_url=self.victoria.url,
            http_port=HTTP_PORT,
        )
        self.collector = procs.collector(ccfg, self.log_dir / "collector.log")
        self.collector.start()
        self.wait_collector_ready(timeout=30.0)

        for s in SITES:
            devices = [
                procs.snmpsim_device(d.name, d.community, self.snmpsim.port) for d in s.devices
            ]
            acfg = procs.agent_config(
                self.config_dir / f"agent-{s.site}.yaml",
                site=s.site,
                broker_port=mqtt_port,
                devices=devices,
                interval=INTERVAL,
                timeout=TIMEOUT,
                retries=RETRIES,
            )
            say(f"starting pantau-agent for {s.site} ({len(devices)} devices) ...")
            agent = procs.agent(acfg, self.log_dir / f"agent-{s.site}.log")
            self.agents[s.site] = agent  # tracked before start: cleanup covers a half-start
            agent.start()

    def wait_collector_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        why = "no answer yet"
        while time.monotonic() < deadline:
            self.check_children()
            try:
                status, body = procs.http_get(f"http://{HOST}:{HTTP_PORT}/readyz", timeout=2.0)
            except (OSError, urllib.error.URLError) as exc:
                why = str(exc)
            else:
                if status == 200:
                    return
                why = f"HTTP {status}: {body.strip()}"
            time.sleep(0.2)
        assert self.collector is not None
        raise DemoError(
            f"the collector is not ready after {timeout:.0f} s ({why}); "
            f"log {self.collector.log_path}:\n{_tail(self.collector.log_path)}"
        )

    # watch -----------------------------------------------------------------------------------
    def check_children(self) -> None:
        """Raise ChildDied if any child we started has exited on its own."""
        for server in (self.snmpsim, self.mosquitto, self.victoria):
            if server is not None and server.pid is not None and not server.running:
                raise ChildDied(server.name, _exit_code(server), server.log_path, server.log_tail())
        named: list[tuple[str, procs.Proc | None]] = [("pantau-collector", self.collector)]
        named += [(f"pantau-agent {site}", agent) for site, agent in self.agents.items()]
        for name, proc in named:
            if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
                raise ChildDied(name, proc.popen.returncode, proc.log_path, _tail(proc.log_path))

    def urls(self) -> list[str]:
        assert self.mosquitto is not None and self.snmpsim is not None
        rel = self.root.relative_to(REPO_ROOT) if self.root.is_relative_to(REPO_ROOT) else self.root
        return [
            f"  collector metrics   http://{HOST}:{HTTP_PORT}/metrics",
            f"  collector ready     http://{HOST}:{HTTP_PORT}/readyz",
            f"  VictoriaMetrics UI  http://{HOST}:{VM_PORT}/vmui   "
            "(try: system_uptime_seconds, interface_in_octets)",
            f"  MQTT broker         mqtt://{HOST}:{self.mosquitto.port}   "
            f"(mosquitto_sub -p {self.mosquitto.port} -t 'pantau/+/status' -v)",
            f"  snmpsim             udp://{HOST}:{self.snmpsim.port}   "
            f"(community = recording name, e.g. snmpget -v2c -c uhp "
            f"{HOST}:{self.snmpsim.port} 1.3.6.1.2.1.1.3.0)",
            f"  logs                {rel}/logs/*.log (agents, collector), "
            f"{rel}/{{snmpsim,mosquitto,victoria-metrics}}/*.log",
        ]

    def tty_header(self) -> list[str]:
        """The top of the terminal screen: where to look, in four lines."""
        assert self.mosquitto is not None and self.snmpsim is not None
        rel = self.root.relative_to(REPO_ROOT) if self.root.is_relative_to(REPO_ROOT) else self.root
        mqtt = f"{HOST}:{self.mosquitto.port}"
        sim = f"udp {HOST}:{self.snmpsim.port}"
        return [
            self.style.bold("pantau demo")
            + f"  {len(SITES)} simulated sites, polled every {INTERVAL:.0f} s  "
            + time.strftime("%H:%M:%S")
            + "  (Ctrl-C stops everything)",
            f"  metrics  http://{HOST}:{HTTP_PORT}/metrics    "
            f"readyz  http://{HOST}:{HTTP_PORT}/readyz",
            f"  vmui     http://{HOST}:{VM_PORT}/vmui       MQTT    {mqtt}",
            f"  snmpsim  {sim:<32} logs    {rel}/logs/, {rel}/*/*.log",
        ]

    def summary(self) -> tuple[list[SiteView], CollectorView] | str:
        try:
            metrics = procs.scrape(HTTP_PORT)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return f"cannot read http://{HOST}:{HTTP_PORT}/metrics: {exc}"
        return build_views(metrics)

    def watch(self) -> None:
        intro = [
            self.style.bold("pantau demo is running") + " — three simulated sites, "
            f"polled every {INTERVAL:.0f} s. Open:",
            *self.urls(),
        ]
        if not self.tty:
            print("\n".join(intro), flush=True)
            print(
                f"(stdout is not a terminal: a compact summary every {PLAIN_REFRESH:.0f} s; "
                "stop with Ctrl-C or SIGTERM)",
                flush=True,
            )
        refresh = TTY_REFRESH if self.tty else PLAIN_REFRESH
        next_render = time.monotonic()
        while True:
            self.check_children()
            if time.monotonic() >= next_render:
                next_render += refresh
                result = self.summary()
                now = time.time()
                if self.tty:
                    body = (
                        [result]
                        if isinstance(result, str)
                        else render_table(*result, now, self.style)
                    )
                    screen = [*self.tty_header(), *body]
                    sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(screen) + "\n")
                    sys.stdout.flush()
                else:
                    lines = [result] if isinstance(result, str) else render_compact(*result, now)
                    print("\n".join(lines), flush=True)
            time.sleep(CHECK_EVERY)

    # stop ------------------------------------------------------------------------------------
    def stop(self) -> bool:
        """Agents, then the collector, then the servers. False if something did not stop cleanly."""
        self.stopping = True
        clean = True
        for site, agent in self.agents.items():
            clean &= self._stop_proc(f"pantau-agent {site}", agent)
        if self.collector is not None:
            clean &= self._stop_proc("pantau-collector", self.collector)
        for server in (self.snmpsim, self.mosquitto, self.victoria):
            if server is not None and server.running:
                say(f"stopping {server.name} ...")
                try:
                    server.stop()
                except Exception as exc:  # keep stopping the others; report at the end
                    say(f"  {server.name} did not stop cleanly: {exc}")
                    clean = False
        return clean

    def _stop_proc(self, name: str, proc: procs.Proc) -> bool:
        if proc.popen is None:
            return True
        was_running = proc.popen.poll() is None
        if was_running:
            say(f"stopping {name} ...")
        code = proc.stop()
        # -SIGTERM: stopped before it had installed its handler (e.g. still importing): fine
        if was_running and code not in (0, -signal.SIGTERM):
            say(
                f"  {name} exited with code {code}; log {proc.log_path}:\n"
                f"{_tail(proc.log_path, 15)}"
            )
            return False
        return True


def say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    stack = Stack(STATE_DIR)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stack.stopping:
            say(f"({signal.Signals(signum).name}: already stopping, please wait)")
            return
        stack.stopping = True  # a second Ctrl-C must not interrupt the cleanup
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    no_proxy_for_loopback()

    code = 0
    try:
        stack.start()
        stack.watch()
    except Interrupted as exc:
        say(f"\n{exc.args[0]} received: stopping the demo ...")
    except ChildDied as exc:
        say(f"\nERROR: {exc}; last lines of {exc.log_path}:\n{exc.tail}\n")
        say("stopping everything else ...")
        code = 1
    except DemoError as exc:
        say(f"ERROR: {exc}")
        code = 1
    except Exception as exc:  # a server that failed to start: its message has the log tail
        say(f"ERROR: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        stack.stopping = True
        clean = stack.stop()
    if not clean:
        say("some components did not stop cleanly (see above)")
        code = code or 1
    if stack.started:
        say("demo stopped" + ("" if code else " cleanly") + f"; state kept in {STATE_DIR}")
    return code


if __name__ == "__main__":
    sys.exit(main())
