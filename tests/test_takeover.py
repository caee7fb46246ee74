"""Client-id takeover against a real Mosquitto with the shipped deploy/mosquitto files.

MQTT gives a session to whoever presents its client id: with a free choice, a site's credentials
with the id `pantau-collector` cut the collector off and resumed (or wiped) its persistent
session; 13 takeovers in 40 s lost 31 % of an honest site's sample sets. The shipped pantau.conf
makes the username the client id (use_username_as_clientid), so a site can only ever be itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import procs
from tests.support.mqtt_tls import Client, Pki, SecureBroker, enrolled_pki, sample_set


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return enrolled_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    with SecureBroker(tmp_path / "broker", pki) as b:
        yield b


def connect(
    pki: Pki,
    port: int,
    client_id: str,
    user: str | None = None,
    password: str | None = None,
    *,
    cert: tuple[Path, Path] | None = None,
    clean_start: bool = False,
    session_expiry: int = 3600,
) -> Client:
    """A bare MQTT 5 client over TLS with a persistent session, as the collector has one."""
    return Client(
        pki.ca,
        port,
        user,
        password,
        client_id=client_id,
        cert=cert,
        clean_start=clean_start,
        session_expiry=session_expiry,
        keepalive=30,
        settle=0.3,
    )


def test_a_site_presenting_the_collectors_client_id_cannot_take_its_session(
    pki: Pki, broker: SecureBroker
) -> None:
    collector = connect(
        pki,
        broker.tls_port,
        "pantau-collector",
        "pantau-collector",
        pki.password("pantau-collector"),
    )
    collector.subscribe("pantau/#")
    honest = connect(pki, broker.tls_port, "pantau-agent-site-b", "site-b", pki.password("site-b"))
    thieves: list[Client] = []
    try:
        # site-a's credentials, the collector's client id, over and over: resume (clean_start
        # false) and wipe (clean_start true), by password and by client certificate.
        for i in range(6):
            if i % 3 == 2:
                thief = connect(
                    pki,
                    broker.cert_port,
                    "pantau-collector",
                    cert=pki.cert("site-c"),
                    clean_start=True,
                )
            else:
                thief = connect(
                    pki,
                    broker.tls_port,
                    "pantau-collector",
                    "site-a",
                    pki.password("site-a"),
                    clean_start=i % 2 == 1,
                )
            thieves.append(thief)
            if i == 0:
                assert not thief.session_present  # not the collector's session
            thief.client.subscribe("pantau/#", qos=1)
            ack = honest.publish("pantau/site-b/radio/metrics", sample_set("site-b", seq=i + 1))
            assert not ack.is_failure
            time.sleep(0.2)
            thief.close()
        procs.wait_until(lambda: len(collector.received) >= 6, 5, "the honest site's messages")
        time.sleep(0.5)
        assert collector.disconnects == [], "the collector was cut off"
        assert collector.client.is_connected()
        assert [t for t, _ in collector.received] == ["pantau/site-b/radio/metrics"] * 6
        assert all(t.received == [] for t in thieves), "a site got the collector's messages"
        log = broker.server.log_path.read_text()
        assert log.count(" as pantau-collector (") == 1  # the collector itself, once
        assert log.count(" as site-a (") == 4 and log.count(" as site-c (") == 2
    finally:
        for c in (*thieves, honest, collector):
            c.close()


def test_the_collectors_queued_messages_survive_a_takeover_attempt_while_it_is_away(
    pki: Pki, broker: SecureBroker
) -> None:
    password = pki.password("pantau-collector")
    collector = connect(pki, broker.tls_port, "pantau-collector", "pantau-collector", password)
    collector.subscribe("pantau/#")
    collector.close()  # away: the persistent session queues for it
    honest = connect(pki, broker.tls_port, "pantau-agent-site-b", "site-b", pki.password("site-b"))
    try:
        for seq in range(1, 6):
            honest.publish("pantau/site-b/radio/metrics", sample_set("site-b", seq=seq))
        # site-a tries to resume the collector's session, then to wipe it
        for clean in (False, True):
            thief = connect(
                pki,
                broker.tls_port,
                "pantau-collector",
                "site-a",
                pki.password("site-a"),
                clean_start=clean,
            )
            time.sleep(0.5)
            assert not thief.session_present and thief.received == []
            thief.close()
        back = connect(pki, broker.tls_port, "pantau-collector", "pantau-collector", password)
        try:
            assert back.session_present
            procs.wait_until(lambda: len(back.received) >= 5, 5, "the queued messages")
            assert len(back.received) == 5
        finally:
            back.close()
    finally:
        honest.close()


def test_the_collectors_client_id_is_its_username(pki: Pki, broker: SecureBroker) -> None:
    """Whatever id the collector sends, its session is its username's: a collector restarted
    with another mqtt.client_id still finds what was queued for it."""
    password = pki.password("pantau-collector")
    first = connect(pki, broker.tls_port, "pantau-collector-1", "pantau-collector", password)
    first.subscribe("pantau/#")
    first.close()
    honest = connect(pki, broker.tls_port, "x", "site-b", pki.password("site-b"))
    try:
        honest.publish("pantau/site-b/radio/metrics", sample_set("site-b", seq=1))
    finally:
        honest.close()
    again = connect(pki, broker.tls_port, "something-else", "pantau-collector", password)
    try:
        assert again.session_present
        procs.wait_until(lambda: len(again.received) == 1, 5, "the queued message")
    finally:
        again.close()
    log = broker.server.log_path.read_text()
    assert "as pantau-collector" in log and "as pantau-collector-1" not in log


def test_no_site_may_be_enrolled_under_a_collector_name(pki: Pki) -> None:
    for name in ("pantau-collector", "pantau-collector-2"):
        result = pki.enroll("site", name, ok=False)
        assert "collector" in result.stderr


def test_collector_config_defaults_its_client_id_to_its_username() -> None:
    from collector.config import MqttConfig

    assert MqttConfig().client_id == "pantau-collector"
    assert MqttConfig(username="pantau-collector-2").client_id == "pantau-collector-2"
    assert MqttConfig(username="pantau-collector", client_id="c1").client_id == "c1"
