"""The Availability dashboard's SLA column says what the SLA alerts say.

The column (0 met so far, 1 at risk, 2 missed) is its own PromQL over the shipped recording
rules, so it could drift from SLAAtRisk and SLABreached. promtool evaluates the shipped rules
file and the panel's expression over made-up month-to-date gauges for one site or link in each
state, and checks both against each other. That the tables return the collector's real figures
is proven against a live stack in tests/test_prometheus_live.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "availability.json"
RULES = REPO / "deploy" / "prometheus" / "rules" / "pantau.rules.yml"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")

MONTH = 2_592_000  # a 30-day month, in seconds
# name -> (scope, target, availability, down s, unknown s, maintenance s); budget of a
# 99.9 % target with nothing unknown: 0.001 × 2,592,000 = 2,592 s
CASES: dict[str, tuple[str, float, float, float, float, float]] = {
    "met": ("site", 0.999, 0.9995, 300, 0, 3600),  # above target
    "at-risk": ("site", 0.999, 0.99, 600, 0, 0),  # below target, 600 s of 2,592 s spent
    "missed": ("site", 0.999, 0.98, 3000, 0, 0),  # beyond the budget
    # unknown time shrinks the budget: (2,592,000 − 2,000,000) × 0.001 = 592 s < 600 s
    "missed-unknown": ("site", 0.999, 0.99, 600, 2_000_000, 0),
    "link-at-risk": ("link", 0.995, 0.99, 600, 0, 0),  # 12,960 s budget
    "no-target": ("site", 0.0, 0.5, 1000, 0, 0),  # no pantau_sla_target_ratio: no verdict
}
VERDICT = {"met": 0, "at-risk": 1, "missed": 2, "missed-unknown": 2, "link-at-risk": 1}


def sla_column(title: str) -> str:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["title"] == title:
            (expr,) = [t["expr"] for t in panel["targets"] if t["refId"] == "C"]
            return str(expr)
    raise AssertionError(f"no panel {title!r}")


def series() -> list[dict[str, str]]:
    job = 'instance="c1:9877", job="pantau-collector"'
    out = [
        {"series": f"pantau_availability_month_length_seconds{{{job}}}", "values": f"{MONTH}x30"}
    ]
    for name, (scope, target, ratio, down, unknown, maint) in CASES.items():
        labels = f'scope="{scope}", name="{name}", {job}'
        if target:
            out.append({"series": f"pantau_sla_target_ratio{{{labels}}}", "values": f"{target}x30"})
        for metric, value in (
            ("pantau_availability_month_ratio", ratio),
            ("pantau_availability_month_down_seconds", down),
            ("pantau_availability_month_unknown_seconds", unknown),
            ("pantau_availability_month_maintenance_seconds", maint),
        ):
            out.append({"series": f"{metric}{{{labels}}}", "values": f"{value}x30"})
    return out


def run(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    doc = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series(), "promql_expr_test": tests}],
    }
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("title", "scope"), [("Sites this month", "site"), ("Links this month", "link")]
)
def test_sla_column_gives_the_alerts_verdict(tmp_path: Path, title: str, scope: str) -> None:
    expr = sla_column(title)
    want = [
        {"labels": f'{{name="{name}"}}', "value": VERDICT[name]}
        for name, case in CASES.items()
        if case[0] == scope and name in VERDICT
    ]
    # the alerts themselves, after their `for` (15 m at most): at risk ↔ 1, missed ↔ 2
    alerts = [
        {"labels": f'{{alertname="{alert}", name="{name}"}}', "value": 1}
        for name, case in CASES.items()
        if case[0] == scope and VERDICT.get(name, 0)
        for alert in [("SLAAtRisk", "SLABreached")[VERDICT[name] - 1]]
    ]
    run(
        tmp_path,
        [
            {"expr": expr, "eval_time": "20m", "exp_samples": want},
            {
                "expr": 'count by (alertname, name) (ALERTS{alertstate="firing", '
                f'alertname=~"SLA.*", scope="{scope}"}})',
                "eval_time": "20m",
                "exp_samples": alerts,
            },
        ],
    )


def test_a_wrong_verdict_fails(tmp_path: Path) -> None:
    """The check can fail: calling the at-risk site met is caught."""
    expr = sla_column("Sites this month")
    wrong = [{"labels": '{name="at-risk"}', "value": 0}]
    with pytest.raises(AssertionError, match="at-risk"):
        run(
            tmp_path,
            [
                {
                    "expr": f'{expr} and on (name) {{name="at-risk"}}',
                    "eval_time": "20m",
                    "exp_samples": wrong,
                }
            ],
        )
