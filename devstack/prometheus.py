"""Real Prometheus and Alertmanager servers (Debian packages) on loopback, for tests of rules,
inhibition and dashboards.

Why a real one: alert rules and dashboard queries are PromQL evaluated against what the
collector really exposes; promtool's unit tests prove the logic on made-up series, only a
running Prometheus scraping a running collector proves the names, labels and joins match.
Like the servers in servers.py it runs the Debian binary on 127.0.0.1 at a free port, keeps
config, rules, data and log in the caller's directory, and is stopped by PID (process group).

Verified here with prometheus 2.42.0 (Debian 12): /-/ready answers 200 once the TSDB is open and
the rule files are loaded; a rule group's `interval` and the `for` of each alert are honoured
down to 1 s, so a test can shorten them (shortened_rules) instead of waiting minutes.
Alertmanager 0.25.0 (Debian `prometheus-alertmanager`, not installed by `make test`): with
`--cluster.listen-address=` it runs alone and binds nothing but its web port; /api/v2/alerts
reports each alert's inhibition (`status.inhibitedBy`) as soon as the alert arrives, without
waiting for group_wait.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from devstack.servers import _find_binary, _Server, wait_for

# no proxy: a proxy from the environment must never see requests to 127.0.0.1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusError(RuntimeError):
    """Prometheus answered with an error (bad query, HTTP error)."""


class _ReadyServer(_Server):
    """Prometheus and Alertmanager both answer /-/ready once they serve."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _ready(self) -> bool:
        try:
            with _OPENER.open(f"{self.url}/-/ready", timeout=0.5) as resp:
                return int(resp.status) == 200
        except (OSError, urllib.error.URLError):
            return False


