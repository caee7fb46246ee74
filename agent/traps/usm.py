"""SNMPv3 traps and informs: pysnmp's message processing and USM (RFC 3412, RFC 3414) for what the
receiver's own socket received. The only module of agent.traps that imports pysnmp.

Why pysnmp's MP layer and not its NotificationReceiver: the receiver acknowledges an inform only
once its event is on disk, and it meters every datagram (source, size, rate) before any work. So
the datagram is handed to `prepare_data_elements` (digest, decryption, time window) and the
inform's Response is built later by `prepare_response_message`. pysnmp sends its Reports (engine
ID discovery, not in time window, wrong digest) itself through a transport dispatcher: `_Carrier`
hands them to the receiver's socket.

Engine IDs. An inform is sent to *our* engine: its users are registered under the agent's engine
ID, which a sender learns by discovery (or is configured with: `traps.engine_id`). A trap comes
from the *sender's* engine, which USM needs to localize the keys with: the sender's engine ID is
taken from the message header and the user registered under it on first sight (a device's
allowed users only, at most MAX_ENGINES_PER_DEVICE engine IDs per device): localizing is ~1 MB
of hashing, done once per engine and user. The registration comes before the digest check (USM
needs the localized key to check it), so the limit is what bounds a forger's engine IDs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyasn1.error import PyAsn1Error
from pysnmp.carrier.base import AbstractTransportDispatcher
from pysnmp.entity import config as _config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.proto import errind, error, rfc1902
from pysnmp.proto.api import v2c as api_v2c

from agent.snmp import ber
from agent.snmp.pysnmp_session import AUTH, PRIV, convert
from agent.snmp.values import Credentials, Oid, OidValue, SnmpValue
from agent.traps.decode import SNMP_TRAP_OID, SYS_UPTIME, Trap

log = logging.getLogger("pantau.agent.traps")

MAX_ENGINES_PER_DEVICE = 4
"""Sender engine IDs registered per device: a device has one; a few allow for a replaced
board. More are refused (counted): registering costs key localization."""

UDP_DOMAIN = (1, 3, 6, 1, 6, 1, 1)  # snmpUDPDomain: pysnmp's name for where a message came from

AUTH_FAILURES = {
    errind.WrongDigest: "wrong_digest",
    errind.AuthenticationFailure: "wrong_digest",
    errind.DecryptionError: "decryption_error",
    errind.UnknownUserName: "unknown_user",
    errind.UnknownSecurityName: "unknown_user",
    errind.UnsupportedSecurityLevel: "wrong_security_level",
    errind.NotInTimeWindow: "not_in_time_window",
}
"""pysnmp's error indications that mean 'the sender's credentials or clock do not fit'."""


class UsmError(Exception):
    """A v3 message not accepted. `reason` is a counter name: auth_failure (with `detail` saying
    which: wrong_digest, decryption_error, unknown_user, ...), engine_discovery (a probe, answered
    with a Report: not an error), engine_id_limit, malformed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class V3Header:
    """What the receiver reads before pysnmp sees the message (agent.snmp.ber, no crypto)."""

    engine_id: bytes  # msgAuthoritativeEngineID: the sender's for a trap, ours for an inform
    user: bytes  # msgUserName
    flags: int  # msgFlags: 1 auth, 2 priv, 4 reportable


def read_header(data: bytes) -> V3Header:
    """The header of an SNMPv3 message (RFC 3412 §6, RFC 3414 §2.4); DecodeError otherwise."""
    try:
        tag, pos, end = ber.read_tlv(data, 0, len(data))
        if tag != ber.SEQUENCE:
            raise ber.DecodeError("message is not a SEQUENCE", 0)
        tag, start, pos = ber.read_tlv(data, pos, end)
        if tag != ber.INTEGER or data[start:pos] != b"\x03":
            raise ber.DecodeError("not SNMPv3", start)
        tag, start, pos = ber.read_tlv(data, pos, end)  # msgGlobalData
        if tag != ber.SEQUENCE:
            raise ber.DecodeError("msgGlobalData is not a SEQUENCE", start)
        inner = start
        for _ in range(2):  # msgID, msgMaxSize
            tag, _s, inner = ber.read_tlv(data, inner, pos)
        tag, s, inner = ber.read_tlv(data, inner, pos)
        if tag != ber.OCTET_STRING or inner - s != 1:
            raise ber.DecodeError("msgFlags is not one octet", s)
        flags = data[s]
        tag, start, pos = ber.read_tlv(data, pos, end)  # msgSecurityParameters
        if tag != ber.OCTET_STRING:
            raise ber.DecodeError("msgSecurityParameters is not an OCTET STRING", start)
        tag, inner, sp_end = ber.read_tlv(data, start, pos)
        if tag != ber.SEQUENCE:
            raise ber.DecodeError("UsmSecurityParameters is not a SEQUENCE", start)
        fields: list[bytes] = []
        for _ in range(4):  # engine ID, boots, time, user name
            tag, s, inner = ber.read_tlv(data, inner, sp_end)
            fields.append(data[s:inner])
        return V3Header(engine_id=fields[0], user=fields[3], flags=flags)
    except IndexError:
        raise ber.DecodeError("truncated", len(data)) from None


