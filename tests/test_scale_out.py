"""Scale-out: several collectors share the load through an MQTT 5 shared subscription.

Three real `pantau-collector` processes subscribe as `$share/noc/pantau/...` (config
`mqtt.shared_group`) with persistent sessions to a real Mosquitto, and write to a real
VictoriaMetrics. A test publisher sends numbered sample sets. VictoriaMetrics deduplicates, so
the database alone cannot show that a message was handled once: each collector's own counters
(`pantau_collector_messages_received_total`, `pantau_samples_received_total{site,device}`,
`pantau_samples_duplicate_total`, `pantau_collector_points_written_total`) are summed and
compared with what was published, and VictoriaMetrics shows that every sequence number is there.

What Mosquitto 2.0.11 does with a dead member (found here, see docs/scaling.md): it goes on
handing every Nth message to the dead member's persistent session, round-robin, as if it were
alive, and keeps them queued there (with the messages that were in flight to it) until that
client id connects again; nothing is given to the survivors instead. So the guarantee is: the
survivors keep writing their share at once, nothing is lost, and the dead member's share is
written when it comes back (or anything else connects with its client id).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import procs
from devstack.servers import free_port
from pantau.wire import Field, Group, Kind, SampleSet, encode_sample_set, metrics_topic

SITES = [f"so-{i}" for i in range(1, 5)]
DEVICES = [f"d{i}" for i in range(1, 6)]
GROUP = "noc"
POINTS_PER_MESSAGE = 2  # pantau_poll + one group
TS0 = int(time.time() * 1000) - 3_600_000


def payload(site: str, device: str, seq: int) -> bytes:
    return encode_sample_set(
        SampleSet(
            site=site,
            device=device,
            seq=seq,
            ts_ms=TS0 + seq * 1000,
            duration_ms=5,
            up=True,
            reason="",
            groups=[
                Group(
                    "modem",
                    {"port": "1"},
                    [
                        Field("snr_db", Kind.GAUGE, 10.0 + seq),
                        Field("rx_octets", Kind.COUNTER, seq),
                    ],
                )
            ],
        )
    )


def messages(seqs: range) -> list[tuple[str, bytes]]:
    """Poll rounds: every device of every site, for each sequence number."""
    return [(metrics_topic(s, d), payload(s, d, n)) for n in seqs for s in SITES for d in DEVICES]


class Publisher:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="scale-out-publisher")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, batch: list[tuple[str, bytes]], pause: float = 0.0) -> None:
        infos = []
        for topic, body in batch:
            infos.append(self.client.publish(topic, body, qos=1))
            if pause:
                time.sleep(pause)
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Member:
    """One collector of the shared-subscription group, with its own client id and HTTP port."""

    def __init__(self, tmp: Path, n: int, broker_port: int, influx_url: str) -> None:
        self.name = f"collector-{n}"
        self.http = free_port()
        cfg = procs.collector_config(
            tmp / f"{self.name}.yaml",
            broker_port=broker_port,
            influx_url=influx_url,
            http_port=self.http,
            mqtt={"client_id": self.name, "shared_group": GROUP},
        )
        self.proc = procs.collector(cfg, tmp / f"{self.name}.log")

    def start(self) -> Member:
        self.proc.start()
        return self

    def ready(self) -> bool:
        try:
            return procs.http_get(f"http://127.0.0.1:{self.http}/readyz", 1)[0] == 200
        except OSError:
            return False

    def counts(self) -> dict[str, float]:
        """received (metrics messages), points written, pending points, and per-device
        distinct sample sets written and duplicates, from this member's /metrics."""
        out: dict[str, float] = {"received": 0, "points": 0, "pending": 0, "duplicates": 0}
        for (name, labels), value in procs.scrape(self.http).items():
            lab = dict(labels)
            if name == "pantau_collector_messages_received_total" and lab["type"] == "metrics":
                out["received"] += value
            elif name == "pantau_collector_points_written_total":
                out["points"] += value
            elif name == "pantau_collector_pending_points":
                out["pending"] += value
            elif name == "pantau_samples_duplicate_total":
                out["duplicates"] += value
            elif name == "pantau_samples_received_total":
                key = f"{lab['site']}/{lab['device']}"
                out[key] = out.get(key, 0) + value
        return out


def total(counts: list[dict[str, float]], key: str) -> float:
    return sum(c.get(key, 0) for c in counts)


def stored_seqs(victoria) -> dict[str, list[int]]:
    """site/device → every pantau_poll_seq value VictoriaMetrics holds, sorted."""
    out: dict[str, list[int]] = {}
    for row in victoria.export('pantau_poll_seq{site=~"so-.*"}'):
        key = f"{row['metric']['site']}/{row['metric']['device']}"
        out[key] = sorted(int(v) for v in row["values"])
    return out


