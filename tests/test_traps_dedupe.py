"""An inform that comes again is one event (agent.traps.receiver: InformMemory). net-snmp's
snmpinform sends through a UDP relay that loses the receiver's first acknowledgement, so the
sender retries for real (v2c: the same datagram; SNMPv3: a new msgID, the same request-id); a
datagram the relay recorded is sent again as a replay. The receiver is the agent's own, on
loopback, with a real outbox."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_agent_config
from agent.outbox import Outbox
from agent.snmp import ber
from agent.traps.decode import decode_trap
from agent.traps.receiver import INFORM_WINDOW_S, InformMemory, TrapReceiver, inform_key
from pantau.wire import decode_event
from tests.test_traps import LINK_DOWN, v2_trap
from tests.test_traps_v3 import AUTH_KEY, PRIV_KEY, _config, _user

pytestmark = pytest.mark.skipif(shutil.which("snmpinform") is None, reason="net-snmp tools")

COLD_START = "1.3.6.1.6.3.1.1.5.1"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    from tests.test_traps_v3 import RADIO_AUTH, RADIO_PRIV

    monkeypatch.setenv("T_NOC_PRIV", PRIV_KEY)
    monkeypatch.setenv("T_RADIO_AUTH", RADIO_AUTH)
    monkeypatch.setenv("T_RADIO_PRIV", RADIO_PRIV)
    (tmp_path / "net-snmp").mkdir()
    return tmp_path


class LossyLink(asyncio.DatagramProtocol):
    """A UDP relay in front of the receiver (from 127.0.0.1, device r1's address) that loses
    the receiver's datagrams `lose` says to, and records what the sender sent."""

    def __init__(self, receiver: tuple[str, int], lose: Callable[[bytes], bool]) -> None:
        self.receiver = receiver
        self.lose = lose
        self.sender: tuple[str, int] | None = None
        self.sent: list[bytes] = []  # by the sender, in order
        self.lost = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        if (addr[0], addr[1]) == self.receiver:
            if self.lose(data):
                self.lost += 1
            elif self.sender is not None:
                self.transport.sendto(data, self.sender)
            return
        self.sender = (str(addr[0]), int(addr[1]))
        self.sent.append(data)
        self.transport.sendto(data, self.receiver)


def lose_first_ack(receiver: TrapReceiver) -> Callable[[bytes], bool]:
    """Loses the receiver's first acknowledgement of an inform (its Reports pass)."""
    lost: list[bool] = []

    def lose(data: bytes) -> bool:
        if receiver.counters["informs_acknowledged"] >= 1 and not lost:
            lost.append(True)
            return True
        return False

    return lose


async def snmpinform(port: int, *args: str, oid: str = COLD_START) -> tuple[int, str]:
    """net-snmp's snmpinform, numeric OIDs, 1 s timeout and 3 retries."""
    proc = await asyncio.create_subprocess_exec(
        "snmpinform", "-M", "/dev/null", "-m", "", "-t", "1", "-r", "3", *args,
        f"127.0.0.1:{port}", "", oid, "1.3.6.1.2.1.2.2.1.1.4", "i", "4",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SNMP_PERSISTENT_DIR": os.environ["T_SNMP_DIR"], "HOME": "/nonexistent"},
    )  # fmt: skip
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode()


async def send_again(port: int, data: bytes, source: str = "127.0.0.1") -> bytes | None:
    """Send a recorded datagram to the receiver as it is; its answer, None if there is none."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    with sock:
        await loop.sock_sendto(sock, data, ("127.0.0.1", port))
        try:
            return await asyncio.wait_for(loop.sock_recv(sock, 65535), 2.0)
        except TimeoutError:
            return None


Scenario = Callable[[TrapReceiver, LossyLink], Awaitable[Any]]


def run(tmp_path: Path, scenario: Scenario, lose: bool = True) -> dict[str, Any]:
    """The receiver of tests.test_traps_v3's configuration behind a LossyLink (losing its
    first acknowledgement unless `lose` is False) while `scenario` sends; its counters and
    the stored events."""
    cfg = _config(tmp_path)
    assert cfg.traps is not None
    traps, devices = cfg.traps, cfg.devices
    out: dict[str, Any] = {}
    os.environ["T_SNMP_DIR"] = str(tmp_path / "net-snmp")

    async def main() -> None:
        with Outbox(tmp_path / "o.sqlite", max_bytes=1 << 20, max_age_s=3600) as box:
            receiver = TrapReceiver(traps, "s1", devices, box)
            stop = asyncio.Event()
            task = asyncio.create_task(receiver.run(stop))
            while receiver.bound is None:
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            link = LossyLink(
                ("127.0.0.1", receiver.bound[1]),
                lose_first_ack(receiver) if lose else lambda data: False,
            )
            transport, _ = await loop.create_datagram_endpoint(
                lambda: link, local_addr=("127.0.0.1", 0)
            )
            try:
                out["port"] = transport.get_extra_info("sockname")[1]
                out["result"] = await scenario(receiver, link)
                await asyncio.sleep(0.2)
            finally:
                transport.close()
                stop.set()
                await task
            out["lost"] = link.lost
            out["counters"] = dict(receiver.counters)
            events = []
            while (item := box.take()) is not None:
                events.append(decode_event(item.payload))
                box.ack(item)
            out["events"] = events

    asyncio.run(main())
    return out


def _port(receiver: TrapReceiver, link: LossyLink) -> int:
    assert link.transport is not None
    return int(link.transport.get_extra_info("sockname")[1])


V2C = ("-v", "2c", "-c", "public")


def test_a_v2c_inform_whose_acknowledgement_was_lost_is_one_event(env: Path) -> None:
    async def scenario(receiver: TrapReceiver, link: LossyLink) -> Any:
        return await snmpinform(_port(receiver, link), *V2C)

    out = run(env, scenario)
    assert out["result"][0] == 0, out["result"]  # the retry was acknowledged: it stopped
    assert out["lost"] == 1
    assert [(e.device, e.trap, e.inform) for e in out["events"]] == [("r1", "coldStart", True)]
    c = out["counters"]
    assert (c["stored"], c["duplicate_inform"], c["informs_acknowledged"]) == (1, 1, 2)


def test_without_a_lost_acknowledgement_nothing_is_a_duplicate(env: Path) -> None:
    async def scenario(receiver: TrapReceiver, link: LossyLink) -> Any:
        port = _port(receiver, link)
        return [await snmpinform(port, *V2C), await snmpinform(port, *V2C)]

    out = run(env, scenario, lose=False)
    assert [rc for rc, _ in out["result"]] == [0, 0]
    assert len(out["events"]) == 2  # two snmpinform runs: two informs (their own request-ids)
    assert out["counters"].get("duplicate_inform", 0) == 0


def test_a_v3_inform_whose_acknowledgement_was_lost_is_one_event(env: Path) -> None:
    """SNMPv3 retries carry a new msgID (net-snmp) and are encrypted anew: the request-id
    inside, with the sender's context engine ID and user, says it is the same inform."""

    async def scenario(receiver: TrapReceiver, link: LossyLink) -> Any:
        return await snmpinform(_port(receiver, link), "-v", "3", *_user("noc", AUTH_KEY, PRIV_KEY))

    out = run(env, scenario)
    assert out["result"][0] == 0, out["result"]
    assert out["lost"] == 1
    assert [(e.device, e.trap) for e in out["events"]] == [("r1", "coldStart")]
    c = out["counters"]
    assert (c["stored"], c["duplicate_inform"], c.get("auth_failure", 0)) == (1, 1, 0)


