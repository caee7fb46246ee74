"""Real servers on loopback for tests: mosquitto, VictoriaMetrics, snmpsim and net-snmp snmpd.

Why real servers and not fakes: what pantau must get right lives in the protocols: persistent
MQTT sessions and QoS 1 redelivery across a broker restart, the way a TSDB turns InfluxDB line
protocol into series, SNMPv3 engine discovery and engineBoots after an agent restart. A fake
would only encode our own assumptions about them. Each helper here runs the real Debian binary on
127.0.0.1 at a free port, keeps every file it needs (config, data, logs) in a directory the caller
gives it, and stops it by PID. Every server runs in its own process group (start_new_session), so
stop() and kill() signal the whole group, and an atexit hook kills whatever a test left behind.
Tests can therefore stop, kill or restart a server in the middle of a test.

What was verified on this machine (Debian 12: mosquitto 2.0.11, victoria-metrics 1.79.5,
net-snmp 5.9.3, snmpsim 1.2.2):

VictoriaMetrics and InfluxDB line protocol
  * POST /api/v2/write?org=..&bucket=..&precision=ms is accepted (204). org and bucket are
    ignored: no label is added. (The v1 endpoint /write?db=foo adds the label db="foo".)
  * Every field becomes its own series named <measurement>_<field>, and every tag becomes a label:
    `interface,site=s1,device=d1 in_octets=123i,out_octets=4.5 <ts>` gives
    interface_in_octets{site="s1",device="d1"} 123 and interface_out_octets{...} 4.5.
    Escaped spaces survive: `weird\\ name,tag\\ a=x\\,y f-1=2` gives the metric
    `weird name_f-1{"tag a"="x,y"}`.
  * Booleans are stored as 1/0. STRING FIELDS ARE NOT REJECTED: they are stored as the number 0
    (`status="up"` gives interface_status 0). So a string field silently becomes a zero-valued
    series instead of an error.
  * Old timestamps (2001) are accepted with -retentionPeriod=100y and exported unchanged.
  * A write is NOT searchable when the 204 comes back, and two caches make naive polling wrong:
    - samples and new series become visible about 1 s later (periodic in-memory flush);
    - a selector that matched nothing is remembered as empty: once `x_v` was queried before
      series x_v existed, `x_v` keeps answering "nothing" for up to 10 s after x_v was written
      (the index cache is reset by a 10 s ticker; deleting a series does not reset it);
    - GET /internal/force_flush resets that cache, but only when it finds unflushed index
      entries, i.e. only if a new series was written less than ~1 s earlier;
    - an instant /api/v1/query (recent time range, per-day index) can lag export (whole time
      range, global index) by about another second.
    So flush() queries a not-yet-existing barrier series (its emptiness gets cached), writes it,
    then calls force_flush and polls export AND an instant query until both see it (~1 s). The
    barrier can only appear after a cache reset that came after every earlier write, so all
    earlier data is then visible to any selector. The barrier series is deleted afterwards.
    export() and query() call flush() first unless flush=False; a test polling VictoriaMetrics
    with its own HTTP requests instead would see these delays.

snmpd (net-snmp 5.9.3)
  * SNMPCONFPATH replaces the whole config search path, and when it is set snmpd does NOT read the
    persistent directory on its own. SNMPCONFPATH must therefore list the config dir AND the
    persistent dir (SNMP_PERSISTENT_DIR). Without that, every restart generates a new engineID and
    engineBoots stays at 1. With it, the engineID is kept and engineBoots goes 1, 2, 3... It is
    written at start-up, so it also increments after a SIGKILL.
  * createUser lines in snmpd.conf work as root without dropping privileges (snmpd only drops
    them with -u/-g). They are re-applied at every start-up and do not pile up duplicate usmUser
    lines in the persistent file. Verified: SHA/AES, SHA-256/AES, SHA-224/AES-192,
    SHA-512/AES-256, MD5/DES (authPriv), SHA (authNoPriv), none (noAuthNoPriv).
    net-snmp's AES-192/AES-256 use the Blumenthal key extension (pysnmp:
    usmAesBlumenthalCfb192Protocol / usmAesBlumenthalCfb256Protocol).
  * A user asking for a lower level than its rouser line gets authorizationError. A user without
    a priv key asking for authPriv gets "Unsupported security level" from the client.
  * The agent address must be given once only: `agentAddress` in the config and an endpoint on
    the command line for the same port give "Error opening specified endpoint".
  * MIBS="" (env) makes snmpd and the CLI tools load no MIB files.

mosquitto 2.0.11
  * Started as root, it drops to the "mosquitto" user unless `user` names the current user, and
    then cannot write its persistence file in our directory. `user <current user>` is written.
  * max_inflight_messages (0 = no limit, default 20) exists in 2.0 but is left at its default;
    pass extra_conf to change it.
"""

