"""The server helpers behave the way later tests rely on (real servers, real clients)."""

import os
import queue
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devstack.servers import (
    SNMP_ENGINE_BOOTS_OID,
    SNMP_ENGINE_ID_OID,
    SYS_DESCR_OID,
    SYS_NAME_OID,
    Mosquitto,
    SnmpCliError,
    Snmpd,
    SnmpSim,
    V3User,
    VictoriaMetrics,
    snmp_v2c_answers,
    snmpget,
    wait_for,
)


def snmprec_string(path: Path, oid: str) -> str:
    """The OCTET STRING (tag 4) value recorded for `oid` in a .snmprec file."""
    for line in path.read_text(encoding="iso-8859-1").splitlines():
        rec_oid, tag, value = line.split("|", 2)
        if rec_oid.lstrip(".") == oid:
            assert tag == "4", f"{oid} in {path.name} has tag {tag}, not a plain string"
            return value
    raise AssertionError(f"{oid} not in {path}")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# helpers


def test_wait_for_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the moon to turn blue"):
        wait_for(lambda: False, 0.1, "the moon to turn blue")


# ---------------------------------------------------------------------------------------------
# snmpsim


def test_snmpsim_serves_recorded_system_values(snmpsim: SnmpSim, devices_dir: Path, tmp_path):
    recording = devices_dir / "ceraos.snmprec"
    assert "ceraos" in snmpsim.communities
    for oid in (SYS_NAME_OID, SYS_DESCR_OID):
        expected = snmprec_string(recording, oid)
        assert snmpget(snmpsim.port, oid, "ceraos", workdir=tmp_path) == expected


def test_snmpsim_unknown_community_times_out(snmpsim: SnmpSim, tmp_path):
    assert not snmp_v2c_answers(snmpsim.port, "no-such-device", timeout=0.5)
    with pytest.raises(SnmpCliError, match="Timeout"):
        snmpget(snmpsim.port, SYS_NAME_OID, "no-such-device", workdir=tmp_path, timeout=0.5)


def test_snmpsim_serves_a_recording_under_another_community(devices_dir: Path, tmp_path):
    recording = devices_dir / "ceraos.snmprec"
    with SnmpSim(tmp_path / "sim", [(recording, "site-a-radio")]) as sim:
        value = snmpget(sim.port, SYS_DESCR_OID, "site-a-radio", workdir=tmp_path)
        assert value == snmprec_string(recording, SYS_DESCR_OID)
        assert not snmp_v2c_answers(sim.port, "ceraos", timeout=0.5)
        pid = sim.pid
    assert pid is not None and process_gone(pid)


# ---------------------------------------------------------------------------------------------
# VictoriaMetrics


def test_victoria_line_protocol_round_trip(victoria: VictoriaMetrics):
    now_ms = int(time.time() * 1000)
    old_ms = 1_000_000_000_000  # 2001-09-09: retention must allow old samples
    victoria.write_lines(
        [
            f'interface,site=s1,device=d1 in_octets=123i,rx_dbm=-42.5,status="up" {now_ms}',
            f"interface,site=s1,device=d1 in_octets=100i {old_ms}",
        ]
    )
    rows = victoria.export('{site="s1"}')
    assert rows == [
        {
            "metric": {"__name__": "interface_in_octets", "site": "s1", "device": "d1"},
            "values": [100, 123],
            "timestamps": [old_ms, now_ms],
        },
        {
            "metric": {"__name__": "interface_rx_dbm", "site": "s1", "device": "d1"},
            "values": [-42.5],
            "timestamps": [now_ms],
        },
        # a string field is not rejected: it becomes a series of zeros
        {
            "metric": {"__name__": "interface_status", "site": "s1", "device": "d1"},
            "values": [0],
            "timestamps": [now_ms],
        },
    ]
    result = victoria.query('interface_in_octets{device="d1"}', flush=False)
    assert [r["value"][1] for r in result] == ["123"]


