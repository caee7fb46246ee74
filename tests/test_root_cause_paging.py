"""Root cause pages once (issue 14): a dark PoP, or a microwave hop down at the PoP end, pages
exactly once for the whole chain of sites behind it.

The stack is real from the broker on: Mosquitto; the collector (`pantau-collector run`) with an
inventory; Prometheus 2.42 evaluating deploy/prometheus/rules/pantau.rules.yml; Alertmanager
0.25 running deploy/alertmanager/alertmanager.yml; a webhook receiver in this test recording
every notification. The shipped files are used unchanged except Prometheus' scrape target, the
rule groups' interval (1 s) and every alert's `for:` (FOR_) by devstack.prometheus.shortened_rules,
and the webhook URLs by devstack.prometheus.redirected_alertmanager_config: the inhibit rules,
routes and timings are what is tested.

The sites are not agents polling snmpsim: each is an MQTT connection of its own that sends what
an agent sends, encoded by pantau.wire (birth and heartbeat statuses, a sample set per second for
its one device with its radio's interface row), with the agent's Last Will. A site goes dark
the way a site does: its TCP connection drops without a DISCONNECT and the broker publishes the
will. That keeps the scenario exact (which interface is down, in which order sites go dark)
and the test quick, while every byte goes through the real wire format, broker and collector.

Inventory (three sites one behind another, behind a PoP, the first by a microwave hop):

    rc-pop (fiber) ──mw-pop-s1──► rc-s1 ──► rc-s2 ──► rc-s3        rc-never: never connects

1. rc-pop goes dark, then the three behind it: four SiteOffline alerts, rc-pop's root="true",
   the others root="false" with cause rc-pop; exactly one page, "Site rc-pop is dark". Back
   (the PoP first, the three 35 s after its alert resolved, as agents on their reconnect
   backoff): its resolution, and nothing for the others (never paged; the collector holds
   their cause and UpstreamRecovering holds them back).
2. The hop's PoP-end radio reports its interface down, then the three sites behind it go dark:
   one LinkDown for the link (root="true", both ends named), the sites root="false" with cause
   mw-pop-s1; exactly one page, the link's. The radio's port does not page on its own (it is
   an inventory link's end). Back: the link's resolution only.

The recoveries are where inhibition is fragile (a root resolving before the alerts it holds back
releases them for a moment): with LinkDown evaluated in another rule group than SiteOffline,
this test caught the three sites behind the hop paged "firing" as it came back. Every
notification (notifications.json) and Prometheus' view second by second (history.json) are
left in the test's temporary directory for the post-mortem of a failure.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.prometheus import (
    Alertmanager,
    Prometheus,
    PrometheusError,
    redirected_alertmanager_config,
    shortened_rules,
)
from devstack.servers import Mosquitto, VictoriaMetrics, free_port
from pantau.wire import (
    Field,
    Group,
    Kind,
    SampleSet,
    Status,
    encode_sample_set,
    encode_status,
    metrics_topic,
    status_topic,
)
from tests.support import webhook

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "rules" / "pantau.rules.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

POP, S1, S2, S3, NEVER = "rc-pop", "rc-s1", "rc-s2", "rc-s3", "rc-never"
BEHIND = (S1, S2, S3)
LINK = "mw-pop-s1"
DEVICE = {POP: "mw-pop", S1: "mw-s1", S2: "sw-s2", S3: "sw-s3"}
RADIO = "radio0"  # the interface (ifName) of both ends of the hop
FOR_ = 5.0  # every alert's `for:` here; production 30 s (SiteOffline) and 1 min (LinkDown)
TICK = 1.0  # heartbeat and poll interval of the simulated sites
# Long enough for anything else to arrive after the page: group_wait (15 s) of any other
# critical group, plus `for:` and a few evaluations.
QUIET = 15 + FOR_ + 10

INVENTORY = {
    "defaults": {"site_sla": 99.5, "link_sla": 99.9},
    "sites": [
        {"name": POP, "district": "Katingan Hilir", "uplink": "fiber", "upstream": None},
        {"name": S1, "district": "Katingan Tengah", "uplink": "microwave", "upstream": LINK},
        {"name": S2, "district": "Katingan Tengah", "uplink": "microwave", "upstream": S1},
        {"name": S3, "district": "Katingan Hulu", "uplink": "microwave", "upstream": S2},
        {"name": NEVER, "district": "Katingan Kuala", "uplink": "vsat"},
    ],
    "links": [
        {
            "name": LINK,
            "kind": "microwave",
            "a": {"site": POP, "device": DEVICE[POP], "interface": RADIO},
            "b": {"site": S1, "device": DEVICE[S1], "interface": RADIO},
        }
    ],
}


# ---------------------------------------------------------------------------------------------
# the sites


class Site:
    """One site's gateway as the broker sees it: its own MQTT connection with the agent's Last
    Will, a retained birth/heartbeat status and one sample set per tick for its device (an
    interface row: ifIndex 1, ifName radio0, admin up, oper `self.oper`)."""

    def __init__(self, name: str, broker_port: int) -> None:
        self.name = name
        self.device = DEVICE[name]
        self.port = broker_port
        self.oper = 1  # ifOperStatus of radio0: 1 up, 2 down
        self.seq = 0
        self.lock = threading.Lock()
        self.client: mqtt.Client | None = None

    def connect(self) -> None:
        """Birth: connect with the will, publish online (as agent/publisher.py does)."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"agent-{self.name}")
        # the agent's will (agent/publisher.py): offline, no time, "connection lost"
        will = Status(v=1, site=self.name, online=False, ts_ms=0, reason="connection lost")
        client.will_set(status_topic(self.name), encode_status(will), qos=1, retain=True)
        client.connect("127.0.0.1", self.port, keepalive=30)
        client.loop_start()
        with self.lock:
            self.client = client
        self.tick()

    def tick(self) -> None:
        """A heartbeat and a poll, while connected."""
        with self.lock:
            if self.client is None:
                return
            now = int(time.time() * 1000)
            self.seq += 1
            status = Status(
                v=1,
                site=self.name,
                online=True,
                ts_ms=now,
                agent_version="root-cause-test",
                interval_s=TICK,
                devices=[self.device],
            )
            poll = SampleSet(
                site=self.name,
                device=self.device,
                seq=self.seq,
                ts_ms=now,
                duration_ms=3,
                up=True,
                reason="",
                groups=[
                    Group(
                        "interface",
                        {"ifIndex": "1", "ifName": RADIO},
                        [
                            Field("oper_status", Kind.STATE, self.oper),
                            Field("admin_status", Kind.STATE, 1),
                        ],
                    )
                ],
            )
            self.client.publish(status_topic(self.name), encode_status(status), qos=1, retain=True)
            self.client.publish(
                metrics_topic(self.name, self.device), encode_sample_set(poll), qos=1
            )

    def go_dark(self) -> None:
        """The uplink dies: the TCP connection drops without DISCONNECT, the broker publishes
        the will."""
        with self.lock:
            client, self.client = self.client, None
        if client is None:
            return
        client.loop_stop()
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        with self.lock:
            client, self.client = self.client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()


