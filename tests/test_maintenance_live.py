"""Maintenance windows against real servers (docs/maintenance.md): Alertmanager gets the silence
(and an alert is really silenced by it) and sees it expire when the window ends; the
`pantau_maintenance` point reaches VictoriaMetrics through the collector's InfluxDB sink and a
real InfluxDB (InfluxQL) overwrites it when the window is cancelled; a running collector serves
the CLI, survives a restart with its windows, retries an unreachable Alertmanager (counted) and
refuses to start on a corrupt store file."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.config import InfluxConfig
from collector.inventory import load_inventory
from collector.maintenance import store
from collector.maintenance.alertmanager import Alertmanager as AlertmanagerClient
from collector.maintenance.manager import Maintenance
from collector.sink import InfluxSink
from devstack import procs
from devstack.influxql import InfluxQL
from devstack.prometheus import Alertmanager
from devstack.servers import Mosquitto, VictoriaMetrics, free_port, wait_for

pytestmark = pytest.mark.skipif(
    not Alertmanager.available(), reason="needs prometheus-alertmanager (Debian package)"
)

AM_CONFIG = """\
route: {receiver: sink, group_wait: 1h}
receivers: [{name: sink}]
inhibit_rules:
  - {source_matchers: ['root="true"'], target_matchers: ['root="false"'], equal: [cause]}
"""
INVENTORY = """\
sites:
  - {name: pop-a, district: Hilir, uplink: fiber}
  - {name: site-b, district: Hulu, uplink: microwave, upstream: mw-a-b}
links:
  - name: mw-a-b
    kind: microwave
    a: {site: pop-a, device: radio-1, interface: radio0}
    b: {site: site-b, device: radio-2, interface: radio0}
