"""No secret ever reaches an output: the agent and the collector run with known secrets (SNMP v3
keys and a community against a real snmpd, MQTT passwords against a Mosquitto that demands them,
an InfluxDB token) through the failures a site sees (wrong MQTT password, broker down, wrong v3
key, InfluxDB down, then up), at log level debug, and every byte they print, log, store in the
outbox or serve on /metrics is searched for each secret. A secrets file readable by others is
refused, through the CLI, with a message that names the file and the fix, not the secret.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from devstack import procs
from devstack.servers import Mosquitto, Snmpd, V3User, VictoriaMetrics, free_port


def new(label: str) -> str:
    return f"{label}-{secrets.token_hex(8)}"


SECRETS = {
    name: new(name)
    for name in (
        "auth",
        "priv",
        "wrong-auth",
        "community",
        "mqtt",
        "wrong-mqtt",
        "collector-mqtt",
        "token",
    )
}


def secret_file(path: Path, value: str, mode: int = 0o600) -> str:
    path.write_text(value + "\n")
    path.chmod(mode)
    return str(path)


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in SECRETS.items() if value.encode() in data]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    passwd = tmp_path / "mosquitto.passwd"
    for user, key in (("s1", "mqtt"), ("s2", "mqtt"), ("pantau-collector", "collector-mqtt")):
        subprocess.run(
            [
                "mosquitto_passwd",
                "-b",
                *(["-c"] if user == "s1" else []),
                str(passwd),
                user,
                SECRETS[key],
            ],
            check=True,
            capture_output=True,
        )
    broker = Mosquitto(
        tmp_path / "mosquitto", extra_conf=f"allow_anonymous false\npassword_file {passwd}\n"
    )
    v3 = V3User("pantau", "SHA-256", SECRETS["auth"], "AES", SECRETS["priv"])
    snmpd = Snmpd(tmp_path / "snmpd", users=[v3], community=SECRETS["community"])
    with broker, snmpd:
        yield broker, snmpd


def agent_yaml(
    tmp_path: Path,
    name: str,
    site: str,
    broker_port: int,
    snmpd: Snmpd,
    *,
    password: str = "mqtt",
    auth: str = "auth",
) -> Path:
    d = tmp_path / name
    d.mkdir()
    devices = [
        {
            "name": "core",
            "host": "127.0.0.1",
            "port": snmpd.port,
            "profiles": ["system"],
            "snmp": {
                "version": 3,
                "user": "pantau",
                "auth_protocol": "SHA-256",
                "auth_key_file": secret_file(d / "auth", SECRETS[auth]),
                "priv_protocol": "AES",
                "priv_key_env": "PANTAU_TEST_PRIV_KEY",
            },
        },
        {
            "name": "radio",
            "host": "127.0.0.1",
            "port": snmpd.port,
            "profiles": ["system"],
            "snmp": {
                "version": "2c",
                "community_file": secret_file(d / "community", SECRETS["community"]),
            },
        },
    ]
    return procs.agent_config(
        d / "agent.yaml",
        site=site,
        broker_port=broker_port,
        devices=devices,
        interval=1.0,
        broker={"username": site, "password_file": secret_file(d / "mqtt", SECRETS[password])},
        log={"level": "debug", "format": "text"},
    )


def test_no_secret_in_any_output_through_failures(tmp_path: Path, stack: Any) -> None:
    broker, snmpd = stack
    env = {"PANTAU_TEST_PRIV_KEY": SECRETS["priv"]}
    good = agent_yaml(tmp_path, "good", "s1", broker.port, snmpd)
    wrong_password = agent_yaml(
        tmp_path, "wrong-pw", "s2", broker.port, snmpd, password="wrong-mqtt"
    )
    no_broker = agent_yaml(tmp_path, "no-broker", "s2", free_port(), snmpd)
    wrong_key = agent_yaml(tmp_path, "wrong-key", "s2", broker.port, snmpd, auth="wrong-auth")
    influx = VictoriaMetrics(tmp_path / "victoria")  # not started yet: InfluxDB is down
    http_port = free_port()
    collector_yaml = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=broker.port,
        influx_url=influx.url,
        http_port=http_port,
        mqtt={
            "username": "pantau-collector",
            "password_file": secret_file(tmp_path / "cpw", SECRETS["collector-mqtt"]),
        },
        influx={"token_file": secret_file(tmp_path / "token", SECRETS["token"])},
        rejected_file=str(tmp_path / "rejected.jsonl"),
        log={"level": "debug"},
    )
    wrong_collector = procs.collector_config(
        tmp_path / "wrong-collector.yaml",
        broker_port=broker.port,
        influx_url=influx.url,
        http_port=free_port(),
        mqtt={
            "username": "pantau-collector",
            "client_id": "wrong",
            "password_file": secret_file(tmp_path / "wcpw", SECRETS["wrong-mqtt"]),
        },
        influx={"token_env": "PANTAU_TEST_TOKEN"},
        log={"level": "debug"},
    )

    # The CLI first, all at once (each is a Python start-up): checks pass, probes fail or not.
    agent_cli = str(procs.BIN / "pantau-agent")
    commands = {
        f"check-config {name}": [agent_cli, "check-config", "--config", str(config)]
        for name, config in (("good", good), ("wrong-key", wrong_key))
    }
    commands["probe wrong-key"] = [agent_cli, "probe", "--config", str(wrong_key)]
    commands["probe good"] = [agent_cli, "probe", "--config", str(good), "--json"]
    commands["collector check-config"] = [
        str(procs.BIN / "pantau-collector"),
        "check-config",
        "--config",
        str(collector_yaml),
    ]
    running = {
        name: subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
        )
        for name, argv in commands.items()
    }
    outputs: dict[str, str | bytes] = {}
    codes = {}
    for name, proc in running.items():
        outputs[name], _ = proc.communicate(timeout=60)
        codes[name] = proc.returncode
    assert codes == {
        "check-config good": 0,
        "check-config wrong-key": 0,
        "probe wrong-key": 1,
        "probe good": 0,
        "collector check-config": 0,
    }, outputs
    assert "auth" in outputs["probe wrong-key"]

    agents = {
        name: procs.agent(config, tmp_path / f"agent-{name}.log", env)
        for name, config in (
            ("good", good),
            ("wrong-pw", wrong_password),
            ("no-broker", no_broker),
            ("wrong-key", wrong_key),
        )
    }
    coll = procs.collector(collector_yaml, tmp_path / "collector.log")
    wrong = procs.collector(
        wrong_collector, tmp_path / "wrong-collector.log", {"PANTAU_TEST_TOKEN": SECRETS["token"]}
    )
    try:
        for proc in (*agents.values(), coll, wrong):
            proc.start()
        procs.wait_until(lambda: "influx write failed" in coll.log(), 20, "InfluxDB down")
        procs.wait_until(lambda: "reason=auth" in agents["wrong-key"].log(), 20, "wrong v3 key")
        procs.wait_until(
            lambda: "Not authorized" in agents["wrong-pw"].log(), 20, "wrong MQTT password refused"
        )
        procs.wait_until(lambda: "broker unavailable" in agents["no-broker"].log(), 20, "no broker")
        procs.wait_until(lambda: "refused" in wrong.log(), 20, "collector's wrong password")
        influx.start()  # InfluxDB comes back: the held batch is written with the token
        procs.wait_until(
            lambda: influx.export('{__name__="pantau_poll_up",device="core"}'),
            30,
            "sample sets written",
        )
        status, metrics = procs.http_get(f"http://127.0.0.1:{http_port}/metrics")
        assert status == 200
        outputs["/metrics"] = metrics
        assert 'pantau_device_up{device="core",site="s1"} 1.0' in metrics
    finally:
        for proc in (*agents.values(), coll, wrong):
            proc.stop()
        influx.stop()
    for proc in (*agents.values(), coll, wrong):
        outputs[str(proc.log_path)] = proc.log()
    for path in tmp_path.glob("*/*-outbox.sqlite*"):
        outputs[str(path)] = path.read_bytes()
    outputs["rejected"] = (
        (tmp_path / "rejected.jsonl").read_bytes()
        if (tmp_path / "rejected.jsonl").exists()
        else b""
    )
    assert "poll failed device=core reason=auth" in outputs[str(tmp_path / "agent-wrong-key.log")]
    found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert not found, f"secrets leaked: {found}"


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_secret_file_readable_by_others_is_refused(tmp_path: Path, command: str) -> None:
    password = tmp_path / "mqtt-password"
    token = tmp_path / "influx-token"
    secret_file(password, SECRETS["mqtt"], mode=0o644)
    secret_file(token, SECRETS["token"], mode=0o604)
    agent = procs.agent_config(
        tmp_path / "agent.yaml",
        site="s1",
        broker_port=free_port(),
        devices=[{"name": "radio", "host": "127.0.0.1"}],
        broker={"username": "s1", "password_file": str(password)},
    )
    collector = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=free_port(),
        influx_url="http://127.0.0.1:1",
        http_port=free_port(),
        influx={"token_file": str(token)},
    )
    for program, config, path, mode in (
        ("pantau-agent", agent, password, "0644"),
        ("pantau-collector", collector, token, "0604"),
    ):
        started = time.monotonic()
        result = run_cli(procs.BIN / program, command, "--config", config)
        assert result.returncode == 2, result.stdout + result.stderr
        assert time.monotonic() - started < 30
        assert (
            f"secret file {path} is readable by others (mode {mode}); run: chmod 600 {path}"
            in result.stderr
        ), result.stderr
        assert not leaks(result.stdout + result.stderr)
    # 0640 (a group such as the service's) is fine; the file then needs no other change
    password.chmod(0o640)
    assert run_cli(procs.BIN / "pantau-agent", "check-config", "--config", agent).returncode == 0
