"""The shipped alert rules, their promtool unit tests and the Alertmanager example, checked
with Prometheus' own tools: a rule file that does not load, or a rule whose logic nobody
exercised, is a page that never comes (or never stops).

promtool (Debian `prometheus`) checks the config and rules and runs the unit tests in
deploy/prometheus/tests/; the rest reads the YAML to hold the conventions the NOC relies on:
every alert has a severity, summary, description and a runbook line pointing at its section of
docs/alerts.md, every alert is unit-tested firing, not firing and resolving, and a dark site's
device and link alerts are inhibited.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROM_DIR = REPO / "deploy" / "prometheus"
RULES = PROM_DIR / "rules" / "pantau.rules.yml"
UNIT_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
OVERRIDES = PROM_DIR / "tests" / "fixtures" / "site-overrides.rules.yml"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTS_DOC = REPO / "docs" / "alerts.md"

# The alerts issue 5 asks for, no more, no fewer.
EXPECTED_ALERTS = {
    "SiteOffline",
    "SiteBackhaulSlow",
    "DeviceDown",
    "LinkDown",
    "InterfaceErrors",
    "DeviceRebooted",
    "SatelliteSignalDegraded",
    "MicrowaveRslLow",
    "OpticalPowerOutOfRange",
    "CellularSignalWeak",
    "OnBattery",
    "BatteryLow",
    "MainsFailure",
    "GeneratorRunning",
    "CollectorDown",
    "CollectorWriteErrors",
    "CollectorRejectingMessages",
    # issue 14: the inventory (LinkDown also covers inventory links)
    "SiteNeverSeen",
    "LinkDegraded",
    "SLAAtRisk",
    "SLABreached",
    # issue 14 follow-up: a recovering cause holds back its sites; silent failures made loud
    "UpstreamRecovering",
    "LinkSignalUnresolved",
    "MaintenanceSilenceMissing",
    "AvailabilityRefreshFailing",
    # issue 15: alarms raised by SNMP traps (docs/traps.md)
    "DeviceAlarmCritical",
    "DeviceAlarm",
}
SITE_ALERTS = EXPECTED_ALERTS - {
    "CollectorDown",
    "CollectorWriteErrors",
    "CollectorRejectingMessages",
    "LinkDegraded",  # an inventory link, named by `link` and both ends
    "SLAAtRisk",  # a site or a link, named by `name`
    "SLABreached",
    "UpstreamRecovering",  # a site or a link, named by `cause`
    "LinkSignalUnresolved",  # a link end
    "MaintenanceSilenceMissing",  # the collector
    "AvailabilityRefreshFailing",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: apt-get install prometheus (make test installs it)")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_prometheus_config_and_rules_pass_promtool_check() -> None:
    """What Prometheus would refuse at start (or reload) fails here first; includes lint."""
    result = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "rules", str(RULES), str(OVERRIDES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2, result.stdout


def test_promtool_unit_tests_pass() -> None:
    """Every rule's logic on made-up series: fires, does not fire, resolves (exact texts)."""
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    result = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_the_issues_alerts_are_all_there() -> None:
    """The alert names are an interface (Alertmanager routes, silences, runbooks)."""
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "an alert is defined twice"
    assert set(names) == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    """A page without a runbook line leaves the responder guessing at 3 a.m."""
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook"):
        assert annotations.get(key, "").strip(), f"{rule['alert']}: no {key}"
    # The runbook line ends with the alert's own section of docs/alerts.md.
    anchor = rule["alert"].lower()
    assert annotations["runbook"].endswith(f"docs/alerts.md#{anchor}"), annotations["runbook"]
    assert anchor in github_anchors(ALERTS_DOC.read_text()), f"docs/alerts.md: no #{anchor}"
    if rule["alert"] in SITE_ALERTS:
        assert "$labels.site" in annotations["summary"], "site alerts name their site"


