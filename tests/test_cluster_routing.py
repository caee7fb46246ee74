"""The clustered path's pure parts: which partition a site goes to, topics ↔ routing keys, and
the `broker: amqp` configuration's mistakes (each refused with file:line). The live behaviour is
in test_cluster_rabbitmq.py."""

from __future__ import annotations

from collections import Counter

import pytest

from collector.amqp_intake import BINDINGS, partition_of, routing_key_of, topic_of
from collector.config import load_collector_config
from collector.intake import SUBSCRIPTIONS
from pantau.settings import ConfigError
from pantau.wire import ack_topic, metrics_topic, status_topic


def test_partition_is_stable_and_in_range():
    # pinned: every collector of a cluster, whatever its Python, must agree on these
    assert [partition_of(s, 4) for s in ("cl-1", "cl-2", "cl-3", "cl-4")] == [3, 0, 2, 1]
    assert all(0 <= partition_of(f"s{i}", 7) < 7 for i in range(2000))
    assert partition_of("anything", 1) == 0


def test_sites_spread_evenly_and_growing_moves_few():
    sites = [f"site-{i}" for i in range(8000)]
    counts = Counter(partition_of(s, 4) for s in sites)
    assert set(counts) == {0, 1, 2, 3}
    assert max(counts.values()) - min(counts.values()) < 0.1 * len(sites) / 4
    moved = sum(partition_of(s, 4) != partition_of(s, 5) for s in sites)
    # jump hash: going from 4 to 5 partitions moves about 1/5 of the sites, never more
    assert 0.15 * len(sites) < moved < 0.25 * len(sites)
    assert all(partition_of(s, 5) in (partition_of(s, 4), 4) for s in sites)


@pytest.mark.parametrize(
    "topic", [metrics_topic("bts-01", "radio-1"), status_topic("vsat.7"), "pantau/a/b/gap"]
)
def test_routing_key_round_trip(topic: str):
    # RabbitMQ's MQTT plugin swaps '/' and '.': a '.' in a site name becomes '/' in the key
    key = routing_key_of(topic)
    assert key.count(".") == topic.count("/") and key.count("/") == topic.count(".")
    assert topic_of(key) == topic


def amqp_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching ('*' one word; these patterns have no '#')."""
    p, k = pattern.split("."), key.split(".")
    return len(p) == len(k) and all(a in ("*", b) for a, b in zip(p, k, strict=True))


def test_bindings_take_what_the_mqtt_intake_subscribes_to():
    assert len(BINDINGS) == len(SUBSCRIPTIONS)
    for pattern, topic in zip(BINDINGS, SUBSCRIPTIONS, strict=True):
        example = topic.replace("+", "x")
        assert amqp_matches(pattern, routing_key_of(example)), (pattern, example)
    # the sites' acknowledgements (pantau.<site>.ack), published by collectors, stay out
    assert not any(amqp_matches(p, routing_key_of(ack_topic("s1"))) for p in BINDINGS)
    assert any(amqp_matches(p, routing_key_of(metrics_topic("s1", "d1"))) for p in BINDINGS)


VALID = """\
broker: amqp
amqp:
  hosts: [127.0.0.1:5672, 127.0.0.1:5673]
  partitions: 4
  home: [0, 1]
influx:
  url: http://127.0.0.1:8086
"""


def test_valid_amqp_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(VALID)
    cfg = load_collector_config(path)
    assert cfg.broker == "amqp" and cfg.amqp is not None
    assert cfg.amqp.addresses == [("127.0.0.1", 5672), ("127.0.0.1", 5673)]


INVALID = [
    ("amqp without block", "broker: amqp\n", 1, "broker: amqp needs an amqp: block"),
    (
        "block without broker",
        VALID.replace("broker: amqp\n", ""),
        1,
        "amqp: is read only with broker: amqp",
    ),
    ("unknown broker", VALID.replace("broker: amqp", "broker: kafka"), 1, "broker"),
    ("no hosts", VALID.replace("[127.0.0.1:5672, 127.0.0.1:5673]", "[]"), 3, "amqp.hosts"),
    ("host without port", VALID.replace("127.0.0.1:5673", "rabbit-2"), 3, "amqp.hosts"),
    ("home out of range", VALID.replace("[0, 1]", "[0, 4]"), 2, "home: partitions [4]"),
    ("zero partitions", VALID.replace("partitions: 4", "partitions: 0"), 4, "amqp.partitions"),
    ("typo", VALID.replace("  home:", "  homes:"), 5, "homes: unknown key"),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_amqp_config_mistakes(tmp_path, text, line, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_collector_config(path)
    matching = [e for e in err.value.errors if fragment in e]
    assert matching, err.value.errors
    assert matching[0].startswith(f"{path}:{line}:"), matching[0]
