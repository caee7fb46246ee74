"""A real site goes dark and stays so: a real agent (snmpsim devices, Mosquitto, a real collector
writing to VictoriaMetrics) is killed with SIGKILL; long after the collector's (shortened)
stale_after, /metrics still shows the site offline with reason connection_lost, its devices
unknown and their readings withdrawn, its last heartbeat kept. The operator then deletes the
site's retained status (an empty retained message): the collector forgets it, and a restarted
collector does not bring it back."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.servers import Mosquitto, SnmpSim, VictoriaMetrics, free_port
from pantau.wire import status_topic

pytestmark = pytest.mark.servers

SITE = "mw-tlk-03"
STALE_AFTER = 2.0
DEVICES = {  # name -> (community = recording, profiles)
    "modem": ("uhp", ["system", "if-mib"]),
    "ghost": ("no-such-recording", ["system"]),  # nothing answers: down, timeout
}


def site_series(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {k: v for k, v in procs.scrape(port).items() if ("site", SITE) in k[1]}


def names(series: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {name for name, _ in series}


def delete_retained_status(port: int) -> None:
    """What docs/deploy.md tells the operator: mosquitto_pub -r -n -q 1 -t pantau/<site>/status"""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="operator", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(status_topic(SITE), b"", qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_killed_agent_site_stays_dark_with_reason_until_decommissioned(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, snmpsim: SnmpSim
) -> None:
    http_port = free_port()
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http_port,
        stale_after=STALE_AFTER,
    )
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=[
            procs.snmpsim_device(name, community, snmpsim.port, profiles=profiles)
            for name, (community, profiles) in DEVICES.items()
        ],
        broker={"keepalive": 5},  # the broker publishes the will 7.5 s after the kill
        interval=1.0,
    )
    coll = procs.collector(ccfg, tmp_path / "collector.log").start()
    agent = procs.agent(acfg, tmp_path / "agent.log").start()
    try:

        def polled() -> bool:
            m = site_series(http_port)
            return all(
                ("pantau_device_up", (("device", d), ("site", SITE))) in m for d in DEVICES
            ) and any(n.startswith("pantau_interface_") for n in names(m))

        procs.wait_until(polled, 30, "every device and its interfaces in /metrics")
        live = site_series(http_port)
        assert live[("pantau_site_online", (("site", SITE),))] == 1.0
        assert live[
            ("pantau_device_state", (("device", "ghost"), ("site", SITE), ("state", "down")))
        ]
        assert live[("pantau_device_state", (("device", "modem"), ("site", SITE), ("state", "up")))]

        agent.kill()  # SIGKILL: no clean stop, the broker publishes the Last Will
        killed = time.monotonic()
        procs.wait_until(
            lambda: (
                ("pantau_site_offline_reason_info", (("reason", "connection_lost"), ("site", SITE)))
                in site_series(http_port)
            ),
            30,
            "the site dark with reason connection_lost",
        )
        # Well past stale_after (and the will): nothing of the site may have gone meanwhile.
        time.sleep(max(0.0, 4 * STALE_AFTER - (time.monotonic() - killed)) + STALE_AFTER)
        dark = site_series(http_port)
        assert dark[("pantau_site_online", (("site", SITE),))] == 0.0
        assert dark[
            ("pantau_site_offline_reason_info", (("reason", "connection_lost"), ("site", SITE)))
        ]
        assert ("pantau_site_offline_since_timestamp_seconds", (("site", SITE),)) in dark
        states = {
            dict(labels)["device"]: dict(labels)["state"]
            for name, labels in dark
            if name == "pantau_device_state"
        }
        assert states == {"modem": "unknown", "ghost": "unknown"}
        got = names(dark)
        assert "pantau_device_up" not in got and "pantau_device_down_reason_info" not in got
        assert not any(n.startswith(("pantau_interface_", "pantau_system_")) for n in got), got
        assert "pantau_agent_heartbeat_timestamp_seconds" in got
        assert "pantau_agent_outbox_pending" in got
        status, page = procs.http_get(f"http://127.0.0.1:{http_port}/")
        assert status == 200 and 'data-reason="connection_lost"' in page
        assert page.count('data-state="unknown"') == 2

        # Decommission: the retained status deleted, the site forgotten.
        delete_retained_status(mosquitto.port)
        procs.wait_until(
            lambda: not site_series(http_port), 15, "the decommissioned site gone from /metrics"
        )
        coll.stop()
        coll = procs.collector(ccfg, tmp_path / "collector-2.log").start()
        procs.wait_until(
            lambda: (
                ("pantau_collector_broker_connected", ()) in procs.scrape(http_port)
                and procs.scrape(http_port)[("pantau_collector_broker_connected", ())] == 1.0
            ),
            30,
            "the restarted collector subscribed",
        )
        time.sleep(2.0)  # retained messages arrive right after subscribing
        assert not site_series(http_port), "a restarted collector brought the site back"
    finally:
        agent.stop()
        coll.stop()
