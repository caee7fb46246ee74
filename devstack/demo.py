"""`make demo`: the whole pantau stack on loopback, with simulated sites, until Ctrl-C.

Why this exists: a newcomer (or a reviewer) should see pantau work end to end in one command,
with nothing to install on a real network and nothing to configure. It starts the same real
servers and the same agent/collector command lines as the end-to-end tests (devstack/servers.py
and devstack/procs.py), so what the demo shows is what production runs:

    snmpsim (recordings of real devices, community = recording name)
      -> one pantau-agent per site -> Mosquitto -> pantau-collector -> VictoriaMetrics
                                                                    -> /metrics, /readyz

Three simulated sites (VSAT, microwave/BTS, fiber) poll recordings from tests/data/devices; the
VSAT site also has a device whose community matches no recording, so it never answers and the
demo shows what a DOWN device looks like (reason "timeout"). The live summary is read from the
collector's own /metrics, i.e. it shows what Prometheus would scrape.

Default ports, so bookmarks keep working: the collector (status page, /metrics) 9877 and
VictoriaMetrics 8428 (the demo refuses to start if either is taken); Mosquitto 1883, or a free
port if 1883 is taken; snmpsim a free UDP port. Each can be set with a flag or an environment
variable (the flag wins; 0 = any free port): --http-port / PANTAU_DEMO_HTTP_PORT,
--victoria-port / PANTAU_DEMO_VICTORIA_PORT, --mqtt-port / PANTAU_DEMO_MQTT_PORT,
--snmp-port / PANTAU_DEMO_SNMP_PORT. The demo prints the URLs it really uses.

Everything (configs, data, logs) lives in the state directory, .demo/ in the repository unless
--state-dir / PANTAU_DEMO_STATE_DIR says otherwise, wiped at every start (a directory holding
files the demo did not create is refused, not wiped). A demo holds an
flock on <state dir>/demo.lock for its whole life: a second demo on the same directory refuses
to start (naming the pid holding it) instead of wiping a running demo's files. The kernel drops
the lock when its holder dies, so a killed demo leaves no lock behind; if its servers outlived
it, the next start names them and refuses until they are stopped.

SIGINT/SIGTERM stop the agents first, then the collector, then the servers; exit status 0 after
a clean stop, 1 if a component failed to start, died on its own or did not stop cleanly, 2 for
a bad flag or environment variable.

Run from the repository root: `python -m devstack.demo [--http-port N ...] [--state-dir DIR]`
(or `make demo`); `python -m devstack.demo --help` lists the options.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import sys
import time
import urllib.error
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from devstack import procs
from devstack.servers import HOST, Mosquitto, SnmpSim, VictoriaMetrics, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE_DIR = REPO_ROOT / ".demo"
DEVICES_DIR = REPO_ROOT / "tests" / "data" / "devices"
# The sites and the microwave hop the collector knows of, plus a site that never connects.
INVENTORY = Path(__file__).resolve().with_name("demo-inventory.yaml")

LOCK_NAME = "demo.lock"
# what the demo creates in its state directory: the only entries it will ever delete
STATE_ENTRIES = frozenset({LOCK_NAME, "config", "logs", "snmpsim", "mosquitto", "victoria-metrics"})
# programs the demo starts (argv[0] or argv[1] file names), for finding an earlier demo's leftovers
DEMO_PROGRAMS = frozenset(
    {
        "mosquitto",
        "victoria-metrics",
        "snmpsim-command-responder",
        "pantau-agent",
        "pantau-collector",
    }
)

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


def port_free(port: int, kind: str = "tcp") -> bool:
    """True if nothing is bound to HOST:port (tcp: a TIME_WAIT leftover does not count)."""
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# options: a flag wins over its PANTAU_DEMO_* variable, which wins over the default


@dataclass(frozen=True)
class PortOption:
    name: str  # flag --<name>-port, variable PANTAU_DEMO_<NAME>_PORT
    default: int  # 0: any free port
    kind: str  # "tcp" or "udp"
    who: str  # what listens there, for messages

    @property
    def flag(self) -> str:
        return f"--{self.name}-port"

    @property
    def env(self) -> str:
        return f"PANTAU_DEMO_{self.name.upper()}_PORT"


PORT_OPTIONS: tuple[PortOption, ...] = (
    PortOption("http", 9877, "tcp", "the collector's HTTP (status page, /metrics, /readyz)"),
    PortOption("victoria", 8428, "tcp", "VictoriaMetrics"),
    PortOption("mqtt", 1883, "tcp", "Mosquitto (MQTT)"),
    PortOption("snmp", 0, "udp", "snmpsim (SNMP over UDP)"),
)
# a port that falls back to a free one when its *default* is taken (an explicit one never does)
FALLBACK_WHEN_TAKEN = frozenset({"mqtt"})
STATE_DIR_ENV = "PANTAU_DEMO_STATE_DIR"


@dataclass(frozen=True)
class Options:
    state_dir: Path  # absolute
    ports: dict[str, int]  # by PortOption.name; 0 = any free port
    explicit: frozenset[str]  # the ports set by a flag or a variable


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {value}")
    return value


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Options:
    """Flags, then PANTAU_DEMO_* variables, then defaults; exits 2 on a bad value (argparse)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description="Run the whole pantau stack on loopback with three simulated sites, "
        "until Ctrl-C. A flag wins over its environment variable; 0 = any free port.",
    )
    for opt in PORT_OPTIONS:
        default = "any free port" if opt.default == 0 else str(opt.default)
        parser.add_argument(
            opt.flag,
            type=_port,
            metavar="PORT",
            help=f"port for {opt.who}; env {opt.env}; default {default}",
        )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help=f"configs, data and logs, wiped at every start; env {STATE_DIR_ENV}; "
        f"default {DEFAULT_STATE_DIR}",
    )
    args = parser.parse_args(argv)
    ports: dict[str, int] = {}
    explicit: set[str] = set()
    for opt in PORT_OPTIONS:
        value = getattr(args, f"{opt.name}_port")
        if value is None and env.get(opt.env, "").strip():
            try:
                value = _port(env[opt.env].strip())
            except argparse.ArgumentTypeError as exc:
                parser.error(f"{opt.env}: {exc}")
        if value is None:
            ports[opt.name] = opt.default
        else:
            ports[opt.name] = value
            explicit.add(opt.name)
    if args.state_dir is not None:
        state_dir = args.state_dir
    elif env.get(STATE_DIR_ENV, "").strip():
        state_dir = Path(env[STATE_DIR_ENV].strip())
    else:
        state_dir = DEFAULT_STATE_DIR
    return Options(state_dir.expanduser().resolve(), ports, frozenset(explicit))