class _Carrier(AbstractTransportDispatcher):  # type: ignore[misc]
    """pysnmp's way out for the Reports it sends while processing a message: to our socket."""

    def __init__(self, send: Callable[[bytes, tuple[str, int]], None]) -> None:
        super().__init__()
        self._send = send

    def send_message(
        self, outgoingMessage: Any, transportDomain: Any, transportAddress: Any
    ) -> None:
        self._send(bytes(outgoingMessage), (str(transportAddress[0]), int(transportAddress[1])))

    def tick(self) -> None:
        self.handle_timer_tick(time.time())


@dataclass(frozen=True, slots=True)
class Received:
    """A v3 trap or inform that passed USM; `ack` builds an inform's Response (None: a trap)."""

    trap: Trap
    user: str
    ack: Callable[[], bytes] | None


class UsmReceiver:
    """One pysnmp engine for the receiver: the agent's engine ID, its users, its Reports."""

    def __init__(
        self,
        engine_id: bytes,
        send: Callable[[bytes, tuple[str, int]], None],
        boots: int | None = None,
    ) -> None:
        self.engine = SnmpEngine(snmpEngineID=rfc1902.OctetString(engine_id))
        self.engine_id = engine_id
        if boots is not None:  # agent.traps.engineboots: kept across restarts (RFC 3414 2.2)
            (mib_boots,) = self.engine.get_mib_builder().import_symbols(
                "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots"
            )
            mib_boots.syntax = mib_boots.syntax.clone(boots)
        self._carrier = _Carrier(send)
        self.engine.register_transport_dispatcher(self._carrier)
        self._registered: set[tuple[bytes, bytes]] = set()  # (engine ID, user name)
        self._engines: dict[str, set[bytes]] = {}  # device → sender engine IDs registered
        self._mp = self.engine.message_processing_subsystems[3]

    def close(self) -> None:
        self.engine.unregister_transport_dispatcher()

    def tick(self) -> None:
        """Let pysnmp expire what it caches (state of unanswered informs, peers' timelines)."""
        self._carrier.tick()

    def add_user(self, creds: Credentials, engine_id: bytes | None = None) -> None:
        """Register `creds` under `engine_id` (default: ours, for informs)."""
        engine_id = self.engine_id if engine_id is None else engine_id
        key = (engine_id, creds.user.encode())
        if key in self._registered:
            return
        kwargs: dict[str, Any] = {}
        if creds.auth_key:
            kwargs["authKey"] = creds.auth_key
            kwargs["authProtocol"] = AUTH[creds.auth_protocol or "SHA"]
        if creds.priv_key:
            kwargs["privKey"] = creds.priv_key
            kwargs["privProtocol"] = PRIV[creds.priv_protocol or "AES"]
        _config.add_v3_user(
            self.engine,
            creds.user,
            securityEngineId=rfc1902.OctetString(engine_id),
            **kwargs,
        )
        self._registered.add(key)

    def receive(
        self,
        data: bytes,
        addr: tuple[str, int],
        device: str,
        users: dict[str, Credentials],
    ) -> Received:
        """Check and decrypt a v3 message from `device`, which may use `users`; UsmError when it
        is not accepted (Reports pysnmp owes the sender are sent on the way)."""
        try:
            header = read_header(data)
        except ber.DecodeError as exc:
            raise UsmError("malformed", str(exc)) from None
        user = header.user.decode(errors="replace")
        if header.user and user not in users:
            raise UsmError("auth_failure", f"unknown_user user={user!r}")
        if header.engine_id and header.engine_id != self.engine_id and header.user:
            self._register_sender(device, header.engine_id, users[user])
        try:
            out = self._mp.prepare_data_elements(self.engine, UDP_DOMAIN, addr, data)
        except error.StatusInformation as exc:
            raise _usm_error(exc, header) from None
        except (PyAsn1Error, ValueError, TypeError, KeyError) as exc:
            raise UsmError("malformed", type(exc).__name__) from None
        (_mpm, sec_model, sec_name, sec_level, ctx_engine, ctx_name, pdu_version, pdu, pdu_type,
         _handle, max_size, _status, state_ref) = out  # fmt: skip
        name = str(sec_name)
        if name not in users:  # pysnmp knows the user from another device
            raise UsmError("auth_failure", f"unknown_user user={name!r}")
        inform = pdu_type == api_v2c.InformRequestPDU.tagSet
        if pdu_type not in (api_v2c.TrapPDU.tagSet, api_v2c.InformRequestPDU.tagSet):
            raise UsmError("malformed", "no trap or inform PDU")
        trap = _trap(pdu, inform, name)
        ack = None
        if inform:

            def ack() -> bytes:
                rsp = api_v2c.apiPDU.get_response(pdu)
                api_v2c.apiPDU.set_error_status(rsp, 0)
                api_v2c.apiPDU.set_error_index(rsp, 0)
                api_v2c.apiPDU.set_varbinds(rsp, api_v2c.apiPDU.get_varbinds(pdu))
                try:
                    _dom, _addr, msg = self._mp.prepare_response_message(
                        self.engine, 3, sec_model, sec_name, sec_level, ctx_engine, ctx_name,
                        pdu_version, rsp, max_size, state_ref, {},
                    )  # fmt: skip
                except (error.StatusInformation, PyAsn1Error) as exc:  # e.g. the cache expired
                    raise ValueError(f"no response to the inform: {exc}") from None
                return bytes(msg)

        return Received(trap, name, ack)

    def _register_sender(self, device: str, engine_id: bytes, creds: Credentials) -> None:
        if (engine_id, creds.user.encode()) in self._registered:
            return
        if not 5 <= len(engine_id) <= 32:
            raise UsmError("malformed", f"engine ID of {len(engine_id)} octets")
        engines = self._engines.setdefault(device, set())
        if engine_id not in engines and len(engines) >= MAX_ENGINES_PER_DEVICE:
            raise UsmError("engine_id_limit", f"engine_id={engine_id.hex()}")
        self.add_user(creds, engine_id)
        if engine_id not in engines:
            engines.add(engine_id)
            log.info(
                "SNMPv3 trap sender engine registered device=%s engine_id=%s user=%s",
                device,
                engine_id.hex(),
                creds.user,
            )


