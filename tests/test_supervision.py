"""Supervision of the agent's tasks (agent/service.py): a poll that raises is data and its loop
goes on; a publisher that dies stops the agent with an error; a publisher that makes no progress
while it has something to send and a broker is overdue for the systemd watchdog.

The agent runs for real (Agent.run with its TaskGroup, DevicePoller, Converter, the SQLite
outbox). What is faked, and why:
- the SNMP session (SnmpClient.session): the failure under test is a converter that raises,
  which no recording can make happen; a fake session also makes each poll take microseconds, so
  several polls fit in a second;
- the publisher's run loop, where the test is about what the agent does when it dies or stalls
  (no broker is needed to make a task raise), and the device loops in the liveness test, which
  would otherwise fill the outbox that the test needs empty;
- the encoder, once, in the test of a sample set that cannot be encoded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import pytest

from agent import limits, service
from agent.config import load_agent_config
from agent.outbox import Outbox
from agent.profiles.plan import Converter
from agent.publisher import Publisher
from agent.service import Agent, open_outbox
from agent.snmp import END_OF_MIB, NO_SUCH_OBJECT, SnmpClient, oid_tuple
from devstack.servers import free_port
from pantau.systemd import Liveness
from pantau.wire import SampleSet, decode_sample_set

OID = "1.3.6.1.4.1.99999.1.0"


class FakeSession:
    version = "2c"

    def __init__(self, records: dict[str, object]) -> None:
        self.records = {oid_tuple(o): v for o, v in records.items()}

    async def get(self, oids):
        return {o: self.records.get(o, NO_SUCH_OBJECT) for o in oids}

    async def next_rows(self, oids, max_repetitions, bulk):
        return [[(o, END_OF_MIB) for o in oids]]


def config(tmp_path: Path, *, interval: float = 0.1, stall_timeout: float | None = None):
    (tmp_path / "p.yaml").write_text(
        f"profiles:\n  - name: p\n    measurement: m\n    scalars:\n      - {{name: v, oid: {OID}}}\n"
    )
    broker = f"broker: {{port: {free_port()}, reconnect_min: 0.1, reconnect_max: 0.2"
    broker += f", stall_timeout: {stall_timeout}}}\n" if stall_timeout else "}\n"
    (tmp_path / "a.yaml").write_text(
        f"site: s\n{broker}profile_files: [p.yaml]\n"
        f"outbox: {{path: {tmp_path / 'outbox.sqlite'}}}\n"
        "defaults: {jitter: 0, ping: false}\n"
        f"devices:\n  - name: d\n    host: 127.0.0.1\n    interval: {interval}\n"
        "    profiles: [p]\n"
    )
    return load_agent_config(tmp_path / "a.yaml")


@pytest.fixture
def fake_snmp(monkeypatch: pytest.MonkeyPatch) -> None:
    session = FakeSession({OID: 7})

    async def fake_session(self: SnmpClient, *a: object, **kw: object) -> FakeSession:
        return session

    monkeypatch.setattr(SnmpClient, "session", fake_session)


def record_puts(outbox: Outbox) -> list[SampleSet]:
    """Every sample set the agent keeps, decoded, in order."""
    kept: list[SampleSet] = []
    put = outbox.put

    def recording(topic: str, payload: bytes, **kw: object) -> None:
        kept.append(decode_sample_set(payload, site="s", device=str(kw["device"])))
        put(topic, payload, **kw)  # type: ignore[arg-type]

    outbox.put = recording  # type: ignore[method-assign]
    return kept


def run_until(agent: Agent, done: object, timeout: float = 5.0) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end and not task.done():  # type: ignore[operator]
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_a_poll_that_raises_is_published_as_internal_error_and_the_loop_goes_on(
    tmp_path, fake_snmp, monkeypatch, caplog
):
    calls = 0
    original = Converter.value

    class Boom(Exception):
        pass

    def value(self, spec, raw, scale=None):
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise Boom("a converter bug")
        return original(self, spec, raw, scale)

    monkeypatch.setattr(Converter, "value", value)
    cfg = config(tmp_path)
    with open_outbox(cfg) as outbox:
        kept = record_puts(outbox)
        agent = Agent(cfg, outbox)
        with caplog.at_level(logging.INFO):
            run_until(agent, lambda: len(kept) >= 4)
    assert len(kept) >= 4, kept
    first, second, third = kept[:3]
    assert (first.up, first.reason, first.groups) == (False, "internal_error", [])
    assert (second.up, second.reason) == (False, "internal_error")
    assert first.errors == {"internal_error": 1} and second.errors == {"internal_error": 2}
    # the next polls of the device ran, and work again
    assert third.up and [f.value for g in third.groups for f in g.fields] == [7]
    assert [s.seq for s in kept] == sorted({s.seq for s in kept})
    # one traceback for the device and the exception type, not one per interval
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
    (record,) = tracebacks
    assert record.levelno == logging.ERROR and record.exc_info[0] is Boom
    assert "device=d reason=internal_error error=Boom" in record.getMessage()


@pytest.mark.parametrize("how", ["raises", "returns"])
def test_a_publisher_that_dies_stops_the_agent_with_an_error(
    tmp_path, fake_snmp, monkeypatch, caplog, how
):
    async def run(self: Publisher, stop: asyncio.Event) -> None:
        await asyncio.sleep(0.3)
        if how == "raises":
            raise RuntimeError("publisher bug")

    monkeypatch.setattr(Publisher, "run", run)
    cfg = config(tmp_path)
    stop = asyncio.Event()
    with open_outbox(cfg) as outbox:
        kept = record_puts(outbox)
        agent = Agent(cfg, outbox)
        t0 = time.monotonic()
        with pytest.raises(Exception) as failed, caplog.at_level(logging.ERROR):
            asyncio.run(asyncio.wait_for(agent.run(stop), 10))
    assert not isinstance(failed.value, TimeoutError), "Agent.run hung"
    assert isinstance(failed.value, service.AgentFailed), failed.value
    assert time.monotonic() - t0 < 5
    assert stop.is_set()
    assert kept, "the device loops ran until the publisher died"
    logged = [r for r in caplog.records if "task=publisher" in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def now_ms() -> int:
    return int(time.time() * 1000)


def stalling_publisher(monkeypatch: pytest.MonkeyPatch) -> None:
    """A publisher connected to a broker that never acknowledges anything."""

    async def run(self: Publisher, stop: asyncio.Event) -> None:
        self.connected.set()
        self.attempted.set()
        await stop.wait()

    async def idle_loop(self: Agent, poller: object, limit: object, stop: asyncio.Event) -> None:
        await stop.wait()  # no polls: the test decides what is in the outbox

    monkeypatch.setattr(Publisher, "run", run)
    monkeypatch.setattr(Agent, "_device_loop", idle_loop)


def watch(agent: Agent, seconds: float, during: object = None) -> list[list[str]]:
    """What the watchdog's `overdue` callable says, sampled while the agent runs."""
    seen: list[list[str]] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.05)
            seen.append(agent._overdue())
            if during is not None:
                during(seen)  # type: ignore[operator]
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    return seen


