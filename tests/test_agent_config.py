"""check-config: valid configs load into typed objects; each invalid one is refused with a
message naming the file, the line and the key path."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from agent.config import load_agent_config
from pantau.settings import ConfigError

VALID = """\
site: katingan-01
broker:
  host: 127.0.0.1
  port: 1883
defaults:
  interval: 30
devices:
  - name: radio-1
    host: 10.0.0.2
    snmp: {version: 2c, community: ceraos}
    profiles: [system, if-mib]
  - name: ups
    host: 10.0.0.3
    interval: 120
    bulk: false
    snmp: {version: 1, community: public}
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_config_is_merged_into_typed_devices(tmp_path):
    cfg = load_agent_config(write(tmp_path, VALID))
    assert cfg.site == "katingan-01"
    radio, ups = cfg.devices
    assert radio.interval == 30 and ups.interval == 120
    assert radio.bulk is True and ups.bulk is False
    assert [p.name for p in radio.profiles] == ["system", "if-mib"]
    assert radio.snmp.community_value == "ceraos"
    assert radio.deadline == pytest.approx(27.0)  # 90 % of the interval by default
    assert cfg.client_id == "pantau-agent-katingan-01"


# (description, config text, expected line, expected fragment of the message)
INVALID = [
    ("unknown top-level key", VALID + "colour: blue\n", 17, "colour: unknown key"),
    (
        "unknown device key",
        VALID.replace("    interval: 120\n", "    intervall: 120\n"),
        14,
        "devices[1].intervall: unknown key",
    ),
    ("missing site", VALID.replace("site: katingan-01\n", ""), 1, "site: required key"),
    ("bad site name", VALID.replace("katingan-01", "katingan/01"), 1, "site: String should"),
    (
        "negative interval",
        VALID.replace("interval: 30", "interval: -5"),
        6,
        "defaults.interval: Input should be greater than 0",
    ),
    ("port out of range", VALID.replace("port: 1883", "port: 70000"), 4, "broker.port"),
    (
        "wrong type",
        VALID.replace("interval: 120", "interval: often"),
        14,
        "devices[1].interval: Input should be a valid number",
    ),
    (
        "unknown profile",
        VALID.replace("[system, if-mib]", "[system, nope]"),
        11,
        "devices[0].profiles[1]: unknown profile 'nope'",
    ),
    (
        "duplicate device",
        VALID.replace("name: ups", "name: radio-1"),
        12,
        "duplicate device names: radio-1",
    ),
    (
        "v3 without user",
        VALID.replace("{version: 1, community: public}", "{version: 3}"),
        16,
        "version 3 needs user",
    ),
    (
        "community on v3",
        VALID.replace("{version: 1, community: public}", "{version: 3, user: u, community: x}"),
        16,
        "community: not used by version 3",
    ),
    ("snmp version", VALID.replace("version: 1,", "version: 4,"), 16, "devices[1].snmp.version"),
    (
        "duplicate key",
        VALID.replace("  port: 1883\n", "  port: 1883\n  port: 1884\n"),
        5,
        "broker.port: duplicate key",
    ),
    (
        "yaml syntax",
        VALID.replace("profiles: [system, if-mib]", "profiles: [system, if-mib"),
        12,
        "YAML syntax error",
    ),
    ("no devices", "site: x\ndevices: []\n", 2, "devices: List should have at least 1 item"),
    (
        "missing secret file",
        VALID.replace("community: ceraos", "community_file: /nonexistent"),
        10,
        "cannot read secret file /nonexistent",
    ),
    (
        "cert without key",
        VALID.replace("  port: 1883\n", "  port: 1883\n  tls: {cert_file: /etc/hostname}\n"),
        5,
        "cert_file and key_file go",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_config_names_file_line_and_key(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_agent_config(path)
    matching = [e for e in err.value.errors if fragment in e]
    assert matching, err.value.errors
    assert matching[0].startswith(f"{path}:{line}:"), matching[0]


def test_every_error_is_listed_at_once(tmp_path):
    text = VALID.replace("port: 1883", "port: 0").replace("interval: 120", "interval: x")
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, text + "extra: 1\n"))
    assert len(err.value.errors) == 3


def test_check_config_command_exit_codes(tmp_path, capsys):
    assert agent_main(["check-config", "--config", str(write(tmp_path, VALID))]) == 0
    assert "ok: site katingan-01, 2 device(s)" in capsys.readouterr().out
    bad = write(tmp_path, VALID + "colour: blue\n", "bad.yaml")
    assert agent_main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:17: colour: unknown key" in err


def test_secret_file_readable_by_others_is_refused_without_echoing_it(tmp_path):
    secret = tmp_path / "community"
    secret.write_text("s3cr3t-community\n")
    os.chmod(secret, 0o644)
    text = VALID.replace("community: ceraos", f"community_file: {secret}")
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, text))
    message = str(err.value)
    assert "readable by others" in message and "chmod 600" in message
    assert "s3cr3t" not in message
    os.chmod(secret, 0o600)
    cfg = load_agent_config(write(tmp_path, text))
    assert cfg.devices[0].snmp.community_value == "s3cr3t-community"
    assert "s3cr3t" not in repr(cfg)


def test_v3_keys_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIO_AUTH", "authpass123")
    monkeypatch.setenv("RADIO_PRIV", "privpass123")
    text = VALID.replace(
        "{version: 2c, community: ceraos}",
        "{version: 3, user: noc, auth_protocol: SHA-256, auth_key_env: "
        "RADIO_AUTH, priv_protocol: AES, priv_key_env: RADIO_PRIV}",
    )
    cfg = load_agent_config(write(tmp_path, text))
    snmp = cfg.devices[0].snmp
    assert (snmp.auth_key, snmp.priv_key) == ("authpass123", "privpass123")
    monkeypatch.delenv("RADIO_PRIV")
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, text))
    assert "environment variable RADIO_PRIV is not set" in str(err.value)


def test_a_v3_key_from_a_file_and_the_environment_at_once_is_refused(tmp_path, monkeypatch):
    """Which one would win is not obvious to the next person editing the config: refused."""
    monkeypatch.setenv("RADIO_AUTH", "authpass123")
    key = tmp_path / "auth.key"
    key.write_text("otherpass123\n")
    key.chmod(0o600)
    text = VALID.replace(
        "{version: 2c, community: ceraos}",
        "{version: 3, user: noc, auth_protocol: SHA-256, auth_key_env: RADIO_AUTH, "
        f"auth_key_file: {key}}}",
    )
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, text))
    assert "auth key: give a file or an environment variable, not both" in str(err.value)
    assert "authpass123" not in str(err.value) and "otherpass123" not in str(err.value)


def test_extra_profile_file_is_validated_with_its_own_lines(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: vsat\n    measurement: modem\n"
        "    scalars:\n      - {name: snr_db, oid: not-an-oid}\n"
    )
    text = VALID + "profile_files: [p.yaml]\n"
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, text))
    assert any(
        f"{tmp_path / 'p.yaml'}:5: profiles[0].scalars[0].oid" in e for e in err.value.errors
    ), err.value.errors


def test_mib_names_are_resolved_at_load_time(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: named\n    measurement: named\n    scalars:\n"
        "      - {name: uptime_seconds, oid: 'SNMPv2-MIB::sysUpTime.0', scale: 0.01}\n"
        "      - {name: engine_time_seconds, oid: 'SNMP-FRAMEWORK-MIB::snmpEngineTime.0'}\n"
    )
    cfg = load_agent_config(
        write(tmp_path, VALID.replace("[system, if-mib]", "[named]") + "profile_files: [p.yaml]\n")
    )
    oids = [s.oid for s in cfg.devices[0].profiles[0].scalars]
    assert oids == ["1.3.6.1.2.1.1.3.0", "1.3.6.1.6.3.10.2.1.3.0"]


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("SNMPv2-MIB::sysUpTimeX.0", "SNMPv2-MIB has no object 'sysUpTimeX'"),
        ("NO-SUCH-MIB::thing", "MIB module NO-SUCH-MIB not found"),
    ],
)
def test_unresolvable_mib_name_is_refused_with_its_line(tmp_path, symbol, message):
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: named\n    measurement: named\n    scalars:\n"
        f"      - {{name: x, oid: '{symbol}'}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, VALID + "profile_files: [p.yaml]\n"))
    assert any(
        f"{tmp_path / 'p.yaml'}:5: profiles[0].scalars[0].oid" in e and message in e
        for e in err.value.errors
    ), err.value.errors


def test_yaml_1_1_booleans_stay_words(tmp_path):
    # `off`, `on`, `no`, `yes` are names here (states, sites), not booleans.
    (tmp_path / "p.yaml").write_text(
        "profiles:\n  - name: relay\n    measurement: power\n    scalars:\n"
        "      - {name: relay_state, oid: 1.3.6.1.4.1.1.1.0, kind: state, "
        "states: {0: off, 1: on}}\n"
    )
    cfg = load_agent_config(
        write(
            tmp_path,
            VALID.replace("site: katingan-01", "site: no").replace("[system, if-mib]", "[relay]")
            + "profile_files: [p.yaml]\n",
        )
    )
    assert cfg.site == "no"
    assert cfg.devices[0].profiles[0].scalars[0].states == {0: "off", 1: "on"}


@pytest.mark.parametrize(
    ("max_age", "error"),
    [("604800", None), ("31536000", None), ("31622400", "outbox.max_age"), ("0", "outbox.max_age")],
)
def test_outbox_max_age_accepts_its_own_default_of_a_week(tmp_path, max_age, error):
    """The default (7 days) must be writable: a site on VSAT keeps a week of backlog."""
    path = write(tmp_path, VALID + f"outbox:\n  max_age: {max_age}\n")
    if error is None:
        assert load_agent_config(path).outbox.max_age == float(max_age)
    else:
        with pytest.raises(ConfigError) as info:
            load_agent_config(path)
        assert error in str(info.value)