import atexit
import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

HOST = "127.0.0.1"
SYS_UPTIME_OID = "1.3.6.1.2.1.1.3.0"
SYS_DESCR_OID = "1.3.6.1.2.1.1.1.0"
SYS_NAME_OID = "1.3.6.1.2.1.1.5.0"
SNMP_ENGINE_ID_OID = "1.3.6.1.6.3.10.2.1.1.0"
SNMP_ENGINE_BOOTS_OID = "1.3.6.1.6.3.10.2.1.2.0"

# ---------------------------------------------------------------------------------------------
# small helpers


def free_port(kind: str = "tcp") -> int:
    """Return a port on 127.0.0.1 that is free right now for `kind` ("tcp" or "udp")."""
    if kind == "tcp":
        sock_type = socket.SOCK_STREAM
    elif kind == "udp":
        sock_type = socket.SOCK_DGRAM
    else:
        raise ValueError(f"kind must be 'tcp' or 'udp', not {kind!r}")
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Call `predicate` until it returns true; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def tcp_port_open(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _ber(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _ber_length(len(payload)) + payload


def _ber_int(value: int) -> bytes:
    return _ber(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _ber_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.strip(".").split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for sub in parts[2:]:
        chunk = [sub & 0x7F]
        sub >>= 7
        while sub:
            chunk.append(0x80 | (sub & 0x7F))
            sub >>= 7
        out.extend(reversed(chunk))
    return _ber(0x06, bytes(out))


def snmp_v2c_answers(
    port: int, community: str, oid: str = SYS_UPTIME_OID, host: str = HOST, timeout: float = 0.5
) -> bool:
    """Send one raw SNMPv2c GET and report whether any SNMP message comes back in time.

    Needs no SNMP library and no CLI tool; used to tell when a UDP agent is ready.
    """
    request_id = int.from_bytes(os.urandom(3), "big")
    varbinds = _ber(0x30, _ber(0x30, _ber_oid(oid) + b"\x05\x00"))
    pdu = _ber(0xA0, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + varbinds)
    message = _ber(0x30, _ber_int(1) + _ber(0x04, community.encode()) + pdu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(message, (host, port))
            data, _ = sock.recvfrom(65535)
        except OSError:  # timeout, or ICMP port unreachable surfacing as ConnectionRefusedError
            return False
    return data[:1] == b"\x30" and _ber_int(request_id) in data


def _find_binary(path: str | Path, package: str) -> str:
    candidate = Path(path)
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(candidate.name)
    if found:
        return found
    raise RuntimeError(
        f"{candidate.name} not found (looked at {candidate} and on PATH); install it: {package}"
    )


# ---------------------------------------------------------------------------------------------
# process bookkeeping: every live server process, so an atexit hook can kill leftovers

_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal a server's whole process group (it was started as its own session leader)."""
    # Only while the leader is unreaped: its PID (== PGID) cannot have been reused yet.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    _LIVE.clear()


class _Server:
    """Lifecycle shared by all servers: start, stop (SIGTERM), kill (SIGKILL), restart."""

    name = "server"
    port_kind = "tcp"
    startup_timeout = 20.0

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port if port is not None else free_port(self.port_kind)
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # hooks for subclasses ---------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _prepare(self) -> None:
        """Write config files, create directories; runs before every start."""

    def _ready(self) -> bool:
        raise NotImplementedError

    # lifecycle ------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the server and return once it serves requests (raise if it does not)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._forget()
        self._prepare()
        command = self._command()
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {shlex.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
                start_new_session=True,
            )
        _LIVE[proc.pid] = proc
        self._proc = proc
        try:
            self._wait_ready(proc)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._ready():
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name} on port {self.port} not ready after {self.startup_timeout} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group and wait, so the server saves its state; SIGKILL if stuck."""
        proc = self._proc
        if proc is None:
            return
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
        self._forget()

    def kill(self) -> None:
        """SIGKILL the process group (a crash: nothing is saved) and reap it."""
        proc = self._proc
        if proc is None:
            return
        signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)
        self._forget()

    def restart(self) -> Self:
        """Stop (gracefully, if running) and start again on the same port with the same data."""
        self.stop()
        return self.start()

    def _forget(self) -> None:
        if self._proc is not None:
            _LIVE.pop(self._proc.pid, None)
            self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} in {self.workdir}>"


# ---------------------------------------------------------------------------------------------
# mosquitto


class Mosquitto(_Server):
    """mosquitto broker with persistence in workdir, so a restart keeps sessions and queues."""

    name = "mosquitto"
    binary = "/usr/sbin/mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        super().__init__(workdir, port)
        self.extra_conf = extra_conf
        self.conf_path = self.workdir / "mosquitto.conf"
        self.persistence_dir = self.workdir / "persistence"

    def _prepare(self) -> None:
        self.persistence_dir.mkdir(exist_ok=True)
        user = pwd.getpwuid(os.getuid()).pw_name
        conf = f"""\
# written by devstack/servers.py
listener {self.port} {self.host}
allow_anonymous true
# as root, stay root: the default "mosquitto" user could not write {self.persistence_dir}
user {user}
persistence true
persistence_location {self.persistence_dir}/
autosave_interval 1
max_queued_messages 100000
set_tcp_nodelay true
log_dest file {self.log_path}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
{self.extra_conf}
"""
        self.conf_path.write_text(conf)

    def _command(self) -> list[str]:
        return [_find_binary(self.binary, "apt-get install mosquitto"), "-c", str(self.conf_path)]

    def _ready(self) -> bool:
        return tcp_port_open(self.port, self.host)


# ---------------------------------------------------------------------------------------------
# VictoriaMetrics

FLUSH_BARRIER_METRIC = "pantau_test_flush_barrier"


class VictoriaMetrics(_Server):
    """Single-node VictoriaMetrics; accepts InfluxDB line protocol on /api/v2/write."""

    name = "victoria-metrics"
    binary = "/usr/bin/victoria-metrics"

    def __init__(
        self, workdir: Path, port: int | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        super().__init__(workdir, port)
        self.data_dir = self.workdir / "data"
        self.extra_args = list(extra_args)
        # no proxy: a proxy from the environment must never see requests to 127.0.0.1
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def write_url(self) -> str:
        """InfluxDB v2 write endpoint (add &precision=... as needed)."""
        return f"{self.url}/api/v2/write?org=pantau&bucket=pantau"

    def _command(self) -> list[str]:
        return [
            _find_binary(self.binary, "apt-get install victoria-metrics"),
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={self.host}:{self.port}",
            "-retentionPeriod=100y",  # tests write old timestamps too
            "-search.latencyOffset=0s",  # do not hide the most recent samples from queries
            "-search.disableCache",
            "-loggerOutput=stderr",
            *self.extra_args,
        ]

    def _ready(self) -> bool:
        try:
            return self._request("GET", "/health", timeout=0.5).strip() == b"OK"
        except (OSError, urllib.error.URLError):
            return False

    # HTTP -------------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        data: bytes | None = None,
        timeout: float = 30.0,
    ) -> bytes:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(list(params))
        request = urllib.request.Request(url, data=data, method=method)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as err:
            body = err.read().decode(errors="replace")
            raise RuntimeError(f"{method} {url}: HTTP {err.code}: {body}") from err

    def write_lines(self, lines: str | Iterable[str], precision: str = "ms") -> None:
        """POST InfluxDB line protocol to /api/v2/write (what the collector does)."""
        text = lines if isinstance(lines, str) else "\n".join(lines)
        if not text.endswith("\n"):
            text += "\n"
        self._request(
            "POST",
            "/api/v2/write",
            [("org", "pantau"), ("bucket", "pantau"), ("precision", precision)],
            data=text.encode(),
        )

    def flush(self, timeout: float = 30.0) -> None:
        """Return once everything written before this call is searchable.

        /internal/force_flush alone is not enough (see the module docstring). Instead: query a
        barrier series that does not exist yet (so the empty answer gets cached), write it,
        then call force_flush and query again until it shows up. It can only show up after the
        index cache was invalidated, which makes every earlier write visible to every selector.
        Finally delete the barrier series so it never shows up in results.
        """
        token = uuid.uuid4().hex
        selector = f'{{__name__="{FLUSH_BARRIER_METRIC}_value",token="{token}"}}'
        if self._export_raw(selector, keep_barrier=True):
            raise RuntimeError(f"flush barrier {selector} exists before it was written")
        self.write_lines(f"{FLUSH_BARRIER_METRIC},token={token} value=1 {int(time.time() * 1000)}")

        def barrier_visible() -> bool:
            self._request("GET", "/internal/force_flush")
            # export searches the global index, an instant query the per-day/per-hour one,
            # which lags behind it: wait until both see the barrier
            return bool(self._export_raw(selector, keep_barrier=True)) and bool(
                self._query(selector)
            )

        wait_for(barrier_visible, timeout, "VictoriaMetrics to make written data searchable", 0.05)
        self._request(
            "POST",
            "/api/v1/admin/tsdb/delete_series",
            [("match[]", f'{{__name__="{FLUSH_BARRIER_METRIC}_value"}}')],
            data=b"",
        )

    def _export_raw(self, match: str, keep_barrier: bool = False) -> list[dict[str, Any]]:
        body = self._request("GET", "/api/v1/export", [("match[]", match)])
        rows = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if keep_barrier:
            return rows
        return [r for r in rows if r["metric"].get("__name__") != f"{FLUSH_BARRIER_METRIC}_value"]

    def export(self, match: str, *, flush: bool = True) -> list[dict[str, Any]]:
        """All raw samples of the series matching `match` (a series selector, e.g. `{site="a"}`).

        Returns dicts {"metric": {"__name__": ..., label: value}, "values": [...],
        "timestamps": [ms, ...]} sorted by metric name and labels, values in time order.
        """
        if flush:
            self.flush()
        rows = self._export_raw(match)
        for row in rows:  # VictoriaMetrics may split one series over several lines/blocks
            pairs = sorted(zip(row["timestamps"], row["values"], strict=True))
            row["timestamps"] = [t for t, _ in pairs]
            row["values"] = [v for _, v in pairs]
        merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for row in rows:
            key = tuple(sorted(row["metric"].items()))
            if key in merged:
                pairs = sorted(
                    zip(
                        merged[key]["timestamps"] + row["timestamps"],
                        merged[key]["values"] + row["values"],
                        strict=True,
                    )
                )
                merged[key]["timestamps"] = [t for t, _ in pairs]
                merged[key]["values"] = [v for _, v in pairs]
            else:
                merged[key] = row
        return [merged[key] for key in sorted(merged)]

    def query(
        self, promql: str, at: float | None = None, *, flush: bool = True
    ) -> list[dict[str, Any]]:
        """Instant query (/api/v1/query) at `at` (unix seconds, default now); the result list."""
        if flush:
            self.flush()
        return self._query(promql, at)

    def _query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = [("query", promql)]
        if at is not None:
            params.append(("time", f"{at:.3f}"))
        body = json.loads(self._request("GET", "/api/v1/query", params))
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


# ---------------------------------------------------------------------------------------------
# snmpsim

Recording = Path | str | tuple[Path | str, str]


class SnmpSim(_Server):
    """snmpsim-command-responder serving .snmprec recordings; community = file name stem.

    `recordings` items are paths (served under their own stem) or (path, community) tuples (the
    file is copied as <community>.snmprec, so one recording can be served under several names).
    For SNMPv3 use Snmpd: snmpsim's built-in v3 user ("simulator", MD5 "auctoritas", DES
    "privatus", context name = community) authenticates, but net-snmp's snmpget then reports
    "Decryption error".
    """

    name = "snmpsim"
    port_kind = "udp"
    startup_timeout = 60.0  # the first start builds an index per recording

    def __init__(
        self,
        workdir: Path,
        recordings: Iterable[Recording],
        port: int | None = None,
        log_level: str = "error",
    ) -> None:
        super().__init__(workdir, port)
        self.data_dir = self.workdir / "data"
        self.cache_dir = self.workdir / "cache"
        self.log_level = log_level
        self.recordings: dict[str, Path] = {}
        for item in recordings:
            if isinstance(item, tuple):
                source, community = Path(item[0]), item[1]
            else:
                source = Path(item)
                community = source.name.removesuffix(".snmprec")
            if (
                not community
                or community.startswith(".")
                or any(c in community for c in "/\\ \t\n")
            ):
                raise ValueError(f"community {community!r} cannot be used as a file name")
            if community in self.recordings:
                raise ValueError(f"community {community!r} given twice")
            if not source.is_file():
                raise FileNotFoundError(source)
            self.recordings[community] = source.resolve()
        if not self.recordings:
            raise ValueError("SnmpSim needs at least one recording")

    @property
    def communities(self) -> list[str]:
        return list(self.recordings)

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        self.cache_dir.mkdir(exist_ok=True)
        for community, source in self.recordings.items():
            target = self.data_dir / f"{community}.snmprec"
            if not target.exists():
                shutil.copy2(source, target)  # keep mtime: snmpsim rebuilds the index on change

    def _command(self) -> list[str]:
        binary = Path(sys.executable).parent / "snmpsim-command-responder"
        return [
            _find_binary(binary, "pip install 'snmpsim==1.2.2' pysmi (the test extra)"),
            f"--data-dir={self.data_dir}",
            f"--cache-dir={self.cache_dir}",
            f"--agent-udpv4-endpoint={self.host}:{self.port}",
            f"--log-level={self.log_level}",
        ]

    def _env(self) -> dict[str, str]:
        # As root snmpsim refuses to run unless it drops privileges or this is set.
        return {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}

    def _ready(self) -> bool:
        return snmp_v2c_answers(self.port, self.communities[0], host=self.host, timeout=0.3)


# ---------------------------------------------------------------------------------------------
# net-snmp snmpd

AUTH_PROTOCOLS = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("DES", "AES", "AES-192", "AES-256")


@dataclass(frozen=True)
class V3User:
    """An SNMPv3 USM user. Protocol names are net-snmp's (createUser / snmpget -a / -x)."""

    name: str
    auth_protocol: str | None = None
    auth_key: str | None = None
    priv_protocol: str | None = None
    priv_key: str | None = None

    def __post_init__(self) -> None:
        for field in (self.name, self.auth_key, self.priv_key):
            if field is not None and (not field or any(c in field for c in "\"'\\ \t\n")):
                raise ValueError(f"V3User: {field!r} must be non-empty without quotes or blanks")
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise ValueError("V3User: auth_protocol and auth_key go together")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise ValueError("V3User: priv_protocol and priv_key go together")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise ValueError("V3User: privacy needs authentication")
        if self.auth_protocol is not None and self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"V3User: auth_protocol must be one of {AUTH_PROTOCOLS}")
        if self.priv_protocol is not None and self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"V3User: priv_protocol must be one of {PRIV_PROTOCOLS}")
        for key in (self.auth_key, self.priv_key):
            if key is not None and len(key) < 8:
                raise ValueError("V3User: net-snmp needs pass phrases of at least 8 characters")

    @property
    def security_level(self) -> str:
        """noAuthNoPriv, authNoPriv or authPriv."""
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"

    @property
    def vacm_level(self) -> str:
        """The level keyword of snmpd.conf's rouser line: noauth, auth or priv."""
        return {"noAuthNoPriv": "noauth", "authNoPriv": "auth", "authPriv": "priv"}[
            self.security_level
        ]

    def create_user_line(self) -> str:
        words = ["createUser", self.name]
        if self.auth_protocol and self.auth_key:
            words += [self.auth_protocol, self.auth_key]
        if self.priv_protocol and self.priv_key:
            words += [self.priv_protocol, self.priv_key]
        return " ".join(words)

    def cli_args(self, security_level: str | None = None) -> list[str]:
        """Arguments for net-snmp CLI tools (snmpget -v3 ...), at this user's level by default."""
        args = ["-v3", "-l", security_level or self.security_level, "-u", self.name]
        if self.auth_protocol and self.auth_key:
            args += ["-a", self.auth_protocol, "-A", self.auth_key]
        if self.priv_protocol and self.priv_key:
            args += ["-x", self.priv_protocol, "-X", self.priv_key]
        return args