def test_a_recorded_v2c_inform_sent_again_is_acknowledged_not_stored(env: Path) -> None:
    """Within the window, a replay is answered (a sender that lost every answer stops) and
    counted; after it, the same datagram is an inform of its own again."""

    async def scenario(receiver: TrapReceiver, link: LossyLink) -> Any:
        port = _port(receiver, link)
        rc = await snmpinform(port, *V2C)
        recorded = link.sent[0]
        answer = await send_again(receiver.bound[1] if receiver.bound else 0, recorded)
        receiver.informs.window_s = 0.3  # the window passes
        await asyncio.sleep(0.4)
        later = await send_again(receiver.bound[1] if receiver.bound else 0, recorded)
        return rc, recorded, answer, later

    out = run(env, scenario, lose=False)
    rc, recorded, answer, later = out["result"]
    assert rc[0] == 0
    assert answer is not None and later is not None
    response = ber.decode_message(answer)
    assert response.pdu_tag == ber.RESPONSE
    assert response.request_id == decode_trap(recorded).request_id
    c = out["counters"]
    assert (c["stored"], c["duplicate_inform"], c["informs_acknowledged"]) == (2, 1, 3)
    assert len(out["events"]) == 2


def test_a_recorded_v3_inform_sent_again_within_the_time_window_is_not_stored(env: Path) -> None:
    """USM accepts a recorded inform again within its 150 s time window: the receiver does not
    make it a second event, and answers it."""

    async def scenario(receiver: TrapReceiver, link: LossyLink) -> Any:
        port = _port(receiver, link)
        rc = await snmpinform(port, "-v", "3", *_user("noc", AUTH_KEY, PRIV_KEY))
        inform = link.sent[-1]  # after the engine ID discovery
        answer = await send_again(receiver.bound[1] if receiver.bound else 0, inform)
        return rc, answer

    out = run(env, scenario, lose=False)
    rc, answer = out["result"]
    assert rc[0] == 0 and answer is not None
    c = out["counters"]
    assert (c["stored"], c["duplicate_inform"], c["informs_acknowledged"]) == (1, 1, 2)
    assert len(out["events"]) == 1


