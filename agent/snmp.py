"""The SNMP client: plain values, sessions, and the SnmpClient that hands them out.

It speaks in plain Python values (int, bytes, str for OIDs and IP addresses, and three
sentinels for noSuchObject, noSuchInstance and endOfMibView) so the rest of the agent can be
tested without pysnmp and the engine can be swapped or sped up in one place.

v1/v2c sessions take the fast path (agent.snmp_fast); pysnmp (agent.snmp_pysnmp, the only
module that imports it) serves SNMPv3, sessions with the fast path off, and the requests the fast
path cannot read. It is imported, and its engines made, on first need: pysnmp and pyasn1 cost
~30 MB of RSS, which an agent whose devices all speak v1/v2c never pays. One SnmpEngine serves
the whole process: engines are costly and bound to their event loop.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from types import ModuleType

    from agent.snmp_fast import FastTransport


class Missing:
    """A varbind the device answered without a value (noSuchObject, noSuchInstance, endOfMib)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<{self.reason}>"


NO_SUCH_OBJECT = Missing("no_such_object")
NO_SUCH_INSTANCE = Missing("no_such_instance")
END_OF_MIB = Missing("end_of_mib")


class OidValue(str):
    """An OBJECT IDENTIFIER value, dotted."""


class IpValue(str):
    """An IpAddress value, dotted quad."""


SnmpValue = int | bytes | OidValue | IpValue | Missing
Oid = tuple[int, ...]


class SnmpError(Exception):
    """A request failed as a whole. `reason` is a short label used in metrics and sample sets."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SnmpTimeout(SnmpError):
    def __init__(self, detail: str = "no response") -> None:
        super().__init__("timeout", detail)


@dataclass(frozen=True, slots=True)
class Credentials:
    version: str  # "1", "2c" or "3"
    community: str = "public"
    user: str = ""
    auth_protocol: str | None = None
    auth_key: str | None = None
    priv_protocol: str | None = None
    priv_key: str | None = None
    context: str = ""

    def __repr__(self) -> str:  # never show keys or communities
        return f"Credentials(version={self.version!r}, user={self.user!r})"


def oid_tuple(oid: str) -> Oid:
    return tuple(int(p) for p in oid.strip(".").split("."))


def oid_str(oid: Oid) -> str:
    return ".".join(map(str, oid))




def _pysnmp() -> ModuleType:
    """agent.snmp_pysnmp, imported on first use (blocking: SnmpClient imports it in a thread
    before it makes its first engine)."""
    from agent import snmp_pysnmp

    return snmp_pysnmp


def convert(value: Any) -> SnmpValue:
    """Turn a pysnmp value object into a plain Python value."""
    return _pysnmp().convert(value)  # type: ignore[no-any-return]


def _auth_data(creds: Credentials) -> Any:
    """pysnmp's CommunityData or UsmUserData for `creds`."""
    return _pysnmp().auth_data(creds)


