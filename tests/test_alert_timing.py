"""The alert timing budget, measured: how long after a condition is confirmed does the NOC get
the page, and after recovery the resolution, through the shipped routing.

The stack is real end to end: snmpsim → a real agent (one site) → Mosquitto → the collector →
Prometheus 2.42 evaluating deploy/prometheus/rules/pantau.rules.yml → Alertmanager 0.25 running
deploy/alertmanager/alertmanager.yml → a webhook receiver in this test that records every
notification with its arrival time. The shipped files are used unchanged except:

* Prometheus' scrape target (the collector's port), and every rule group's interval cut to 1 s
  and every alert's `for:` to FOR_ by devstack.prometheus.shortened_rules (the documented
  override, docs/alerts.md#timing); expressions, labels and annotations are as shipped;
* the webhook URLs, pointed at this test's receiver by
  devstack.prometheus.redirected_alertmanager_config (paths kept). Alertmanager's group_wait,
  group_interval, repeat_interval, group_by and inhibit rules are exactly as shipped: they are
  what is measured.

Scenario, at one site: a device that never answers (DeviceDown, standing and paged); a second
device stops answering (a UDP relay in front of snmpsim drops its packets) → its page must come
≤ 60 s after its `for:` expired (the alert's startsAt), although the first is still firing;
it answers again → the resolution ≤ 60 s after that; the agent is SIGKILLed → exactly one page
(SiteOffline; the standing DeviceDown is inhibited, and stays firing although the collector
withdraws the dark site's readings); the agent is back → SiteOffline's resolution ≤ 60 s, the standing DeviceDown is not paged
again, and no resolved alert appears in more than one notification.

Measured figures are printed (pytest -s) and documented in docs/alerts.md#timing.
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import procs
from devstack.prometheus import (
    Alertmanager,
    Prometheus,
    redirected_alertmanager_config,
    shortened_rules,
)
from devstack.servers import Mosquitto, SnmpSim, VictoriaMetrics, free_port
from tests.support.webhook import Webhook, matches

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "rules" / "pantau.rules.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
DOCS = REPO / "docs"

SITE = "bts-timing"
FOR_ = 10.0  # every alert's `for:` in this test (shortened_rules); production: 30 s … 15 min
INTERVAL = 1.0  # agent poll interval
BUDGET = 60.0  # the requirement: page / resolution within a minute
EXTERNAL_URL = "http://noc.example:9090/prometheus"

# ---------------------------------------------------------------------------------------------
# helpers


class UdpCut:
    """A UDP relay in front of snmpsim that a test can cut: the device stops answering (as if
    unplugged) without touching the shared snmpsim or the agent's config."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port: int = self.sock.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ, None)
        self._peers: dict[tuple[str, int], socket.socket] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UdpCut:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        for s in [self.sock, *self._peers.values()]:
            s.close()
        self._sel.close()

    def cut(self) -> None:
        self.up.clear()

    def restore(self) -> None:
        self.up.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.2):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data, addr = sock.recvfrom(65536)
                except OSError:
                    continue
                if not self.up.is_set():
                    continue  # dropped: nothing answers
                if key.data is None:  # from the agent: relay through this client's socket
                    peer = self._peers.get(addr)
                    if peer is None:
                        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        peer.connect(self.upstream)
                        self._peers[addr] = peer
                        self._sel.register(peer, selectors.EVENT_READ, addr)
                    peer.send(data)
                else:  # snmpsim's answer back to the agent
                    self.sock.sendto(data, key.data)


