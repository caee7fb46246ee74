"""Dashboard panels that count alerts or links agree with what pages and with the alert rules.

"Alerts paging" must count what Alertmanager would page: critical alerts, minus those an inhibit
rule of the shipped alertmanager.yml holds back (a dark site pages once, not once per device).
"Links down" must use the LinkDown rule's own condition. Both are evaluated by promtool (real
PromQL) over series made here, and the inhibit rules are read from the shipped file, so a new
inhibit rule the panel does not know makes this test fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
RULES = REPO / "deploy" / "prometheus" / "rules" / "pantau.rules.yml"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")


def panel_expr(dashboard: str, title: str) -> str:
    for panel in json.loads((DASHBOARDS / f"{dashboard}.json").read_text())["panels"]:
        if panel.get("title") == title:
            (expr,) = [t["expr"] for t in panel["targets"] if "expr" in t]
            return str(expr)
    raise AssertionError(f"{dashboard}: no panel {title!r}")


def alert(name: str, site: str, severity: str, **labels: str) -> str:
    extra = "".join(f', {k}="{v}"' for k, v in labels.items())
    return (
        f'ALERTS{{alertname="{name}", alertstate="firing", severity="{severity}", '
        f'site="{site}"{extra}}}'
    )


def promtool_expect(
    tmp_path: Path, series: list[tuple[str, str]], expr: str, samples: list[tuple[str, float]]
) -> None:
    """Assert, through promtool, that `expr` at 2m over `series` (selector, values) gives
    exactly `samples` (labels, value)."""
    doc = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "2m",
                        "exp_samples": [{"labels": lab, "value": val} for lab, val in samples],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_alerts_paging_counts_what_alertmanager_pages(tmp_path: Path):
    expr = panel_expr("noc-overview", "Alerts paging")
    series = [
        # site a is dark: only SiteOffline pages; its device and link alerts are inhibited
        alert("SiteOffline", "a", "critical"),
        alert("DeviceDown", "a", "critical", device="radio"),
        alert("LinkDown", "a", "critical", device="radio", ifIndex="3"),
        # site b: a down device holds back its own link alert, not another device's
        alert("DeviceDown", "b", "critical", device="olt"),
        alert("LinkDown", "b", "critical", device="olt", ifIndex="1"),
        alert("LinkDown", "b", "critical", device="sw", ifIndex="2"),
        # site c: mains failure holds back its consequences; warnings do not page
        alert("MainsFailure", "c", "critical"),
        alert("OnBattery", "c", "critical"),
        alert("BatteryLow", "c", "warning"),
        alert("DeviceRebooted", "c", "info", device="ups"),
    ]
    promtool_expect(tmp_path, [(s, "1x5") for s in series], expr, [("{}", 4.0)])
    # one more device alert at the dark site changes nothing; one at a live site pages
    more = [*series, alert("DeviceDown", "a", "critical", device="ups")]
    promtool_expect(tmp_path, [(s, "1x5") for s in more], expr, [("{}", 4.0)])
    more.append(alert("DeviceDown", "d", "critical", device="radio"))
    promtool_expect(tmp_path, [(s, "1x5") for s in more], expr, [("{}", 5.0)])
    # root cause (issue 14): a dark PoP pages once for the sites behind it
    chain = [
        *series,
        alert("SiteOffline", "pop", "critical", cause="pop", root="true"),
        alert("SiteOffline", "s1", "critical", cause="pop", root="false"),
        alert("SiteOffline", "s2", "critical", cause="pop", root="false"),
    ]
    promtool_expect(tmp_path, [(s, "1x5") for s in chain], expr, [("{}", 5.0)])
    # the PoP is back, s1 and s2 still reconnecting: held back by UpstreamRecovering
    recovering = [
        *series,
        alert("SiteOffline", "s1", "critical", cause="pop", root="false"),
        alert("SiteOffline", "s2", "critical", cause="pop", root="false"),
        'ALERTS{alertname="UpstreamRecovering", alertstate="firing", severity="info", cause="pop"}',
    ]
    promtool_expect(tmp_path, [(s, "1x5") for s in recovering], expr, [("{}", 4.0)])
    # and it is the shipped inhibit rules that decide: each one is in the expression
    for rule in yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]:
        source = re.search(r'"(.+)"', rule["source_matchers"][0])
        assert source is not None
        assert f'alertname="{source.group(1)}"' in expr, rule
        assert f"on ({', '.join(rule['equal'])})" in expr, rule


def test_links_down_panel_uses_the_linkdown_rules_condition(tmp_path: Path):
    panel = panel_expr("site-detail", "Links down")
    rules = yaml.safe_load(RULES.read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "LinkDown"]
    condition = " ".join(panel.replace('{site="$site"}', "").split())
    # the rule's condition, before the branch that holds a firing alert while its site is dark
    assert " ".join(rule["expr"].split()).startswith(condition + " ")
    series = [
        ('pantau_interface_oper_status{site="s", device="d", ifIndex="1"}', "1x5"),  # up
        ('pantau_interface_admin_status{site="s", device="d", ifIndex="1"}', "1x5"),
        ('pantau_interface_oper_status{site="s", device="d", ifIndex="2"}', "2x5"),  # down
        ('pantau_interface_admin_status{site="s", device="d", ifIndex="2"}', "1x5"),
        ('pantau_interface_oper_status{site="s", device="d", ifIndex="3"}', "5x5"),  # dormant
        ('pantau_interface_admin_status{site="s", device="d", ifIndex="3"}', "1x5"),
        ('pantau_interface_oper_status{site="s", device="d", ifIndex="4"}', "2x5"),  # admin down
        ('pantau_interface_admin_status{site="s", device="d", ifIndex="4"}', "2x5"),
    ]
    promtool_expect(
        tmp_path,
        series,
        panel.replace("$site", "s"),
        [('pantau_interface_oper_status{site="s", device="d", ifIndex="2"}', 2.0)],
    )
