"""`pantau-agent discover HOST`: who is this device, which profiles fit, what would they read.

For the technician at a new site: before writing a config, point discover at a device with its
credentials; it reads sysObjectID and sysDescr, lists the profiles that match (and why), then
polls once with them and shows every value with its unit, exactly as the agent would.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from agent.config import AgentConfig, load_agent_config
from agent.probe import ProbeResult, probe


def build_config(
    host: str,
    port: int,
    snmp: dict[str, Any],
    *,
    timeout: float,
    retries: int,
    profile_files: list[Path],
) -> AgentConfig:
    """A one-device config with detection on, validated like any other."""
    doc = {
        "site": "discover",
        "devices": [
            {
                "name": "device",
                "host": host,
                "port": port,
                "timeout": timeout,
                "retries": retries,
                "snmp": snmp,
            }
        ],
        "profile_files": [str(p.resolve()) for p in profile_files],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "discover.yaml"
        path.write_text(yaml.safe_dump(doc))
        return load_agent_config(path)


def explain(
    result: ProbeResult, plan_profiles: tuple[str, ...], sys_object_id: str, sys_descr: str
) -> str:
    device = result.device
    lines = [
        f"device      {device.host}:{device.port}",
        f"sysObjectID {sys_object_id or '(none)'}",
        f"sysDescr    {sys_descr or '(none)'}",
    ]
    fixed = {p.name for p in device.profiles}
    for profile in (*device.profiles, *device.candidates):
        if profile.name not in plan_profiles:
            continue
        why = "always"
        if profile.name not in fixed and profile.match is not None:
            score = profile.match.matches(sys_object_id, sys_descr)
            why = "sysObjectID prefix" if score >= 1000 else "sysDescr pattern"
        lines.append(f"profile     {profile.name:<24} {why:<20} {profile.description}")
    if not set(plan_profiles) - fixed:
        lines.append("profile     (no vendor profile matches: write one, see docs/profiles.md)")
    return "\n".join(lines) + "\n" + result.as_table()


async def discover(cfg: AgentConfig) -> tuple[ProbeResult, tuple[str, ...], str, str]:
    (result,) = await probe(cfg, list(cfg.devices))
    values = {
        f.name: f.value
        for g in result.sample_set.groups
        if g.measurement == "system"
        for f in g.fields
    }
    return (result, result.profiles, str(values.get("object_id", "")), str(values.get("descr", "")))
