"""The agent's config file: parsed and validated once at start, with pydantic.

Everything the poll loop needs (resolved profiles, merged per-device settings, secrets read
from their files) is worked out here, so a bad config is refused before anything runs, and
handed back as the plain objects of agent.config, which the running agent keeps. Only
check-config, probe, discover and the short-lived validating process of `pantau-agent run`
(agent/runtime.py) import this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from agent.icmp import PingSettings
from agent.profiles import spec
from agent.profiles.model import (
    Profile,
    ProfileSource,
    builtin_sources,
    load_profile_sources,
    merge_profiles,
    plain_profile,
)
from agent.runtime_config import (
    AgentConfig,
    BrokerSettings,
    Device,
    LogSettings,
    OutboxSettings,
    SnmpSettings,
    TlsSettings,
    TrapsSettings,
)
from pantau.settings import (
    ConfigError,
    LogConfig,
    MqttLogin,
    Secret,
    StrictModel,
    TlsConfig,
    load_yaml,
    read_secret,
    validate,
)
from pantau.wire import IDENTIFIER

Identifier = Annotated[str, pydantic.StringConstraints(pattern=IDENTIFIER.pattern)]
"""Site and device names: they become MQTT topic levels and tag values, so no '/', '+', '#'."""

Seconds = Annotated[float, pydantic.Field(gt=0, le=86400)]


def split_address(text: str) -> tuple[str, int]:
    """host:port or [v6]:port → (host, port)."""
    host, _, port = text.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _check_address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} out of range 1-65535")
    if any(c.isspace() for c in host) or (":" in host and not host.startswith("[")):
        raise ValueError(f"bad host in {text!r} (an IPv6 address goes in brackets: [::1]:1883)")
    return text


BrokerAddress = Annotated[str, pydantic.AfterValidator(_check_address)]


class BrokerConfig(MqttLogin):
    host: str = "127.0.0.1"
    port: int = pydantic.Field(1883, ge=1, le=65535)
    client_id: str | None = None
    keepalive: int = pydantic.Field(30, ge=5, le=3600)
    tls: TlsConfig | None = None
    reconnect_min: Seconds = 1.0
    reconnect_max: Seconds = 60.0
    # Connected with items to send and none acknowledged for this long: the publisher is stuck,
    # the systemd watchdog stops being fed (agent/service.py).
    stall_timeout: Seconds = 300.0
    # Who says a sample set is delivered (docs/delivery.md, "Confirmation"): "on" the collector,
    # after InfluxDB stored it (pantau/<site>/ack); "off" the broker's PUBACK (collectors
    # without acknowledgements); "auto" the broker until the first acknowledgement from a
    # collector arrives, then the collector (remembered in the outbox across restarts).
    confirm: Literal["auto", "on", "off"] = "auto"
    # confirm: auto only: connected, with published items waiting, no acknowledgement for this
    # long, and the collectors saying on the retained pantau/confirm that they do not
    # acknowledge ("off"): the broker's PUBACK is delivery again, until the next
    # acknowledgement. Silence alone (a collector or InfluxDB down) never does (docs/delivery.md).
    confirm_timeout: Seconds = 21600.0
    # Several addresses of one broker cluster (docs/scaling.md), instead of host/port: on a
    # connection failure the agent goes on with the next; the backoff is per round of them.
    hosts: Annotated[list[BrokerAddress], pydantic.Field(min_length=1)] | None = None
    # MQTT version: 5 (PUBACK reason codes say a publish was refused) or 3.1.1 (RabbitMQ 3.10's
    # MQTT plugin, which closes an MQTT 5 CONNECT; a refused publish shows as the broker
    # closing the connection: agent/publisher.py, docs/scaling.md).
    protocol: Literal["5", "3.1.1"] = "5"

    @pydantic.field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
        return str(value) if type(value) is int else value  # protocol: 5 is an int in YAML

    @pydantic.model_validator(mode="after")
    def _backoff(self) -> BrokerConfig:
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min must not exceed reconnect_max")
        if self.hosts is not None and {"host", "port"} & self.model_fields_set:
            raise ValueError("give either hosts or host/port, not both")
        return self


class PollSettings(StrictModel):
    """Settings a device inherits from `defaults` and may override. None = not set here."""

    interval: Seconds | None = None
    timeout: Annotated[float, pydantic.Field(gt=0, le=60)] | None = None
    retries: Annotated[int, pydantic.Field(ge=0, le=10)] | None = None
    max_repetitions: Annotated[int, pydantic.Field(ge=1, le=200)] | None = None
    max_varbinds: Annotated[int, pydantic.Field(ge=1, le=200)] | None = None
    bulk: bool | None = None
    deadline: Seconds | None = None
    ping: bool | None = None  # ICMP echo alongside each poll (RTT and loss)
    fast_snmp: bool | None = None  # v1/v2c through agent.snmp.fast (falls back to pysnmp)


class Defaults(PollSettings):
    interval: Seconds = 60.0
    timeout: Annotated[float, pydantic.Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, pydantic.Field(ge=0, le=10)] = 1
    max_repetitions: Annotated[int, pydantic.Field(ge=1, le=200)] = 25
    max_varbinds: Annotated[int, pydantic.Field(ge=1, le=200)] = 40
    bulk: bool = True
    concurrency: Annotated[int, pydantic.Field(ge=1, le=1024)] = 32
    jitter: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.1
    ping: bool = True
    fast_snmp: bool = True
    ping_count: Annotated[int, pydantic.Field(ge=1, le=20)] = 3
    ping_interval: Annotated[float, pydantic.Field(ge=0.01, le=10)] = 0.2
    ping_timeout: Annotated[float, pydantic.Field(gt=0, le=30)] = 1.0


AuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal[
    "DES", "3DES", "AES", "AES-128", "AES-192", "AES-256", "AES-192-C", "AES-256-C"
]


class SnmpConfig(StrictModel):
    """Credentials. v1/v2c use a community; v3 a USM user with optional auth and priv keys."""

    version: Literal["1", "2c", "3"] = "2c"
    community: str | None = None
    community_file: Path | None = None
    community_env: str | None = None
    user: str | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key_file: Path | None = None
    auth_key_env: str | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key_file: Path | None = None
    priv_key_env: str | None = None
    context: str = ""

    _community: Secret | None = pydantic.PrivateAttr(None)
    _auth_key: Secret | None = pydantic.PrivateAttr(None)
    _priv_key: Secret | None = pydantic.PrivateAttr(None)

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value  # `version: 3` in YAML is an int

    @pydantic.model_validator(mode="after")
    def _check(self) -> SnmpConfig:
        v3_keys = [
            k
            for k in (
                "user",
                "auth_protocol",
                "auth_key_file",
                "auth_key_env",
                "priv_protocol",
                "priv_key_file",
                "priv_key_env",
            )
            if getattr(self, k) is not None
        ]
        community_keys = [
            k
            for k in ("community", "community_file", "community_env")
            if getattr(self, k) is not None
        ]
        if self.version in ("1", "2c"):
            if v3_keys:
                raise ValueError(f"{', '.join(v3_keys)}: only for version 3")
            if len(community_keys) > 1:
                raise ValueError("give one of community, community_file, community_env")
            secret = read_secret(file=self.community_file, env=self.community_env, what="community")
            self._community = secret if secret is not None else Secret(self.community or "public")
            return self
        if community_keys:
            raise ValueError(f"{', '.join(community_keys)}: not used by version 3")
        if not self.user:
            raise ValueError("version 3 needs user")
        auth = read_secret(file=self.auth_key_file, env=self.auth_key_env, what="auth key")
        priv = read_secret(file=self.priv_key_file, env=self.priv_key_env, what="priv key")
        if (auth is None) != (self.auth_protocol is None):
            raise ValueError(
                "auth_protocol and an auth key (auth_key_file/auth_key_env) go together"
            )
        if (priv is None) != (self.priv_protocol is None):
            raise ValueError(
                "priv_protocol and a priv key (priv_key_file/priv_key_env) go together"
            )
        if priv is not None and auth is None:
            raise ValueError("privacy needs authentication (authPriv)")
        for label, key in (("auth key", auth), ("priv key", priv)):
            if key is not None and len(key.reveal()) < 8:
                raise ValueError(f"{label} must be at least 8 characters (RFC 3414)")
        self._auth_key = auth
        self._priv_key = priv
        return self

    @property
    def community_value(self) -> str:
        return self._community.reveal() if self._community else "public"

    @property
    def auth_key(self) -> str | None:
        return self._auth_key.reveal() if self._auth_key else None

    @property
    def priv_key(self) -> str | None:
        return self._priv_key.reveal() if self._priv_key else None


DEFAULT_PROFILES = ["system", "if-mib"]


class PingTarget(StrictModel):
    """An upstream hop to watch by ICMP only (the NOC, the VSAT hub, a public resolver)."""

    name: Identifier
    host: str
    interval: Seconds | None = None


class DeviceConfig(PollSettings):
    name: Identifier
    host: str
    port: int = pydantic.Field(161, ge=1, le=65535)
    snmp: SnmpConfig = SnmpConfig()
    # None: detect by sysObjectID/sysDescr (system + if-mib + every profile that matches).
    # A list: exactly these profiles, no detection.
    profiles: list[str] | None = None
    extra_profiles: list[str] = []  # added to the detected ones (e.g. entity-sensor, ups-mib)
    enabled: bool = True


def _listen(value: object) -> object:
    """`host:port` (IPv6 as `[addr]:port`; port 0: any free one, logged) for the receiver."""
    if not isinstance(value, str):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, e.g. 0.0.0.0:1162, not {value!r}")
    return value


class TrapUser(SnmpConfig):
    """An SNMPv3 USM user whose traps and informs the receiver accepts (docs/traps.md): the
    poller's v3 settings, keys from files or the environment, `version` 3 by default."""

    version: Literal["1", "2c", "3"] = "3"

    @pydantic.model_validator(mode="after")
    def _v3_only(self) -> TrapUser:
        if self.version != "3":
            raise ValueError("trap users are SNMPv3 users (version 3)")
        return self


def _engine_id(value: object) -> object:
    """An snmpEngineID in hex (`0x` optional, RFC 3411: 5 to 32 octets)."""
    if not isinstance(value, str):
        return value
    text = value.removeprefix("0x").removeprefix("0X")
    try:
        octets = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"engine_id is not hex: {value!r}") from None
    if not 5 <= len(octets) <= 32:
        raise ValueError(f"engine_id must be 5 to 32 octets, not {len(octets)}")
    return octets.hex()


class TrapsConfig(StrictModel):
    """The trap receiver (docs/traps.md); off unless `traps:` is in the config. Port 162 needs
    CAP_NET_BIND_SERVICE (or root): the default is the unprivileged 1162."""

    listen: Annotated[str, pydantic.BeforeValidator(_listen)] = "0.0.0.0:1162"
    accept_unknown: bool = False  # traps from addresses that are no configured device
    communities: list[str] = []  # v1/v2c communities accepted; empty: any
    rate: Annotated[float, pydantic.Field(gt=0, le=10000)] = 5.0  # traps/s per device, sustained
    burst: Annotated[int, pydantic.Field(ge=1, le=100000)] = 20  # traps per device at once
    poll_min_interval: Seconds = 10.0  # a trap asks for a poll at most this often per device
    max_datagram: Annotated[int, pydantic.Field(ge=484, le=65535)] = 8192
    queue: Annotated[int, pydantic.Field(ge=1, le=100000)] = 1000  # traps waiting to be stored
    # SNMPv3: users accepted from every device (a device's own v3 user is accepted from it too),
    # and the agent's snmpEngineID for informs (hex; default from the site: traps.engine_id_for)
    users: list[TrapUser] = []
    engine_id: Annotated[str, pydantic.BeforeValidator(_engine_id)] | None = None

    @pydantic.model_validator(mode="after")
    def _unique_users(self) -> TrapsConfig:
        names = [u.user for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("users: a user name appears twice")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _default_outbox_path() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY; elsewhere the conventional place.
    base = os.environ.get("STATE_DIRECTORY", "/var/lib/pantau-agent").split(":")[0]
    return Path(base) / "outbox.sqlite"


class OutboxConfig(StrictModel):
    """The durable outbox: how much to keep while the uplink is down (see docs/delivery.md)."""

    path: Path = pydantic.Field(default_factory=_default_outbox_path)
    max_bytes: int = pydantic.Field(256 << 20, ge=4096)
    max_age: Annotated[float, pydantic.Field(gt=0, le=365 * 86400)] = 7 * 86400.0  # a year at most
    backfill_rate: int = pydantic.Field(0, ge=0)  # bytes/s for the backlog; 0 = unlimited
    heartbeat: Seconds = 60.0
    shutdown_timeout: Seconds = 5.0
    # End-to-end confirmation (broker.confirm): a published sample set the collector has not
    # confirmed within resend_after is published again; the wait doubles per attempt up to
    # resend_max.
    resend_after: Seconds = 120.0
    resend_max: Seconds = 3600.0


class AgentFile(StrictModel):
    """The YAML document, as written by the operator."""

    site: Identifier
    broker: BrokerConfig = BrokerConfig()
    defaults: Defaults = Defaults()
    devices: list[DeviceConfig] = pydantic.Field(min_length=1)
    ping_targets: list[PingTarget] = []
    profile_files: list[Path] = []
    profiles: list[Profile] = []
    outbox: OutboxConfig = pydantic.Field(default_factory=OutboxConfig)
    log: LogConfig = LogConfig()
    traps: TrapsConfig | None = None  # the trap receiver: off unless configured


def _merge(
    device: DeviceConfig,
    defaults: Defaults,
    profiles: tuple[spec.Profile, ...],
    candidates: tuple[spec.Profile, ...],
) -> Device:
    def pick(key: str) -> Any:  # the device's setting, else the default (same type by model)
        value = getattr(device, key)
        return getattr(defaults, key) if value is None else value

    interval = float(pick("interval"))
    timeout = float(pick("timeout"))
    retries = int(pick("retries"))
    # A poll must end before the next one is due; by default it may use 90 % of the interval.
    deadline = device.deadline or defaults.deadline or max(interval * 0.9, timeout)
    version = device.snmp.version
    return Device(
        name=device.name,
        host=device.host,
        port=device.port,
        snmp=plain_snmp(device.snmp),
        profiles=profiles,
        candidates=candidates,
        interval=interval,
        timeout=timeout,
        retries=retries,
        max_repetitions=int(pick("max_repetitions")),
        max_varbinds=int(pick("max_varbinds")),
        bulk=bool(pick("bulk")) and version != "1",  # SNMPv1 has no GETBULK
        deadline=min(deadline, interval),
        ping=_ping(defaults) if pick("ping") else None,
        fast_snmp=bool(pick("fast_snmp")),
    )


def _ping(defaults: Defaults) -> PingSettings:
    return PingSettings(
        count=defaults.ping_count, interval=defaults.ping_interval, timeout=defaults.ping_timeout
    )


def load_agent_config(path: Path) -> AgentConfig:
    """Load and check an agent config; raise ConfigError listing every problem."""
    data, lines = load_yaml(path)
    doc = validate(AgentFile, data, lines, path)
    errors: list[str] = []
    site: list[ProfileSource] = []
    for i, extra in enumerate(doc.profile_files):
        file = extra if extra.is_absolute() else path.parent / extra
        # A directory (a site's /etc/pantau/profiles.d) gives every *.yaml in it, in name order.
        files = sorted(file.glob("*.yaml")) if file.is_dir() else [file]
        for one in files:
            try:
                site += load_profile_sources(one)
            except ConfigError as exc:
                errors.append(
                    f"{path}:{lines.line(('profile_files', i))}: profile_files[{i}]: "
                    f"{one} is invalid:"
                )
                errors.extend("  " + e for e in exc.errors)
    site += [ProfileSource(p, path, lines, ("profiles", i)) for i, p in enumerate(doc.profiles)]
    merged = merge_profiles(builtin_sources(), site)
    errors += merged.errors
    known: dict[str, Profile] = merged.known
    devices = []
    seen: set[str] = set()
    memo: dict[int, object] = {}  # one plain profile per model: devices share them
    for i, dev in enumerate(doc.devices):
        if dev.name in seen:
            errors.append(
                f"{path}:{lines.line(('devices', i, 'name'))}: devices[{i}].name: "
                f"duplicate device names: {dev.name}"
            )
        seen.add(dev.name)
        resolved = []
        auto = dev.profiles is None
        names = [
            ("profiles", j, n)
            for j, n in enumerate(DEFAULT_PROFILES if auto else dev.profiles or [])
        ]
        names += [("extra_profiles", j, n) for j, n in enumerate(dev.extra_profiles)]
        for key, j, name in names:
            if name not in known and name in merged.replaced:
                by = merged.replaced[name]
                errors.append(
                    f"{path}:{lines.line(('devices', i, key, j))}: "
                    f"devices[{i}].{key}[{j}]: profile {name!r} is replaced by "
                    f"{by.profile.name!r} ({by.where('replaces')}): name that one"
                )
            elif name not in known:
                hint = ", ".join(sorted(known))
                errors.append(
                    f"{path}:{lines.line(('devices', i, key, j))}: "
                    f"devices[{i}].{key}[{j}]: unknown profile {name!r} "
                    f"(known: {hint})"
                )
            elif known[name] not in resolved:
                resolved.append(known[name])
        candidates = (
            tuple(p for p in known.values() if p.match is not None and p not in resolved)
            if auto
            else ()
        )
        if dev.enabled:
            devices.append(
                _merge(
                    dev,
                    doc.defaults,
                    tuple(plain_profile(p, memo) for p in resolved),
                    tuple(plain_profile(p, memo) for p in candidates),
                )
            )
    for i, target in enumerate(doc.ping_targets):
        if target.name in seen:
            errors.append(
                f"{path}:{lines.line(('ping_targets', i, 'name'))}: "
                f"ping_targets[{i}].name: {target.name} is also a device name"
            )
        seen.add(target.name)
        interval = target.interval or doc.defaults.interval
        devices.append(
            Device(
                name=target.name,
                host=target.host,
                port=0,
                snmp=SnmpSettings(),
                profiles=(),
                interval=interval,
                timeout=doc.defaults.timeout,
                retries=0,
                max_repetitions=1,
                max_varbinds=1,
                bulk=False,
                deadline=min(interval, doc.defaults.deadline or interval * 0.9),
                snmp_enabled=False,
                ping=_ping(doc.defaults),
            )
        )
    if errors:
        raise ConfigError(errors)
    warnings = _unused_profiles(doc, merged.site)
    if not devices:
        raise ConfigError([f"{path}: every device is disabled; nothing to poll"])
    outbox = doc.outbox
    return AgentConfig(
        path=path,
        site=doc.site,
        broker=plain_broker(doc.broker),
        concurrency=doc.defaults.concurrency,
        jitter=doc.defaults.jitter,
        devices=tuple(devices),
        outbox=OutboxSettings(
            path=outbox.path if outbox.path.is_absolute() else path.parent / outbox.path,
            max_bytes=outbox.max_bytes,
            max_age=outbox.max_age,
            backfill_rate=outbox.backfill_rate,
            heartbeat=outbox.heartbeat,
            shutdown_timeout=outbox.shutdown_timeout,
            resend_after=outbox.resend_after,
            resend_max=outbox.resend_max,
        ),
        log=LogSettings(level=doc.log.level, format=doc.log.format),
        warnings=tuple(warnings),
        site_profiles=tuple(merged.site),
        traps=None if doc.traps is None else plain_traps(doc.traps),
    )


# --- the validated models as the running agent keeps them (agent.config) -----------------


def plain_snmp(snmp: SnmpConfig) -> SnmpSettings:
    """Credentials with their secrets as read (from files or the environment) while validating."""
    return SnmpSettings(
        version=snmp.version,
        user=snmp.user,
        auth_protocol=snmp.auth_protocol,
        priv_protocol=snmp.priv_protocol,
        context=snmp.context,
        community_secret=snmp._community,
        auth_secret=snmp._auth_key,
        priv_secret=snmp._priv_key,
    )


def plain_broker(broker: BrokerConfig) -> BrokerSettings:
    tls = broker.tls
    return BrokerSettings(
        host=broker.host,
        port=broker.port,
        client_id=broker.client_id,
        keepalive=broker.keepalive,
        tls=None
        if tls is None
        else TlsSettings(ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file),
        reconnect_min=broker.reconnect_min,
        reconnect_max=broker.reconnect_max,
        stall_timeout=broker.stall_timeout,
        confirm=broker.confirm,
        confirm_timeout=broker.confirm_timeout,
        username=broker.username,
        password_secret=broker._password,
        hosts=tuple(split_address(a) for a in broker.hosts or ()),
        protocol=broker.protocol,
    )


def plain_traps(traps: TrapsConfig) -> TrapsSettings:
    return TrapsSettings(
        listen=traps.listen,
        accept_unknown=traps.accept_unknown,
        communities=tuple(traps.communities),
        rate=traps.rate,
        burst=traps.burst,
        poll_min_interval=traps.poll_min_interval,
        max_datagram=traps.max_datagram,
        queue=traps.queue,
        users=tuple(plain_snmp(u) for u in traps.users),
        engine_id=traps.engine_id,
    )


def _unused_profiles(doc: AgentFile, site: dict[str, ProfileSource]) -> list[str]:
    """A site profile no device can get: not named by any device, and either without `match`
    or on a site where no device uses detection. Loading it changes nothing, which is almost
    always a mistake (a profile written for a device that then never gets it)."""
    named = {n for dev in doc.devices for n in (*(dev.profiles or ()), *dev.extra_profiles)}
    detecting = any(dev.profiles is None for dev in doc.devices)
    if detecting:
        named.update(DEFAULT_PROFILES)
    out = []
    for name, source in site.items():
        if name in named or (detecting and source.profile.match is not None):
            continue
        why = (
            "it has no match: and no device names it in profiles: or extra_profiles:"
            if source.profile.match is None
            else "every device lists its profiles: (no detection) and none names it"
        )
        out.append(f"{source.where('name')}: profile {name!r} matches no device: {why}")
    return out
