"""/metrics/alarms: the alarms traps raised, alone, for the pantau-alarms job Prometheus
scrapes every 5 s (deploy/prometheus/prometheus.yml). The full /metrics is scraped every 15 s;
a trap alarm must not wait for it (issue 15: in Prometheus within 15 s at any phase)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from collector.exposition import SelfMetrics, alarms_app, metrics_app
from collector.http import make_app
from collector.state import State
from pantau.wire import Event

REPO = Path(__file__).resolve().parent.parent
PROM = REPO / "deploy" / "prometheus"


def _get(app: Any, path: str) -> tuple[str, str]:
    got: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"] = status

    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": "",
               "wsgi.input": io.BytesIO(b"")}  # fmt: skip
    body = b"".join(app(environ, start_response))
    return got["status"], body.decode()


def _state_with_alarms() -> State:
    state = State(stale_after=900.0)
    for seq, (device, alarm) in enumerate([("radio", "linkDown:ifIndex=3"), ("ups", "onBattery")]):
        state.events.on_event(
            Event(
                site="bts-1", device=device, seq=seq + 1, ts_ms=1_790_000_000_000 + seq,
                trap_oid="1.3.6.1.6.3.1.1.5.3", trap="linkDown", severity="critical",
                alarm=alarm,
            )
        )  # fmt: skip
    return state


def test_the_alarms_page_holds_the_raised_alarms_and_nothing_else() -> None:
    state = _state_with_alarms()
    app = make_app(
        metrics_app(SelfMetrics(), state), lambda: (True, "ok"), state,
        alarms_app=alarms_app(state),
    )  # fmt: skip
    status, text = _get(app, "/metrics/alarms")
    assert status.startswith("200")
    families = list(text_string_to_metric_families(text))
    assert [f.name for f in families] == ["pantau_device_alarm"]
    assert {(s.labels["device"], s.labels["alarm"]) for s in families[0].samples} == {
        ("radio", "linkDown:ifIndex=3"),
        ("ups", "onBattery"),
    }
    # the full /metrics still has them (dashboards, and Prometheus setups without the job)
    _, full = _get(app, "/metrics")
    assert 'pantau_device_alarm{alarm="onBattery"' in full
    # a cleared alarm leaves the page at once
    state.events.on_event(
        Event(
            site="bts-1", device="ups", seq=3, ts_ms=1_790_000_000_100,
            trap_oid="1.3.6.1.6.3.1.1.5.4", trap="linkUp", severity="clear", clears=["onBattery"],
        )
    )  # fmt: skip
    _, text = _get(app, "/metrics/alarms")
    assert "onBattery" not in text and "linkDown:ifIndex=3" in text


def test_without_the_app_the_path_is_not_found() -> None:
    state = State(stale_after=900.0)
    app = make_app(metrics_app(SelfMetrics(), state), lambda: (True, "ok"), state)
    status, _ = _get(app, "/metrics/alarms")
    assert status.startswith("404")


def test_prometheus_scrapes_alarms_every_5s_once_and_evaluates_the_trap_rules_as_often() -> None:
    """The shipped config: alarms from the pantau-alarms job only (dropped from the 15 s job,
    or every alarm would be two series), both jobs on the same targets, and the pantau-traps
    group evaluated every 5 s."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    alarms, full = jobs["pantau-alarms"], jobs["pantau-collector"]
    assert alarms["metrics_path"] == "/metrics/alarms"
    assert alarms["scrape_interval"] == "5s"
    assert alarms["static_configs"] == full["static_configs"]
    drops = [r for r in full["metric_relabel_configs"] if r["action"] == "drop"]
    assert any(r["regex"] == "pantau_device_alarm" for r in drops)
    rules = yaml.safe_load((PROM / "rules" / "pantau.rules.yml").read_text())
    traps = next(g for g in rules["groups"] if g["name"] == "pantau-traps")
    assert traps["interval"] == "5s"
    exprs = " ".join(r["expr"] for r in traps["rules"])
    assert "pantau_device_alarm" in exprs
