"""The SnmpClient: owns the engines and the socket, and hands out a session per device.

v1/v2c sessions take the fast path (agent.snmp.fast); pysnmp (agent.snmp.pysnmp_session, the
only module that imports it) serves SNMPv3, sessions with the fast path off, and the requests
the fast path cannot read. It is imported, and its engines made, on first need: pysnmp and
pyasn1 cost ~30 MB of RSS, which an agent whose devices all speak v1/v2c never pays. One SnmpEngine serves
the whole process: engines are costly and bound to their event loop.

pysnmp's socket is open to whatever reaches it, and pysnmp 7 raises (TypeError, mostly) on
about one random datagram in five, from a callback of its transport: asyncio would log each
with a full traceback (megabytes a minute under a flood). Once it has made an engine, the
SnmpClient installs an event loop exception handler (PysnmpErrors) that counts those exceptions
and logs them as one rate-limited line; any other exception goes to the handler that was there
before.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.snmp.fast import FastSession, FastTransport
from agent.snmp.session import Session
from agent.snmp.values import Credentials, SnmpError
from pantau.logs import RateLimitedLog

if TYPE_CHECKING:
    from types import ModuleType

    from agent.snmp.pysnmp_session import SnmpSession

PYSNMP_MODULE = "agent.snmp.pysnmp_session"

log = logging.getLogger("pantau.agent.snmp")

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def _package_dir(name: str) -> str | None:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    return os.path.dirname(path) + os.sep if path else None


def raised_by_pysnmp(exc: BaseException) -> bool:
    """Whether `exc` came out of a callback of pysnmp's (its transport's datagram handling):
    the first frame of its traceback outside asyncio is pysnmp's."""
    pysnmp_dir = _package_dir("pysnmp")
    asyncio_dir = _package_dir("asyncio")
    if pysnmp_dir is None:
        return False
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if asyncio_dir is None or not filename.startswith(asyncio_dir):
            return filename.startswith(pysnmp_dir)
        tb = tb.tb_next
    return False


class PysnmpErrors:
    """An event loop exception handler: exceptions raised in pysnmp's callbacks (a datagram
    its socket received and it choked on) are counted in `counts` by exception type and logged
    as one line per type every `period` seconds (`held_back=N` and `count=` say how many);
    anything else goes to the `previous` handler (asyncio's default if none)."""

    PERIOD = 61.0  # just over pantau.logs' RepeatFilter period, so it never holds ours back

    def __init__(
        self,
        previous: ExceptionHandler | None,
        period: float = PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.previous = previous
        self.counts: Counter[str] = Counter()
        self.clock = clock
        self._log = RateLimitedLog(log, period)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, Exception) and raised_by_pysnmp(exc):
            kind = type(exc).__name__
            self.counts[kind] += 1
            self._log.warning(
                kind,
                "pysnmp failed on a received datagram error=%s detail=%r count=%d",
                kind,
                str(exc)[:200],
                self.counts[kind],
                now=self.clock(),
            )
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _pysnmp() -> ModuleType:
    """agent.snmp.pysnmp_session, imported on first use (blocking: SnmpClient imports it in a
    thread before it makes its first engine)."""
    return importlib.import_module(PYSNMP_MODULE)


def takes_fast_path(creds: Credentials, fast: bool = True) -> bool:
    """Whether SnmpClient.session() gives these credentials a fast session (agent.snmp.fast)."""
    return fast and creds.version in ("1", "2c") and creds.community.isascii()


async def resolve(host: str, port: int) -> tuple[str, int]:
    """The IPv4 address of `host`, as pysnmp's UdpTransportTarget resolves it (the first of
    getaddrinfo's answers). SnmpError("resolve") if there is none. An IPv4 address is its own
    answer: looking it up took an executor thread at every poll (up to six threads, 0.1 MiB)."""
    import socket

    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, host)), port
    except OSError:  # not an IPv4 address: a name
        pass
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
        self._pysnmp_errors: PysnmpErrors | None = None  # installed with the first engine
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pysnmp_errors(self) -> Counter[str]:
        """Exceptions pysnmp raised on datagrams its socket received, by type (logged as one
        rate-limited line, not one traceback each)."""
        return self._pysnmp_errors.counts if self._pysnmp_errors is not None else Counter()

    def _install_error_handler(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.get_running_loop()
        handler = PysnmpErrors(loop.get_exception_handler())
        if self._pysnmp_errors is not None:  # counts go on across `async with` blocks
            handler.counts = self._pysnmp_errors.counts
        self._pysnmp_errors = handler
        self._loop = loop
        loop.set_exception_handler(handler)

    def _remove_error_handler(self) -> None:
        handler, loop = self._pysnmp_errors, self._loop
        if handler is not None and loop is not None and loop.get_exception_handler() is handler:
            loop.set_exception_handler(handler.previous)
        self._loop = None

    async def __aenter__(self) -> SnmpClient:
        self._open = True
        self._engines_lock = asyncio.Lock()  # of this loop
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open = False
        for engine, _ in self._engines or ():
            engine.close_dispatcher()
        self._engines = None
        self._remove_error_handler()
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
                self._install_error_handler()
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
        session: SnmpSession = _pysnmp().SnmpSession(engine, target, creds)
        return session
