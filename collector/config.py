"""The collector's configuration, validated once at start (same rules and errors as the agent's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from collector.availability.config import AvailabilityConfig
from collector.inventory import Inventory, load_inventory
from collector.rootcause import CAUSE_HOLD
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
from pantau.wire.topics import IDENTIFIER

Seconds = Annotated[float, pydantic.Field(gt=0, le=86400 * 365)]
SiteName = Annotated[str, pydantic.Field(pattern=IDENTIFIER.pattern)]
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class MqttConfig(MqttLogin):
    host: str = "127.0.0.1"
    port: int = pydantic.Field(1883, ge=1, le=65535)
    client_id: str = pydantic.Field("pantau-collector", pattern=_CLIENT_ID.pattern)
    keepalive: int = pydantic.Field(30, ge=5, le=3600)
    tls: TlsConfig | None = None
    shared_group: str | None = pydantic.Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    receive_maximum: int = pydantic.Field(1000, ge=1, le=65535)
    session_expiry: Seconds = 7 * 86400.0

    @pydantic.model_validator(mode="before")
    @classmethod
    def _client_id_is_username(cls, data: Any) -> Any:
        # The shipped broker config (use_username_as_clientid) makes a client's username its
        # client id, so no login can take over another's session; the collector's id then is
        # its username. Unless set explicitly, it is so here too, so logs and broker agree.
        if isinstance(data, dict) and "client_id" not in data:
            username = data.get("username")
            if isinstance(username, str) and _CLIENT_ID.fullmatch(username):
                data = {**data, "client_id": username}
        return data


class AmqpConfig(MqttLogin):
    """Reading from a RabbitMQ cluster instead of one MQTT broker (collector/amqp_intake.py,
    docs/scaling.md). Agents still speak MQTT, to the cluster's MQTT plugin."""

    # host:port of AMQP listeners of the cluster's nodes: tried in turn on every (re)connect
    hosts: list[Annotated[str, pydantic.Field(pattern=r"^[^\s:]+:\d{1,5}$")]] = pydantic.Field(
        min_length=1
    )
    vhost: str = "/"
    # Sites are spread over this many quorum queues (pantau.part.0 …); the same on every
    # collector of the cluster, fixed once sites are bound (docs/scaling.md).
    partitions: int = pydantic.Field(4, ge=1, le=1024)
    # Partitions this collector consumes at once; the others only after `standby_delay`, so
    # collectors started together take different shares (each partition has one active reader).
    home: list[Annotated[int, pydantic.Field(ge=0)]] = []
    standby_delay: Seconds = 5.0
    prefetch: int = pydantic.Field(1000, ge=1, le=65535)  # unacknowledged messages per partition
    heartbeat: int = pydantic.Field(30, ge=0, le=3600)  # s; 0: none
    reconnect_min: Seconds = 0.5
    reconnect_max: Seconds = 30.0

    @pydantic.model_validator(mode="after")
    def _home_in_range(self) -> AmqpConfig:
        bad = [p for p in self.home if p >= self.partitions]
        if bad:
            raise ValueError(f"home: partitions {bad} do not exist (partitions: {self.partitions})")
        return self

    @property
    def addresses(self) -> list[tuple[str, int]]:
        out = []
        for hp in self.hosts:
            host, _, port = hp.rpartition(":")
            out.append((host, int(port)))
        return out


class InfluxConfig(StrictModel):
    url: pydantic.AnyHttpUrl = pydantic.AnyHttpUrl("http://127.0.0.1:8086")
    org: str = "pantau"
    bucket: str = "pantau"
    token_file: Path | None = None
    token_env: str | None = None
    batch_size: int = pydantic.Field(5000, ge=1, le=1_000_000)
    flush_interval: Seconds = 1.0
    timeout: Seconds = 10.0
    retry_min: Seconds = 0.5
    retry_max: Seconds = 30.0
    gzip: bool = False

    _token: Secret | None = pydantic.PrivateAttr(None)

    @pydantic.model_validator(mode="after")
    def _secrets(self) -> InfluxConfig:
        secret = read_secret(file=self.token_file, env=self.token_env, what="token")
        self._token = secret
        return self

    @property
    def token(self) -> str:
        return self._token.reveal() if self._token else ""


class HttpConfig(StrictModel):
    listen: str = pydantic.Field("127.0.0.1:9877", pattern=r"^[^\s:]*:\d{1,5}$")

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "0.0.0.0", int(port)


class AcksConfig(StrictModel):
    """Acknowledgements to the sites of what InfluxDB stored (collector/acks.py)."""

    enabled: bool = True
    interval: Annotated[float, pydantic.Field(gt=0, le=300)] = 10.0  # s between two per site