def test_victoria_flush_sees_series_that_an_earlier_query_missed(victoria: VictoriaMetrics):
    # VictoriaMetrics caches "nothing matches" for up to 10 s. force_flush resets that cache only
    # while the new series' index entries are unflushed, so wait until its own 1 s flush took them.
    assert victoria.export("late_value") == []
    victoria.write_lines(f"late value=7 {int(time.time() * 1000)}")
    time.sleep(1.5)
    assert [r["values"] for r in victoria.export("late_value")] == [[7]]
    assert [r["value"][1] for r in victoria.query("late_value", flush=False)] == ["7"]


# ---------------------------------------------------------------------------------------------
# mosquitto


def _client(client_id: str, clean_session: bool) -> mqtt.Client:
    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )


def _connect(client: mqtt.Client, broker: Mosquitto) -> bool:
    """Connect, start the network loop; return the CONNACK session-present flag."""
    connected: queue.Queue[bool] = queue.Queue()
    client.on_connect = lambda c, u, flags, rc, props: connected.put(flags.session_present)
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    return connected.get(timeout=5)


def test_mosquitto_restart_keeps_queued_qos1_message(mosquitto: Mosquitto):
    topic = "pantau/test/site-a/metrics"
    subscribed = threading.Event()
    subscriber = _client("pantau-test-subscriber", clean_session=False)
    subscriber.on_subscribe = lambda *args: subscribed.set()
    _connect(subscriber, mosquitto)
    subscriber.subscribe(topic, qos=1)
    assert subscribed.wait(5)
    subscriber.disconnect()
    subscriber.loop_stop()

    publisher = _client("pantau-test-publisher", clean_session=True)
    _connect(publisher, mosquitto)
    publisher.publish(topic, b"queued-while-offline", qos=1).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()

    old_pid = mosquitto.pid
    mosquitto.restart()  # SIGTERM: mosquitto writes its persistence file on the way out
    assert old_pid is not None and process_gone(old_pid)
    assert mosquitto.pid != old_pid

    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscriber = _client("pantau-test-subscriber", clean_session=False)
    subscriber.on_message = lambda c, u, msg: received.put(msg)
    session_present = _connect(subscriber, mosquitto)
    try:
        message = received.get(timeout=5)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
    assert session_present
    assert (message.topic, message.payload, message.qos) == (topic, b"queued-while-offline", 1)


# ---------------------------------------------------------------------------------------------
# snmpd


def test_snmpd_v3_users_and_engine_boots_across_restart(tmp_path):
    sha_aes = V3User("pantau-sha-aes", "SHA", "auth-pass-1", "AES", "priv-pass-1")
    sha256_aes = V3User("pantau-sha256", "SHA-256", "auth-pass-2", "AES", "priv-pass-2")
    sha_only = V3User("pantau-auth-only", "SHA", "auth-pass-3")
    agent = Snmpd(tmp_path / "snmpd", [sha_aes, sha256_aes, sha_only], sysname="site-a-gw")
    with agent:
        for user in (sha_aes, sha256_aes, sha_only):
            assert snmpget(agent.port, SYS_NAME_OID, user, workdir=tmp_path) == "site-a-gw"
        assert snmpget(agent.port, SYS_NAME_OID, "public", workdir=tmp_path) == "site-a-gw"
        wrong_key = V3User("pantau-sha-aes", "SHA", "not-the-key", "AES", "priv-pass-1")
        with pytest.raises(SnmpCliError, match="Authentication failure"):
            snmpget(agent.port, SYS_NAME_OID, wrong_key, workdir=tmp_path)

        boots_before = int(snmpget(agent.port, SNMP_ENGINE_BOOTS_OID, sha_aes, workdir=tmp_path))
        engine_id = snmpget(agent.port, SNMP_ENGINE_ID_OID, sha_aes, workdir=tmp_path)
        agent.restart()
        boots_after = int(snmpget(agent.port, SNMP_ENGINE_BOOTS_OID, sha_aes, workdir=tmp_path))
        assert boots_after == boots_before + 1
        assert snmpget(agent.port, SNMP_ENGINE_ID_OID, sha_aes, workdir=tmp_path) == engine_id
        assert agent.engine_boots_persisted() == boots_after
        pid = agent.pid
    assert pid is not None and process_gone(pid)
