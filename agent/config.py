"""The agent's configuration: the plain objects the running agent holds, and their loader.

`load_agent_config` validates the YAML file with agent.config_file (pydantic, every error with
file:line; resolved profiles, merged per-device settings, secrets read from their files) and
hands back the immutable objects of agent.runtime_config, re-exported here; the service,
pollers, publisher, outbox and trap receiver read only those. This module imports no validation
library: `pantau-agent run` validates in a short-lived process of its own (agent/runtime.py),
so the running agent never loads pydantic (about 10 MiB of a site gateway's memory,
docs/performance.md, Footprint).

The file's models (SnmpConfig, TrapsConfig, BrokerConfig, ...) are still reachable here by
name, loaded from agent.config_file when first named.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.runtime_config import AgentConfig as AgentConfig
from agent.runtime_config import BrokerSettings as BrokerSettings
from agent.runtime_config import Device as Device
from agent.runtime_config import LogSettings as LogSettings
from agent.runtime_config import OutboxSettings as OutboxSettings
from agent.runtime_config import SnmpSettings as SnmpSettings
from agent.runtime_config import TlsSettings as TlsSettings
from agent.runtime_config import TrapsSettings as TrapsSettings

if TYPE_CHECKING:
    from agent.config_file import (
        AgentFile,
        BrokerConfig,
        Defaults,
        DeviceConfig,
        OutboxConfig,
        PingTarget,
        SnmpConfig,
        TrapsConfig,
        TrapUser,
    )

__all__ = [
    "AgentConfig",
    "AgentFile",
    "BrokerConfig",
    "BrokerSettings",
    "Defaults",
    "Device",
    "DeviceConfig",
    "LogSettings",
    "OutboxConfig",
    "OutboxSettings",
    "PingTarget",
    "SnmpConfig",
    "SnmpSettings",
    "TlsSettings",
    "TrapUser",
    "TrapsConfig",
    "TrapsSettings",
    "load_agent_config",
]


def load_agent_config(path: Path) -> AgentConfig:
    """Load and check an agent config; raise ConfigError listing every problem. Loads pydantic
    (agent.config_file): `pantau-agent run` calls it in a process of its own."""
    from agent.config_file import load_agent_config as load

    return load(path)


_MODELS = frozenset(__all__) - set(globals())  # the names config_file defines


def __getattr__(name: str) -> Any:
    """The file's models by their old names (`from agent.config import TrapsConfig`), loaded
    with pydantic when first named; the running agent names none of them."""
    if name in _MODELS:
        import agent.config_file

        return getattr(agent.config_file, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