class MaintenanceConfig(StrictModel):
    """Planned maintenance windows (collector/maintenance/, docs/maintenance.md)."""

    file: Path  # the collector's own store of windows (JSON, replaced atomically)
    alertmanager_url: pydantic.AnyHttpUrl | None = None  # None: windows silence nothing
    alertmanager_token_file: Path | None = None  # a bearer token, when a proxy asks for one
    api_token_file: Path | None = None  # changes need it; without it: loopback clients only
    max_days: int = pydantic.Field(31, ge=1, le=366)  # longer windows need `force`
    retry_min: Seconds = 1.0  # backoff while Alertmanager or InfluxDB is away
    retry_max: Seconds = 60.0

    _am_token: Secret | None = pydantic.PrivateAttr(None)
    _api_token: Secret | None = pydantic.PrivateAttr(None)

    @pydantic.model_validator(mode="after")
    def _secrets(self) -> MaintenanceConfig:
        if not self.file.is_absolute():
            raise ValueError("file: give an absolute path (e.g. /var/lib/pantau-collector/…)")
        if self.alertmanager_token_file is not None and self.alertmanager_url is None:
            raise ValueError("alertmanager_token_file needs alertmanager_url")
        url = self.alertmanager_url
        if url is not None and (url.username is not None or url.password is not None):
            # it would show in logs and errors; a credential belongs in a secret file
            raise ValueError(
                "alertmanager_url: no user:password@ in the URL (it would be logged);"
                " use alertmanager_token_file"
            )
        self._am_token = read_secret(
            file=self.alertmanager_token_file, env=None, what="alertmanager token"
        )
        self._api_token = read_secret(file=self.api_token_file, env=None, what="API token")
        return self

    @property
    def alertmanager_token(self) -> Secret | None:
        return self._am_token

    @property
    def api_token(self) -> Secret | None:
        return self._api_token


class CollectorFile(StrictModel):
    mqtt: MqttConfig = MqttConfig()
    # Where messages come from: one MQTT broker (the default), or a RabbitMQ cluster (`amqp`).
    broker: Literal["mqtt", "amqp"] = "mqtt"
    amqp: AmqpConfig | None = None
    influx: InfluxConfig = InfluxConfig()
    http: HttpConfig = HttpConfig()
    acks: AcksConfig = AcksConfig()
    max_message_bytes: int = pydantic.Field(256 * 1024, ge=1024, le=64 << 20)
    stale_after: Seconds = 900.0
    # A sample set dated more than this ahead of the collector's clock is written, but counted
    # (pantau_site_future_samples_total) and not trusted for current state.
    max_clock_skew: Seconds = 300.0
    # A site whose status says online but from which nothing arrived for this long is dark
    # (pantau_site_offline_reason_info{reason="silent"}); keep it near site_silent_max_seconds.
    silent_after: Seconds = 180.0
    # Sites gone for good: left out of current state (/metrics, status page) whatever arrives
    # from them. The other way: a retained empty message on pantau/<site>/status (docs/deploy.md).
    decommissioned_sites: list[SiteName] = []
    rejected_file: Path | None = None
    rejected_max_bytes: int = pydantic.Field(64 << 20, ge=0)
    # Alarms raised by traps (pantau_device_alarm) survive a restart when kept here (JSON,
    # replaced atomically within a second of a change; docs/traps.md). None: memory only.
    alarm_state_file: Path | None = None
    log: LogConfig = LogConfig()
    # The NOC's sites and links (collector/inventory.py, docs/inventory.md); relative to this
    # file's directory. Loaded and checked with this file: a bad inventory refuses the start.
    inventory: Path | None = None
    # How long a dark site keeps its upstream cause (root="false") after that cause is back,
    # so a site whose agent reconnects late is not paged as its own root (docs/inventory.md).
    # Default: the agent's reconnect backoff max (60 s) plus a heartbeat (60 s).
    inventory_cause_hold: float = pydantic.Field(CAUSE_HOLD, ge=0, le=86400)
    maintenance: MaintenanceConfig | None = None
    # InfluxQL read side for availability: reports, month-to-date metrics (docs/availability.md).
    availability: AvailabilityConfig | None = None

    _inventory: Inventory | None = pydantic.PrivateAttr(None)

    @pydantic.model_validator(mode="after")
    def _broker_block(self) -> CollectorFile:
        if self.broker == "amqp" and self.amqp is None:
            raise ValueError("broker: amqp needs an amqp: block (hosts of the cluster)")
        if self.broker == "mqtt" and self.amqp is not None:
            raise ValueError("amqp: is read only with broker: amqp (set it, or remove amqp:)")
        return self

    @property
    def loaded_inventory(self) -> Inventory | None:
        """The inventory `load_collector_config` read (None: no inventory configured)."""
        return self._inventory


def load_collector_config(path: Path) -> CollectorFile:
    data, lines = load_yaml(path)
    cfg = validate(CollectorFile, data, lines, path)
    if cfg.inventory is not None:
        where = path.parent / cfg.inventory
        if not where.is_file():
            raise ConfigError(
                [f"{path}:{lines.line(('inventory',))}: inventory: no such file: {where}"]
            )
        inventory = load_inventory(where)
        cfg = cfg.model_copy(update={"inventory": where})
        cfg._inventory = inventory
    return cfg