class Snmpd(_Server):
    """net-snmp snmpd answering v2c (`community`) and v3 (`users`, read-only) on 127.0.0.1.

    Config and persistent state (engineID, engineBoots, localized user keys) live in workdir, so
    restart() keeps the engineID and increments engineBoots; the system /etc/snmp and
    /var/lib/snmp are neither read nor written.
    """

    name = "snmpd"
    binary = "/usr/sbin/snmpd"
    port_kind = "udp"

    def __init__(
        self,
        workdir: Path,
        users: Iterable[V3User] = (),
        port: int | None = None,
        community: str = "public",
        sysname: str = "pantau-snmpd",
        syslocation: str = "pantau test lab",
        syscontact: str = "noc@pantau.invalid",
        extra_conf: str = "",
    ) -> None:
        super().__init__(workdir, port)
        self.users = list(users)
        self.community = community
        self.sysname = sysname
        self.syslocation = syslocation
        self.syscontact = syscontact
        self.extra_conf = extra_conf
        self.conf_dir = self.workdir / "conf"
        self.persistent_dir = self.workdir / "persistent"
        self.conf_path = self.conf_dir / "snmpd.conf"
        self.pid_path = self.workdir / "snmpd.pid"

    @property
    def target(self) -> str:
        """host:port as net-snmp CLI tools want it."""
        return f"{self.host}:{self.port}"

    def _prepare(self) -> None:
        self.conf_dir.mkdir(exist_ok=True)
        self.persistent_dir.mkdir(mode=0o700, exist_ok=True)
        lines = [
            "# written by devstack/servers.py; the listen address is on the command line",
            f"rocommunity {self.community} {self.host}",
            f"sysName {self.sysname}",
            f"sysLocation {self.syslocation}",
            f"sysContact {self.syscontact}",
            "dontLogTCPWrappersConnects yes",
        ]
        for user in self.users:
            lines.append(user.create_user_line())
            lines.append(f"rouser {user.name} {user.vacm_level}")
        lines.append(self.extra_conf)
        self.conf_path.write_text("\n".join(lines) + "\n")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            # both dirs: with SNMPCONFPATH set, snmpd reads the persistent dir only if listed
            "SNMPCONFPATH": f"{self.conf_dir}:{self.persistent_dir}",
            "SNMP_PERSISTENT_DIR": str(self.persistent_dir),
            "MIBS": "",
        }

    def _command(self) -> list[str]:
        return [
            _find_binary(self.binary, "apt-get install snmpd"),
            "-f",  # foreground: the PID we hold is the agent
            "-A",  # append to the log file instead of truncating it at every start
            "-Lf",
            str(self.log_path),
            "-p",
            str(self.pid_path),
            f"udp:{self.host}:{self.port}",
        ]

    def _ready(self) -> bool:
        return snmp_v2c_answers(self.port, self.community, host=self.host, timeout=0.3)

    def engine_boots_persisted(self) -> int | None:
        """engineBoots as snmpd last wrote it to its persistent file (None before first start)."""
        path = self.persistent_dir / "snmpd.conf"
        if not path.exists():
            return None
        for line in path.read_text().splitlines():
            if line.startswith("engineBoots "):
                return int(line.split()[1])
        return None