def choose_ports(options: Options) -> dict[str, int]:
    """The ports the demo will use: 0 becomes a free port; a taken port is an error."""
    chosen: dict[str, int] = {}
    for opt in PORT_OPTIONS:
        port = options.ports[opt.name]
        same = [o.flag for o in PORT_OPTIONS if chosen.get(o.name) == port and o.kind == opt.kind]
        if port and same:
            raise DemoError(f"{opt.flag} {port}: the same port as {same[0]}")
        if port and not port_free(port, opt.kind):
            if opt.name in FALLBACK_WHEN_TAKEN and opt.name not in options.explicit:
                say(f"port {port} is taken: {opt.who} will listen on a free port")
                port = 0
            else:
                ss = "ss -ltnp" if opt.kind == "tcp" else "ss -lunp"
                raise DemoError(
                    f"port {port} on {HOST} is already in use, and the demo needs it for "
                    f"{opt.who}: stop whatever listens there (see: {ss} 'sport = :{port}'), "
                    f"or choose another with {opt.flag} PORT (0 = any free port)"
                )
        while port == 0 or any(
            chosen.get(o.name) == port for o in PORT_OPTIONS if o.kind == opt.kind
        ):
            port = free_port(opt.kind)
        chosen[opt.name] = port
    return chosen


# ---------------------------------------------------------------------------------------------
# one demo per state directory


