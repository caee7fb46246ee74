"""A test host in a network namespace made by the test itself: a real address on this machine
that drops every ICMP echo, for "a target that never answers" without sending anything beyond
the sandbox."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def silent_host() -> Iterator[str]:
    """Yield the address of a namespace host that ignores pings; skip if netns is unavailable."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs iproute2 and root to make a network namespace")
    tag = f"{os.getpid() % 10000}"
    ns, host_if, ns_if = f"pantau-t{tag}", f"pt{tag}a", f"pt{tag}b"
    octet = os.getpid() % 250 + 1
    host_addr, ns_addr = f"10.213.{octet}.1", f"10.213.{octet}.2"
    try:
        _ip("netns", "add", ns)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_addr}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_addr}/30", "dev", ns_if)
        _ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        _ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        yield ns_addr
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            _ip("link", "del", host_if)
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            _ip("netns", "del", ns)
