"""The collector config's `availability:` block: where to read history with InfluxQL.

Its own block rather than `influx:` because the write API (2.x bucket, write token) and the
InfluxQL read side (database via DBRP, a read-only token) are often different; without it the
report falls back to `influx:` (url, bucket as database, token) and no month-to-date metrics
are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pydantic

from pantau.settings import Secret, StrictModel, read_secret


class AvailabilityConfig(StrictModel):
    influxql_url: pydantic.AnyHttpUrl  # serves /query: InfluxDB 1.8+, 2.x (DBRP), 3.x
    database: str = pydantic.Field("pantau", min_length=1, max_length=256)
    token_file: Path | None = None  # sent as `Authorization: Token …`; read-only is enough
    token_env: str | None = None
    refresh_seconds: Annotated[float, pydantic.Field(ge=10, le=86400)] = 300.0
    timeout: Annotated[float, pydantic.Field(gt=0, le=600)] = 60.0
    # Month to date (live.py): polls younger than this are read again on every refresh, so
    # rows landing late (a backlog draining after a reconnect) are counted at once …
    reread_hours: Annotated[float, pydantic.Field(ge=1, le=744)] = 24.0
    # … and the whole month is read again this often, for backfill older than that (an
    # outbox holds up to its max_age, 7 days by default).
    rebuild_hours: Annotated[float, pydantic.Field(ge=1, le=744)] = 24.0

    _token: Secret | None = pydantic.PrivateAttr(None)

    @pydantic.model_validator(mode="after")
    def _secrets(self) -> AvailabilityConfig:
        self._token = read_secret(file=self.token_file, env=self.token_env, what="token")
        return self

    @property
    def token(self) -> Secret | None:
        return self._token