class StateLock:
    """An exclusive flock on <state dir>/demo.lock, held for the demo's whole life.

    A flock belongs to the open file description: the kernel drops it when its holder exits,
    however it exits (SIGKILL included), so a lock file left behind by a killed demo never
    blocks a new start. The file is never deleted (a fresh inode would let a second demo "hold"
    the lock too); it holds the holder's pid, for the message. The descriptor is close-on-exec
    and the servers are started with close_fds, so no child keeps the lock.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DemoError(f"cannot use the state directory {self.state_dir}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            how = f"Ctrl-C, or kill -INT {holder}" if holder else "Ctrl-C"
            raise DemoError(
                f"another demo is running with state directory {self.state_dir} "
                f"({who} holds {self.path}); stop it ({how}) or use another --state-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # drops the flock
        self.fd = None


def lock_holder(fd: int) -> int | None:
    """The pid holding the flock on fd's file: from /proc/locks (Linux), else the pid file."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()  # "1: FLOCK  ADVISORY  WRITE <pid> <maj:min:inode> 0 EOF"
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
                pid = int(fields[4])
                if pid > 0:
                    return pid
    except (OSError, ValueError):
        pass
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def leftover_processes(state_dir: Path) -> list[tuple[int, str]]:
    """(pid, program) of the servers/agents/collector whose command line names a path inside
    state_dir: what a demo leaves running when it is killed before it can stop them."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    inside = f"{state_dir}{os.sep}"
    found: list[tuple[int, str]] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        program = next((Path(a).name for a in args[:2] if Path(a).name in DEMO_PROGRAMS), None)
        if program is not None and any(inside in a for a in args):
            found.append((int(entry.name), program))
    return sorted(found)


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
    def __init__(self, options: Options) -> None:
        self.options = options
        self.root = options.state_dir
        self.lock = StateLock(self.root)
        self.ports: dict[str, int] = {}  # the ports really used, once chosen
        self.config_dir = self.root / "config"
        self.log_dir = self.root / "logs"
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
    @property
    def http_port(self) -> int:
        return self.ports["http"]

    def prepare(self) -> None:
        """Wipe what an earlier demo left in the state directory (never the lock file), and
        refuse a directory holding anything else: --state-dir must not delete someone's files."""
        self.check_foreign_files()
        for entry in self.root.iterdir():
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self.config_dir.mkdir()
        self.log_dir.mkdir()
        self.started = True

    def check_foreign_files(self) -> None:
        if not self.root.is_dir():
            return
        unknown = sorted(p.name for p in self.root.iterdir() if p.name not in STATE_ENTRIES)
        if unknown:
            raise DemoError(
                f"the state directory {self.root} holds files the demo did not create "
                f"({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}); "
                "give --state-dir a new or empty directory"
            )

    def start(self) -> None:
        self.check_foreign_files()  # before the lock file: leave a foreign directory untouched
        self.lock.acquire()  # first: a refused demo touches nothing of the running one
        leftovers = leftover_processes(self.root)
        if leftovers:
            raise DemoError(
                f"an earlier demo's processes still run with state directory {self.root}: "
                + ", ".join(f"{name} (pid {pid})" for pid, name in leftovers)
                + f"; stop them first: kill {' '.join(str(pid) for pid, _ in leftovers)}"
            )
        check_binaries()
        self.ports = choose_ports(self.options)
        mqtt_port = self.ports["mqtt"]
        vm_port = self.ports["victoria"]
        self.prepare()

        recordings = sorted(
            {d.community for s in SITES for d in s.devices if d.community != UNREACHABLE_COMMUNITY}
        )
        say(f"starting snmpsim with {len(recordings)} recordings ...")
        self.snmpsim = SnmpSim(
            self.root / "snmpsim",
            [DEVICES_DIR / f"{r}.snmprec" for r in recordings],
            port=self.ports["snmp"],
        )
        self.snmpsim.start()
        say(f"starting Mosquitto on {HOST}:{mqtt_port} ...")
        self.mosquitto = Mosquitto(self.root / "mosquitto", port=mqtt_port)
        self.mosquitto.start()
        say(f"starting VictoriaMetrics on {HOST}:{vm_port} ...")
        self.victoria = VictoriaMetrics(self.root / "victoria-metrics", port=vm_port)
        self.victoria.start()

        say(f"starting pantau-collector (HTTP on {HOST}:{self.http_port}) ...")
        ccfg = procs.collector_config(
            self.config_dir / "collector.yaml",
            broker_port=mqtt_port,
            influx_url=self.victoria.url,
            http_port=self.http_port,
            inventory=str(INVENTORY),
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
                status, body = procs.http_get(f"http://{HOST}:{self.http_port}/readyz", timeout=2.0)
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
        assert self.victoria is not None
        rel = self.root.relative_to(REPO_ROOT) if self.root.is_relative_to(REPO_ROOT) else self.root
        return [
            f"  status page         http://{HOST}:{self.http_port}/",
            f"  collector metrics   http://{HOST}:{self.http_port}/metrics",
            f"  collector ready     http://{HOST}:{self.http_port}/readyz",
            f"  VictoriaMetrics UI  http://{HOST}:{self.victoria.port}/vmui   "
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
        assert self.victoria is not None
        rel = self.root.relative_to(REPO_ROOT) if self.root.is_relative_to(REPO_ROOT) else self.root
        mqtt = f"{HOST}:{self.mosquitto.port}"
        sim = f"udp {HOST}:{self.snmpsim.port}"
        return [
            self.style.bold("pantau demo")
            + f"  {len(SITES)} simulated sites, polled every {INTERVAL:.0f} s  "
            + time.strftime("%H:%M:%S")
            + "  (Ctrl-C stops everything)",
            f"  status   http://{HOST}:{self.http_port}/    "
            f"metrics  http://{HOST}:{self.http_port}/metrics",
            f"  vmui     http://{HOST}:{self.victoria.port}/vmui       MQTT    {mqtt}",
            f"  snmpsim  {sim:<32} logs    {rel}/logs/, {rel}/*/*.log",
        ]

    def summary(self) -> tuple[list[SiteView], CollectorView] | str:
        try:
            metrics = procs.scrape(self.http_port)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return f"cannot read http://{HOST}:{self.http_port}/metrics: {exc}"
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


def error(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    stack = Stack(parse_args(argv))

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
        error(str(exc))
        code = 1
    except Exception as exc:  # a server that failed to start: its message has the log tail
        error(f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        stack.stopping = True
        clean = stack.stop()
        stack.lock.release()  # only now: a new demo must not wipe files of servers still stopping
    if not clean:
        say("some components did not stop cleanly (see above)")
        code = code or 1
    if stack.started:
        say("demo stopped" + ("" if code else " cleanly") + f"; state kept in {stack.root}")
    return code


if __name__ == "__main__":
    sys.exit(main())