# ---------------------------------------------------------------------------------------------
# net-snmp CLI


class SnmpCliError(RuntimeError):
    """A net-snmp CLI tool failed (timeout, authentication failure, error status...)."""


def snmp_cli_env(workdir: Path) -> dict[str, str]:
    """Environment for net-snmp CLI tools that keeps them off /etc/snmp and /var/lib/snmp."""
    conf = Path(workdir) / "snmp-cli"
    conf.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "SNMPCONFPATH": str(conf), "SNMP_PERSISTENT_DIR": str(conf), "MIBS": ""}


def snmpget(
    port: int,
    oid: str,
    auth: V3User | str,
    *,
    workdir: Path,
    host: str = HOST,
    timeout: float = 1.0,
    retries: int = 0,
    security_level: str | None = None,
) -> str:
    """Value of one OID via the snmpget CLI (`-Oqv`): v2c when `auth` is a community string.

    Strings come back without their surrounding quotes. Raises SnmpCliError with snmpget's
    message on timeout, authentication or authorization failure, or noSuchObject/Instance.
    """
    binary = _find_binary("/usr/bin/snmpget", "apt-get install snmp")
    if isinstance(auth, V3User):
        auth_args = auth.cli_args(security_level)
    else:
        auth_args = ["-v2c", "-c", auth]
    command = [
        binary,
        *auth_args,
        "-On",
        "-Oqv",
        "-t",
        str(timeout),
        "-r",
        str(retries),
        f"{host}:{port}",
        oid,
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=snmp_cli_env(workdir),
        timeout=(timeout * (retries + 1)) + 10,
        check=False,
    )
    value = result.stdout.strip()
    if result.returncode != 0 or value.startswith(("No Such Object", "No Such Instance")):
        raise SnmpCliError(
            f"{shlex.join(command)} -> rc {result.returncode}: {(result.stderr.strip() or value)}"
        )
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value
