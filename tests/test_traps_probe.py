"""`pantau-agent probe --traps` (agent/traps/watch.py): the installed command listens, net-snmp's
snmptrap/snmpinform send, and the field technician sees each trap with its catalog name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.servers import free_port

pytestmark = pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp tools")

AGENT = Path(sys.executable).parent / "pantau-agent"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"site: s1\noutbox: {{path: {tmp_path / 'o.sqlite'}}}\n"
        "devices:\n  - {name: gw, host: 127.0.0.1}\n"
        "traps:\n  users:\n    - {user: noc, auth_protocol: SHA, auth_key_env: T_AUTH,"
        " priv_protocol: AES, priv_key_env: T_PRIV}\n"
    )
    return path


def _probe(tmp_path: Path, seconds: float, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port("udp")
    env = {**os.environ, "T_AUTH": "probe-auth-key", "T_PRIV": "probe-priv-key"}
    proc = subprocess.Popen(
        [str(AGENT), "probe", "-c", str(_config(tmp_path)), "--traps", str(seconds),
         "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()  # once it says so, it listens
    assert line.startswith(f"listening for traps on 127.0.0.1:{port}"), line
    return proc, port


def _send(tool: str, port: int, *args: str, source: str = "127.0.0.1") -> None:
    done = subprocess.run(
        [tool, "-M", "/dev/null", "-m", "", f"--clientaddr={source}", "-t", "1", "-r", "1",
         *args[:-1], f"127.0.0.1:{port}", *([] if args[:2] == ("-v", "1") else [""]), *args[-1].split()],
        capture_output=True, text=True, timeout=20, check=False,
        env={**os.environ, "SNMP_PERSISTENT_DIR": os.environ["T_SNMP_DIR"]},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(autouse=True)
def _snmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "net-snmp").mkdir()
    monkeypatch.setenv("T_SNMP_DIR", str(tmp_path / "net-snmp"))


def test_probe_traps_prints_each_trap_with_its_name(tmp_path: Path) -> None:
    proc, port = _probe(tmp_path, 6)
    v2c = ("-v", "2c", "-c", "public")
    _send("snmptrap", port, *v2c, f"{LINK_DOWN} {IF_INDEX}.7 i 7")
    _send("snmpinform", port, *v2c, "1.3.6.1.6.3.1.1.5.1")  # acknowledged by the probe
    _send("snmptrap", port, *v2c, "1.3.6.1.4.1.99.0.1", source="127.0.0.2")
    v3 = ("-v", "3", "-u", "noc", "-l", "authPriv", "-a", "SHA", "-x", "AES", "-X")
    _send("snmptrap", port, *v3, "probe-priv-key", "-A", "probe-auth-key",
          "-e", "0x8000000001020304", f"{LINK_DOWN} {IF_INDEX}.8 i 8")  # fmt: skip
    _send("snmptrap", port, *v3, "probe-priv-key", "-A", "not-the-auth-key",
          "-e", "0x8000000001020304", f"{LINK_DOWN} {IF_INDEX}.9 i 9")  # fmt: skip
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert any(line.endswith("gw  linkDown  major  raises linkDown:ifIndex=7") for line in lines), (
        out
    )
    assert "    ifIndex = 7" in lines
    assert any(line.endswith("gw  coldStart  warning  inform") for line in lines), out
    assert any(
        "127.0.0.2 (not a configured device)  1.3.6.1.4.1.99.0.1 (no definition)  info" in line
        for line in lines
    ), out
    assert any(line.endswith("raises linkDown:ifIndex=8") for line in lines), out  # SNMPv3
    assert "ifIndex=9" not in out  # the wrong key: counted, not shown
    assert "4 trap(s) shown" in err and "auth_failure=1" in err
    assert "informs_acknowledged=1" in err
    assert "not-the-auth-key" not in err + out and "probe-auth-key" not in err + out


def test_probe_traps_json_lines_and_exit_1_when_nothing_came(tmp_path: Path) -> None:
    proc, port = _probe(tmp_path, 3, "--json")
    _send(
        "snmptrap",
        port,
        "-v",
        "1",
        "-c",
        "public",
        f"1.3.6.1.4.1.8072 127.0.0.1 2 0 0 {IF_INDEX}.3 i 3",  # v1 linkDown
    )
    out, err = proc.communicate(timeout=30)
    (doc,) = [json.loads(line) for line in out.splitlines()]
    assert doc["device"] == "gw" and doc["configured"] and doc["trap"] == "linkDown"
    assert doc["varbinds"] == {"ifIndex": 3} and doc["alarm"] == "linkDown:ifIndex=3"

    proc, _ = _probe(tmp_path, 0.5)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and out == ""
    assert "0 trap(s) shown; received: nothing received" in err


def test_probe_traps_says_when_the_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        done = subprocess.run(
            [str(AGENT), "probe", "-c", str(_config(tmp_path)), "--traps", "1",
             "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "T_AUTH": "probe-auth-key", "T_PRIV": "probe-priv-key"},
        )  # fmt: skip
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
