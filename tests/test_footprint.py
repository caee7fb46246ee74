"""What a site gateway need not keep in memory (issue 11, item 20; bench/footprint.py measures).

Each test guards one cut of docs/performance.md (Footprint) against coming back unnoticed: a
library loaded although the config does not use it, an executor thread per poll to look up an
address that needs no lookup, a validator kept for objects the agent builds itself, pydantic
in the running agent (`run` validates in a process of its own, agent/runtime.py; that the agent
then loads no pydantic is checked in tests/test_architecture.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pydantic
import pytest

from agent.config import AgentConfig, Device, load_agent_config
from agent.snmp import SnmpError
from agent.snmp.client import resolve
from devstack import procs

REPO = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, ping: bool) -> Path:
    devices = [procs.snmpsim_device(f"d{i}", "uhp", 16100) for i in range(3)]
    return procs.agent_config(
        tmp_path / "agent.yaml",
        site="fp",
        broker_port=1883,
        devices=devices,
        defaults={"ping": ping},
    )


def _loaded_after_start(config: Path) -> set[str]:
    """Top-level modules loaded by what `pantau-agent run` imports and builds before polling."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import agent.cli, agent.service\n"
        "from agent.config import load_agent_config\n"
        "from agent.icmp import Pinger\n"
        f"cfg = load_agent_config(Path({str(config)!r}))\n"
        "Pinger()\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return set(out.stdout.split())


def test_a_config_that_pings_nothing_does_not_load_icmplib(tmp_path):
    assert "icmplib" not in _loaded_after_start(_config(tmp_path, ping=False))


def test_a_config_that_pings_loads_icmplib_with_the_first_ping(tmp_path):
    from agent.icmp import Pinger, PingSettings

    assert "icmplib" not in _loaded_after_start(_config(tmp_path, ping=True))  # not at start
    group = asyncio.run(Pinger().ping("127.0.0.1", PingSettings(count=1, timeout=0.5)))
    assert "icmplib" in sys.modules
    assert group is None or group.measurement == "icmp"  # None: no ICMP allowed here (logged)


def test_an_ipv4_address_is_its_own_answer_without_an_executor_thread():
    async def main() -> tuple[tuple[str, int], int, int]:
        before = threading.active_count()
        answer = await resolve("192.0.2.7", 161)
        return answer, before, threading.active_count()

    answer, before, after = asyncio.run(main())
    assert answer == ("192.0.2.7", 161)
    assert after == before  # looking it up ran getaddrinfo on a new executor thread


@pytest.mark.parametrize(
    ("host", "address"),
    [("localhost", "127.0.0.1"), ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1")],
)
def test_names_and_shorthand_addresses_are_still_looked_up(host, address):
    assert asyncio.run(resolve(host, 1161)) == (address, 1161)


@pytest.mark.parametrize("host", ["no-such-host.invalid", "::1", "300.1.2.3", ""])
def test_what_is_neither_an_ipv4_address_nor_a_known_name_is_a_resolve_error(host):
    with pytest.raises(SnmpError) as info:
        asyncio.run(resolve(host, 161))
    assert info.value.reason == "resolve"


def test_devices_and_the_agent_config_are_plain_immutable_objects(tmp_path):
    """Built only by load_agent_config from validated parts: no second validation, no
    validator or serializer kept for them (0.4 MiB), and as immutable as the models were."""
    cfg = load_agent_config(_config(tmp_path, ping=False))
    assert not issubclass(AgentConfig, pydantic.BaseModel)
    assert not issubclass(Device, pydantic.BaseModel)
    device = cfg.devices[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        device.interval = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.site = "other"  # type: ignore[misc]
    assert dataclasses.replace(device, interval=5.0).interval == 5.0
    assert cfg.client_id == "pantau-agent-fp"
    assert device == load_agent_config(_config(tmp_path, ping=False)).devices[0]


def _secret_config(tmp_path: Path) -> Path:
    """Every kind of secret the agent holds: a community and v3 keys from files, the MQTT
    password from the environment, a trap user's key."""
    secrets = {}
    for name, value in (("community", "c0mmunity"), ("auth", "auth-key-1"), ("priv", "priv-key-1")):
        secrets[name] = tmp_path / name
        secrets[name].write_text(value + "\n")
        secrets[name].chmod(0o600)
    devices = [
        {
            **procs.snmpsim_device(f"d{i}", "uhp", 16100),
            "snmp": {"community_file": str(secrets["community"])},
        }
        for i in range(3)
    ]
    devices.append(
        {
            "name": "v3",
            "host": "127.0.0.1",
            "port": 16100,
            "snmp": {
                "version": 3,
                "user": "noc",
                "auth_protocol": "SHA",
                "auth_key_file": str(secrets["auth"]),
                "priv_protocol": "AES",
                "priv_key_file": str(secrets["priv"]),
            },
        }
    )
    return procs.agent_config(
        tmp_path / "agent.yaml",
        site="fp",
        broker_port=1883,
        devices=devices,
        defaults={"ping": False},
        broker={"username": "fp", "password_env": "FP_MQTT_PASSWORD"},
        traps={
            "users": [{"user": "trapper", "auth_protocol": "SHA", "auth_key_env": "FP_TRAP_KEY"}]
        },
    )


def test_run_validates_in_a_process_of_its_own_and_gets_the_same_config(tmp_path, monkeypatch):
    """What `pantau-agent run` takes from its validating process (agent/runtime.py) is what
    validating in-process gives, secrets included, and the devices still share their
    profiles (one plan compiled per set of profiles, Plan.of)."""
    from agent.runtime import load_validated

    monkeypatch.setenv("FP_MQTT_PASSWORD", "mqtt-password")
    monkeypatch.setenv("FP_TRAP_KEY", "trap-key-12")
    config = _secret_config(tmp_path)
    here = load_agent_config(config)
    there = load_validated(config)
    assert there == here
    assert there.broker.password == "mqtt-password"
    assert there.devices[0].snmp.community_value == "c0mmunity"
    assert (there.devices[3].snmp.auth_key, there.devices[3].snmp.priv_key) == (
        "auth-key-1",
        "priv-key-1",
    )
    assert there.traps is not None and there.traps.users[0].auth_key == "trap-key-12"
    first, second = there.devices[0], there.devices[1]
    assert all(a is b for a, b in zip(first.candidates, second.candidates, strict=True))
    assert all(a is b for a, b in zip(first.profiles, second.profiles, strict=True))
    assert not any(isinstance(p, pydantic.BaseModel) for p in first.candidates)
    assert "c0mmunity" not in repr(there)  # secrets stay unprinted in the plain objects too


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
    )


def test_run_refuses_an_invalid_config_with_the_errors_check_config_gives(tmp_path):
    config = _config(tmp_path, ping=False)
    text = config.read_text()
    config.write_text(text.replace("site: fp", "site: f/p") + "unknown_key: 1\n")
    checked = _cli("check-config", "-c", str(config))
    ran = _cli("run", "-c", str(config))
    assert checked.returncode == ran.returncode == 2
    assert "config invalid (2 error(s)):" in ran.stderr
    assert f"{config}:1: site:" in ran.stderr and "unknown_key" in ran.stderr
    assert ran.stderr == checked.stderr
    assert not (tmp_path / "fp-outbox.sqlite").exists()  # nothing started


def test_run_stops_when_its_validating_process_gives_no_answer(tmp_path):
    """A validating process that dies (here: the module that validates is broken) is a failed
    start (cli: exit 1, said on stderr), never an agent running on half a config."""
    broken = tmp_path / "lib" / "agent"
    shutil.copytree(REPO / "agent", broken, ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "config_file.py").write_text("raise RuntimeError('broken install')\n")
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(broken.parent)!r})\n"
        "from pathlib import Path\n"
        "from agent.runtime import ValidatorFailed, load_validated\n"
        "try:\n"
        f"    load_validated(Path({str(_config(tmp_path, ping=False))!r}))\n"
        "except ValidatorFailed as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused: validating ") and "exit status 1" in out.stdout
    assert "broken install" in out.stderr  # the validating process's traceback is shown