def test_other_informs_with_the_same_request_id_are_events(env: Path) -> None:
    """A restarted device numbering from 1 again (other content), another device, another
    community: none is a retransmission."""
    path = env / "agent.yaml"
    path.write_text(
        f"site: s1\noutbox: {{path: {env / 'o.sqlite'}}}\n"
        "devices:\n  - {name: r1, host: 127.0.0.1}\n  - {name: r2, host: 127.0.0.2}\n"
        "traps: {listen: '127.0.0.1:0', communities: [public, other]}\n"
    )
    cfg = load_agent_config(path)
    assert cfg.traps is not None
    first = v2_trap(LINK_DOWN, 3, inform=True, request_id=1)
    restarted = v2_trap(LINK_DOWN, 4, inform=True, request_id=1)
    # the same message but its community (one octet shorter: the lengths before it too)
    other_community = b"\x30" + bytes((first[1] - 1,)) + first[2:5] + b"\x04\x05other" + first[13:]
    sends = [
        (first, "127.0.0.1"),
        (first, "127.0.0.1"),  # the one duplicate
        (restarted, "127.0.0.1"),
        (first, "127.0.0.2"),
        (other_community, "127.0.0.1"),
    ]

    async def main() -> dict[str, int]:
        with Outbox(env / "o.sqlite", max_bytes=1 << 20, max_age_s=3600) as box:
            receiver = TrapReceiver(cfg.traps, "s1", cfg.devices, box)  # type: ignore[arg-type]
            stop = asyncio.Event()
            task = asyncio.create_task(receiver.run(stop))
            while receiver.bound is None:
                await asyncio.sleep(0.01)
            answers = [await send_again(receiver.bound[1], d, source=s) for d, s in sends]
            stop.set()
            await task
            assert all(a is not None for a in answers)  # each one acknowledged
            return dict(receiver.counters)

    c = asyncio.run(main())
    assert (c["stored"], c["duplicate_inform"], c["informs_acknowledged"]) == (4, 1, 5)


def test_an_inform_a_full_queue_dropped_is_stored_when_it_comes_again(env: Path) -> None:
    """Remembered only once queued: otherwise its retry would be acknowledged, never stored."""
    path = env / "agent.yaml"
    path.write_text(
        f"site: s1\noutbox: {{path: {env / 'o.sqlite'}}}\n"
        "devices:\n  - {name: r1, host: 127.0.0.1}\n"
        "traps: {listen: '127.0.0.1:0', queue: 1}\n"
    )
    cfg = load_agent_config(path)
    assert cfg.traps is not None
    a = v2_trap(LINK_DOWN, 3, inform=True, request_id=10)
    b = v2_trap(LINK_DOWN, 5, inform=True, request_id=11)

    async def main() -> None:
        receiver = TrapReceiver(cfg.traps, "s1", cfg.devices, None)  # type: ignore[arg-type]
        await receiver._addresses()
        from agent.traps.catalog import Catalog
        from agent.traps.receiver import TokenBucket, _Sender

        receiver.senders["127.0.0.1"] = _Sender("r1", Catalog(()), TokenBucket(100, 100))
        receiver.datagram_received(a, ("127.0.0.1", 5000))
        receiver.datagram_received(b, ("127.0.0.1", 5000))  # the queue is full
        assert receiver.counters["queue_full"] == 1
        assert receiver._queue.get_nowait()[-1] is False  # a: the first of its kind
        receiver.datagram_received(b, ("127.0.0.1", 5000))  # b's retry
        assert receiver._queue.get_nowait()[-1] is False  # stored, not only acknowledged
        receiver.datagram_received(b, ("127.0.0.1", 5000))
        assert receiver._queue.get_nowait()[-1] is True  # now b is known

    asyncio.run(main())


def test_inform_memory_forgets_after_the_window_and_keeps_a_bound() -> None:
    trap = decode_trap(v2_trap(LINK_DOWN, 3, inform=True, request_id=5))
    key = inform_key("r1", b"c:public", trap)
    memory = InformMemory()
    assert memory.window_s == INFORM_WINDOW_S == 150.0
    assert memory.first(key, 1000.0)
    assert not memory.first(key, 1000.0 + 149.0)
    assert memory.first(key, 1000.0 + 150.0)  # remembered from its first sight, not renewed
    small = InformMemory(max_keys=3)
    keys = [inform_key(f"d{i}", b"c:public", trap) for i in range(5)]
    for k in keys:
        assert small.first(k, 0.0)
    assert len(small) == 3
    assert small.first(keys[0], 1.0)  # the oldest went first
    assert not small.first(keys[4], 1.0)