def _ts(rfc3339: str) -> float:
    """Alertmanager's timestamps (RFC 3339 with up to nanoseconds) as Unix seconds."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert m, rfc3339
    base = datetime.fromisoformat(m.group(1) + m.group(3).replace("Z", "+00:00"))
    return base.timestamp() + float("0." + (m.group(2) or "0"))


# ---------------------------------------------------------------------------------------------
# the stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, snmpsim: SnmpSim) -> Iterator[dict[str, Any]]:
    if not Alertmanager.available():
        pytest.skip("prometheus-alertmanager is not installed (make test does not install it)")
    tmp = tmp_path_factory.mktemp("alert-timing")
    with (
        Webhook() as hook,
        UdpCut(snmpsim.port) as relay,
        Mosquitto(tmp / "mosquitto") as broker,
        VictoriaMetrics(tmp / "victoria", extra_args=("-dedup.minScrapeInterval=1ms",)) as vm,
    ):
        http = free_port()
        ccfg = procs.collector_config(
            tmp / "collector.yaml",
            broker_port=broker.port,
            influx_url=vm.url,
            http_port=http,
        )
        devices = [
            procs.snmpsim_device("ghost", "no-such-recording", snmpsim.port, profiles=["system"]),
            procs.snmpsim_device("radio", "ceraos", relay.port, profiles=["system"]),
            procs.snmpsim_device("gw", "routeros_rb750gr3", snmpsim.port, profiles=["system"]),
        ]
        acfg = procs.agent_config(
            tmp / "agent.yaml",
            site=SITE,
            broker_port=broker.port,
            devices=devices,
            interval=INTERVAL,
        )
        collector = procs.collector(ccfg, tmp / "collector.log").start()
        am = Alertmanager(
            tmp / "alertmanager",
            redirected_alertmanager_config(ALERTMANAGER_CONFIG, tmp / "alertmanager.yml", hook.url),
        ).start()
        prom = Prometheus(
            tmp / "prometheus",
            {"pantau-collector": [f"127.0.0.1:{http}"]},
            rule_files=[shortened_rules(RULES, tmp / "pantau.rules.yml", for_=f"{FOR_:g}s")],
            alertmanagers=[am.address],
            external_url=EXTERNAL_URL,
            user_assets=DOCS,
        )
        agent = procs.agent(acfg, tmp / "agent.log")
        state: dict[str, Any] = {"agent": agent}
        try:
            agent.start()
            prom.start()
            procs.wait_until(
                lambda: len(prom.query(f'pantau_device_up{{site="{SITE}"}}')) == len(devices),
                40,
                "every device scraped by Prometheus",
            )
            yield {
                "prom": prom,
                "am": am,
                "hook": hook,
                "relay": relay,
                "state": state,
                "agent_config": acfg,
                "tmp": tmp,
                "figures": {},
            }
        finally:
            state["agent"].stop()
            prom.stop()
            am.stop()
            collector.stop()


def _page(n: dict[str, Any]) -> bool:
    return n["path"] == "/pantau/page"


# ---------------------------------------------------------------------------------------------
# tests, in order (one scenario)


def test_standing_critical_at_the_site(stack) -> None:
    """The device that never answers: DeviceDown paged, alone in its page."""
    hook: Webhook = stack["hook"]
    n, alert = hook.wait(
        "the page for the unanswering device",
        90,
        status="firing",
        alertname="DeviceDown",
        device="ghost",
    )
    assert _page(n) and len(n["body"]["alerts"]) == 1
    latency = n["at"] - _ts(alert["startsAt"])
    stack["figures"]["first page after for:"] = latency
    assert latency <= BUDGET
    # The texts an operator acts on: since when, and a runbook served from Prometheus' own
    # external URL (--web.user-assets serves docs/ at <external-url>/user/).
    annotations = alert["annotations"]
    assert annotations["description"].startswith("Since 20"), annotations
    assert annotations["runbook_url"] == f"{EXTERNAL_URL}/user/alerts.md#devicedown"
    prom: Prometheus = stack["prom"]
    local = annotations["runbook_url"].replace(EXTERNAL_URL, prom.url).split("#")[0]
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(local) as resp:
        assert resp.status == 200 and b"### DeviceDown" in resp.read()


def test_second_critical_pages_within_a_minute_of_its_for(stack) -> None:
    """At a site with a standing critical alert, a new one does not wait for the site's
    group_interval: its page arrives ≤ 60 s after its `for:` expired."""
    hook: Webhook = stack["hook"]
    stack["relay"].cut()
    stack["figures"]["cut at"] = time.time()
    n, alert = hook.wait(
        "the page for the second device",
        FOR_ + BUDGET + 30,
        status="firing",
        alertname="DeviceDown",
        device="radio",
    )
    assert _page(n)
    assert [a["labels"]["device"] for a in n["body"]["alerts"]] == ["radio"]
    fired = _ts(alert["startsAt"])  # Prometheus' FiredAt: the moment `for:` expired
    latency = n["at"] - fired
    stack["figures"]["second page after for:"] = latency
    assert 0 <= latency <= BUDGET, f"page {latency:.1f} s after for: expired"
    # The standing alert is still firing and was not paged again.
    prom: Prometheus = stack["prom"]
    prom.wait_for_alert("DeviceDown", {"site": SITE, "device": "ghost"}, 5)
    ghost_pages = [
        n
        for n in hook.notifications()
        if any(matches(a, {"device": "ghost", "status": "firing"}) for a in n["body"]["alerts"])
    ]
    assert len(ghost_pages) == 1


def test_resolution_within_a_minute_of_recovery(stack) -> None:
    hook: Webhook = stack["hook"]
    restored = time.time()
    stack["relay"].restore()
    n, alert = hook.wait(
        "the resolution for the second device",
        BUDGET + 30,
        status="resolved",
        alertname="DeviceDown",
        device="radio",
    )
    assert _page(n) and n["body"]["status"] == "resolved"
    stack["figures"]["resolution after recovery"] = n["at"] - restored
    stack["figures"]["resolution after Prometheus resolved"] = n["at"] - _ts(alert["endsAt"])
    assert n["at"] - restored <= BUDGET


def test_dark_site_pages_once(stack) -> None:
    """SIGKILL: the Last Will makes the site dark; one page, SiteOffline; the standing
    DeviceDown is inhibited, and stays firing behind the dark site although the collector
    withdraws the dark site's readings (its devices are `unknown`)."""
    hook: Webhook = stack["hook"]
    prom: Prometheus = stack["prom"]
    am: Alertmanager = stack["am"]
    before = len(hook.notifications())
    killed = time.time()
    stack["state"]["agent"].kill()
    n, alert = hook.wait(
        "the page for the dark site", FOR_ + BUDGET + 30, status="firing", alertname="SiteOffline"
    )
    stack["figures"]["site offline page after for:"] = n["at"] - _ts(alert["startsAt"])
    assert n["at"] - _ts(alert["startsAt"]) <= BUDGET
    stack["state"]["dark_page_at"] = n["at"]
    # The dark site's readings are withdrawn, DeviceDown of ghost stays firing.
    procs.wait_until(
        lambda: not prom.query(f'pantau_device_up{{site="{SITE}"}}'),
        20,
        "the dark site's readings withdrawn by the collector",
    )
    # Long enough for anything else to arrive: one group_interval and Prometheus' resend of
    # resolved alerts (every minute) after the series went.
    time.sleep(35)
    ghost = prom.wait_for_alert("DeviceDown", {"site": SITE, "device": "ghost"}, 5)
    assert ghost["state"] == "firing"
    suppressed = [
        a
        for a in am.alerts()
        if a["labels"].get("device") == "ghost" and a["status"]["state"] == "suppressed"
    ]
    assert suppressed, "DeviceDown of the dark site is not inhibited"
    during = hook.notifications()[before:]
    pages = [
        (x["body"]["status"], [a["labels"]["alertname"] for a in x["body"]["alerts"]])
        for x in during
        if _page(x)
    ]
    assert pages == [("firing", ["SiteOffline"])], pages
    stack["figures"]["dark for"] = time.time() - killed


def test_site_back_resolves_without_repaging_standing_alerts(stack) -> None:
    hook: Webhook = stack["hook"]
    prom: Prometheus = stack["prom"]
    before = len(hook.notifications())
    back = time.time()
    stack["state"]["agent"] = procs.agent(
        stack["agent_config"], stack["tmp"] / "agent-restarted.log"
    ).start()
    n, _ = hook.wait(
        "the resolution of SiteOffline", BUDGET + 30, status="resolved", alertname="SiteOffline"
    )
    stack["figures"]["site back: resolution after restart"] = n["at"] - back
    assert n["at"] - back <= BUDGET
    # The standing DeviceDown is back in Prometheus' view (polled again) and not re-paged:
    # wait one group_interval (30 s) plus `for:` after the resolution for any page.
    prom.wait_for_alert("DeviceDown", {"site": SITE, "device": "ghost"}, 20)
    procs.wait_until(
        lambda: prom.query(f'pantau_device_up{{site="{SITE}", device="ghost"}}'),
        20,
        "the ghost polled again",
    )
    time.sleep(30 + FOR_ + 5)
    after = hook.notifications()[before:]
    assert [
        (x["body"]["status"], [a["labels"]["alertname"] for a in x["body"]["alerts"]])
        for x in after
        if _page(x)
    ] == [("resolved", ["SiteOffline"])], after


def test_no_resolved_alert_reappears(stack) -> None:
    """Every alert episode (fingerprint, startsAt) is reported resolved at most once, and no
    page carries an alert other than its own."""
    hook: Webhook = stack["hook"]
    seen: dict[tuple[str, str], int] = {}
    for n in hook.notifications():
        if _page(n):
            assert len(n["body"]["alerts"]) == 1, n["body"]
        for a in n["body"]["alerts"]:
            if a["status"] == "resolved":
                key = (a["fingerprint"], a["startsAt"])
                seen[key] = seen.get(key, 0) + 1
    assert seen, "no resolution recorded"
    assert all(count == 1 for count in seen.values()), seen
    figures = stack["figures"]
    figures.pop("cut at", None)
    print("\nalert timing (s):", yaml.safe_dump({k: round(v, 1) for k, v in figures.items()}))
    (stack["tmp"] / "figures.json").write_text(json.dumps(figures, indent=1))