def test_the_validating_process_imports_what_the_agent_imports_not_the_working_directory(
    tmp_path,
):
    """`python -m` would put the working directory first on the validating process's path: a
    `yaml.py` (or `agent/`, `pydantic.py`) wherever `run` is started from — a source checkout
    of another version, /tmp — would run in it, and the agent would trust what it pickled. It
    imports from exactly the agent's own path; `-P` starts the agent as its console script
    does, without the working directory on its path."""
    config = _config(tmp_path, ping=False)
    config.write_text(config.read_text() + "unknown_key: 1\n")
    hijack = "import sys; sys.stderr.write('imported from the working directory\\n'); sys.exit(3)\n"
    for name in ("yaml.py", "pydantic.py"):
        (tmp_path / name).write_text(hijack)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-P", "-m", "agent.cli", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        )

    checked, ran = cli("check-config", "-c", config.name), cli("run", "-c", config.name)
    assert "working directory" not in checked.stderr + ran.stderr
    assert checked.returncode == ran.returncode == 2, ran.stderr
    assert ran.stderr == checked.stderr and "unknown_key" in ran.stderr


def test_a_validation_that_blocks_is_a_failed_start_not_a_hang(tmp_path):
    """A community "file" that is a FIFO nobody writes blocks the validating process in
    open(): `run` gives up after its timeout with a reason, and the child is gone."""
    from agent.runtime import ValidatorFailed, load_validated

    config = _config(tmp_path, ping=False)
    fifo = tmp_path / "community"
    os.mkfifo(fifo, 0o600)
    text = config.read_text()
    config.write_text(text.replace("community: uhp", f"community_file: {fifo}", 1))
    assert f"community_file: {fifo}" in config.read_text()
    with pytest.raises(ValidatorFailed, match=r"took longer than 2 s"):
        load_validated(config, timeout=2.0)
    left = subprocess.run(["pgrep", "-f", "from agent.runtime import main"], capture_output=True)
    assert left.returncode == 1, left.stdout  # no validating process left behind


def test_the_answer_survives_output_written_to_fd_1_and_is_refused_to_a_terminal(tmp_path):
    """The pickle goes to a duplicate of fd 1; fd 1 itself is stderr by then, so a library
    writing there (C code, not sys.stdout) cannot corrupt it; and run by hand at a terminal,
    the validating process refuses rather than printing the secrets."""
    config = _config(tmp_path, ping=False)
    code = (
        "import os, sys, pickle\n"
        "import agent.config_file as cf\n"
        "real = cf.load_agent_config\n"
        "def noisy(path):\n"
        "    os.write(1, b'noise from C code\\n')\n"
        "    return real(path)\n"
        "import agent.config\n"
        "agent.config.load_agent_config = noisy\n"
        "from agent.runtime import main\n"
        f"sys.exit(main([{str(config)!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    kind, cfg = pickle.loads(out.stdout)
    assert kind == "ok" and isinstance(cfg, AgentConfig)
    assert b"noise from C code" in out.stderr
    # at a terminal: refused (a pty stands in for one)
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdout is the pty
        os.chdir(REPO)
        child = f"import sys; from agent.runtime import main; sys.exit(main([{str(config)!r}]))"
        os.execv(sys.executable, [sys.executable, "-c", child])
    chunks = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks += data
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    assert b"writes a pickle" in chunks
