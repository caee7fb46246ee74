"""The agent's configuration as the running agent holds it: plain immutable objects.

agent.config_file validates the YAML file (pydantic, every error with file:line) and builds
these; the service, pollers, publisher, outbox and trap receiver read only these (through
agent.config, which re-exports them). No validation library is imported here, so the agent that
`pantau-agent run` starts after validating in a process of its own (agent/runtime.py) never
loads pydantic (about 10 MiB of a site gateway's memory, docs/performance.md, Footprint).
Nothing here checks the values again: only config_file builds them, from validated parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.icmp import PingSettings
from agent.profiles.spec import Profile
from pantau.secret import Secret


@dataclass(frozen=True, slots=True, kw_only=True)
class SnmpSettings:
    """A device's credentials (or a trap user's), secrets already read from their files."""

    version: Literal["1", "2c", "3"] = "2c"
    user: str | None = None
    auth_protocol: str | None = None
    priv_protocol: str | None = None
    context: str = ""
    community_secret: Secret | None = None
    auth_secret: Secret | None = None
    priv_secret: Secret | None = None

    @property
    def community_value(self) -> str:
        return self.community_secret.reveal() if self.community_secret else "public"

    @property
    def auth_key(self) -> str | None:
        return self.auth_secret.reveal() if self.auth_secret else None

    @property
    def priv_key(self) -> str | None:
        return self.priv_secret.reveal() if self.priv_secret else None


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """The MQTT broker (see config_file.BrokerConfig for what each setting means)."""

    host: str
    port: int
    client_id: str | None
    keepalive: int
    tls: TlsSettings | None
    reconnect_min: float
    reconnect_max: float
    stall_timeout: float
    confirm: Literal["auto", "on", "off"]
    confirm_timeout: float
    username: str | None
    password_secret: Secret | None
    # Every address of the broker (cluster), in the order tried: `hosts`, or (host, port).
    hosts: tuple[tuple[str, int], ...] = ()
    protocol: Literal["5", "3.1.1"] = "5"

    @property
    def password(self) -> str | None:
        return self.password_secret.reveal() if self.password_secret else None

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return self.hosts or ((self.host, self.port),)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSettings:
    """The durable outbox (see config_file.OutboxConfig); `path` is absolute."""

    path: Path
    max_bytes: int
    max_age: float
    backfill_rate: int
    heartbeat: float
    shutdown_timeout: float
    resend_after: float
    resend_max: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: Literal["debug", "info", "warning", "error"]
    format: Literal["text", "json"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrapsSettings:
    """The trap receiver (see config_file.TrapsConfig, docs/traps.md)."""

    listen: str
    accept_unknown: bool
    communities: tuple[str, ...]
    rate: float
    burst: int
    poll_min_interval: float
    max_datagram: int
    queue: int
    users: tuple[SnmpSettings, ...]
    engine_id: str | None

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A device ready to poll: settings merged with defaults, profiles resolved. Only
    load_agent_config builds one, from parts already validated: as a model it validated them
    a second time and kept a validator and serializer for that (0.4 MiB with AgentConfig's,
    docs/performance.md, Footprint)."""

    name: str
    host: str
    port: int
    snmp: SnmpSettings
    profiles: tuple[Profile, ...]  # always polled
    candidates: tuple[Profile, ...] = ()  # polled when their `match` fits the device
    snmp_enabled: bool = True  # False for ICMP-only upstream targets
    ping: PingSettings | None = None
    interval: float
    timeout: float
    retries: int
    max_repetitions: int
    max_varbinds: int
    bulk: bool
    deadline: float
    fast_snmp: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """The agent's settings; like Device, built only by load_agent_config from validated
    parts."""

    path: Path
    site: str
    broker: BrokerSettings
    concurrency: int
    jitter: float
    devices: tuple[Device, ...]
    outbox: OutboxSettings
    log: LogSettings
    warnings: tuple[str, ...] = ()  # file:line: what; check-config, probe and run show them
    site_profiles: tuple[str, ...] = ()  # names of the site's own profiles (files, inline)
    traps: TrapsSettings | None = None

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"pantau-agent-{self.site}"
