"""The annotated example configs in config/ stay valid as the code changes."""

from __future__ import annotations

import os

from agent.config import load_agent_config
from collector.config import load_collector_config


def test_agent_example_is_valid(repo_root, tmp_path, monkeypatch):
    text = (repo_root / "config" / "agent.example.yaml").read_text()
    secrets = tmp_path / "etc"
    secrets.mkdir()
    for name in ("ca.pem", "mqtt-password", "community-lte", "snmp-auth-key"):
        (secrets / name).write_text("x" * 12 + "\n")
        os.chmod(secrets / name, 0o600)
    monkeypatch.setenv("PANTAU_SNMP_PRIV_KEY", "privprivpriv")
    (tmp_path / "agent.yaml").write_text(text.replace("/etc/pantau", str(secrets)))
    cfg = load_agent_config(tmp_path / "agent.yaml")
    assert [d.name for d in cfg.devices] == ["radio-1", "lte-router", "rectifier", "core-switch"]
    assert cfg.broker.password == "x" * 12
    assert cfg.devices[2].bulk is False and cfg.devices[2].max_varbinds == 10
    assert cfg.devices[3].snmp.priv_key == "privprivpriv"


def test_collector_example_is_valid(repo_root):
    cfg = load_collector_config(repo_root / "config" / "collector.example.yaml")
    assert cfg.http.address == ("127.0.0.1", 9877)
    assert cfg.mqtt.client_id == "pantau-collector-1"


def test_inventory_example_is_valid(repo_root, tmp_path):
    """The annotated inventory loads through the collector's config, relative to it."""
    import shutil

    shutil.copy(repo_root / "config" / "inventory.example.yaml", tmp_path / "inventory.yaml")
    (tmp_path / "collector.yaml").write_text("inventory: inventory.yaml\n")
    inv = load_collector_config(tmp_path / "collector.yaml").loaded_inventory
    assert inv is not None
    assert inv.site("kasongan-pop") is not None
    assert inv.upstream_chain("tumbang-kaman-bts")[-1] == "kasongan-pop"
    assert inv.link("vsat-pegatan") is not None and inv.link_sla("vsat-pegatan") == 99.9
