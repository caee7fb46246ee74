"""The spine, end to end on real servers: snmpsim → agent → Mosquitto → collector →
VictoriaMetrics (as the InfluxDB v2 write API) and /metrics. Expected values are read from
the recordings themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import procs
from devstack.servers import free_port
from devstack.snmprec import column, load

DEVICES = {  # device name → recording (community); one microwave, one cellular, one gateway
    "radio": "ceraos",
    "lte": "rutos-rutx_rut955",
    "gw": "routeros_rb750gr3",
}
IFX_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IFX_HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
IFX_HC_OUT = "1.3.6.1.2.1.31.1.1.1.10"
IF_IN = "1.3.6.1.2.1.2.2.1.10"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
SITE = "bts-01"
INTERVAL = 2.0


def expected_interfaces(recording: Path) -> dict[str, dict[str, object]]:
    """{ifIndex: {ifName, in_octets, out_octets, oper_status}} as the profile should read it."""
    rec = load(recording)
    names, hc_in, hc_out = column(rec, IFX_NAME), column(rec, IFX_HC_IN), column(rec, IFX_HC_OUT)
    legacy_in, oper = column(rec, IF_IN), column(rec, IF_OPER)
    out = {}
    for index in oper:
        row: dict[str, object] = {"oper_status": oper[index]}
        if index in names and names[index]:
            row["ifName"] = names[index].decode()  # type: ignore[union-attr]
        row["in_octets"] = hc_in.get(index, legacy_in.get(index))
        row["out_octets"] = hc_out.get(index)
        out[index] = row
    return out


@pytest.fixture
def stack(tmp_path, mosquitto, victoria, snmpsim):
    http_port = free_port()
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http_port,
    )
    devices = [
        procs.snmpsim_device(name, community, snmpsim.port) for name, community in DEVICES.items()
    ]
    devices.append(procs.snmpsim_device("ghost", "no-such-recording", snmpsim.port))
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=devices,
        interval=INTERVAL,
    )
    coll = procs.collector(ccfg, tmp_path / "collector.log").start()
    agent = procs.agent(acfg, tmp_path / "agent.log").start()
    yield {"http": http_port, "collector": coll, "agent": agent, "victoria": victoria}
    agent.stop()
    coll.stop()


def test_values_reach_influx_and_prometheus_exactly(stack, devices_dir):
    http, vm = stack["http"], stack["victoria"]

    def all_devices_reported():
        m = procs.scrape(http)
        return all(
            ("pantau_device_up", (("device", d), ("site", SITE))) in m for d in [*DEVICES, "ghost"]
        )

    procs.wait_until(all_devices_reported, 30, "all devices in /metrics")
    metrics = procs.scrape(http)
    assert metrics[("pantau_site_online", (("site", SITE),))] == 1.0

    for device, community in DEVICES.items():
        recording = devices_dir / f"{community}.snmprec"
        rec = load(recording)
        assert metrics[("pantau_device_up", (("device", device), ("site", SITE)))] == 1.0
        uptime = metrics[("pantau_system_uptime_seconds", (("device", device), ("site", SITE)))]
        assert uptime == pytest.approx(rec["1.3.6.1.2.1.1.3.0"] / 100)

        expected = expected_interfaces(recording)
        assert expected, f"{community} has no interfaces"
        series = procs.wait_until(
            lambda d=device: vm.export(f'interface_in_octets{{site="{SITE}",device="{d}"}}'),
            20,
            f"{device} interface_in_octets in VictoriaMetrics",
        )
        by_index = {s["metric"]["ifIndex"]: s for s in series}
        assert set(by_index) == {i for i, row in expected.items() if row["in_octets"] is not None}
        for index, s in by_index.items():
            row = expected[index]
            assert s["values"][-1] == row["in_octets"], (device, index)
            assert s["metric"].get("ifName") == row.get("ifName"), (device, index)
            labels = {"device": device, "site": SITE, "ifIndex": index}
            if "ifName" in row:
                labels["ifName"] = str(row["ifName"])
            prom = {
                k: v
                for k, v in metrics.items()
                if k[0] == "pantau_interface_in_octets_total"
                and dict(k[1]).items() >= labels.items()
            }
            assert list(prom.values()) == [float(row["in_octets"])], (device, index)
            oper = {
                k: v
                for k, v in metrics.items()
                if k[0] == "pantau_interface_oper_status" and dict(k[1]).items() >= labels.items()
            }
            assert list(oper.values()) == [float(row["oper_status"])], (device, index)


def test_unanswering_device_is_down_with_reason_and_others_keep_schedule(stack):
    http, vm = stack["http"], stack["victoria"]
    ghost = (("device", "ghost"), ("site", SITE))
    procs.wait_until(
        lambda: ("pantau_device_up", ghost) in procs.scrape(http), 30, "ghost device in /metrics"
    )
    metrics = procs.scrape(http)
    assert metrics[("pantau_device_up", ghost)] == 0.0
    assert (
        metrics[
            (
                "pantau_device_down_reason_info",
                (("device", "ghost"), ("reason", "timeout"), ("site", SITE)),
            )
        ]
        == 1.0
    )

    # Let several intervals pass, then check every healthy device was polled on time.
    procs.wait_until(
        lambda: (
            len(vm.export(f'pantau_poll_seq{{site="{SITE}",device="radio"}}')[0]["timestamps"]) >= 5
        ),
        30,
        "five polls of radio",
    )
    for device in DEVICES:
        (series,) = vm.export(f'pantau_poll_seq{{site="{SITE}",device="{device}"}}')
        stamps = series["timestamps"]
        gaps = [(b - a) / 1000 for a, b in zip(stamps, stamps[1:], strict=False)]
        assert gaps and max(gaps) < INTERVAL * 1.5, (device, gaps)
        assert series["values"] == list(range(1, len(series["values"]) + 1))
        (up,) = vm.export(f'pantau_poll_up{{site="{SITE}",device="{device}"}}')
        assert set(up["values"]) == {1}
    (ghost_up,) = vm.export(f'pantau_poll_up{{site="{SITE}",device="ghost"}}')
    assert set(ghost_up["values"]) == {0}


def test_site_goes_offline_when_agent_stops(stack):
    http = stack["http"]
    online = ("pantau_site_online", (("site", SITE),))
    procs.wait_until(lambda: procs.scrape(http).get(online) == 1.0, 30, "site online")
    stack["agent"].stop()
    procs.wait_until(lambda: procs.scrape(http).get(online) == 0.0, 15, "site offline")


def test_last_will_marks_site_offline_when_agent_is_killed(stack):
    http = stack["http"]
    online = ("pantau_site_online", (("site", SITE),))
    procs.wait_until(lambda: procs.scrape(http).get(online) == 1.0, 30, "site online")
    stack["agent"].kill()
    # The broker notices the dead TCP connection at once (RST) and publishes the will.
    procs.wait_until(lambda: procs.scrape(http).get(online) == 0.0, 15, "will → offline")
