"""MQTT security against a real Mosquitto running the shipped deploy/mosquitto/pantau.conf and
pantau.acl, with a CA, certificates and passwords made by the shipped enroll.sh.

What must hold: agents and the collector connect over TLS (password or client certificate); a
wrong CA or a broker certificate for another name is refused with a clear line in the agent's log;
a site's identity can publish only under its own site, whatever the agent's config says; the
collector independently rejects a payload whose site differs from its topic; a revoked site is
locked out.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.servers import free_port
from tests.support.mqtt_tls import Client, Pki, SecureBroker, enrolled_pki, sample_set


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return enrolled_pki(tmp_path_factory.mktemp("pki"), cert_sites=("site-c", "site-d"))


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    with SecureBroker(tmp_path / "broker", pki) as b:
        yield b


def secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def agent_config(tmp_path: Path, site: str, port: int, *, broker: dict[str, Any]) -> Path:
    # A device that never answers: every poll is an up=0 sample set, which is data too.
    dead = {
        "name": "radio",
        "host": "127.0.0.1",
        "port": free_port("udp"),
        "snmp": {"version": "2c", "community": "public"},
    }
    return procs.agent_config(
        tmp_path / f"agent-{site}-{port}.yaml",
        site=site,
        broker_port=port,
        devices=[dead],
        interval=1.0,
        timeout=0.2,
        broker=broker,
    )


def collector(tmp_path: Path, pki: Pki, broker: SecureBroker, influx_url: str) -> procs.Proc:
    http_port = free_port()
    password = secret(tmp_path / "collector-mqtt-password", pki.password("pantau-collector"))
    config = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=broker.tls_port,
        influx_url=influx_url,
        http_port=http_port,
        mqtt={
            "port": broker.tls_port,
            "tls": {"ca_file": str(pki.ca)},
            "username": "pantau-collector",
            "password_file": str(password),
        },
    )
    proc = procs.collector(config, tmp_path / "collector.log")
    proc.http_port = http_port  # type: ignore[attr-defined]
    return proc


def metric(proc: procs.Proc, name: str, **labels: str) -> float | None:
    scraped = procs.scrape(proc.http_port)  # type: ignore[attr-defined]
    return scraped.get((name, tuple(sorted(labels.items()))))


def test_agents_reach_the_collector_over_tls_by_password_and_by_client_certificate(
    tmp_path: Path, pki: Pki, broker: SecureBroker, victoria: Any
) -> None:
    by_password = agent_config(
        tmp_path,
        "site-a",
        broker.tls_port,
        broker={
            "tls": {"ca_file": str(pki.bundle("site-a") / "ca.pem")},
            "username": "site-a",
            "password_file": str(
                secret(
                    tmp_path / "site-a-password",
                    pki.password("site-a"),
                )
            ),
        },
    )
    bundle_c = pki.bundle("site-c")
    by_certificate = agent_config(
        tmp_path,
        "site-c",
        broker.cert_port,
        broker={
            "tls": {
                "ca_file": str(bundle_c / "ca.pem"),
                "cert_file": str(bundle_c / "site.crt"),
                "key_file": str(bundle_c / "site.key"),
            }
        },
    )
    coll = collector(tmp_path, pki, broker, victoria.url)
    with (
        coll,
        procs.agent(by_password, tmp_path / "a.log"),
        procs.agent(by_certificate, tmp_path / "c.log"),
    ):
        for site in ("site-a", "site-c"):
            procs.wait_until(
                lambda s=site: metric(coll, "pantau_site_online", site=s) == 1,
                20,
                f"{site} online at the collector",
            )
            procs.wait_until(
                lambda s=site: metric(coll, "pantau_device_up", site=s, device="radio") == 0,
                20,
                f"{site}'s sample sets at the collector",
            )
        procs.wait_until(
            lambda: victoria.export('{__name__="pantau_poll_up",site="site-c"}'),
            15,
            "site-c's polls written to InfluxDB",
        )
    log = (tmp_path / "collector.log").read_text()
    assert "subscribed topics=" in log and "Traceback" not in log


def test_wrong_ca_and_wrong_broker_name_are_refused_with_a_clear_error(
    tmp_path: Path, pki: Pki, broker: SecureBroker
) -> None:
    other = Pki(tmp_path / "other-pki")
    other.enroll("ca")  # a CA the broker's certificate was not signed by
    password = secret(tmp_path / "pw", pki.password("site-a"))
    wrong_ca = agent_config(
        tmp_path,
        "site-a",
        broker.tls_port,
        broker={
            "tls": {"ca_file": str(other.ca)},
            "username": "site-a",
            "password_file": str(password),
        },
    )
    # Same CA, but a broker whose certificate names broker.example only, dialled as 127.0.0.1.
    renamed = Pki(tmp_path / "renamed-pki")
    shutil.copytree(pki.ca_dir, renamed.ca_dir)
    shutil.copy(pki.passwd, renamed.passwd)
    renamed.enroll("broker", "broker.example")
    elsewhere = SecureBroker(tmp_path / "renamed-broker", renamed).__enter__()
    wrong_name = agent_config(
        tmp_path,
        "site-b",
        elsewhere.tls_port,
        broker={
            "tls": {"ca_file": str(pki.ca)},
            "username": "site-b",
            "password_file": str(secret(tmp_path / "pw-b", pki.password("site-b"))),
        },
    )
    try:
        with (
            procs.agent(wrong_ca, tmp_path / "ca.log") as a,
            procs.agent(wrong_name, tmp_path / "name.log") as b,
        ):
            procs.wait_until(lambda: "broker unavailable" in a.log(), 15, "the wrong-CA error")
            procs.wait_until(lambda: "broker unavailable" in b.log(), 15, "the wrong-name error")
            assert a.running and b.running  # it keeps polling into its outbox and retrying
    finally:
        elsewhere.__exit__()
    for log, reason in (
        (a.log(), "certificate verify failed"),
        (b.log(), "certificate verify failed: IP address mismatch"),
    ):
        lines = [line for line in log.splitlines() if "logger=pantau.agent.publisher" in line]
        assert lines and all("broker unavailable" in line for line in lines), log
        assert "level=warning" in lines[0] and reason in lines[0], lines[0]
        assert not any("Traceback" in line for line in lines)
    assert "connected to broker" not in a.log() + b.log()


def test_a_site_cannot_publish_under_another_sites_topic(
    tmp_path: Path, pki: Pki, broker: SecureBroker
) -> None:
    noc = Client(
        pki.ca,
        broker.tls_port,
        "pantau-collector",
        pki.password("pantau-collector"),
        client_id="noc-watch",
    )
    noc.subscribe("pantau/#")
    site_a = Client(pki.ca, broker.tls_port, "site-a", pki.password("site-a"), client_id="a-v5")
    site_a_311 = Client(
        pki.ca,
        broker.tls_port,
        "site-a",
        pki.password("site-a"),
        protocol=mqtt.MQTTv311,
        client_id="a-v311",
    )
    try:
        assert not site_a.publish("pantau/site-a/radio/metrics", sample_set("site-a")).is_failure
        # MQTT 5: the broker says so. MQTT 3.1.1 has no way to say it: the PUBACK comes back
        # and the message is dropped.
        denied = site_a.publish("pantau/site-b/radio/metrics", sample_set("site-b"))
        assert denied.is_failure and str(denied) == "Not authorized"
        site_a_311.publish("pantau/site-b/radio/metrics", sample_set("site-b", seq=2))
        assert site_a.publish("pantau/site-a/radio/metrics", sample_set("site-a", seq=2)).value == 0
        procs.wait_until(lambda: len(noc.received) >= 2, 5, "the allowed publishes")
        time.sleep(0.5)
        topics = [t for t, _ in noc.received]
        assert topics == ["pantau/site-a/radio/metrics"] * 2, topics
    finally:
        for c in (noc, site_a, site_a_311):
            c.close()

    # A real agent with site-a's identity but claiming site-b (a stolen or misconfigured
    # gateway): nothing it sends, not even its retained birth message, reaches the NOC.
    watch = Client(
        pki.ca,
        broker.tls_port,
        "pantau-collector",
        pki.password("pantau-collector"),
        client_id="noc-watch-2",
    )
    watch.subscribe("pantau/#")
    impostor = agent_config(
        tmp_path,
        "site-b",
        broker.tls_port,
        broker={
            "tls": {"ca_file": str(pki.ca)},
            "username": "site-a",
            "password_file": str(secret(tmp_path / "pw", pki.password("site-a"))),
        },
    )
    honest = agent_config(
        tmp_path,
        "site-a",
        broker.tls_port,
        broker={
            "tls": {"ca_file": str(pki.ca)},
            "username": "site-a",
            "client_id": "honest-a",
            "password_file": str(tmp_path / "pw"),
        },
    )
    try:
        # One after the other: the broker makes the username the client id, so two agents with
        # site-a's identity would take the session from each other (tests/test_takeover.py).
        with procs.agent(impostor, tmp_path / "impostor.log") as bad:
            procs.wait_until(lambda: "connected to broker" in bad.log(), 15, "impostor connected")
            time.sleep(3)  # it polls every second: a few sample sets and its birth are sent
        with procs.agent(honest, tmp_path / "honest.log"):
            procs.wait_until(
                lambda: sum(t.startswith("pantau/site-a/") for t, _ in watch.received) >= 3,
                15,
                "the honest agent's messages",
            )
        topics = {t for t, _ in watch.received}
        assert not any(t.startswith("pantau/site-b/") for t in topics), topics
        assert "pantau/site-a/status" in topics and "pantau/site-a/radio/metrics" in topics
    finally:
        watch.close()


def test_collector_rejects_a_payload_whose_site_differs_from_its_topic(
    tmp_path: Path, pki: Pki, broker: SecureBroker, victoria: Any
) -> None:
    coll = collector(tmp_path, pki, broker, victoria.url)
    with coll:
        procs.wait_until(lambda: "subscribed topics=" in coll.log(), 15, "collector subscribed")
        site_a = Client(
            pki.ca,
            broker.tls_port,
            "site-a",
            pki.password("site-a"),
        )
        try:
            # site-a may publish under pantau/site-a/, but the payload claims site-b
            site_a.publish("pantau/site-a/radio/metrics", sample_set("site-b"))
            site_a.publish("pantau/site-a/radio/metrics", sample_set("site-a", seq=7))
        finally:
            site_a.close()
        procs.wait_until(
            lambda: (
                metric(coll, "pantau_collector_messages_rejected_total", reason="site_mismatch")
                == 1
            ),
            15,
            "site_mismatch",
        )
        procs.wait_until(
            lambda: metric(coll, "pantau_device_up", site="site-a", device="radio") == 0,
            15,
            "the valid sample set",
        )
        assert metric(coll, "pantau_device_up", site="site-b", device="radio") is None
    assert "reason=site_mismatch" in coll.log()


def refused(
    ca: Path,
    port: int,
    user: str | None = None,
    password: str | None = None,
    cert: tuple[Path, Path] | None = None,
) -> str:
    """Why the broker would not let this client in ("" if it did)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    client.tls_set_context(ctx)
    if user is not None:
        client.username_pw_set(user, password)
    answer: list[Any] = []
    client.on_connect = lambda c, u, f, rc, p: answer.append(rc)
    client.on_disconnect = lambda c, u, f, rc, p: answer.append(rc)
    try:
        client.connect("127.0.0.1", port)
    except (OSError, ssl.SSLError) as exc:  # TLS 1.2: the handshake itself fails
        return str(exc)
    client.loop_start()
    try:
        procs.wait_until(lambda: answer, 5, "an answer")
    except TimeoutError:
        return "no answer"
    finally:
        client.disconnect()
        client.loop_stop()
    return "" if not answer[0].is_failure else str(answer[0])


def test_revoked_site_is_locked_out(tmp_path: Path, pki: Pki, broker: SecureBroker) -> None:
    # site-d has a client certificate, site-b a password. Revoke both, reload mosquitto
    # (`systemctl reload mosquitto` = SIGHUP: it re-reads the password file and the CRL).
    cert = pki.cert("site-d")
    password = pki.password("site-b")
    assert refused(pki.ca, broker.cert_port, cert=cert) == ""
    assert refused(pki.ca, broker.tls_port, "site-b", password) == ""
    out = pki.enroll("revoke", "site-d").stdout + pki.enroll("revoke", "site-b").stdout
    assert "certificate" in out and "password of site-b removed" in out
    os.kill(broker.server.pid, signal.SIGHUP)
    procs.wait_until(
        lambda: refused(pki.ca, broker.cert_port, cert=cert), 10, "site-d's certificate refused"
    )
    assert refused(pki.ca, broker.tls_port, "site-b", password) == "Not authorized"
    assert (
        refused(
            pki.ca,
            broker.tls_port,
            "site-a",
            pki.password("site-a"),
        )
        == ""
    )
