"""What SNMPv3 trap security costs the agent's event loop (agent/traps/usm.py, timeline.py):
the per-message work the receiver's shared v3 budget (V3_RATE) is sized for, and what a
sender engine registration and its removal (a forged trap's) cost as the USM table grows.

net-snmp's `snmptrap -v3` (authPriv SHA/AES) records datagrams on a socket; they are handed to
a UsmReceiver in-process (no socket): an accepted trap (each with its own engine time), a
replayed one (refused after authentication), a wrong-key one (refused by pysnmp). Then
registrations with master keys (what the receiver does: passphrases hashed once) against
pysnmp's passphrase path, and the removal of a registration, with 0, 1,000 and 2,000 rows.

Run: .venv/bin/python bench/usm_cost.py [--messages 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pysnmp.entity import config as _config  # noqa: E402
from pysnmp.proto import rfc1902  # noqa: E402

from agent.snmp.pysnmp_session import AUTH, PRIV  # noqa: E402
from agent.snmp.values import Credentials  # noqa: E402
from agent.traps.usm import UsmError, UsmReceiver  # noqa: E402

AUTH_KEY, PRIV_KEY = "bench-auth-key-1", "bench-priv-key-1"
ENGINE = "0x8000000001020304"
CREDS = Credentials("3", user="noc", auth_protocol="SHA", auth_key=AUTH_KEY,
                    priv_protocol="AES", priv_key=PRIV_KEY)  # fmt: skip


def record(snmp_dir: str, auth: str, clock: str) -> bytes:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    with sock:
        subprocess.run(
            ["snmptrap", "-M", "/dev/null", "-m", "", "-v", "3", "-u", "noc", "-l", "authPriv",
             "-a", "SHA", "-A", auth, "-x", "AES", "-X", PRIV_KEY, "-e", ENGINE, "-Z", clock,
             f"127.0.0.1:{sock.getsockname()[1]}", "", "1.3.6.1.6.3.1.1.5.3",
             "1.3.6.1.2.1.2.2.1.1.4", "i", "4"],
            check=True, capture_output=True,
            env={**os.environ, "SNMP_PERSISTENT_DIR": snmp_dir, "HOME": "/nonexistent"},
        )  # fmt: skip
        return sock.recv(65535)


def per_message(usm: UsmReceiver, datagrams: list[bytes]) -> tuple[float, int]:
    """Median ms per message, and how many were accepted."""
    times, accepted = [], 0
    for d in datagrams:
        t0 = time.perf_counter()
        try:
            usm.receive(d, ("127.0.0.1", 40000), "r1", {"noc": CREDS})
            accepted += 1
        except UsmError:
            pass
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), accepted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300)
    n = ap.parse_args().messages
    with tempfile.TemporaryDirectory() as snmp_dir:
        good = [record(snmp_dir, AUTH_KEY, f"5,{1000 + i}") for i in range(n)]
        wrong = [record(snmp_dir, "wrong-auth-key-9", "5,5000") for _ in range(20)]
    usm = UsmReceiver(b"\x80\x00\x4f\xb8\x04bench", lambda m, a: None)
    usm.registration_interval = 0.0
    usm.receive(good[0], ("127.0.0.1", 40000), "r1", {"noc": CREDS})  # registers the engine
    ms, ok = per_message(usm, good[1:])
    print(f"accepted authPriv trap: {ms:.2f} ms median ({ok} of {n - 1} accepted)")
    ms, ok = per_message(usm, good[1:])
    print(f"replayed authPriv trap: {ms:.2f} ms median ({ok} accepted)")
    ms, ok = per_message(usm, wrong)
    print(f"wrong-key trap (known engine): {ms:.2f} ms median ({ok} accepted)")

    def engine(i: int, tag: int) -> bytes:
        return bytes([0x80, 0, 0, 0, tag]) + i.to_bytes(4, "big")

    for rows in (0, 1000, 2000):
        while len(usm._creds) < rows:
            usm.add_user(CREDS, engine(len(usm._creds), 2))
        k = 20
        t0 = time.perf_counter()
        for i in range(k):
            usm.add_user(CREDS, engine(i, 3))
        add = (time.perf_counter() - t0) / k * 1000
        t0 = time.perf_counter()
        for i in range(k):
            usm._remove_user(CREDS, engine(i, 3))
        remove = (time.perf_counter() - t0) / k * 1000
        t0 = time.perf_counter()
        for i in range(5):
            _config.add_v3_user(
                usm.engine, "noc", authProtocol=AUTH["SHA"], authKey=AUTH_KEY,
                privProtocol=PRIV["AES"], privKey=PRIV_KEY,
                securityEngineId=rfc1902.OctetString(engine(i, 4)),
            )  # fmt: skip
        passphrase = (time.perf_counter() - t0) / 5 * 1000
        print(
            f"USM rows {rows:5d}: registration {add:.1f} ms (master keys), "
            f"{passphrase:.1f} ms (passphrases); removal {remove:.1f} ms"
        )
    usm.close()


if __name__ == "__main__":
    main()