class Sites:
    """Every site, ticking in a background thread."""

    def __init__(self, broker_port: int) -> None:
        self.by_name = {name: Site(name, broker_port) for name in DEVICE}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sites:
        for site in self.by_name.values():
            site.connect()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for site in self.by_name.values():
            site.close()

    def __getitem__(self, name: str) -> Site:
        return self.by_name[name]

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            for site in self.by_name.values():
                site.tick()


# ---------------------------------------------------------------------------------------------
# the receiver


class Webhook(webhook.Webhook):
    """The shared receiver, plus the pages (noc-pager) among its notifications."""

    def pages(self, since: int = 0) -> list[tuple[str, list[dict[str, str]]]]:
        """(status, [labels of each alert]) of every page (noc-pager) from notification
        `since` on."""
        got = self.notifications()[since:]
        return [
            (n["body"]["status"], [a["labels"] for a in n["body"]["alerts"]])
            for n in got
            if n["path"] == "/pantau/page"
        ]


# ---------------------------------------------------------------------------------------------
# the stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Alertmanager.available():
        pytest.skip("prometheus-alertmanager is not installed (make test does not install it)")
    tmp = tmp_path_factory.mktemp("root-cause")
    (tmp / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    with (
        Webhook() as hook,
        Mosquitto(tmp / "mosquitto") as broker,
        VictoriaMetrics(tmp / "victoria", extra_args=("-dedup.minScrapeInterval=1ms",)) as vm,
    ):
        http = free_port()
        ccfg = procs.collector_config(
            tmp / "collector.yaml",
            broker_port=broker.port,
            influx_url=vm.url,
            http_port=http,
            inventory="inventory.yaml",
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
        )
        started = time.time()
        try:
            prom.start()
            with Sites(broker.port) as sites:
                procs.wait_until(
                    lambda: len(prom.query("pantau_site_online == 1")) == len(DEVICE),
                    40,
                    "every site online in Prometheus (the collector scraped)",
                )
                procs.wait_until(
                    lambda: prom.query(f'pantau_link_state{{link="{LINK}", state="up"}} == 1'),
                    20,
                    "the inventory link up (pantau_link_state from the collector)",
                )
                yield {"prom": prom, "am": am, "hook": hook, "sites": sites, "http": http}
        finally:
            # kept with the servers' logs, for the post-mortem of a failed assertion
            hook.dump(tmp / "notifications.json")
            _dump_history(prom, started, tmp / "history.json")
            prom.stop()
            am.stop()
            collector.stop()


def _dump_history(prom: Prometheus, since: float, path: Path) -> None:
    """What Prometheus saw, second by second: the alerts, the sites' state and their causes."""
    if not prom.running:
        return
    try:
        history = prom.query_range(
            'ALERTS{alertname=~"SiteOffline|LinkDown"} or pantau_site_online or pantau_site_cause'
            " or pantau_link_state == 1",
            since,
            time.time(),
            1,
        )
    except (PrometheusError, OSError) as exc:
        print(f"no Prometheus history for the post-mortem: {exc}")
        return
    path.write_text(json.dumps(history))


def _firing(prom: Prometheus, alertname: str) -> dict[str, dict[str, str]]:
    """Firing alerts named `alertname` in Prometheus, by site (or link)."""
    return {
        a["labels"].get("site") or a["labels"]["link"]: a["labels"]
        for a in prom.alerts()
        if a["labels"]["alertname"] == alertname and a["state"] == "firing"
    }


def _quiet(prom: Prometheus, hook: Webhook, what: str) -> None:
    """Wait until nothing fires at the chain any more and no notification came for a while."""
    procs.wait_until(
        lambda: not _firing(prom, "SiteOffline") and not _firing(prom, "LinkDown"),
        60,
        f"{what}: no SiteOffline or LinkDown firing",
    )
    time.sleep(35)  # a group_interval: the resolutions are out


# ---------------------------------------------------------------------------------------------
# tests, in order (one scenario)


def test_a_site_never_heard_from_is_flagged(stack: dict[str, Any]) -> None:
    """rc-never is in the inventory and never connects: SiteNeverSeen (a warning: queue, not
    a page); the sites that did connect are not flagged."""
    prom: Prometheus = stack["prom"]
    alert = prom.wait_for_alert("SiteNeverSeen", {"site": NEVER}, FOR_ + 20)
    assert alert["labels"]["severity"] == "warning"
    assert "Katingan Kuala, vsat uplink" in alert["annotations"]["description"]
    assert set(_firing(prom, "SiteNeverSeen")) == {NEVER}


def test_dark_pop_pages_once_for_its_chain(stack: dict[str, Any]) -> None:
    prom: Prometheus = stack["prom"]
    am: Alertmanager = stack["am"]
    hook: Webhook = stack["hook"]
    sites: Sites = stack["sites"]
    before = hook.count()
    sites[POP].go_dark()
    procs.wait_until(
        lambda: prom.query(f'pantau_site_cause{{site="{POP}", root="true"}}'),
        20,
        "the collector's cause for the dark PoP",
    )
    for name in BEHIND:
        sites[name].go_dark()

    # Prometheus: four SiteOffline, one root
    procs.wait_until(
        lambda: len(_firing(prom, "SiteOffline")) == 4, FOR_ + 30, "four SiteOffline firing"
    )
    firing = _firing(prom, "SiteOffline")
    assert {s: (a["cause"], a["root"]) for s, a in firing.items()} == {
        POP: (POP, "true"),
        S1: (POP, "false"),
        S2: (POP, "false"),
        S3: (POP, "false"),
    }
    assert f"unreachable via {POP}" in next(
        a["annotations"]["description"]
        for a in prom.alerts()
        if a["labels"].get("site") == S3 and a["labels"]["alertname"] == "SiteOffline"
    )
    # the link between two dark sites is unknown, not down: no LinkDown
    assert not _firing(prom, "LinkDown")

    # Alertmanager: the page for the PoP, the three others held back by it
    procs.wait_until(lambda: hook.pages(before), 60, "the page for the dark PoP")
    time.sleep(QUIET)
    pages = hook.pages(before)
    assert len(pages) == 1, pages
    status, alerts = pages[0]
    assert status == "firing"
    assert [(a["alertname"], a["site"], a["root"]) for a in alerts] == [
        ("SiteOffline", POP, "true")
    ]
    held = {
        a["labels"]["site"]: a
        for a in am.alerts()
        if a["labels"]["alertname"] == "SiteOffline" and a["labels"]["site"] in BEHIND
    }
    assert set(held) == set(BEHIND)
    assert all(
        a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held.values()
    )


def test_pop_back_resolves_once(stack: dict[str, Any]) -> None:
    prom: Prometheus = stack["prom"]
    hook: Webhook = stack["hook"]
    sites: Sites = stack["sites"]
    before = hook.count()
    sites[POP].connect()
    # The sites behind come back late, as agents on their reconnect backoff do: after the
    # PoP's alert resolved, long enough for a fresh root alert (`for:` + group_wait) or an
    # uninhibited held one (a group_interval) to page. The collector holds their cause
    # (inventory_cause_hold, default 120 s) and UpstreamRecovering keeps them held back.
    procs.wait_until(
        lambda: POP not in _firing(prom, "SiteOffline"), FOR_ + 30, "the PoP's alert resolved"
    )
    firing = _firing(prom, "SiteOffline")
    assert {s: (a["cause"], a["root"]) for s, a in firing.items()} == {
        s: (POP, "false") for s in BEHIND
    }
    assert any(
        a["labels"]["alertname"] == "UpstreamRecovering"
        and a["labels"].get("cause") == POP
        and a["state"] == "firing"
        for a in prom.alerts()
    ), prom.alerts()
    time.sleep(35)
    assert {s: (a["cause"], a["root"]) for s, a in _firing(prom, "SiteOffline").items()} == {
        s: (POP, "false") for s in BEHIND
    }
    for name in BEHIND:
        sites[name].connect()
    _quiet(prom, hook, "the chain back")
    pages = hook.pages(before)
    # the PoP's resolution only: the held-back alerts were never paged, so nothing resolves
    assert [(s, [(a["alertname"], a["site"]) for a in alerts]) for s, alerts in pages] == [
        ("resolved", [("SiteOffline", POP)])
    ], pages


def test_hop_down_at_the_pop_end_pages_once_for_the_link(stack: dict[str, Any]) -> None:
    prom: Prometheus = stack["prom"]
    am: Alertmanager = stack["am"]
    hook: Webhook = stack["hook"]
    sites: Sites = stack["sites"]
    before = hook.count()
    sites[POP].oper = 2  # the PoP's radio: radio0 down (the hop is cut)
    procs.wait_until(
        lambda: prom.query(f'pantau_link_state{{link="{LINK}", state="down"}} == 1'),
        20,
        "the link down in the collector",
    )
    for name in BEHIND:
        sites[name].go_dark()

    procs.wait_until(
        lambda: len(_firing(prom, "SiteOffline")) == 3 and _firing(prom, "LinkDown"),
        FOR_ + 30,
        "three SiteOffline and the link's LinkDown firing",
    )
    firing = _firing(prom, "SiteOffline")
    assert {s: (a["cause"], a["root"]) for s, a in firing.items()} == {
        S1: (LINK, "false"),
        S2: (LINK, "false"),
        S3: (LINK, "false"),
    }
    links = _firing(prom, "LinkDown")
    # one LinkDown, the link's: the PoP radio's port is left to it
    assert list(links) == [LINK], links
    link = links[LINK]
    assert (link["cause"], link["root"], link["kind"]) == (LINK, "true", "microwave")
    assert (link["a_site"], link["a_device"], link["b_site"], link["b_device"]) == (
        POP,
        DEVICE[POP],
        S1,
        DEVICE[S1],
    )

    procs.wait_until(lambda: hook.pages(before), 60, "the page for the link")
    time.sleep(QUIET)
    pages = hook.pages(before)
    assert len(pages) == 1, pages
    status, alerts = pages[0]
    assert status == "firing"
    assert [(a["alertname"], a.get("link"), a["root"]) for a in alerts] == [
        ("LinkDown", LINK, "true")
    ]
    held = [
        a
        for a in am.alerts()
        if a["labels"]["alertname"] == "SiteOffline" and a["labels"]["site"] in BEHIND
    ]
    assert len(held) == 3
    assert all(a["status"]["state"] == "suppressed" for a in held)


def test_hop_back_resolves_once(stack: dict[str, Any]) -> None:
    prom: Prometheus = stack["prom"]
    hook: Webhook = stack["hook"]
    sites: Sites = stack["sites"]
    before = hook.count()
    sites[POP].oper = 1
    for name in BEHIND:
        sites[name].connect()
    _quiet(prom, hook, "the hop back")
    pages = hook.pages(before)
    assert [(s, [(a["alertname"], a.get("link")) for a in alerts]) for s, alerts in pages] == [
        ("resolved", [("LinkDown", LINK)])
    ], pages
