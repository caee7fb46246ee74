"""Names of enumerations through real processes (issue 12): a real agent polls a recorded UHP
VSAT modem (snmpsim) through Mosquitto to a real collector. The agent detects the modem's profile
and sends its names once per connection, not per poll; the collector's status page shows the
modem's state by name and /metrics carries the profile's HELP text. Bad names messages from the
site's topic (garbage, oversized, names of devices the site does not have) are counted, set
aside in the rejected file, and leave the good names in place."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import load_agent_config
from agent.names import site_names
from agent.profiles.model import builtin_profiles
from agent.service import Agent, open_outbox
from devstack import procs
from devstack.servers import Mosquitto, SnmpSim, VictoriaMetrics, free_port
from pantau.wire import encode_names, names_topic
from pantau.wire.model import MAX_NAMES_BYTES

pytestmark = pytest.mark.servers

SITE = "vsat-names"


class Watcher:
    """Counts the names messages the broker forwards from the site (as the collector sees them)."""

    def __init__(self, port: int) -> None:
        self.payloads: list[bytes] = []
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="names-watcher")
        client.on_message = self._on_message
        client.on_connect = lambda c, *a: c.subscribe(names_topic(SITE), qos=1)
        client.reconnect_delay_set(1, 1)
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.retain:  # a retained copy on (re)subscribe is not a new publish
            with self._lock:
                self.payloads.append(bytes(msg.payload))

    def count(self) -> int:
        with self._lock:
            return len(self.payloads)

    def publish(self, payload: bytes) -> None:
        self.client.publish(names_topic(SITE), payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def rejected(port: int, reason: str) -> float:
    key = ("pantau_collector_messages_rejected_total", (("reason", reason),))
    return procs.scrape(port).get(key, 0.0)


def page(port: int) -> str:
    return procs.http_get(f"http://127.0.0.1:{port}/")[1]


def test_names_reach_the_status_page_once_per_connection_and_bad_ones_are_set_aside(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, snmpsim: SnmpSim
) -> None:
    http = free_port()
    rejected_file = tmp_path / "rejected.jsonl"
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http,
        rejected_file=str(rejected_file),
    )
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        # detected by sysObjectID: the names follow the profiles detection chose
        devices=[procs.snmpsim_device("modem", "uhp", snmpsim.port)],
        interval=1.0,
    )
    watcher = Watcher(mosquitto.port)
    collector = procs.collector(ccfg, tmp_path / "collector.log").start()
    agent = procs.agent(acfg, tmp_path / "agent.log").start()
    try:
        procs.wait_until(lambda: "operation (17)" in page(http), 40, "the modem's state by name")
        _, text = procs.http_get(f"http://127.0.0.1:{http}/metrics")
        help_line = next(
            line
            for line in text.splitlines()
            if line.startswith("# HELP pantau_signal_modem_state ")
        )
        assert "initialization sequence" in help_line, help_line
        # Once per connection, and again when detection changed the profiles: not per poll.
        published = watcher.count()
        assert 1 <= published <= 2, published
        assert agent.log().count("names published") == published
        polls_before = procs.scrape(http)[
            ("pantau_samples_received_total", (("device", "modem"), ("site", SITE)))
        ]
        procs.wait_until(
            lambda: (
                procs.scrape(http)[
                    ("pantau_samples_received_total", (("device", "modem"), ("site", SITE)))
                ]
                >= polls_before + 5
            ),
            30,
            "five more polls",
        )
        assert watcher.count() == published
        # A new connection sends them once more (the broker may have lost its retained copy).
        mosquitto.stop()
        time.sleep(1)
        mosquitto.restart()
        procs.wait_until(
            lambda: agent.log().count("names published") == published + 1,
            30,
            "names after reconnect",
        )
        time.sleep(3)
        assert agent.log().count("names published") == published + 1

        # Bad names messages on the site's topic (not retained: the agent's copy stays).
        uhp = builtin_profiles()["uhp"]
        stranger = encode_names(site_names([("modem", [uhp]), ("not-at-this-site", [uhp])]))
        bad = {
            "unknown_version": b"garbage, not a names message",
            "oversize": b"\x01\x00" + b"\x90" * MAX_NAMES_BYTES,
            "unknown_device": stranger,
        }
        for payload in bad.values():
            watcher.publish(payload)
        for reason in bad:
            procs.wait_until(lambda r=reason: rejected(http, r) == 1, 20, f"{reason} counted")
        records = [json.loads(line) for line in rejected_file.read_text().splitlines()]
        assert sorted(r["reason"] for r in records if r["topic"] == names_topic(SITE)) == sorted(
            bad
        )
        log = collector.log()
        assert "message rejected reason=unknown_device" in log
        # The agent's names stay in place.
        assert "operation (17)" in page(http)
    finally:
        watcher.close()
        agent.stop()
        collector.stop()


def test_every_member_of_a_shared_group_gets_every_sites_names(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics, snmpsim: SnmpSim
) -> None:
    """Collectors in a shared-subscription group: a site's status and names are subscribed
    outside the group, by every member. In the group, the agent's birth and its names went to
    different members (round robin): the names were refused `unknown_site` there and, sent once
    per connection, never came again; that member showed states as numbers (review of issue
    12). A member started later gets the retained copies (MQTT 5 sends none to a shared
    subscription; Mosquitto 2.0.11 does anyway)."""
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=[procs.snmpsim_device("modem", "uhp", snmpsim.port)],
        interval=1.0,
    )
    members: list[tuple[procs.Proc, int]] = []

    def member(n: int) -> tuple[procs.Proc, int]:
        http = free_port()
        cfg = procs.collector_config(
            tmp_path / f"member-{n}.yaml",
            broker_port=mosquitto.port,
            influx_url=victoria.url,
            http_port=http,
            mqtt={"client_id": f"member-{n}", "shared_group": "noc"},
        )
        members.append((procs.collector(cfg, tmp_path / f"member-{n}.log").start(), http))
        procs.wait_until(
            lambda: procs.http_get(f"http://127.0.0.1:{http}/readyz")[0] == 200,
            20,
            f"member {n} subscribed",
        )
        return members[-1]

    agent = procs.agent(acfg, tmp_path / "agent.log")
    try:
        member(1)
        member(2)
        agent.start()
        member(3)  # after the agent's birth and names: the retained copies
        for _, http in members:
            procs.wait_until(
                lambda h=http: "operation (17)" in page(h), 40, f"member on {http} naming states"
            )
        for collector, _ in members:
            assert "reason=unknown_site" not in collector.log()
    finally:
        agent.stop()
        for collector, _ in members:
            collector.stop()


def test_names_that_no_longer_fit_withdraw_the_retained_ones(
    tmp_path: Path, mosquitto: Mosquitto, snmpsim: SnmpSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker holds an older retained names message (another vendor's numbering, say);
    the agent's new one does not fit even without help texts. The agent publishes an empty
    retained message instead of nothing: it deletes the old copy, and a collector takes it for
    a withdrawal (review of issue 12: the old names stayed). The agent runs in this process,
    against a real broker and device, with the size bound lowered so that its names cannot
    fit."""
    uhp = builtin_profiles()["uhp"]
    watcher = Watcher(mosquitto.port)
    try:
        stale = encode_names(site_names([("modem", [uhp])]))
        watcher.client.publish(names_topic(SITE), stale, qos=1, retain=True).wait_for_publish(10)
        assert retained_names(mosquitto.port) == stale
        monkeypatch.setattr("agent.names.MAX_NAMES_BYTES", 10)
        cfg = load_agent_config(
            procs.agent_config(
                tmp_path / "agent.yaml",
                site=SITE,
                broker_port=mosquitto.port,
                devices=[procs.snmpsim_device("modem", "uhp", snmpsim.port)],
                interval=1.0,
            )
        )
        with open_outbox(cfg) as outbox:
            run_agent_until(Agent(cfg, outbox), lambda: b"" in watcher.payloads, 30)
        assert b"" in watcher.payloads, watcher.payloads
        assert retained_names(mosquitto.port) is None
    finally:
        watcher.close()


def retained_names(port: int) -> bytes | None:
    """The broker's retained names message of the site, None if it holds none."""
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="names-retained")
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.on_connect = lambda c, *a: c.subscribe(names_topic(SITE), qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        time.sleep(1.0)  # a retained message comes at once after the subscription
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


def run_agent_until(agent: Agent, done: Callable[[], bool], timeout: float) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end and not task.done():
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(main())
