"""Smoke test of `make demo` (python -m devstack.demo): the whole stack on free ports, one demo
per state directory, and a clean stop that leaves no server behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from devstack import demo, procs

pytestmark = pytest.mark.servers

REPO_ROOT = Path(__file__).resolve().parent.parent
ALL_PORTS_FREE = [
    "--http-port",
    "0",
    "--victoria-port",
    "0",
    "--mqtt-port",
    "0",
    "--snmp-port",
    "0",
]
SITES = {  # the demo's three sites and the devices that answer (cctv-nvr never does, on purpose)
    "katingan-vsat-01": {"vsat-terminal", "sat-receiver", "ups"},
    "katingan-bts-02": {"mw-radio", "lte-router", "dc-power"},
    "katingan-fiber-03": {"olt", "switch", "gateway"},
}
ONLINE_TIMEOUT = 90.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_DEMO_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _argv(state_dir: Path) -> list[str]:
    return [sys.executable, "-m", "devstack.demo", *ALL_PORTS_FREE, "--state-dir", str(state_dir)]


class Output:
    """Collects a process's output in a thread, so the pipe never fills up."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=10)


def _sites_ready(port: int) -> dict[str, set[str]] | None:
    """{site: devices up} once all three sites are online with their answering devices up."""
    metrics = procs.scrape(port)
    online = {
        dict(labels)["site"]
        for (name, labels), value in metrics.items()
        if name == "pantau_site_online" and value == 1.0
    }
    up: dict[str, set[str]] = {}
    for (name, labels), value in metrics.items():
        if name == "pantau_device_up" and value == 1.0:
            lab = dict(labels)
            up.setdefault(lab["site"], set()).add(lab["device"])
    if set(SITES) <= online and all(SITES[s] <= up.get(s, set()) for s in SITES):
        return up
    return None


def test_lock_left_by_a_dead_demo_does_not_block(tmp_path: Path) -> None:
    """A demo.lock whose holder is gone (a killed demo) is taken over; a live one refuses."""
    (tmp_path / demo.LOCK_NAME).write_text("999999999\n")  # no such process holds it
    first = demo.StateLock(tmp_path)
    first.acquire()
    try:
        assert (tmp_path / demo.LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(demo.DemoError, match=f"pid {os.getpid()} holds"):
            demo.StateLock(tmp_path).acquire()  # another open file description: refused
    finally:
        first.release()
    second = demo.StateLock(tmp_path)
    second.acquire()
    second.release()


def test_demo_runs_refuses_a_second_one_and_stops_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started = time.monotonic()
    first = subprocess.Popen(
        _argv(state),
        cwd=REPO_ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(first)
    try:
        port = None
        while port is None:
            assert first.poll() is None, f"the demo exited ({first.returncode}):\n{out.text}"
            assert time.monotonic() - started < ONLINE_TIMEOUT, f"no URLs printed:\n{out.text}"
            found = re.search(r"collector metrics\s+http://127\.0\.0\.1:(\d+)/metrics", out.text)
            port = int(found.group(1)) if found else None
            time.sleep(0.2)
        assert port != 9877, "--http-port 0 must pick a free port, not the default"

        up = procs.wait_until(
            lambda: first.poll() is None and _sites_ready(port),
            timeout=max(1.0, ONLINE_TIMEOUT - (time.monotonic() - started)),
            what=f"the three demo sites online in http://127.0.0.1:{port}/metrics",
        )
        assert first.poll() is None, out.text
        assert up["katingan-vsat-01"] == SITES["katingan-vsat-01"]  # cctv-nvr is down
        for site, devices in SITES.items():
            assert devices <= up[site], site
        status, page = procs.http_get(f"http://127.0.0.1:{port}/")
        assert status == 200
        for site in SITES:
            assert site in page
        _check_inventory(port, page)

        children = demo.leftover_processes(state)
        names = sorted(name for _, name in children)
        assert names.count("pantau-agent") == 3, children
        assert {"mosquitto", "victoria-metrics", "snmpsim-command-responder"} <= set(names)

        # a second demo on the same state directory refuses, touching nothing
        second = subprocess.run(
            _argv(state),
            cwd=REPO_ROOT,
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        refusal = [line for line in second.stderr.splitlines() if line.startswith("ERROR:")]
        assert len(refusal) == 1, second.stderr
        assert "another demo is running" in refusal[0]
        assert str(state) in refusal[0]
        assert f"pid {first.pid}" in refusal[0]
        assert "starting" not in second.stdout, second.stdout
        assert first.poll() is None
        assert (state / "logs" / "collector.log").is_file()
        assert procs.http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200

        first.send_signal(signal.SIGINT)
        code = first.wait(timeout=60)
        out.join()
        assert code == 0, out.text
        assert "demo stopped cleanly" in out.text
        assert demo.leftover_processes(state) == []
        for pid, name in children:
            assert not Path(f"/proc/{pid}").exists() or not _same_process(pid, name), (pid, name)
        # released: the file stays, without a holder
        assert (state / demo.LOCK_NAME).read_text() == ""
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGINT)
            try:
                first.wait(timeout=60)
            except subprocess.TimeoutExpired:
                first.kill()
                first.wait()
        for pid, _ in demo.leftover_processes(state):  # only what our demo started
            os.kill(pid, signal.SIGKILL)


def _check_inventory(port: int, page: str) -> None:
    """The demo's inventory (devstack/demo-inventory.yaml): districts, the microwave hop with
    both ends resolved to real interface rows of the recordings, and the site that never
    connects, on the status page and on /metrics."""
    for district in ("Katingan Hilir", "Katingan Tengah", "Marikit", "Bukit Raya"):
        assert f'data-district="{district}"' in page, district
    assert '<section class="site never" data-site="katingan-hulu-04" data-never-seen="1">' in page
    assert '<li class="linkrow up" data-link="mw-fiber03-bts02" data-state="up">' in page
    link = page[page.index('data-link="mw-fiber03-bts02"') :]
    link = link[: link.index("</li></ul></li>")]
    assert "a: <b>katingan-fiber-03/gateway/trunk: Down (eth5)</b> up · oper up" in link
    assert "b: <b>katingan-bts-02/mw-radio/Radio: Slot 2, Port 1</b> up · oper up" in link
    assert "RSL -34 dBm" in link  # the carrier's own reading, not its -99 dBm neighbours
    metrics = procs.scrape(port)
    assert metrics[("pantau_site_never_seen", (("site", "katingan-hulu-04"),))] == 1.0
    assert metrics[("pantau_site_never_seen", (("site", "katingan-bts-02"),))] == 0.0
    key = (("link", "mw-fiber03-bts02"), ("state", "up"))
    assert metrics[("pantau_link_state", key)] == 1.0
    ports = {
        dict(labels)["site"]: dict(labels)["ifIndex"]
        for (name, labels), _ in metrics.items()
        if name == "pantau_link_port_info"
    }
    assert ports == {"katingan-fiber-03": "6", "katingan-bts-02": "268451969"}


def _same_process(pid: int, name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return name.encode() in cmdline
