"""Poll a recording served by snmpsim through the real agent code, with profile detection,
so profile tests check exactly what the agent would publish."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from agent.config import load_agent_config
from agent.poller import DevicePoller
from agent.snmp import SnmpClient
from pantau.wire import SampleSet


def poll_recording(
    tmp_path: Path,
    port: int,
    community: str,
    *,
    profiles: list[str] | None = None,
    extra_profiles: list[str] | None = None,
    version: str = "2c",
    bulk: bool = True,
    max_varbinds: int = 40,
    polls: int = 1,
) -> tuple[SampleSet, DevicePoller]:
    """Poll `community` on snmpsim `polls` times; return the last sample set and the poller
    (its .plan.profiles says which profiles detection chose)."""
    device: dict[str, object] = {
        "name": "dut",
        "host": "127.0.0.1",
        "port": port,
        "timeout": 2,
        "retries": 1,
        "bulk": bulk,
        "max_varbinds": max_varbinds,
        "snmp": {"version": version, "community": community},
    }
    if profiles is not None:
        device["profiles"] = profiles
    if extra_profiles:
        device["extra_profiles"] = extra_profiles
    path = tmp_path / f"{community}.yaml"
    path.write_text(yaml.safe_dump({"site": "lab", "devices": [device]}))
    cfg = load_agent_config(path)

    async def run() -> tuple[SampleSet, DevicePoller]:
        async with SnmpClient() as client:
            poller = DevicePoller("lab", cfg.devices[0], client, lambda _: 1)
            result = await poller.poll()
            for _ in range(polls - 1):
                result = await poller.poll()
            return result, poller

    return asyncio.run(run())


def values(ss: SampleSet) -> dict[tuple[str, tuple[tuple[str, str], ...], str], object]:
    """{(measurement, sorted tags, field): value} for easy lookups in tests."""
    return {
        (g.measurement, tuple(sorted(g.tags.items())), f.name): f.value
        for g in ss.groups
        for f in g.fields
    }


def field_values(
    ss: SampleSet, measurement: str, name: str
) -> dict[tuple[tuple[str, str], ...], object]:
    """{sorted tags: value} of one field across rows."""
    return {tags: v for (m, tags, n), v in values(ss).items() if m == measurement and n == name}


def fields(ss: SampleSet, measurement: str = "signal", **tags: str) -> dict[str, object]:
    """The fields of the one group with exactly these tags (none: the untagged scalars)."""
    want = tuple(sorted(tags.items()))
    return {n: v for (m, t, n), v in values(ss).items() if m == measurement and t == want}


def row(ss: SampleSet, measurement: str, **tags: str) -> dict[str, object]:
    """Fields of the rows of `measurement` whose tags include `tags`."""
    want = set(tags.items())
    return {f: v for (m, t, f), v in values(ss).items() if m == measurement and want <= set(t)}
