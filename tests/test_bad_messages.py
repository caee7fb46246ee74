"""Bad messages published to a real broker are counted by reason and set aside; the valid
messages around them are all written, and the collector keeps running."""

from __future__ import annotations

import json
import time

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.servers import free_port
from pantau.wire import Field, Group, Kind, SampleSet, encode_sample_set

SITE = "s1"


def valid(seq: int) -> bytes:
    return encode_sample_set(
        SampleSet(
            site=SITE,
            device="radio",
            seq=seq,
            ts_ms=int(time.time() * 1000) - 60_000 + seq,
            duration_ms=10,
            up=True,
            reason="",
            groups=[Group("modem", {}, [Field("snr_db", Kind.GAUGE, 10.0 + seq)])],
        )
    )


def bad_messages() -> list[tuple[str, str, bytes]]:
    """(reason, topic, payload)"""
    topic = f"pantau/{SITE}/radio/metrics"
    wrong_version = bytes((9,)) + valid(1000)[1:]
    other_site = encode_sample_set(
        SampleSet(
            site="s2",
            device="radio",
            seq=1,
            ts_ms=int(time.time() * 1000),
            duration_ms=1,
            up=True,
            reason="",
        )
    )
    wrong_type = b"\x01\x00" + msgspec.msgpack.encode(
        [SITE, "radio", "seven", 1, 1, True, "", [], {}]
    )
    bad_value = encode_sample_set(
        SampleSet(
            site=SITE,
            device="radio",
            seq=5,
            ts_ms=int(time.time() * 1000),
            duration_ms=1,
            up=True,
            reason="",
            groups=[Group("modem", {}, [Field("snr_db", Kind.COUNTER, -3)])],
        )
    )
    return [
        ("malformed", topic, b"\x01\xffgarbage\x13\x37"),
        ("unknown_version", topic, wrong_version),
        ("site_mismatch", topic, other_site),
        ("oversize", topic, b"\x01\x00" + b"\x90" * 300_000),
        ("invalid_schema", topic, wrong_type),
        ("bad_value", topic, bad_value),
        ("malformed", f"pantau/{SITE}/status", b"{not json"),
    ]


def test_bad_messages_are_counted_and_valid_ones_written(tmp_path, mosquitto, victoria):
    http = free_port()
    rejected_file = tmp_path / "rejected.jsonl"
    cfg = procs.collector_config(
        tmp_path / "c.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http,
        rejected_file=str(rejected_file),
    )
    with procs.collector(cfg, tmp_path / "c.log") as coll:
        procs.wait_until(
            lambda: procs.http_get(f"http://127.0.0.1:{http}/readyz")[0] == 200,
            20,
            "collector ready",
        )
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tester")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        bad = bad_messages()
        seqs = list(range(1, 21))
        sent = []
        for i, seq in enumerate(seqs):  # interleave: valid, bad, valid, bad, ...
            sent.append(pub.publish(f"pantau/{SITE}/radio/metrics", valid(seq), qos=1))
            if i < len(bad):
                _, topic, payload = bad[i]
                sent.append(pub.publish(topic, payload, qos=1))
        for info in sent:
            info.wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()

        def counts():
            m = procs.scrape(http)
            return {
                dict(k[1])["reason"]: v
                for k, v in m.items()
                if k[0] == "pantau_collector_messages_rejected_total"
            }

        expected: dict[str, float] = {}
        for reason, _, _ in bad:
            expected[reason] = expected.get(reason, 0) + 1
        try:
            procs.wait_until(lambda: counts() == expected, 20, f"rejections {expected}")
        finally:
            print("rejections seen:", counts(), coll.log()[-3000:])

        series = procs.wait_until(
            lambda: [
                s
                for s in victoria.export(f'pantau_poll_seq{{site="{SITE}"}}')
                if len(s["values"]) == len(seqs)
            ],
            20,
            "all valid messages written",
        )
        assert sorted(series[0]["values"]) == seqs
        (snr,) = victoria.export(f'modem_snr_db{{site="{SITE}",device="radio"}}')
        assert sorted(snr["values"]) == [10.0 + s for s in seqs]
        assert coll.running

        records = [json.loads(line) for line in rejected_file.read_text().splitlines()]
        assert sorted(r["reason"] for r in records) == sorted(r for r, _, _ in bad)
        assert all(r["payload_b64"] is not None for r in records)
