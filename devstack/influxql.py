"""A real InfluxDB 1.x (Debian's `influxdb`) on loopback, to run the dashboards' InfluxQL.

InfluxDB 2 and 3 cannot be installed here; 1.x speaks the same InfluxQL that 2.x serves through
a DBRP mapping and 3.x serves natively, and takes line protocol on /write. Two differences from
what the collector writes to InfluxDB 2/3 are bridged by `to_v1_lines`: 1.x has no unsigned
integers (`123u` is loaded as `123i`), and it is addressed by database, not bucket.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devstack.servers import _find_binary, _Server, free_port

INFLUXD = "/usr/bin/influxd"
_UNSIGNED = re.compile(r"(=)(\d+)u(?=[, ]|$)")


def documented_queries(path: Path) -> dict[str, str]:
    """The InfluxQL blocks of deploy/grafana/influxql-queries.md, by their `### id` heading."""
    text = path.read_text()
    return {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^### (\S+)\n.*?```sql\n(.*?)```", text, re.S | re.M)
    }


def to_v1_lines(lines: Iterable[str]) -> list[str]:
    """Line protocol for InfluxDB 1.x: unsigned fields (`12u`) become integers (`12i`)."""
    return [_UNSIGNED.sub(r"\g<1>\g<2>i", line) for line in lines]


class InfluxQL(_Server):
    """`influxd run` with its directories and ports in `workdir`; database `pantau`."""

    name = "influxd"

    def __init__(self, workdir: Path, database: str = "pantau") -> None:
        super().__init__(workdir)
        self.database = database
        self.rpc_port = free_port()

    @staticmethod
    def available() -> bool:
        try:
            _find_binary(INFLUXD, "influxdb")
        except RuntimeError:
            return False
        return True

    def _prepare(self) -> None:
        d = self.workdir
        (d / "influxd.toml").write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[continuous_queries]
  enabled = false
"""
        )

    def _command(self) -> list[str]:
        return [
            _find_binary(INFLUXD, "influxdb"),
            "run",
            "-config",
            str(self.workdir / "influxd.toml"),
        ]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                ok = resp.status == 204
        except (urllib.error.URLError, OSError):
            return False
        if ok:
            self.query(f'CREATE DATABASE "{self.database}"')
        return ok

    def write(self, lines: Iterable[str], precision: str = "ms") -> None:
        """Write line protocol (as the collector makes it) into the database."""
        body = "\n".join(to_v1_lines(lines)).encode()
        query = urllib.parse.urlencode({"db": self.database, "precision": precision})
        req = urllib.request.Request(f"{self.url}/write?{query}", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status != 204:
                    raise RuntimeError(f"influxd /write answered {resp.status}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"influxd /write answered {exc.code}: {exc.read()[:500]!r}"
            ) from None

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """The results of one InfluxQL statement (epoch ms); raise on an error."""
        params = urllib.parse.urlencode({"db": self.database, "q": influxql, "epoch": "ms"})
        req = urllib.request.Request(f"{self.url}/query", data=params.encode(), method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"influxd /query answered {exc.code}: {exc.read()[:500]!r}"
            ) from None
        results: list[dict[str, Any]] = answer.get("results", [])
        for result in results:
            if "error" in result:
                raise RuntimeError(f"InfluxQL error: {result['error']}\n{influxql}")
        return results