def __getattr__(name: str) -> Any:
    # The protocol tables and error indications live with pysnmp; reading them loads it.
    lazy = {"_AUTH": "AUTH", "_PRIV": "PRIV", "_AUTH_ERRORS": "AUTH_ERRORS"}
    if name in lazy:
        return getattr(_pysnmp(), lazy[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def takes_fast_path(creds: Credentials, fast: bool = True) -> bool:
    """Whether SnmpClient.session() gives these credentials a fast session (agent.snmp_fast)."""
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


class Session(Protocol):
    """Requests to one device: an SnmpSession (pysnmp) or an agent.snmp_fast.FastSession.
    Every request method raises SnmpError (or SnmpTimeout) on failure."""

    @property
    def version(self) -> str: ...

    @property
    def requests(self) -> int: ...

    def forget_engine(self) -> bool: ...

    async def get(self, oids: Sequence[Oid]) -> dict[Oid, SnmpValue]: ...

    async def next_rows(
        self, oids: Sequence[Oid], max_repetitions: int, bulk: bool
    ) -> list[list[tuple[Oid, SnmpValue]]]: ...


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
                p = await asyncio.to_thread(importlib.import_module, "agent.snmp_pysnmp")
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
        self, host: str, port: int, creds: Credentials, *, timeout: float, retries: int,
        fast: bool = True,
    ) -> Session:
        """A session to one device. v1/v2c sessions take the fast path (agent.snmp_fast)
        unless `fast` is false; it falls back to pysnmp for any response it cannot read."""
        self._check_open()
        if takes_fast_path(creds, fast):
            from agent.snmp_fast import FastSession, FastTransport  # it imports this module

            address = await resolve(host, port)
            if self._fast is None:
                transport = await FastTransport.open()
                if self._fast is None and self._open:
                    self._fast = transport
                else:  # another session opened one meanwhile, or the client closed
                    transport.close()
                    self._check_open()
            assert self._fast is not None
            return FastSession(self, address, creds, self._fast, timeout=timeout,
                               retries=retries)
        return await self.pysnmp_session(host, port, creds, timeout=timeout, retries=retries)

    async def pysnmp_session(
        self, host: str, port: int, creds: Credentials, *, timeout: float, retries: int
    ) -> SnmpSession:
        """A session to one device through pysnmp (importing it and making the engine first,
        if this is the first)."""
        engine = await self._engine_for(creds)
        try:
            target = await _pysnmp().UdpTransportTarget.create((host, port), timeout=timeout,
                                                               retries=retries)
        except Exception as exc:  # pysnmp raises a bare PySnmpError for unresolvable hosts
            raise SnmpError("resolve", f"cannot resolve {host}: {exc}") from None
        return SnmpSession(engine, target, creds)


class SnmpSession:
    """Requests to one device through pysnmp. Every method raises SnmpError (or SnmpTimeout)
    on failure. Made by SnmpClient, which has imported pysnmp by then."""

    def __init__(self, engine: Any, target: Any, creds: Credentials) -> None:
        self._p = p = _pysnmp()
        self._engine = engine
        self._target = target
        self._creds = creds
        self._auth = p.auth_data(creds)
        self._context = p.context_data(creds)
        self.requests = 0

    @property
    def version(self) -> str:
        return self._creds.version

    def forget_engine(self) -> bool:
        """Drop pysnmp's cached engine ID of this peer so the next request rediscovers it.

        pysnmp follows a rebooted v3 device by itself while its engine ID stays (new boots and
        time come in the notInTimeWindow report), but caches the engine ID per address for 300 s:
        a device that comes back with a new engine ID (reset, replaced) would fail until then.
        The cache is private to pysnmp; if it moves, the 300 s expiry still applies.
        """
        mp = self._engine.message_processing_subsystems.get(3)
        cache = getattr(mp, "_SnmpV3MessageProcessingModel__engineIdCache", None)
        if not isinstance(cache, dict):
            return False
        address = tuple(self._target.transport_address)[:2]
        for key in [k for k in cache if tuple(k[1])[:2] == address]:
            del cache[key]
        return True

    def _check(self, error_indication: Any, error_status: Any, error_index: Any,
               var_binds: Sequence[Any]) -> None:
        self._p.check(error_indication)

    async def get(self, oids: Sequence[Oid]) -> dict[Oid, SnmpValue]:
        """GET the given OIDs. A v1 noSuchName marks that OID missing and retries the rest."""
        p = self._p
        pending = list(oids)
        out: dict[Oid, SnmpValue] = {}
        while pending:
            self.requests += 1
            ei, es, ex, vbs = await p.get_cmd(
                self._engine, self._auth, self._target, self._context,
                *p.object_types(pending), lookupMib=False,
            )
            self._check(ei, es, ex, vbs)
            if es:
                index = int(ex) - 1
                if self.version == "1" and int(es) == 2 and 0 <= index < len(pending):
                    out[pending.pop(index)] = NO_SUCH_OBJECT  # noSuchName
                    continue
                raise SnmpError("snmp_error", f"{es.prettyPrint()} at index {int(ex)}")
            for name, value in vbs:
                out[tuple(name)] = p.convert(value)
            break
        return out

    async def next_rows(
        self, oids: Sequence[Oid], max_repetitions: int, bulk: bool
    ) -> list[list[tuple[Oid, SnmpValue]]]:
        """One GETBULK (or GETNEXT) step from `oids`: a list of rows, one (oid, value) per column.

        A column the device has no more of is reported as END_OF_MIB at its position.
        """
        p = self._p
        self.requests += 1
        varbinds = p.object_types(oids)
        if bulk:
            ei, es, ex, vbs = await p.bulk_cmd(
                self._engine, self._auth, self._target, self._context, 0, max_repetitions,
                *varbinds, lookupMib=False,
            )
        else:
            ei, es, ex, vbs = await p.next_cmd(
                self._engine, self._auth, self._target, self._context, *varbinds,
                lookupMib=False,
            )
        self._check(ei, es, ex, vbs)
        if es:
            index = int(ex) - 1
            if self.version == "1" and int(es) == 2 and 0 <= index < len(oids):
                # v1 GETNEXT past the end of the MIB for one column: report it as endOfMib
                # for that column and ask again for the others.
                rest = [o for i, o in enumerate(oids) if i != index]
                rows = await self.next_rows(rest, max_repetitions, bulk) if rest else [[]]
                for row in rows:
                    row.insert(index, (oids[index], END_OF_MIB))
                return rows
            raise SnmpError("snmp_error", f"{es.prettyPrint()} at index {int(ex)}")
        width = len(oids)
        flat = [(tuple(name), p.convert(value)) for name, value in vbs]
        if not flat:
            return [[(o, END_OF_MIB) for o in oids]]
        # A truncated last repetition (the agent hit its PDU size) is dropped: the walk goes on
        # from the last complete row.
        rows = [flat[i:i + width] for i in range(0, len(flat) - width + 1, width)]
        if not rows:
            raise SnmpError("snmp_error", f"response of {len(flat)} varbinds for {width} columns")
        return rows