def _usm_error(exc: error.StatusInformation, header: V3Header) -> UsmError:
    indication = exc.get("errorIndication")
    user = header.user.decode(errors="replace")
    if isinstance(indication, errind.UnknownEngineID):
        return UsmError("engine_discovery", "engine ID discovery probe answered")
    for kind, detail in AUTH_FAILURES.items():
        if isinstance(indication, kind):
            return UsmError("auth_failure", f"{detail} user={user!r}")
    return UsmError("malformed", str(indication))


def _trap(pdu: Any, inform: bool, user: str) -> Trap:
    varbinds: list[tuple[Oid, SnmpValue]] = [
        (tuple(oid), convert(value)) for oid, value in api_v2c.apiPDU.get_varbinds(pdu)
    ]
    if len(varbinds) < 2 or varbinds[0][0] != SYS_UPTIME or varbinds[1][0] != SNMP_TRAP_OID:
        raise UsmError("malformed", "no sysUpTime.0 and snmpTrapOID.0 at the start")
    uptime, trap_oid = varbinds[0][1], varbinds[1][1]
    if not isinstance(uptime, int) or not isinstance(trap_oid, OidValue):
        raise UsmError("malformed", "sysUpTime.0 or snmpTrapOID.0 of the wrong type")
    return Trap(
        version=3,
        community=b"",
        inform=inform,
        request_id=int(api_v2c.apiPDU.get_request_id(pdu)),
        trap_oid=str(trap_oid),
        uptime=uptime,
        varbinds=varbinds[2:],
    )


__all__ = [
    "MAX_ENGINES_PER_DEVICE",
    "Received",
    "UsmError",
    "UsmReceiver",
    "V3Header",
    "read_header",
]