"""
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Counted:
    def __init__(self) -> None:
        self.silence: list[str] = []
        self.write: list[str] = []
        self.saves = 0

    def silence_failed(self, reason: str) -> None:
        self.silence.append(reason)

    def maintenance_write_failed(self, reason: str) -> None:
        self.write.append(reason)

    def maintenance_save_failed(self) -> None:
        self.saves += 1


class InfluxQLWriter:
    """The Writer seam onto a real InfluxDB 1.x (/write): the same lines, the same overwrite."""

    def __init__(self, server: InfluxQL) -> None:
        self.server = server

    def write(self, lines: list[str]) -> None:
        self.server.write(lines)


def am_get(am: Alertmanager, path: str) -> Any:
    with _OPENER.open(f"{am.url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def am_post(am: Alertmanager, path: str, doc: object) -> None:
    req = urllib.request.Request(f"{am.url}{path}", data=json.dumps(doc).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with _OPENER.open(req, timeout=10):
        pass


def pantau_silences(am: Alertmanager) -> list[dict[str, Any]]:
    return [s for s in am_get(am, "/api/v2/silences") if s["createdBy"] == "pantau"]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    config = tmp_path / "alertmanager.yml"
    config.write_text(AM_CONFIG)
    with Alertmanager(tmp_path / "alertmanager", config) as am:
        yield am


def test_silence_point_and_expiry(
    tmp_path: Path, alertmanager: Alertmanager, victoria: VictoriaMetrics
) -> None:
    sink = InfluxSink(InfluxConfig.model_validate({"url": victoria.url, "timeout": 5}))
    metrics = Counted()
    m = Maintenance(
        tmp_path / "maintenance.json",
        alertmanager=AlertmanagerClient(alertmanager.url),
        writer=sink,
        metrics=metrics,
        retry_min=0.1,
        retry_max=0.5,
    )
    now = time.time()
    site = m.create(
        {"site": "pop-a", "start": now - 60, "duration": 3600, "reason": "new rectifier"}
    )
    device = m.create(
        {
            "site": "site-b",
            "device": "radio-2",
            "start": now + 3600,
            "duration": 600,
            "reason": "odu",
        }
    )
    m.reconcile()
    assert metrics.silence == [] and metrics.write == []
    site, device = m.get(site.id), m.get(device.id)
    (site_silence,) = site.silences.values()
    (device_silence,) = device.silences.values()  # no inventory: not known as a link end
    assert site.written == site.fingerprint()

    made = am_get(alertmanager, f"/api/v2/silence/{site_silence}")
    assert made["createdBy"] == "pantau" and made["comment"] == f"new rectifier [pantau {site.id}]"
    assert [(x["name"], x["value"], x["isEqual"], x["isRegex"]) for x in made["matchers"]] == [
        ("site", "pop-a", True, False)
    ]
    assert made["status"]["state"] == "active"
    ahead = am_get(alertmanager, f"/api/v2/silence/{device_silence}")
    assert ahead["status"]["state"] == "pending"
    assert sorted((x["name"], x["value"]) for x in ahead["matchers"]) == [
        ("device", "radio-2"),
        ("site", "site-b"),
    ]

    # It silences: an alert for the site is suppressed by it, one for another site is not;
    # and the silenced root alert still inhibits the sites behind it (docs/maintenance.md).
    alerts = [
        {"labels": {"alertname": "SiteOffline", "site": "pop-a", "cause": "pop-a", "root": "true"}},
        {
            "labels": {
                "alertname": "SiteOffline",
                "site": "site-b",
                "cause": "pop-a",
                "root": "false",
            }
        },
        {
            "labels": {
                "alertname": "SiteOffline",
                "site": "site-c",
                "cause": "site-c",
                "root": "true",
            }
        },
    ]
    am_post(alertmanager, "/api/v2/alerts", alerts)

    def states() -> dict[str, Any]:
        got = am_get(alertmanager, "/api/v2/alerts?silenced=true&inhibited=true&active=true")
        return {a["labels"]["site"]: a["status"] for a in got}

    wait_for(lambda: len(states()) == 3, 10, "alerts in Alertmanager")
    wait_for(lambda: states()["pop-a"]["state"] == "suppressed", 10, "the alert silenced")
    assert states()["pop-a"]["silencedBy"] == [site_silence]
    assert states()["site-b"]["state"] == "suppressed" and states()["site-b"]["inhibitedBy"]
    assert states()["site-b"]["silencedBy"] == []
    assert states()["site-c"]["state"] == "active"

    # the point, through the collector's InfluxDB sink, stamped with the window's start
    rows = victoria.export(f'{{__name__=~"pantau_maintenance_.*",id="{site.id}"}}')
    by_name = {r["metric"]["__name__"]: r for r in rows}
    assert set(by_name) >= {"pantau_maintenance_start_s", "pantau_maintenance_end_s"}
    labels = by_name["pantau_maintenance_start_s"]["metric"]
    assert labels == {
        "__name__": "pantau_maintenance_start_s",
        "id": site.id,
        "scope": "site",
        "site": "pop-a",
    }
    assert by_name["pantau_maintenance_start_s"]["timestamps"] == [site.start * 1000]
    assert by_name["pantau_maintenance_start_s"]["values"] == [site.start]
    assert by_name["pantau_maintenance_end_s"]["values"] == [site.end]

    # Ending the running window and cancelling the upcoming one expire both silences.
    m.end(site.id)
    m.end(device.id)
    m.reconcile()
    for w, sid in ((site, site_silence), (device, device_silence)):
        assert am_get(alertmanager, f"/api/v2/silence/{sid}")["status"]["state"] == ("expired")
        assert m.get(w.id).silence_expired
    wait_for(lambda: states()["pop-a"]["state"] == "active", 10, "the alert unsilenced")
    m.reconcile()  # nothing left to do: no second expiry, no new silence
    assert len(pantau_silences(alertmanager)) == 2 and metrics.silence == []
    sink.close()


def test_cancel_overwrites_the_point_in_influxdb(tmp_path: Path) -> None:
    if not InfluxQL.available():
        pytest.skip("needs Debian's influxdb")
    with InfluxQL(tmp_path / "influxd") as influx:
        m = Maintenance(
            tmp_path / "maintenance.json",
            alertmanager=None,
            writer=InfluxQLWriter(influx),
            metrics=Counted(),
        )
        start = int(time.time()) + 3600
        w = m.create({"link": "mw-a-b", "start": start, "duration": 1800, "reason": 'odu "B"'})
        m.reconcile()
        m.end(w.id)
        m.reconcile()
        (result,) = influx.query(
            "SELECT start_s, end_s, reason, state, id, scope, link FROM pantau_maintenance"
        )
        (series,) = result["series"]
        assert series["values"] == [
            [start * 1000, start, start + 1800, 'odu "B"', "cancelled", w.id, "link", "mw-a-b"]
        ]


# -- a running collector --------------------------------------------------------------------


def cli(http: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(procs.BIN / "pantau-collector"),
            "maintenance",
            "--url",
            f"http://127.0.0.1:{http}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def metric(http: int, name: str, **labels: str) -> float | None:
    for (n, lbl), value in procs.scrape(http).items():
        if n == name and all(dict(lbl).get(k) == v for k, v in labels.items()):
            return value
    return None


def test_running_collector_cli_restart_and_unreachable_alertmanager(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    http, am_port = free_port(), free_port()
    store_file = tmp_path / "state" / "maintenance.json"
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http,
        inventory="inventory.yaml",
        maintenance={
            "file": str(store_file),
            "alertmanager_url": f"http://127.0.0.1:{am_port}",
            "retry_min": 0.2,
            "retry_max": 1.0,
        },
    )
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(AM_CONFIG)
    am = Alertmanager(tmp_path / "alertmanager", am_config, port=am_port)
    collector = procs.collector(ccfg, tmp_path / "collector.log")
    try:
        collector.start()
        procs.wait_until(
            lambda: procs.http_get(f"http://127.0.0.1:{http}/healthz")[0] == 200, 30, "http"
        )

        # mistakes: refused by the collector, the field named, exit 2, nothing stored
        bad = cli(http, "add", "--site", "atlantis", "--for", "2h", "--reason", "x")
        assert bad.returncode == 2 and "site" in bad.stderr and "inventory" in bad.stderr
        at = str(int(time.time()) + 7200)
        bad = cli(
            http,
            "add",
            "--site",
            "pop-a",
            "--start",
            at,
            "--end",
            str(int(at) - 3600),  # absolute times: `+1h` would count from the start
            "--reason",
            "x",
        )
        assert bad.returncode == 2 and "end: must be after start" in bad.stderr, bad.stderr
        bad = cli(http, "add", "--site", "pop-a", "--for", "2x", "--reason", "x")
        assert bad.returncode == 2 and "not a duration" in bad.stderr

        # Alertmanager is not running yet: the window stands, the failures are counted
        added = cli(http, "add", "--json", "--site", "pop-a", "--for", "2h", "--reason", "splice")
        assert added.returncode == 0, added.stderr
        window = json.loads(added.stdout)
        wid = window["id"]
        assert window["status"] == "active" and window["silence"]["state"] == "none"
        procs.wait_until(
            lambda: (
                (
                    metric(
                        http,
                        "pantau_collector_maintenance_silence_failures_total",
                        reason="connection",
                    )
                    or 0
                )
                >= 2
            ),
            30,
            "silence failures counted (retried)",
        )
        assert metric(http, "pantau_collector_maintenance_silences_pending") == 1
        assert (
            metric(
                http,
                "pantau_maintenance_active",
                id=wid,
                scope="site",
                site="pop-a",
                reason="splice",
            )
            == 1
        )
        assert f"alertmanager silence failed id={wid} reason=connection" in collector.log()
        page = procs.http_get(f"http://127.0.0.1:{http}/")[1]
        assert f'data-window="{wid}"' in page and "splice" in page
        listed = cli(http, "list")
        assert listed.returncode == 0 and wid in listed.stdout and "active" in listed.stdout

        # Alertmanager comes: the retry places the silence
        am.start()

        def silence_state() -> str:
            doc = json.loads(cli(http, "list", "--json").stdout)
            return str(doc["windows"][0]["silence"]["state"])

        procs.wait_until(lambda: silence_state() == "active", 30, "the silence placed")
        (silence,) = pantau_silences(am)
        assert silence["comment"] == f"splice [pantau {wid}]"
        assert silence["status"]["state"] == "active"
        assert metric(http, "pantau_collector_maintenance_silences_pending") == 0
        rows = victoria.export(f'{{__name__="pantau_maintenance_end_s",id="{wid}"}}')
        assert rows and rows[0]["values"] == [window["end"]]

        # a restart keeps the window and its silence (no second one)
        assert collector.stop() == 0
        collector.start()
        procs.wait_until(
            lambda: procs.http_get(f"http://127.0.0.1:{http}/healthz")[0] == 200, 30, "http"
        )
        doc = json.loads(cli(http, "list", "--json").stdout)
        assert [w["id"] for w in doc["windows"]] == [wid]
        assert doc["windows"][0]["silence"] == {
            "id": silence["id"],
            "all": {'site="pop-a"': silence["id"]},
            "state": "active",
        }
        time.sleep(1.5)  # a few reconcile rounds
        assert len(pantau_silences(am)) == 1

        # ended: the silence expires, the window leaves /metrics and the page
        ended = cli(http, "end", wid)
        assert ended.returncode == 0 and ended.stdout.startswith("over"), ended.stdout
        procs.wait_until(
            lambda: pantau_silences(am)[0]["status"]["state"] == "expired", 30, "silence expired"
        )
        assert metric(http, "pantau_maintenance_active", id=wid) is None
        assert f'data-window="{wid}"' not in procs.http_get(f"http://127.0.0.1:{http}/")[1]
        again = cli(http, "end", wid)
        assert again.returncode == 2 and "already over" in again.stderr
        assert collector.stop() == 0

        # a corrupt store refuses the start, with the reason, and is left as it is
        store_file.write_text(store_file.read_text()[:-20])
        before = store_file.read_bytes()
        collector.start()
        procs.wait_until(lambda: not collector.running, 30, "the collector to refuse")
        assert collector.popen is not None and collector.popen.returncode == 1
        assert "cannot start" in collector.log() and "not JSON" in collector.log()
        assert str(store_file) in collector.log()
        assert store_file.read_bytes() == before
    finally:
        collector.stop()
        am.stop()


def test_influxdb_away_is_counted_and_retried(tmp_path: Path) -> None:
    port = free_port()
    sink = InfluxSink(
        InfluxConfig.model_validate({"url": f"http://127.0.0.1:{port}", "timeout": 2})
    )
    metrics = Counted()
    m = Maintenance(
        tmp_path / "maintenance.json",
        alertmanager=None,
        writer=sink,
        metrics=metrics,
        retry_min=0.1,
        retry_max=0.2,
    )
    w = m.create({"site": "pop-a", "duration": 600, "reason": "r"})
    m.reconcile()
    assert metrics.write == ["connection"] and m.get(w.id).written == ""
    assert m.windows() == [w]  # the window stands
    with VictoriaMetrics(tmp_path / "victoria", port=port) as vm:

        def retried() -> bool:
            m.reconcile()
            return bool(m.get(w.id).written)

        procs.wait_until(retried, 10, "the retry")
        assert m.get(w.id).written == w.fingerprint()
        rows = vm.export(f'{{__name__="pantau_maintenance_start_s",id="{w.id}"}}')
        assert [r["values"] for r in rows] == [[w.start]]
    sink.close()


# -- review fixes (issue 14) --------------------------------------------------------------------


def alert_states(am: Alertmanager) -> dict[str, Any]:
    """site (SiteOffline) or site/device (other alerts) → the status Alertmanager gives it."""
    got = am_get(am, "/api/v2/alerts?silenced=true&inhibited=true&active=true")
    return {
        "/".join(filter(None, (a["labels"]["site"], a["labels"].get("device")))): a["status"]
        for a in got
    }


def site_offline(site: str, cause: str) -> dict[str, Any]:
    root = "true" if cause == site else "false"
    return {"labels": {"alertname": "SiteOffline", "site": site, "cause": cause, "root": root}}


def test_overlapping_windows_have_their_own_silences(
    tmp_path: Path, alertmanager: Alertmanager
) -> None:
    """Two windows on one site, same end and reason: ending one must not unsilence the other."""
    metrics = Counted()
    m = Maintenance(
        tmp_path / "maintenance.json",
        alertmanager=AlertmanagerClient(alertmanager.url),
        writer=None,
        metrics=metrics,
    )
    start = int(time.time()) - 10
    body = {"site": "pop-a", "start": start, "end": start + 3600, "reason": "fiber splice"}
    first, second = m.create(body), m.create(body)
    m.reconcile()
    (a,) = m.get(first.id).silences.values()
    (b,) = m.get(second.id).silences.values()
    assert a != b and metrics.silence == []
    comments = {s["id"]: s["comment"] for s in pantau_silences(alertmanager)}
    assert comments == {
        a: f"fiber splice [pantau {first.id}]",
        b: f"fiber splice [pantau {second.id}]",
    }
    am_post(alertmanager, "/api/v2/alerts", [site_offline("pop-a", "pop-a")])
    wait_for(lambda: "pop-a" in alert_states(alertmanager), 10, "the alert")
    m.end(first.id)
    m.reconcile()
    assert am_get(alertmanager, f"/api/v2/silence/{a}")["status"]["state"] == "expired"
    assert am_get(alertmanager, f"/api/v2/silence/{b}")["status"]["state"] == "active"
    wait_for(
        lambda: alert_states(alertmanager)["pop-a"]["silencedBy"] == [b], 10, "silenced by b only"
    )
    assert alert_states(alertmanager)["pop-a"]["state"] == "suppressed"


def test_link_and_link_end_windows_silence_the_sites_cut_off(
    tmp_path: Path, alertmanager: Alertmanager
) -> None:
    """A VSAT link reads unknown while its modem is worked on, so the site behind it is its
    own root and pages; a microwave hop's sites page (SiteOffline, 30 s) before its LinkDown
    (1 min) can inhibit them. The window covers both (docs/maintenance.md)."""
    path = tmp_path / "inventory.yaml"
    path.write_text(
        INVENTORY.replace(
            "links:\n",
            "  - {name: hiran, district: Hulu, uplink: vsat, upstream: vsat-hiran}\n"
            "  - {name: kampung, district: Hulu, uplink: microwave, upstream: hiran}\n"
            "  - {name: site-c, district: Hulu, uplink: fiber}\n"
            "links:\n",
        )
        + "  - name: vsat-hiran\n"
        '    kind: satellite\n    a: {far_end: "VSAT hub Jakarta"}\n'
        "    b: {site: hiran, device: vsat-modem}\n"
    )
    metrics = Counted()
    m = Maintenance(
        tmp_path / "maintenance.json",
        alertmanager=AlertmanagerClient(alertmanager.url),
        writer=None,
        metrics=metrics,
        inventory=load_inventory(path),
    )
    vsat = m.create({"link": "vsat-hiran", "duration": 3600, "reason": "modem firmware"})
    m.create({"link": "mw-a-b", "duration": 3600, "reason": "realign"})
    m.reconcile()
    assert metrics.silence == [] and m.silences_pending == 0

    def device_down(site: str) -> dict[str, Any]:
        return {"labels": {"alertname": "DeviceDown", "site": site, "device": "ups"}}

    am_post(
        alertmanager,
        "/api/v2/alerts",
        [
            site_offline("hiran", "hiran"),  # the unknown VSAT link is transparent: own root
            site_offline("kampung", "hiran"),
            site_offline("site-b", "mw-a-b"),  # before LinkDown{link="mw-a-b"} fires
            site_offline("site-c", "site-c"),
            device_down("hiran"),  # the site behind the link: all its alerts
            device_down("pop-a"),  # the hop's near end stays up: not silenced
        ],
    )
    wait_for(lambda: len(alert_states(alertmanager)) == 6, 10, "alerts in Alertmanager")

    def suppressed() -> set[str]:
        return {k for k, v in alert_states(alertmanager).items() if v["state"] == "suppressed"}

    cut_off = {"hiran", "hiran/ups", "kampung", "site-b"}
    wait_for(lambda: suppressed() == cut_off, 10, "the cut-off sites")
    states = alert_states(alertmanager)
    assert states["hiran"]["silencedBy"] and states["site-b"]["silencedBy"]
    assert states["kampung"]["inhibitedBy"]  # behind hiran: inhibited by its silenced alert

    # the same work declared on the modem (a device window): SiteOffline has no device label
    m.end(vsat.id)
    m.reconcile()
    wait_for(lambda: "hiran" not in suppressed(), 10, "hiran unsilenced")
    modem = m.create(
        {"site": "hiran", "device": "vsat-modem", "duration": 3600, "reason": "modem firmware"}
    )
    m.reconcile()
    wait_for(lambda: suppressed() == cut_off, 10, "hiran silenced by the device window")
    assert len(m.get(modem.id).silences) == 4  # its device, the link, the cause, the site


def test_a_failed_save_keeps_the_bookkeeping_and_is_retried(
    tmp_path: Path, alertmanager: Alertmanager, victoria: VictoriaMetrics
) -> None:
    """A full disk must not make every round place the silence and write the point again."""
    sink = InfluxSink(InfluxConfig.model_validate({"url": victoria.url, "timeout": 5}))
    metrics = Counted()
    state = tmp_path / "state"
    m = Maintenance(
        state / "maintenance.json",
        alertmanager=AlertmanagerClient(alertmanager.url),
        writer=sink,
        metrics=metrics,
    )
    w = m.create({"site": "pop-a", "duration": 3600, "reason": "r"})
    away = tmp_path / "away"
    shutil.move(state, away)
    state.write_text("")  # the directory is now a file: every save fails (root ignores chmod)
    m.reconcile()
    done = m.get(w.id)
    assert done.silences and done.written == done.fingerprint()  # kept in memory
    assert metrics.saves >= 1 and metrics.silence == [] and metrics.write == []
    saves = metrics.saves
    m.reconcile()
    assert metrics.saves == saves + 1  # retried, and counted again
    assert m.get(w.id) == done and len(pantau_silences(alertmanager)) == 1
    # the disk is back: the next round saves what was done
    state.unlink()
    shutil.move(away, state)
    m.reconcile()
    assert store.load(state / "maintenance.json") == [done]
    m.reconcile()
    assert metrics.saves == saves + 1
    sink.close()
