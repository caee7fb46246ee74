"""The InfluxDB v2 write API: the only module that imports influxdb-client.

A write either succeeds or raises WriteFailed telling whether to retry (429, 5xx, connection
errors: InfluxDB is down or busy; 401/403/404: the token is expired, revoked or lacks write
access, or the org or bucket does not exist — a configuration an operator fixes without the data
changing) or not (other 4xx: the data itself is refused). The caller owns the retry loop, because it also decides when to acknowledge messages
to the broker.
"""

from __future__ import annotations

import logging

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from collector.config import InfluxConfig
from pantau.errors import PantauError

log = logging.getLogger("pantau.collector.sink")


# HTTP status → reason label of pantau_collector_write_errors_total for a write InfluxDB refuses
# for its configuration (token, org, bucket), not for its data: retried, never set aside.
AUTH_FAILURES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


class WriteFailed(PantauError):
    """`retry`: worth trying again unchanged; `auth`: InfluxDB refused the token, org or bucket
    (retried too, and readiness fails until a write succeeds)."""

    def __init__(self, reason: str, detail: str, *, retry: bool, auth: bool = False) -> None:
        super().__init__(reason, detail)
        self.retry = retry
        self.auth = auth


class InfluxSink:
    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        self._client = InfluxDBClient(
            url=str(cfg.url).rstrip("/"),
            token=cfg.token,
            org=cfg.org,
            timeout=int(cfg.timeout * 1000),
            enable_gzip=cfg.gzip,
            retries=urllib3.Retry(total=0, raise_on_status=False),
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        # One prepared body: handed a list, influxdb-client would look at every line again.
        body = "\n".join(lines).encode()
        try:
            self._write.write(
                bucket=self.cfg.bucket,
                org=self.cfg.org,
                record=body,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # typed str by the library
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            if status in AUTH_FAILURES:
                raise WriteFailed(
                    AUTH_FAILURES[status],
                    f"HTTP {status}: {_short(exc.body or exc.reason)}",
                    retry=True,
                    auth=True,
                ) from None
            retry = status == 429 or status >= 500 or status == 0
            reason = f"http_{status}" if status else "connection"
            raise WriteFailed(reason, _short(exc.body or exc.reason), retry=retry) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise WriteFailed("connection", type(exc).__name__, retry=True) from None

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except Exception:  # readiness answers yes or no; the debug log says why
            log.debug("influx ping failed", exc_info=True)
            return False

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]  # influxdb-client: no annotations


def _short(text: object) -> str:
    out = str(text or "").replace("\n", " ")
    return out[:300]
