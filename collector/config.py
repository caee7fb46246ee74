"""The collector's configuration, validated once at start (same rules and errors as the agent's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import pydantic

from pantau.settings import (
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


class CollectorFile(StrictModel):
    mqtt: MqttConfig = MqttConfig()
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
    log: LogConfig = LogConfig()


def load_collector_config(path: Path) -> CollectorFile:
    data, lines = load_yaml(path)
    return validate(CollectorFile, data, lines, path)