def test_every_threshold_has_a_default_or_is_documented_as_per_site() -> None:
    """An alert comparing against a threshold nobody records would never fire."""
    text = RULES.read_text()
    doc = ALERTS_DOC.read_text()
    defaults = set(re.findall(r"labels: \{threshold: (\w+)\}\n", text))
    effective = set(re.findall(r'pantau_threshold\{threshold="(\w+)", site!=""\}', text))
    used = set(re.findall(r'site:pantau_threshold:effective\{threshold="(\w+)"\}', text))
    assert used <= effective, f"alerts use thresholds without an effective rule: {used - effective}"
    for name in effective:
        assert f"`{name}`" in doc, f"threshold {name} is not documented in docs/alerts.md"
    assert effective - defaults <= {"battery_voltage_min_volts"}, "a threshold lacks a default"


def test_every_alert_is_unit_tested_firing_not_firing_and_resolving() -> None:
    """For each alert, some promtool test case has it absent, then firing, then absent."""
    seen: dict[str, list[str]] = {name: [] for name in EXPECTED_ALERTS}
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            checks = sorted(case.get("alert_rule_test", []), key=lambda c: _seconds(c["eval_time"]))
            by_alert: dict[str, str] = {}
            for check in checks:
                by_alert.setdefault(check["alertname"], "")
                by_alert[check["alertname"]] += "F" if check["exp_alerts"] else "-"
            for name, pattern in by_alert.items():
                seen[name].append(pattern)
    for name, patterns in seen.items():
        assert any(re.search(r"-F+-", p) for p in patterns), (
            f"{name}: no unit test where it does not fire, fires, then resolves ({patterns})"
        )


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_alertmanager_inhibits_the_devices_and_links_of_a_dark_site() -> None:
    """A dark site pages once; the alerts that explain why it went dark still come through."""
    config = yaml.safe_load(ALERTMANAGER.read_text())

    def matches(matchers: list[str], alert: str) -> bool:
        """`alert`: an alert name, optionally with labels: 'SiteOffline{root="true"}'."""
        name, _, rest = alert.partition("{")
        labels = {"alertname": name, **dict(re.findall(r'(\w+)="([^"]*)"', rest))}
        for m in matchers:
            key, op, value = re.fullmatch(r'(\w+)\s*(=~|=)\s*"(.*)"', m).groups()  # type: ignore[union-attr]
            assert key in ("alertname", "root"), m
            actual = labels.get(key, "")
            if (op == "=" and value != actual) or (op == "=~" and not re.fullmatch(value, actual)):
                return False
        return True

    def inhibited(source: str, target: str) -> list[str]:
        return [
            rule["equal"]
            for rule in config["inhibit_rules"]
            if matches(rule["source_matchers"], source) and matches(rule["target_matchers"], target)
        ]

    for target in ("DeviceDown", "LinkDown"):
        assert ["site"] in inhibited("SiteOffline", target), target
    # Power and signal alerts explain a dark site: never held back by it.
    for target in ("BatteryLow", "MainsFailure", "SatelliteSignalDegraded", "MicrowaveRslLow"):
        assert not inhibited("SiteOffline", target), target
    assert not inhibited("SiteOffline", "SiteOffline")
    # Root cause (issue 14): the root's SiteOffline or LinkDown holds back, by `cause`, the
    # sites and links down because of it; never a root by another root, nor by a dependent.
    for source in ('SiteOffline{root="true"}', 'LinkDown{root="true"}'):
        for target in ('SiteOffline{root="false"}', 'LinkDown{root="false"}'):
            assert ["cause"] in inhibited(source, target), (source, target)
        assert not inhibited(source, 'SiteOffline{root="true"}')
        assert ["cause"] not in inhibited(source, 'LinkDown{root="true"}')
    assert ["cause"] not in inhibited('SiteOffline{root="false"}', 'SiteOffline{root="false"}')
    assert "link" in config["route"]["routes"][0]["group_by"], "one page per inventory link"
    named = set(re.findall(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+", ALERTMANAGER.read_text()))
    assert named - EXPECTED_ALERTS == set(), "alertmanager.yml names alerts that do not exist"
    assert config["route"]["group_by"][0] == "site"


def test_alertmanager_config_passes_amtool() -> None:
    """Alertmanager's own check, where its package is installed."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip(
            "amtool (Debian prometheus-alertmanager) is not installed; make test does "
            "not install it"
        )
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
