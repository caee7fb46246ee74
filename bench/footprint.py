"""Agent memory footprint polling 1, 50 and 200 devices (goal: RSS ≤ 45 MB = 42.9 MiB at 50).

Starts snmpsim (serving tests/data/devices), Mosquitto and one real `pantau-agent run` per
device count and repeat, each in a fresh directory (a fresh outbox: its sequence numbers start
at 1, so "every device at sequence ≥ 2" really means two complete poll rounds), waits for two
rounds, and reads the agent's VmRSS and VmHWM from /proc. Figures are MiB (2^20 bytes).
Baseline in the same run: a bare Python process importing pysnmp + aiomqtt + PyYAML as a
production install has them (without pysmi, which only the test and `mibs` extras install),
and Python itself. The agent runs from bytecode compiled beforehand, as an installed wheel and
its interpreter do (pip compiles at install): a checkout run under PYTHONDONTWRITEBYTECODE would
compile every module of agent/ and pantau/ at each start, about 0.5 MiB more RSS than any
gateway has. The bytecode goes to a private cache (PYTHONPYCACHEPREFIX), written by a warm-up
run that is not counted; the checkout's tree is left alone.

Before/after: `--before REF` also measures the agent/ and pantau/ of a git revision (taken with
`git archive`, put first on PYTHONPATH, same interpreter, libraries, servers and cache), its
runs interleaved with the checkout's, and prints the two side by side.
Run: .venv/bin/python bench/footprint.py [--before HEAD]
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devstack import procs  # noqa: E402
from devstack.servers import Mosquitto, SnmpSim  # noqa: E402

COMMUNITIES = ["ceraos", "rutos-rutx_rut955", "routeros_rb750gr3", "uhp", "linux_powermon"]
COUNTS = [1, 50, 200]
RUNS = 3


def rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def baseline(code: str) -> int:
    """VmRSS (KiB) of a fresh interpreter after `code`. Not ru_maxrss: a child's maximum RSS
    counts the forked copy of this (larger) bench process from before its exec."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nimport re;print(re.search("
            "r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[-1])


def compiled(tmp: Path) -> dict[str, str]:
    """Environment for agents that run from bytecode in a private cache: with a prefix, Python
    looks for every module's bytecode there (stdlib and site-packages too), and writes what it
    compiles (PYTHONDONTWRITEBYTECODE empty is unset). agent/ and pantau/ are compiled here,
    the rest by the warm-up run."""
    env = {"PYTHONPYCACHEPREFIX": str(tmp / "pycache"), "PYTHONDONTWRITEBYTECODE": ""}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "agent"), str(REPO / "pantau")],
        env={**os.environ, **env},
        check=True,
    )
    return env


def agent_rss(
    tmp: Path, sim: SnmpSim, broker: Mosquitto, count: int, env: dict[str, str]
) -> tuple[int, int]:
    devices = [
        procs.snmpsim_device(f"d{i}", COMMUNITIES[i % len(COMMUNITIES)], sim.port)
        for i in range(count)
    ]
    cfg = procs.agent_config(
        tmp / f"a{count}.yaml",
        site=f"fp{count}",
        broker_port=broker.port,
        devices=devices,
        interval=10.0,
        timeout=2.0,
        retries=1,
        defaults={"ping": False, "concurrency": 32},
    )
    outbox = tmp / f"fp{count}-outbox.sqlite"
    assert not outbox.exists(), "each run needs a fresh outbox"
    with procs.agent(cfg, tmp / f"a{count}.log", env) as agent:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1)
            if outbox.exists():
                db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
                try:
                    seqs = [r[0] for r in db.execute("SELECT last FROM sequences")]
                except sqlite3.OperationalError:  # the agent is still creating its tables
                    seqs = []
                finally:
                    db.close()
                if len(seqs) == count and min(seqs) >= 2:
                    break
        else:
            raise SystemExit(f"{count} devices: two poll rounds did not finish\n{agent.log()}")
        assert agent.popen is not None
        return rss_kib(agent.popen.pid)


def revision(ref: str, into: Path) -> dict[str, str]:
    """agent/ and pantau/ as they are at git revision `ref`, in `into`, compiled to bytecode
    like the checkout's; the environment that makes `pantau-agent` import them."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "agent", "pantau"],
        capture_output=True,
        check=True,
    ).stdout
    into.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return {"PYTHONPATH": str(into)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REF", help="also measure this git revision")
    args = parser.parse_args()
    python = baseline("pass")
    # pysmi is blocked: pysnmp imports it only if installed, and production installs lack it
    stack = baseline(
        "import sys; sys.modules['pysmi'] = None\nimport pysnmp.hlapi.v3arch.asyncio, aiomqtt, yaml"
    )
    names = ["checkout"] + ([args.before] if args.before else [])
    results = {n: {c: list[tuple[int, int]]() for c in COUNTS} for n in names}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = compiled(tmp)
        envs = {"checkout": env}
        if args.before:
            envs[args.before] = {**env, **revision(args.before, tmp / "before")}
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(tmp / "before")],
                env={**os.environ, **env},
                check=True,
            )
        recordings = [REPO / "tests" / "data" / "devices" / f"{c}.snmprec" for c in COMMUNITIES]
        with SnmpSim(tmp / "sim", recordings) as sim, Mosquitto(tmp / "mqtt") as broker:
            for i, name in enumerate(names):
                (tmp / f"warm-up{i}").mkdir()  # fills the cache
                agent_rss(tmp / f"warm-up{i}", sim, broker, len(COMMUNITIES), envs[name])
            for run in range(RUNS):
                for count in COUNTS:
                    for i, name in enumerate(names):  # interleaved: drift hits both alike
                        fresh = tmp / f"run{run}-n{count}-{i}"
                        fresh.mkdir()
                        results[name][count].append(
                            agent_rss(fresh, sim, broker, count, envs[name])
                        )
    print(f"python alone:                                  {python / 1024:6.1f} MiB")
    print(f"pysnmp + aiomqtt + PyYAML imported (no pysmi): {stack / 1024:6.1f} MiB  (baseline)")
    goal = 45e6 / 2**20  # 45 MB = 42.9 MiB

    def median(name: str, count: int, which: int) -> float:
        return statistics.median(r[which] for r in results[name][count]) / 1024

    for count in COUNTS:
        rss, hwm = median("checkout", count, 0), median("checkout", count, 1)
        target = f"  goal <= {goal:.1f} MiB: " + ("met" if rss <= goal else "NOT met")
        before = ""
        if args.before:
            was = median(args.before, count, 0)
            before = f" (at {args.before}: {was:6.1f} MiB, {rss - was:+5.2f})"
        print(
            f"agent, {count:3d} devices, after two poll rounds: RSS {rss:6.1f} MiB{before}, "
            f"peak {hwm:6.1f} MiB, {rss * 1024 / stack:4.2f}x baseline"
            + (target if count == 50 else "")
        )


if __name__ == "__main__":
    main()
