"""`broker.hosts` and `broker.protocol` (docs/scaling.md, "Agents on the cluster"): what an
agent on a broker cluster is given, and the mistakes it refuses with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_agent_config
from pantau.settings import ConfigError

HEAD = """\
site: katingan-01
devices:
  - name: radio-1
    host: 10.0.0.2
    snmp: {version: 2c, community: ceraos}
broker:
"""


def load(tmp_path: Path, broker: str):
    path = tmp_path / "agent.yaml"
    path.write_text(HEAD + broker)
    return load_agent_config(path)


def test_hosts_and_protocol_are_read(tmp_path):
    cfg = load(tmp_path, '  hosts: [mq-1:1883, "[::1]:8883", 10.0.0.9:1884]\n  protocol: "3.1.1"\n')
    assert cfg.broker.addresses == (("mq-1", 1883), ("::1", 8883), ("10.0.0.9", 1884))
    assert cfg.broker.protocol == "3.1.1"


def test_host_and_port_still_work_and_mqtt_5_is_the_default(tmp_path):
    cfg = load(tmp_path, "  host: mq-1\n  port: 8883\n")
    assert cfg.broker.addresses == (("mq-1", 8883),)
    assert cfg.broker.protocol == "5"
    assert load(tmp_path, "  protocol: 5\n").broker.protocol == "5"  # a number in YAML


@pytest.mark.parametrize(
    ("broker", "line", "message"),
    [
        ("  hosts: [mq-1:1883, mq-2]\n", 7, "broker.hosts[1]: 'mq-2' is not host:port"),
        ("  hosts: [mq-1:65536]\n", 7, "broker.hosts[0]: port 65536 out of range"),
        ("  hosts: [mq-1:0]\n", 7, "port 0 out of range"),
        ("  hosts: ['::1:1883']\n", 7, "an IPv6 address goes in brackets"),
        ("  hosts: []\n", 7, "broker.hosts: List should have at least 1 item"),
        ("  hosts: [mq-1:1883]\n  host: mq-2\n", 6, "give either hosts or host/port"),
        ("  hosts: [mq-1:1883]\n  port: 1884\n", 6, "give either hosts or host/port"),
        ("  protocol: 4\n", 7, "broker.protocol: Input should be '5' or '3.1.1'"),
        ("  protocol: 3.1\n", 7, "broker.protocol: Input should be '5' or '3.1.1'"),
    ],
)
def test_mistakes_are_refused_with_file_and_line(tmp_path, broker, line, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, broker)
    text = str(err.value)
    assert f"agent.yaml:{line}: " in text and message in text, text