def test_a_publisher_that_sends_nothing_while_it_could_is_overdue(tmp_path, monkeypatch):
    stalling_publisher(monkeypatch)
    cfg = config(tmp_path, stall_timeout=0.3)
    with open_outbox(cfg) as outbox:
        outbox.put("pantau/s/d/metrics", b"x", device="d", seq=outbox.next_seq("d"), ts_ms=now_ms())
        agent = Agent(cfg, outbox)
        agent.liveness = Liveness(grace=0.1)
        seen = watch(agent, 1.5)
    assert seen[0] == []  # not before the bound
    assert seen[-1] == ["publisher"], seen
    assert agent.liveness.overdue() == []  # forgotten once stopped


def test_progress_or_an_empty_outbox_keeps_the_publisher_live(tmp_path, monkeypatch):
    stalling_publisher(monkeypatch)
    cfg = config(tmp_path, stall_timeout=0.3)
    with open_outbox(cfg) as outbox:
        agent = Agent(cfg, outbox)
        agent.liveness = Liveness(grace=0.1)
        assert all(s == [] for s in watch(agent, 1.2))  # nothing to send: nothing to promise

        outbox.put("pantau/s/d/metrics", b"x", device="d", seq=outbox.next_seq("d"), ts_ms=now_ms())

        def progress(seen: list[list[str]]) -> None:
            agent.publisher.sent += 1  # an acknowledgement every 50 ms

        assert all(s == [] for s in watch(agent, 1.2, progress))

        def disconnected(seen: list[list[str]]) -> None:
            agent.publisher.connected.clear()  # no broker: the outbox keeps the data

        assert all(s == [] for s in watch(agent, 1.2, disconnected))


