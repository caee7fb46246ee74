"""The SnmpClient: owns the engines and the socket, and hands out a session per device.

v1/v2c sessions take the fast path (agent.snmp.fast); pysnmp (agent.snmp.pysnmp_session, the
only module that imports it) serves SNMPv3, sessions with the fast path off, and the requests
the fast path cannot read. It is imported, and its engines made, on first need: pysnmp and
pyasn1 cost ~30 MB of RSS, which an agent whose devices all speak v1/v2c never pays. One SnmpEngine serves
the whole process: engines are costly and bound to their event loop.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from agent.snmp.fast import FastSession, FastTransport
from agent.snmp.session import Session
from agent.snmp.values import Credentials, SnmpError

if TYPE_CHECKING:
    from types import ModuleType

    from agent.snmp.pysnmp_session import SnmpSession

PYSNMP_MODULE = "agent.snmp.pysnmp_session"


def _pysnmp() -> ModuleType:
    """agent.snmp.pysnmp_session, imported on first use (blocking: SnmpClient imports it in a
    thread before it makes its first engine)."""
    return importlib.import_module(PYSNMP_MODULE)


def takes_fast_path(creds: Credentials, fast: bool = True) -> bool:
    """Whether SnmpClient.session() gives these credentials a fast session (agent.snmp.fast)."""
    return fast and creds.version in ("1", "2c") and creds.community.isascii()


async def resolve(host: str, port: int) -> tuple[str, int]:
    """The IPv4 address of `host`, as pysnmp's UdpTransportTarget resolves it (the first of
    getaddrinfo's answers). SnmpError("resolve") if there is none."""
    import socket

    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP
        )
        address = infos[0][4]
        return str(address[0]), int(address[1])
    except Exception as exc:  # gaierror, and UnicodeError for names IDNA refuses
        raise SnmpError("resolve", f"cannot resolve {host}: {exc}") from None


class SnmpClient:
    """Owns the SnmpEngines and the fast path's socket. Use `async with SnmpClient() as c`.

    Nothing of pysnmp is loaded or made until a session needs it (a v3 session, one with the
    fast path off, or a fast session's first fallback). One engine serves every device, except
    that pysnmp keys its USM user table by user name until it has discovered the device's
    engine: v3 devices that share a user name but not its keys would overwrite each other's
    keys, so each such key set gets an engine of its own.
    """

    def __init__(self) -> None:
        self._open = False
        self._engines: list[tuple[Any, dict[str, tuple[str | None, ...]]]] | None = None
        self._engines_lock = asyncio.Lock()
        self._fast: FastTransport | None = None  # opened on first use

    async def __aenter__(self) -> SnmpClient:
        self._open = True
        self._engines_lock = asyncio.Lock()  # of this loop
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open = False
        for engine, _ in self._engines or ():
            engine.close_dispatcher()
        self._engines = None
        if self._fast is not None:
            self._fast.close()
            self._fast = None

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("SnmpClient used outside `async with`")

    async def _first_engines(self) -> list[tuple[Any, dict[str, tuple[str | None, ...]]]]:
        self._check_open()
        async with self._engines_lock:
            if self._engines is None:
                # Importing pysnmp and building its MIB view (which pysnmp does on the first
                # request, and with pysmi installed a MIB compiler too: ~0.5 s of CPU here,
                # seconds on a gateway) happen off the loop, so they do not stall it; preload()
                # at start-up keeps them out of the first poll's duration too.
                p = await asyncio.to_thread(importlib.import_module, PYSNMP_MODULE)
                engine = p.new_engine()
                try:
                    await asyncio.to_thread(p.warm_up, engine)
                    self._check_open()  # closed meanwhile
                except BaseException:
                    engine.close_dispatcher()
                    raise
                self._engines = [(engine, {})]
            return self._engines

    async def preload(self) -> None:
        """Import pysnmp and make the first engine now (off the loop), as a config with devices
        that need pysnmp does at start-up: the first poll's duration then does not hold it."""
        await self._first_engines()

    async def _engine_for(self, creds: Credentials) -> Any:
        engines = self._engines if self._engines is not None else await self._first_engines()
        if creds.version != "3":
            return engines[0][0]
        keys = (creds.auth_protocol, creds.auth_key, creds.priv_protocol, creds.priv_key)
        for engine, users in engines:
            if users.setdefault(creds.user, keys) == keys:
                return engine
        engine = _pysnmp().new_engine()
        engines.append((engine, {creds.user: keys}))
        return engine

    async def session(
        self,
        host: str,
        port: int,
        creds: Credentials,
        *,
        timeout: float,
        retries: int,
        fast: bool = True,
    ) -> Session:
        """A session to one device. v1/v2c sessions take the fast path (agent.snmp.fast)
        unless `fast` is false; it falls back to pysnmp for any response it cannot read."""
        self._check_open()
        if takes_fast_path(creds, fast):
            address = await resolve(host, port)
            if self._fast is None:
                transport = await FastTransport.open()
                if self._fast is None and self._open:
                    self._fast = transport
                else:  # another session opened one meanwhile, or the client closed
                    transport.close()
                    self._check_open()
            assert self._fast is not None

            async def fallback() -> Session:
                return await self.pysnmp_session(
                    host, port, creds, timeout=timeout, retries=retries
                )

            return FastSession(
                address, creds, self._fast, fallback, timeout=timeout, retries=retries
            )
        return await self.pysnmp_session(host, port, creds, timeout=timeout, retries=retries)

    async def pysnmp_session(
        self, host: str, port: int, creds: Credentials, *, timeout: float, retries: int
    ) -> SnmpSession:
        """A session to one device through pysnmp (importing it and making the engine first,
        if this is the first)."""
        engine = await self._engine_for(creds)
        try:
            target = await _pysnmp().UdpTransportTarget.create(
                (host, port), timeout=timeout, retries=retries
            )
        except Exception as exc:  # pysnmp raises a bare PySnmpError for unresolvable hosts
            raise SnmpError("resolve", f"cannot resolve {host}: {exc}") from None
        return _pysnmp().SnmpSession(engine, target, creds)  # type: ignore[no-any-return]
