"""The SNMP client: the only module that imports pysnmp.

It speaks in plain Python values (int, bytes, str for OIDs and IP addresses, and three
sentinels for noSuchObject, noSuchInstance and endOfMibView) so the rest of the agent can be
tested without pysnmp and the engine can be swapped or sped up in one place. One SnmpEngine
serves the whole process: engines are costly and bound to their event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as _auth
from pysnmp.hlapi.v3arch.asyncio.cmdgen import VB_PROCESSOR
from pysnmp.proto import errind, rfc1902, rfc1905


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


_AUTH = {
    "MD5": _auth.USM_AUTH_HMAC96_MD5,
    "SHA": _auth.USM_AUTH_HMAC96_SHA,
    "SHA-224": _auth.USM_AUTH_HMAC128_SHA224,
    "SHA-256": _auth.USM_AUTH_HMAC192_SHA256,
    "SHA-384": _auth.USM_AUTH_HMAC256_SHA384,
    "SHA-512": _auth.USM_AUTH_HMAC384_SHA512,
}
_PRIV = {
    "DES": _auth.USM_PRIV_CBC56_DES,
    "3DES": _auth.USM_PRIV_CBC168_3DES,
    "AES": _auth.USM_PRIV_CFB128_AES,
    "AES-128": _auth.USM_PRIV_CFB128_AES,
    # net-snmp and most devices localise AES-192/256 keys the Blumenthal way; Cisco uses
    # Reeder's ("-C", as Telegraf names them).
    "AES-192": _auth.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES-256": _auth.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES-192-C": _auth.USM_PRIV_CFB192_AES,
    "AES-256-C": _auth.USM_PRIV_CFB256_AES,
}

# Error indications that mean the credentials or security parameters are wrong.
_AUTH_ERRORS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.UnsupportedSecurityLevel,
    errind.UnknownSecurityName,
    errind.AuthenticationError,
)


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


def convert(value: Any) -> SnmpValue:
    """Turn a pysnmp value object into a plain Python value."""
    if isinstance(value, rfc1905.NoSuchObject):
        return NO_SUCH_OBJECT
    if isinstance(value, rfc1905.NoSuchInstance):
        return NO_SUCH_INSTANCE
    if isinstance(value, rfc1905.EndOfMibView):
        return END_OF_MIB
    if isinstance(value, rfc1902.IpAddress):
        return IpValue(".".join(str(b) for b in bytes(value)))
    if isinstance(value, rfc1902.univ.OctetString):
        return bytes(value)
    if isinstance(value, rfc1902.univ.ObjectIdentifier):
        return OidValue(oid_str(tuple(value)))
    if isinstance(value, rfc1902.univ.Integer):
        return int(value)
    if isinstance(value, rfc1902.univ.Null):
        return NO_SUCH_OBJECT
    raise SnmpError("wrong_type", f"unsupported SNMP type {type(value).__name__}")


class SnmpClient:
    """Owns the SnmpEngines. Use `async with SnmpClient() as c`.

    One engine serves every device, except that pysnmp keys its USM user table by user name
    until it has discovered the device's engine: v3 devices that share a user name but not its
    keys would overwrite each other's keys, so each such key set gets an engine of its own.
    """

    def __init__(self) -> None:
        self._engines: list[tuple[SnmpEngine, dict[str, tuple[str | None, ...]]]] | None = None
        self._fast: Any = None  # agent.snmp_fast.FastTransport, opened on first use

    async def __aenter__(self) -> SnmpClient:
        engine = SnmpEngine()
        # pysnmp builds its MIB view on the first request, and with pysmi installed a MIB
        # compiler too (~0.5 s of CPU here, seconds on a gateway): do it now, off the loop, so it
        # neither stalls the loop nor counts in the first poll's duration.
        await asyncio.to_thread(VB_PROCESSOR.make_varbinds, engine.cache,
                                (ObjectType(ObjectIdentity("1.3.6.1.2.1.1.1.0")),))
        self._engines = [(engine, {})]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for engine, _ in self._engines or ():
            engine.close_dispatcher()
        self._engines = None
        if self._fast is not None:
            self._fast.close()
            self._fast = None

    def _engine_for(self, creds: Credentials) -> SnmpEngine:
        if self._engines is None:
            raise RuntimeError("SnmpClient used outside `async with`")
        if creds.version != "3":
            return self._engines[0][0]
        keys = (creds.auth_protocol, creds.auth_key, creds.priv_protocol, creds.priv_key)
        for engine, users in self._engines:
            if users.setdefault(creds.user, keys) == keys:
                return engine
        engine = SnmpEngine()
        self._engines.append((engine, {creds.user: keys}))
        return engine

    async def session(
        self, host: str, port: int, creds: Credentials, *, timeout: float, retries: int,
        fast: bool = True,
    ) -> SnmpSession:
        """A session to one device. v1/v2c sessions take the fast path (agent.snmp_fast)
        unless `fast` is false; it falls back to pysnmp for any response it cannot read."""
        engine = self._engine_for(creds)
        try:
            target = await UdpTransportTarget.create((host, port), timeout=timeout,
                                                     retries=retries)
        except Exception as exc:  # pysnmp raises a bare PySnmpError for unresolvable hosts
            raise SnmpError("resolve", f"cannot resolve {host}: {exc}") from None
        if fast and creds.version in ("1", "2c") and creds.community.isascii():
            from agent.snmp_fast import FastSession, FastTransport  # it imports this module

            if self._fast is None:
                self._fast = await FastTransport.open()
            return FastSession(engine, target, creds, self._fast, timeout=timeout,
                               retries=retries)
        return SnmpSession(engine, target, creds)


def _auth_data(creds: Credentials) -> CommunityData | UsmUserData:
    if creds.version in ("1", "2c"):
        return CommunityData(creds.community, mpModel=0 if creds.version == "1" else 1)
    kwargs: dict[str, Any] = {}
    if creds.auth_key:
        kwargs["authKey"] = creds.auth_key
        kwargs["authProtocol"] = _AUTH[creds.auth_protocol or "SHA"]
    if creds.priv_key:
        kwargs["privKey"] = creds.priv_key
        kwargs["privProtocol"] = _PRIV[creds.priv_protocol or "AES"]
    return UsmUserData(creds.user, **kwargs)


class SnmpSession:
    """Requests to one device. Every method raises SnmpError (or SnmpTimeout) on failure."""

    def __init__(self, engine: SnmpEngine, target: UdpTransportTarget, creds: Credentials) -> None:
        self._engine = engine
        self._target = target
        self._creds = creds
        self._auth = _auth_data(creds)
        self._context = ContextData(contextName=creds.context) if creds.context else ContextData()
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
        mp = self._engine.message_processing_subsystems.get(3)  # type: ignore[call-overload]
        cache = getattr(mp, "_SnmpV3MessageProcessingModel__engineIdCache", None)
        if not isinstance(cache, dict):
            return False
        address = tuple(self._target.transport_address)[:2]
        for key in [k for k in cache if tuple(k[1])[:2] == address]:
            del cache[key]
        return True

    def _check(self, error_indication: Any, error_status: Any, error_index: Any,
               var_binds: Sequence[Any]) -> None:
        if error_indication:
            if isinstance(error_indication, errind.RequestTimedOut):
                raise SnmpTimeout()
            if isinstance(error_indication, _AUTH_ERRORS):
                raise SnmpError("auth", str(error_indication))
            if isinstance(error_indication, (errind.NotInTimeWindow, errind.UnknownEngineID)):
                raise SnmpError("engine", str(error_indication))
            raise SnmpError("snmp_error", str(error_indication))

    async def get(self, oids: Sequence[Oid]) -> dict[Oid, SnmpValue]:
        """GET the given OIDs. A v1 noSuchName marks that OID missing and retries the rest."""
        pending = list(oids)
        out: dict[Oid, SnmpValue] = {}
        while pending:
            self.requests += 1
            ei, es, ex, vbs = await get_cmd(
                self._engine, self._auth, self._target, self._context,
                *(ObjectType(ObjectIdentity(oid_str(o))) for o in pending),
                lookupMib=False,
            )
            self._check(ei, es, ex, vbs)
            if es:
                index = int(ex) - 1
                if self.version == "1" and int(es) == 2 and 0 <= index < len(pending):
                    out[pending.pop(index)] = NO_SUCH_OBJECT  # noSuchName
                    continue
                raise SnmpError("snmp_error", f"{es.prettyPrint()} at index {int(ex)}")
            for name, value in vbs:
                out[tuple(name)] = convert(value)
            break
        return out

    async def next_rows(
        self, oids: Sequence[Oid], max_repetitions: int, bulk: bool
    ) -> list[list[tuple[Oid, SnmpValue]]]:
        """One GETBULK (or GETNEXT) step from `oids`: a list of rows, one (oid, value) per column.

        A column the device has no more of is reported as END_OF_MIB at its position.
        """
        self.requests += 1
        varbinds = [ObjectType(ObjectIdentity(oid_str(o))) for o in oids]
        if bulk:
            ei, es, ex, vbs = await bulk_cmd(
                self._engine, self._auth, self._target, self._context, 0, max_repetitions,
                *varbinds, lookupMib=False,
            )
        else:
            ei, es, ex, vbs = await next_cmd(
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
        flat = [(tuple(name), convert(value)) for name, value in vbs]
        if not flat:
            return [[(o, END_OF_MIB) for o in oids]]
        # A truncated last repetition (the agent hit its PDU size) is dropped: the walk goes on
        # from the last complete row.
        rows = [flat[i:i + width] for i in range(0, len(flat) - width + 1, width)]
        if not rows:
            raise SnmpError("snmp_error", f"response of {len(flat)} varbinds for {width} columns")
        return rows