def settled(members: list[Member], quiet: float = 2.0, timeout: float = 60) -> list[dict]:
    """Counts of the running members once nothing moves for `quiet` seconds (all written)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = [m.counts() for m in members]
        snapshot = [(c["received"], c["points"], c["pending"]) for c in now]
        if snapshot != last:
            last, since = snapshot, time.monotonic()
        elif time.monotonic() - since >= quiet and total(now, "pending") == 0:
            return now
        time.sleep(0.2)
    raise TimeoutError(f"collectors never settled: {last}")


@pytest.fixture
def group(tmp_path, mosquitto, victoria):
    members = [Member(tmp_path, n, mosquitto.port, victoria.url) for n in (1, 2, 3)]
    for m in members:
        m.start()
    for m in members:
        procs.wait_until(m.ready, 30, f"{m.name} ready (subscribed)")
    pub = Publisher(mosquitto.port)
    yield members, pub
    pub.close()
    for m in members:
        m.proc.stop()


def test_each_message_written_once_and_a_killed_member_loses_nothing(group, victoria):
    members, pub = group

    # 1. Sharing: every message is handled by exactly one member, and all of them work.
    first = messages(range(1, 11))
    pub.send(first)
    procs.wait_until(
        lambda: total([m.counts() for m in members], "points") == len(first) * POINTS_PER_MESSAGE,
        60,
        "every point written",
    )
    counts = settled(members)
    print("phase 1 received per member:", [c["received"] for c in counts])
    assert total(counts, "received") == len(first), "a message was handled twice, or lost"
    assert all(c["received"] > 0 for c in counts), "a member got no share of the load"
    assert total(counts, "duplicates") == 0
    for s in SITES:
        for d in DEVICES:
            assert total(counts, f"{s}/{d}") == 10, f"{s}/{d}: not every sample set once"
    assert all(seqs == list(range(1, 11)) for seqs in stored_seqs(victoria).values())
    assert len(stored_seqs(victoria)) == len(SITES) * len(DEVICES)

    # 2. A member dies (SIGKILL) with nothing in flight; the others carry on at once.
    dead, survivors = members[2], members[:2]
    before = [c["received"] for c in counts[:2]]
    dead.proc.kill()
    second = messages(range(11, 21))
    pub.send(second)
    after = settled(survivors)
    handled = sum(c["received"] for c in after) - sum(before)
    held = len(second) - handled
    print(f"phase 2: survivors handled {handled} of {len(second)}; held for the dead member {held}")
    assert handled > 0, "the survivors stopped writing"
    stored = stored_seqs(victoria)
    present = sum(1 for seqs in stored.values() for n in seqs if n > 10)
    assert present == handled  # what the survivors handled is written, nothing more
    # Mosquitto 2.0 keeps handing the dead member its round-robin share and queues it in its
    # persistent session instead of giving it to the survivors (docs/scaling.md).
    assert held > 0, "Mosquitto redistributed the dead member's share: update docs/scaling.md"

    # ... and when the member comes back (same client id), its session delivers the rest.
    dead.start()
    procs.wait_until(dead.ready, 30, "the killed member ready again")
    counts = settled(members)
    assert counts[2]["received"] == held, "the returning member did not get exactly its share"
    assert sum(c["received"] for c in counts[:2]) - sum(before) == handled
    assert all(seqs == list(range(1, 21)) for seqs in stored_seqs(victoria).values())

    # 3. A member killed mid-stream: its unacknowledged messages wait in its session, the
    # others keep writing, and after it returns every sequence number is there.
    victim = members[0]
    base = [m.counts()["received"] for m in members]
    third = messages(range(21, 41))
    sender = threading.Thread(target=pub.send, args=(third, 0.005))
    sender.start()
    procs.wait_until(
        lambda: victim.counts()["received"] > base[0] + 20, 30, "the victim to be handling messages"
    )
    victim.proc.kill()
    kill_time_others = [m.counts()["received"] for m in members[1:]]
    sender.join()
    others = settled(members[1:])
    assert any(c["received"] > k for c, k in zip(others, kill_time_others, strict=True)), (
        "the survivors stopped after the kill"
    )
    victim.start()
    procs.wait_until(victim.ready, 30, "the victim ready again")
    procs.wait_until(
        lambda: all(seqs == list(range(1, 41)) for seqs in stored_seqs(victoria).values()),
        60,
        "every sequence number in VictoriaMetrics",
    )
    stored = stored_seqs(victoria)
    assert len(stored) == len(SITES) * len(DEVICES)
    assert all(seqs == list(range(1, 41)) for seqs in stored.values())


class _Sink:
    def write(self, lines: list[str]) -> None:
        pass


def _pipeline(settle_holes: bool):

    from collector.exposition import SelfMetrics
    from collector.pipeline import Pipeline, RejectedStore
    from collector.state import State

    state = State(900)
    pipe = Pipeline(
        sink=_Sink(),
        state=state,
        metrics=SelfMetrics(),
        ack=lambda msg: None,
        rejected=RejectedStore(None, 0),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=1.0,
        settle_holes=settle_holes,
    )
    return pipe, state


@pytest.mark.parametrize("settle_holes", [True, False])
def test_a_group_member_does_not_count_its_siblings_share_as_lost(settle_holes):
    """In a shared group a member sees every other sample set of a device (round-robin); the
    agent's heartbeat ("nothing older is waiting") would make the holes look lost. A member
    built with settle_holes=False (service.py: when mqtt.shared_group is set) counts only gap
    records as losses."""
    from collector.intake import Inbound
    from collector.pipeline import Batch
    from pantau.wire import Status, encode_status, status_topic

    pipe, state = _pipeline(settle_holes)
    site, device = SITES[0], DEVICES[0]
    for seq in (1, 3, 5):  # 2 and 4 went to a sibling
        pipe.handle(Inbound(metrics_topic(site, device), payload(site, device, seq), seq, 1, 1))
    heartbeat = Status(v=1, site=site, online=True, ts_ms=TS0 + 6000, pending_from={})
    pipe.handle(Inbound(status_topic(site), encode_status(heartbeat), 9, 1, 1))
    batch, pipe._batch = pipe._batch, Batch()
    assert pipe.flush(batch, threading.Event())
    tracker = state.snapshot(now=time.time())[site].sequences[device]
    assert tracker.received == 3
    assert tracker.lost == (2 if settle_holes else 0)
