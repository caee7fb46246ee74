"""Poll cost: client CPU-seconds per 10,000 varbinds for a GETBULK walk of ifTable + ifXTable
(max-repetitions 25), pantau's two SNMP paths side by side with net-snmp and snmp_exporter.

    python bench/poll_cost.py                  # net-snmp snmpd with ~300 interfaces (root)
    python bench/poll_cost.py --agent snmpsim  # snmpsim serving a generated recording

The agent: net-snmp's snmpd in a network namespace made for the run, holding `--interfaces`
interfaces (veth pairs) besides lo, so ifTable + ifXTable is some 12,000 varbinds of a real
agent. The whole measurement runs inside that namespace, on its loopback. Needs root and
iproute2; `--agent snmpsim` needs neither: snmpsim serves a recording generated with as many
interfaces, every ifTable/ifXTable column filled.

What is measured, each over `--walks` walks of both tables, median of `--runs` runs:
  * net-snmp `snmpbulkwalk -Cr25`, one process per table: its rusage (os.wait4), start-up
    included, output written to a file;
  * prometheus snmp_exporter (Debian prometheus-snmp-exporter) with a module walking the two
    tables as the generator's if_mib does (every column a metric, ifAlias/ifDescr/ifName
    looked up as labels): the exporter process's utime + stime (/proc/<pid>/stat) across the
    scrapes;
  * pantau's pysnmp path (SnmpSession.next_rows) and fast path (FastSession.next_rows, the
    default for v1/v2c), in this process: time.process_time() across the walks.
Ratios are to snmp_exporter's figure of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.snmp import END_OF_MIB, Credentials, Session, SnmpClient  # noqa: E402
from devstack.servers import Snmpd, SnmpSim, free_port, snmp_cli_env, wait_for  # noqa: E402

IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2)
IF_X_TABLE = (1, 3, 6, 1, 2, 1, 31, 1, 1)
TABLES = (IF_TABLE, IF_X_TABLE)
REPETITIONS = 25
COMMUNITY = "pollcost"
EXPORTER = "/usr/bin/prometheus-snmp-exporter"
BULKWALK = "/usr/bin/snmpbulkwalk"


# ---------------------------------------------------------------------------------------------
# the agent


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def namespace(interfaces: int) -> Iterator[str]:
    """A network namespace with lo and `interfaces` veth interfaces (pairs), deleted after."""
    name = f"pantau-pc{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        batch = "".join(
            f"link add pc{i}a type veth peer name pc{i}b\n" for i in range(interfaces // 2)
        )
        subprocess.run(
            ["ip", "-n", name, "-batch", "-"],
            input=batch.encode(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield name
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            ip("netns", "del", name)


def recording(path: Path, interfaces: int) -> Path:
    """An snmprec with system and every ifTable/ifXTable column for `interfaces` interfaces."""
    lines = [
        "1.3.6.1.2.1.1.1.0|4|pantau poll-cost recording",
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10",
        "1.3.6.1.2.1.1.3.0|67|123456",
        f"1.3.6.1.2.1.2.1.0|2|{interfaces}",
    ]
    rows = range(1, interfaces + 1)
    if_columns: list[tuple[int, Callable[[int], str]]] = [
        (1, lambda i: f"2|{i}"),
        (2, lambda i: f"4|eth{i} Intel Corporation 82540EM"),
        (3, lambda i: "2|6"),
        (4, lambda i: "2|1500"),
        (5, lambda i: "66|1000000000"),
        (6, lambda i: f"4x|0050560000{i % 256:02x}"),
        (7, lambda i: "2|1"),
        (8, lambda i: f"2|{1 + i % 2}"),
        (9, lambda i: f"67|{i * 100}"),
        *[(c, lambda i, c=c: f"65|{(i * 7919 * c) % 2**32}") for c in range(10, 21)],
        (21, lambda i: "66|0"),
        (22, lambda i: "6|0.0"),
    ]
    ifx_columns: list[tuple[int, Callable[[int], str]]] = [
        (1, lambda i: f"4|eth{i}"),
        *[(c, lambda i, c=c: f"65|{(i * 104729 * c) % 2**32}") for c in range(2, 6)],
        *[(c, lambda i, c=c: f"70|{(i * 15485863 * c) << 20}") for c in range(6, 14)],
        (14, lambda i: "2|1"),
        (15, lambda i: "66|1000"),
        (16, lambda i: "2|2"),
        (17, lambda i: "2|1"),
        (18, lambda i: f"4|uplink {i} to site"),
        (19, lambda i: "67|0"),
    ]
    for column, value in if_columns:
        lines += [f"1.3.6.1.2.1.2.2.1.{column}.{i}|{value(i)}" for i in rows]
    for column, value in ifx_columns:
        lines += [f"1.3.6.1.2.1.31.1.1.1.{column}.{i}|{value(i)}" for i in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# the clients


def ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def exporter_config(path: Path, community: str) -> Path:
    lookups = "".join(
        f"      - labels: [ifIndex]\n        labelname: {name}\n        oid: {oid}\n"
        f"        type: DisplayString\n"
        for name, oid in (
            ("ifAlias", "1.3.6.1.2.1.31.1.1.1.18"),
            ("ifDescr", "1.3.6.1.2.1.2.2.1.2"),
            ("ifName", "1.3.6.1.2.1.31.1.1.1.1"),
        )
    )
    metrics = [
        ("ifIndex", "2.2.1.1", "gauge"),
        ("ifType", "2.2.1.3", "gauge"),
        ("ifMtu", "2.2.1.4", "gauge"),
        ("ifSpeed", "2.2.1.5", "gauge"),
        ("ifPhysAddress", "2.2.1.6", "PhysAddress48"),
        ("ifAdminStatus", "2.2.1.7", "gauge"),
        ("ifOperStatus", "2.2.1.8", "gauge"),
        ("ifLastChange", "2.2.1.9", "gauge"),
    ]
    metrics += [
        (name, f"2.2.1.{c}", "counter")
        for c, name in enumerate(
            [
                "ifInOctets",
                "ifInUcastPkts",
                "ifInNUcastPkts",
                "ifInDiscards",
                "ifInErrors",
                "ifInUnknownProtos",
                "ifOutOctets",
                "ifOutUcastPkts",
                "ifOutNUcastPkts",
                "ifOutDiscards",
                "ifOutErrors",
            ],
            start=10,
        )
    ]
    metrics += [("ifOutQLen", "2.2.1.21", "gauge")]
    metrics += [
        (name, f"31.1.1.1.{c}", "counter")
        for c, name in enumerate(
            [
                "ifInMulticastPkts",
                "ifInBroadcastPkts",
                "ifOutMulticastPkts",
                "ifOutBroadcastPkts",
                "ifHCInOctets",
                "ifHCInUcastPkts",
                "ifHCInMulticastPkts",
                "ifHCInBroadcastPkts",
                "ifHCOutOctets",
                "ifHCOutUcastPkts",
                "ifHCOutMulticastPkts",
                "ifHCOutBroadcastPkts",
            ],
            start=2,
        )
    ]
    metrics += [
        ("ifLinkUpDownTrapEnable", "31.1.1.1.14", "gauge"),
        ("ifHighSpeed", "31.1.1.1.15", "gauge"),
        ("ifPromiscuousMode", "31.1.1.1.16", "gauge"),
        ("ifConnectorPresent", "31.1.1.1.17", "gauge"),
        ("ifCounterDiscontinuityTime", "31.1.1.1.19", "gauge"),
    ]
    text = (
        "if_mib:\n  walk:\n  - 1.3.6.1.2.1.2.2\n  - 1.3.6.1.2.1.31.1.1\n"
        f"  version: 2\n  max_repetitions: {REPETITIONS}\n  retries: 0\n  timeout: 10s\n"
        f"  auth:\n    community: {community}\n  metrics:\n"
    )
    for name, oid, kind in metrics:
        text += (
            f"  - name: {name}\n    oid: 1.3.6.1.2.1.{oid}\n    type: {kind}\n"
            f"    help: {name}\n    indexes:\n    - labelname: ifIndex\n"
            f"      type: gauge\n    lookups:\n{lookups}"
        )
    path.write_text(text)
    return path


class Exporter:
    def __init__(self, workdir: Path, community: str) -> None:
        self.port = free_port()
        config = exporter_config(workdir / "snmp.yml", community)
        self.log = open(workdir / "snmp_exporter.log", "ab")
        self.proc = subprocess.Popen(
            [
                EXPORTER,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._up, 20, "snmp_exporter")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"snmp_exporter exited: see {self.log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
            return True
        except OSError:
            return False

    def scrape(self, target: str) -> int:
        """One scrape; the varbinds it walked (snmp_scrape_pdus_returned)."""
        url = f"http://127.0.0.1:{self.port}/snmp?module=if_mib&target={target}"
        body = urllib.request.urlopen(url, timeout=60).read().decode()
        match = re.search(r"^snmp_scrape_pdus_returned (\d+)", body, re.M)
        if match is None:
            raise RuntimeError(f"snmp_exporter scrape failed:\n{body[:2000]}")
        return int(match[1])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def bulkwalk(host: str, port: int, community: str, workdir: Path) -> tuple[float, int]:
    """(CPU seconds, varbinds) of snmpbulkwalk over both tables, one process per table."""
    cpu, lines = 0.0, 0
    out = workdir / "bulkwalk.out"
    for table in TABLES:
        with open(out, "wb") as sink:
            proc = subprocess.Popen(
                [
                    BULKWALK,
                    "-v2c",
                    "-c",
                    community,
                    f"-Cr{REPETITIONS}",
                    "-On",
                    "-t",
                    "10",
                    "-r",
                    "0",
                    f"{host}:{port}",
                    ".".join(map(str, table)),
                ],
                stdout=sink,
                stderr=subprocess.PIPE,
                env=snmp_cli_env(workdir),
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"snmpbulkwalk failed: {proc.stderr.read() if proc.stderr else ''}")
        if proc.stderr:
            proc.stderr.close()
        cpu += usage.ru_utime + usage.ru_stime
        lines += sum(1 for line in out.open("rb") if line.startswith(b"."))  # -On: one per varbind
    return cpu, lines


async def walk(session: Session) -> int:
    """Both tables with GETBULK, as snmpbulkwalk walks them; the varbinds received."""
    total = 0
    for table in TABLES:
        position = table
        while True:
            rows = await session.next_rows([position], REPETITIONS, True)
            ((oid, value),) = rows[-1]
            inside = [
                r for r in rows if r[0][0][: len(table)] == table and r[0][1] is not END_OF_MIB
            ]
            total += len(inside)
            if len(inside) < len(rows) or value is END_OF_MIB:
                break
            position = oid
    return total


# ---------------------------------------------------------------------------------------------


def median_table(results: dict[str, list[float]], varbinds: dict[str, int]) -> str:
    base = statistics.median(results["snmp_exporter"]) if results.get("snmp_exporter") else None
    lines = [
        f"{'client':<28} {'CPU s / 10k varbinds':>21} {'vs snmp_exporter':>17}  "
        f"{'varbinds/walk':>13}  runs"
    ]
    for name, values in results.items():
        if not values:
            continue
        figure = statistics.median(values)
        ratio = f"{figure / base:.2f}x" if base else "-"
        runs = " ".join(f"{v:.3f}" for v in values)
        lines.append(f"{name:<28} {figure:>21.3f} {ratio:>17}  {varbinds[name]:>13}  {runs}")
    return "\n".join(lines)


async def measure(
    host: str, port: int, community: str, runs: int, walks: int, workdir: Path
) -> tuple[dict[str, list[float]], dict[str, int]]:
    results: dict[str, list[float]] = {
        "snmpbulkwalk (net-snmp)": [],
        "snmp_exporter": [],
        "pantau pysnmp path": [],
        "pantau fast path": [],
    }
    varbinds: dict[str, int] = {}
    exporter = Exporter(workdir, community) if os.access(EXPORTER, os.X_OK) else None
    if exporter is None:
        print(f"{EXPORTER} missing (apt-get install prometheus-snmp-exporter): not measured")
    have_bulkwalk = os.access(BULKWALK, os.X_OK)
    try:
        async with SnmpClient() as client:
            creds = Credentials("2c", community)
            sessions = {
                "pantau pysnmp path": await client.session(
                    host, port, creds, timeout=10, retries=0, fast=False
                ),
                "pantau fast path": await client.session(host, port, creds, timeout=10, retries=0),
            }
            for session in sessions.values():  # warm-up, not counted
                await walk(session)
            if exporter is not None:
                exporter.scrape(f"{host}:{port}")
            for run in range(runs):
                if have_bulkwalk:
                    cpu = count = 0.0
                    for _ in range(walks):
                        seconds, n = bulkwalk(host, port, community, workdir)
                        cpu, count = cpu + seconds, count + n
                    results["snmpbulkwalk (net-snmp)"].append(cpu / count * 10_000)
                    varbinds["snmpbulkwalk (net-snmp)"] = int(count / walks)
                if exporter is not None:
                    before, count = ticks(exporter.proc.pid), 0
                    for _ in range(walks):
                        count += exporter.scrape(f"{host}:{port}")
                    cpu = (ticks(exporter.proc.pid) - before) / os.sysconf("SC_CLK_TCK")
                    results["snmp_exporter"].append(cpu / count * 10_000)
                    varbinds["snmp_exporter"] = count // walks
                for name, session in sessions.items():
                    started, count = time.process_time(), 0
                    for _ in range(walks):
                        count += await walk(session)
                    cpu = time.process_time() - started
                    results[name].append(cpu / count * 10_000)
                    varbinds[name] = count // walks
                    fallbacks = getattr(session, "fallbacks", None)
                    if fallbacks:
                        print(f"  {name}: fast-path fallbacks {dict(fallbacks)}")
                print(f"  run {run + 1}/{runs} done", flush=True)
    finally:
        if exporter is not None:
            exporter.close()
    return results, varbinds


def run_inside(args: argparse.Namespace) -> None:
    """Start the agent, measure, print."""
    with tempfile.TemporaryDirectory(prefix="pantau-pollcost-") as tmp:
        workdir = Path(tmp)
        if args.agent == "snmpd":
            server: Snmpd | SnmpSim = Snmpd(workdir / "snmpd", community=COMMUNITY)
            what = f"net-snmp snmpd, {args.interfaces} veth interfaces + lo in a network namespace"
        else:
            path = recording(workdir / f"{COMMUNITY}.snmprec", args.interfaces)
            server = SnmpSim(workdir / "snmpsim", [path])
            what = f"snmpsim, generated recording of {args.interfaces} interfaces"
        with server:
            results, varbinds = asyncio.run(
                measure(server.host, server.port, COMMUNITY, args.runs, args.walks, workdir)
            )
    print(f"\nPoll cost: GETBULK walk of ifTable + ifXTable, max-repetitions {REPETITIONS}")
    print(
        f"agent: {what}; {args.walks} walks per run, median of {args.runs} runs; "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(median_table(results, varbinds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", choices=("snmpd", "snmpsim"), default="snmpd")
    parser.add_argument(
        "--interfaces",
        type=int,
        default=300,
        help="interfaces besides lo (default 300: 12,040 varbinds from snmpd)",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--walks", type=int, default=3, help="walks of both tables per run")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside or args.agent == "snmpsim":
        run_inside(args)
        return
    if os.geteuid() != 0 or shutil.which("ip") is None:
        sys.exit(
            "the snmpd agent needs root and iproute2 (for a network namespace); try --agent snmpsim"
        )
    with namespace(args.interfaces) as name:
        command = [
            "ip",
            "netns",
            "exec",
            name,
            sys.executable,
            str(Path(__file__).resolve()),
            "--inside",
            "--agent",
            "snmpd",
            "--interfaces",
            str(args.interfaces),
            "--runs",
            str(args.runs),
            "--walks",
            str(args.walks),
        ]
        sys.exit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    main()