class SilentBroker:
    """An MQTT 5 broker that takes connections and acknowledges the agent's retained status
    messages, but never a sample set: the publisher is connected and gets nowhere."""

    def __init__(self) -> None:
        self.unacked = 0  # QoS 1 publishes left without a PUBACK

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readexactly(1))[0]
                length, shift = 0, 0
                while True:
                    octet = (await reader.readexactly(1))[0]
                    length |= (octet & 0x7F) << shift
                    shift += 7
                    if not octet & 0x80:
                        break
                body = await reader.readexactly(length)
                kind = head >> 4
                if kind == 1:  # CONNECT → CONNACK, success, no properties
                    writer.write(b"\x20\x03\x00\x00\x00")
                elif kind == 3 and (head >> 1) & 3:  # PUBLISH, QoS 1
                    topic_end = 2 + int.from_bytes(body[:2], "big")
                    if head & 1:  # retained: the status message
                        writer.write(b"\x40\x02" + body[topic_end : topic_end + 2])
                    else:
                        self.unacked += 1
                elif kind == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_a_broker_that_never_acknowledges_makes_the_publisher_overdue(tmp_path, fake_snmp):
    """The real publisher against a broker that accepts it and acknowledges no sample set."""
    cfg = config(tmp_path, stall_timeout=0.5)
    broker = SilentBroker()
    seen: list[list[str]] = []
    connected: list[bool] = []

    async def main() -> None:
        port = await broker.start()
        nonlocal cfg
        cfg = dataclasses.replace(
            cfg,
            broker=dataclasses.replace(cfg.broker, port=port),
            outbox=dataclasses.replace(cfg.outbox, shutdown_timeout=0.5),
        )
        with open_outbox(cfg) as outbox:
            agent = Agent(cfg, outbox)
            agent.liveness = Liveness(grace=0.1)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                await asyncio.sleep(0.05)
                seen.append(agent._overdue())
                connected.append(agent.publisher.connected.is_set())
            stop.set()
            await asyncio.wait_for(task, 10)
        broker.server.close()

    asyncio.run(main())
    assert all(connected[5:]) and broker.unacked >= 1
    assert seen[0] == [] and seen[-1] == ["publisher"], seen


def test_a_sample_set_that_cannot_be_encoded_keeps_its_seq_as_internal_error(
    tmp_path, fake_snmp, monkeypatch, caplog
):
    calls = 0
    encode = limits.encode_sample_set  # the poll's payload is made in agent.limits

    def broken_once(sample_set: SampleSet) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OverflowError("can't serialize ints < -2**63 or > 2**64 - 1")
        return encode(sample_set)

    monkeypatch.setattr(limits, "encode_sample_set", broken_once)
    cfg = config(tmp_path)
    with open_outbox(cfg) as outbox:
        kept = record_puts(outbox)
        with caplog.at_level(logging.ERROR):
            run_until(Agent(cfg, outbox), lambda: len(kept) >= 2)
    first, second = kept[:2]
    assert (first.seq, first.up, first.reason, first.groups) == (1, False, "internal_error", [])
    assert (second.seq, second.up) == (2, True)  # no gap in the sequence, and the loop goes on
    assert len([r for r in caplog.records if r.exc_info]) == 1