class Prometheus(_ReadyServer):
    """Prometheus scraping `targets` ({job: ["host:port", ...]}) and evaluating `rule_files`."""

    name = "prometheus"
    binary = "/usr/bin/prometheus"
    startup_timeout = 30.0

    def __init__(
        self,
        workdir: Path,
        targets: Mapping[str, Sequence[str]],
        rule_files: Sequence[Path] = (),
        port: int | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        alertmanagers: Sequence[str] = (),
        external_url: str | None = None,
        user_assets: Path | None = None,
        scrape_configs: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(workdir, port)
        # whole scrape_configs entries (e.g. the shipped jobs, their targets replaced), after
        # the ones `targets` makes
        self.extra_scrape_configs = [dict(c) for c in scrape_configs]
        self.targets = {job: list(t) for job, t in targets.items()}
        # --web.external-url: `{{ $externalURL }}` in rule templates (runbook_url); default
        # http://<hostname>:9090 as Prometheus computes it.
        self.external_url = external_url
        # --web.user-assets: a directory served at <external-url>/user/ (the runbooks).
        self.user_assets = Path(user_assets) if user_assets is not None else None
        self.alertmanagers = list(alertmanagers)
        self.rule_files = [Path(p) for p in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.config_path = self.workdir / "prometheus.yml"
        self.data_dir = self.workdir / "data"

    def _prepare(self) -> None:
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        local = []
        for i, path in enumerate(self.rule_files):
            copy = rules_dir / f"{i:02d}-{path.name}"
            shutil.copyfile(path, copy)
            local.append(str(copy))
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": local,
            "scrape_configs": [
                *(
                    {"job_name": job, "static_configs": [{"targets": targets}]}
                    for job, targets in self.targets.items()
                ),
                *self.extra_scrape_configs,
            ],
        }
        if self.alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]
            }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _command(self) -> list[str]:
        command = [
            _find_binary(self.binary, "apt-get install prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        if self.external_url is not None:
            # Served at its root here whatever the external URL's path: as behind a reverse
            # proxy that strips the prefix (otherwise /-/ready moves under the prefix).
            command += [f"--web.external-url={self.external_url}", "--web.route-prefix=/"]
        if self.user_assets is not None:
            command.append(f"--web.user-assets={self.user_assets}")
        return command

    # HTTP API ---------------------------------------------------------------------------------
    def api(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer, else PrometheusError."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(list(params))
        try:
            with _OPENER.open(url, timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            raise PrometheusError(f"GET {url}: HTTP {err.code}: {detail}") from err
        if body.get("status") != "success":
            raise PrometheusError(f"GET {url}: {body}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; a vector as returned by the API, a scalar as one label-less sample."""
        params = [("query", promql)]
        if at is not None:
            params.append(("time", f"{at:.3f}"))
        data = self.api("query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """Range query, as a Grafana time-series panel runs it."""
        data = self.api(
            "query_range",
            [
                ("query", promql),
                ("start", f"{start:.3f}"),
                ("end", f"{end:.3f}"),
                ("step", f"{step:g}"),
            ],
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) with their labels, annotations and state."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def targets_up(self) -> bool:
        """True once every configured target has been scraped successfully."""
        active = self.api("targets")["activeTargets"]
        wanted = sum(len(t) for t in self.targets.values()) + sum(
            len(sc.get("targets", ()))
            for c in self.extra_scrape_configs
            for sc in c.get("static_configs", ())
        )
        return len(active) == wanted and all(t["health"] == "up" for t in active)

    def wait_for_alert(
        self, alertname: str, labels: Mapping[str, str], timeout: float, state: str = "firing"
    ) -> dict[str, Any]:
        """The first alert named `alertname` whose labels include `labels`, once in `state`."""
        found: list[dict[str, Any]] = []

        def present() -> bool:
            found[:] = [
                a
                for a in self.alerts()
                if a["labels"].get("alertname") == alertname
                and a["state"] == state
                and all(a["labels"].get(k) == v for k, v in labels.items())
            ]
            return bool(found)

        wait_for(present, timeout, f"{state} alert {alertname} {dict(labels)}", interval=0.2)
        return found[0]


class Alertmanager(_ReadyServer):
    """Alertmanager with a given config file, alone (no cluster), data in workdir."""

    name = "alertmanager"
    binary = "/usr/bin/prometheus-alertmanager"

    def __init__(self, workdir: Path, config: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.config = Path(config)

    @classmethod
    def available(cls) -> bool:
        return Path(cls.binary).is_file() or shutil.which(Path(cls.binary).name) is not None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [
            _find_binary(self.binary, "apt-get install prometheus-alertmanager"),
            f"--config.file={self.config}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds, with status.state (active, suppressed) and
        status.inhibitedBy (fingerprints of the alerts that inhibit it)."""
        with _OPENER.open(
            f"{self.url}/api/v2/alerts?active=true&inhibited=true&silenced=true", timeout=10
        ) as resp:
            alerts: list[dict[str, Any]] = json.loads(resp.read())
        return alerts


def shortened_rules(source: Path, dest: Path, interval: str = "1s", for_: str = "0s") -> Path:
    """A copy of a rule file whose groups run every `interval` and whose alerts wait `for_`.

    The production `for:` (30 s to 15 min) is right for a NOC and useless for a test; the
    expressions, labels and annotations stay exactly as shipped. An alert without `for:`
    keeps none: it fires at once by design (UpstreamRecovering must fire in the evaluation
    that resolves the root it takes over from).
    """
    doc = yaml.safe_load(source.read_text())
    for group in doc["groups"]:
        group["interval"] = interval
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = for_
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def redirected_alertmanager_config(source: Path, dest: Path, webhook_base: str) -> Path:
    """A copy of an Alertmanager config whose webhook receivers post to `webhook_base`
    (scheme://host:port), each keeping its own path; routing, timing and inhibition stay
    exactly as shipped."""
    doc = yaml.safe_load(source.read_text())
    base = urllib.parse.urlsplit(webhook_base)
    for receiver in doc.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            url = urllib.parse.urlsplit(hook["url"])
            hook["url"] = urllib.parse.urlunsplit(
                (base.scheme, base.netloc, url.path, url.query, url.fragment)
            )
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest
