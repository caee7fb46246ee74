"""The pysnmp session, and everything else pysnmp-specific: the only module that imports pysnmp
(besides the MIB name resolver of agent.profiles.mibs).

agent.snmp.client imports it on first need (an SNMPv3 session, a fast session's first fallback,
a session with the fast path off): pysnmp and pyasn1 cost ~30 MB of RSS, which an agent whose
devices all speak v1/v2c through agent.snmp.fast never pays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyasn1.codec.ber import decoder as ber_decoder
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
from pysnmp.proto.api import v1 as api_v1
from pysnmp.proto.api import v2c as api_v2c

from agent.snmp.ber import GET, GETBULK
from agent.snmp.session import Answer, RequestSession
from agent.snmp.values import (
    END_OF_MIB,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    Credentials,
    IpValue,
    Oid,
    OidValue,
    SnmpError,
    SnmpTimeout,
    SnmpValue,
    oid_str,
)

__all__ = [
    "AUTH",
    "SnmpSession",
    "AUTH_ERRORS",
    "PRIV",
    "ContextData",
    "SnmpEngine",
    "UdpTransportTarget",
    "auth_data",
    "bulk_cmd",
    "check",
    "context_data",
    "convert",
    "get_cmd",
    "new_engine",
    "next_cmd",
    "object_types",
    "warm_up",
]

AUTH = {
    "MD5": _auth.USM_AUTH_HMAC96_MD5,
    "SHA": _auth.USM_AUTH_HMAC96_SHA,
    "SHA-224": _auth.USM_AUTH_HMAC128_SHA224,
    "SHA-256": _auth.USM_AUTH_HMAC192_SHA256,
    "SHA-384": _auth.USM_AUTH_HMAC256_SHA384,
    "SHA-512": _auth.USM_AUTH_HMAC384_SHA512,
}
PRIV = {
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
AUTH_ERRORS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.UnsupportedSecurityLevel,
    errind.UnknownSecurityName,
    errind.AuthenticationError,
)


def new_engine() -> SnmpEngine:
    return SnmpEngine()


def warm_up(engine: SnmpEngine) -> None:
    """Build pysnmp's MIB view (and with pysmi installed a MIB compiler): pysnmp does it on the
    first request otherwise (~0.5 s of CPU here, seconds on a gateway). Blocking: run it in a
    thread."""
    VB_PROCESSOR.make_varbinds(engine.cache, (ObjectType(ObjectIdentity("1.3.6.1.2.1.1.1.0")),))


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


def auth_data(creds: Credentials) -> CommunityData | UsmUserData:
    if creds.version in ("1", "2c"):
        return CommunityData(creds.community, mpModel=0 if creds.version == "1" else 1)
    kwargs: dict[str, Any] = {}
    if creds.auth_key:
        kwargs["authKey"] = creds.auth_key
        kwargs["authProtocol"] = AUTH[creds.auth_protocol or "SHA"]
    if creds.priv_key:
        kwargs["privKey"] = creds.priv_key
        kwargs["privProtocol"] = PRIV[creds.priv_protocol or "AES"]
    return UsmUserData(creds.user, **kwargs)


def context_data(creds: Credentials) -> ContextData:
    return ContextData(contextName=creds.context) if creds.context else ContextData()


def object_types(oids: Sequence[tuple[int, ...]]) -> list[ObjectType]:
    return [ObjectType(ObjectIdentity(oid_str(o))) for o in oids]


def check(error_indication: Any) -> None:
    """Raise the SnmpError an error indication of pysnmp's stands for (if any)."""
    if error_indication:
        if isinstance(error_indication, errind.RequestTimedOut):
            raise SnmpTimeout()
        if isinstance(error_indication, AUTH_ERRORS):
            raise SnmpError("auth", str(error_indication))
        if isinstance(error_indication, (errind.NotInTimeWindow, errind.UnknownEngineID)):
            raise SnmpError("engine", str(error_indication))
        raise SnmpError("snmp_error", str(error_indication))


class SnmpSession(RequestSession):
    """Requests to one device through pysnmp (SNMPv3, and v1/v2c where the fast path is off or
    cannot read an answer)."""

    def __init__(self, engine: SnmpEngine, target: UdpTransportTarget, creds: Credentials) -> None:
        super().__init__()
        self._engine = engine
        self._target = target
        self._creds = creds
        self._auth = auth_data(creds)
        self._context = context_data(creds)
        self.requests = 0

    @property
    def version(self) -> str:
        return self._creds.version

    def reads(self, data: bytes) -> bool:
        """Whether pysnmp would read this v1/v2c datagram as an answer to this session: decoded
        the way its message processing does (pyasn1, with the v1 or v2c message spec of this
        session's version) and every value converted. pysnmp drops what it cannot decode
        without a word (the request then times out)."""
        if self._creds.version not in ("1", "2c"):
            return False
        mod: Any = api_v1 if self._creds.version == "1" else api_v2c
        try:
            msg, _ = ber_decoder.decode(data, asn1Spec=mod.Message())
            if int(mod.apiMessage.get_version(msg)) != (0 if self._creds.version == "1" else 1):
                return False
            pdu = mod.apiMessage.get_pdu(msg)
            for _, value in mod.apiPDU.get_varbinds(pdu):
                convert(value)
        except Exception:  # pyasn1's errors, and whatever else it raises on garbage
            return False
        return True

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

    async def _request(self, pdu: int, oids: Sequence[Oid], max_repetitions: int) -> Answer:
        self.requests += 1
        varbinds = object_types(oids)
        common = (self._engine, self._auth, self._target, self._context)
        if pdu == GET:
            ei, es, ex, vbs = await get_cmd(*common, *varbinds, lookupMib=False)
        elif pdu == GETBULK:
            ei, es, ex, vbs = await bulk_cmd(
                *common, 0, max_repetitions, *varbinds, lookupMib=False
            )
        else:
            ei, es, ex, vbs = await next_cmd(*common, *varbinds, lookupMib=False)
        check(ei)
        return int(es), int(ex), [(tuple(name), convert(value)) for name, value in vbs]
