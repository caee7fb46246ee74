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
taken from the message header and the user registered under it on first sight. USM needs the
localized key to check the digest, so that registration comes first, *tentatively*: a message
that does not pass removes it again, and only engine IDs that authenticated count toward a
device's MAX_ENGINES_PER_DEVICE (a forger with the wrong key cannot use them up). A device
registers at most one new engine ID every REGISTRATION_INTERVAL_S seconds (~5 ms each: the
passphrases are hashed to master keys once per user at start, only localization is left). An
(engine ID, user) pair holds the keys of one device's user: another device whose user of that
name has other keys cannot take it over, and a message is accepted only when the keys it was
checked with are the sending device's own (RFC 3414 checks the keys, not who holds them).

Security level. pysnmp checks it only as the authoritative engine (informs): a trap below the
user's level (noAuthNoPriv for an authPriv user) would pass. So the level in msgFlags is checked
before anything else, and the level pysnmp processed again after it. Replays and old traps:
agent.traps.timeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
from agent.traps.timeline import SenderTimelines

log = logging.getLogger("pantau.agent.traps")

MAX_ENGINES_PER_DEVICE = 4
"""Sender engine IDs registered per device (authenticated ones): a device has one; a few allow
for a replaced board. More are refused (counted)."""
REGISTRATION_INTERVAL_S = 10.0
"""At most one tentative registration of a new sender engine ID per device this often: each
costs key localization, and a registration a forged message asked for is removed again."""

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

LEVELS = {0: 1, 1: 2, 3: 3}
"""msgFlags & 3 (1 auth, 2 priv) → securityLevel: noAuthNoPriv 1, authNoPriv 2, authPriv 3
(priv without auth is no level, RFC 3412 §7.2 h)."""


def required_level(creds: Credentials) -> int:
    """The lowest security level a user's messages may have: that of its configured keys."""
    return 3 if creds.priv_key else 2 if creds.auth_key else 1


class UsmError(Exception):
    """A v3 message not accepted. `reason` is a counter name: auth_failure (with `detail` saying
    which: wrong_digest, decryption_error, unknown_user, wrong_security_level,
    not_in_time_window, replayed, keys_of_another_device, ...), engine_discovery (a probe,
    answered with a Report: not an error), engine_id_limit, malformed."""

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
    boots: int = 0  # msgAuthoritativeEngineBoots
    time: int = 0  # msgAuthoritativeEngineTime
    digest: bytes = b""  # msgAuthenticationParameters (the HMAC: unique per message)


def _uint31(data: bytes, tag: int, start: int, end: int, what: str) -> int:
    if tag != ber.INTEGER or not 1 <= end - start <= 5:
        raise ber.DecodeError(f"{what} is not an INTEGER", start)
    value = int.from_bytes(data[start:end], "big", signed=True)
    if not 0 <= value <= 2_147_483_647:
        raise ber.DecodeError(f"{what} out of range", start)
    return value


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
        fields: list[tuple[int, int, int]] = []
        for _ in range(5):  # engine ID, boots, time, user name, authentication parameters
            tag, s, inner = ber.read_tlv(data, inner, sp_end)
            fields.append((tag, s, inner))
        return V3Header(
            engine_id=data[fields[0][1] : fields[0][2]],
            user=data[fields[3][1] : fields[3][2]],
            flags=flags,
            boots=_uint31(data, *fields[1], "msgAuthoritativeEngineBoots"),
            time=_uint31(data, *fields[2], "msgAuthoritativeEngineTime"),
            digest=data[fields[4][1] : fields[4][2]],
        )
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
    """A v3 trap or inform that passed USM; `ack` builds an inform's Response (None: a trap).
    `context_engine`: its contextEngineID, the sending engine's own (net-snmp's snmpinform
    sets it so) even for an inform, whose msgAuthoritativeEngineID is ours: with `user` it says
    whose request-id an inform's is (the receiver's retransmission check)."""

    trap: Trap
    user: str
    ack: Callable[[], bytes] | None
    context_engine: bytes = b""


class UsmReceiver:
    """One pysnmp engine for the receiver: the agent's engine ID, its users, its Reports."""

    def __init__(
        self,
        engine_id: bytes,
        send: Callable[[bytes, tuple[str, int]], None],
        boots: int | None = None,
        timelines: Path | None = None,  # agent.traps.timeline: kept there (None: memory only)
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
        self._creds: dict[tuple[bytes, bytes], Credentials] = {}  # (engine ID, user) → keys
        self._masters: dict[Credentials, dict[str, Any]] = {}  # passphrases hashed once
        self._engines: dict[str, set[bytes]] = {}  # device → sender engine IDs authenticated
        self._tentative_at: dict[str, float] = {}  # device → last tentative registration
        self.registration_interval = REGISTRATION_INTERVAL_S
        self.timelines = SenderTimelines(timelines)
        self._mp = self.engine.message_processing_subsystems[3]

    def close(self) -> None:
        self.timelines.save(force=True)
        self.engine.unregister_transport_dispatcher()

    def tick(self) -> None:
        """Let pysnmp expire what it caches (state of unanswered informs, peers' timelines);
        forget old digests, write moved-on sender timelines."""
        self._carrier.tick()
        self.timelines.tick(time.time())

    def _keys(self, creds: Credentials) -> dict[str, Any]:
        """add_v3_user's key arguments: master keys (Ku, RFC 3414 A.2.1), hashed from the
        passphrases once per user (~1 MB of hashing each): a registration only localizes."""
        kwargs = self._masters.get(creds)
        if kwargs is None:
            kwargs = {}
            if creds.auth_key:
                auth = AUTH[creds.auth_protocol or "SHA"]
                kwargs["authProtocol"] = auth
                kwargs["authKey"] = _config.AUTH_SERVICES[auth].hash_passphrase(
                    rfc1902.OctetString(creds.auth_key)
                )
                kwargs["authKeyType"] = _config.USM_KEY_TYPE_MASTER
                if creds.priv_key:
                    priv = PRIV[creds.priv_protocol or "AES"]
                    kwargs["privProtocol"] = priv
                    kwargs["privKey"] = _config.PRIV_SERVICES[priv].hash_passphrase(
                        auth, rfc1902.OctetString(creds.priv_key)
                    )
                    kwargs["privKeyType"] = _config.USM_KEY_TYPE_MASTER
            self._masters[creds] = kwargs
        return kwargs

    def add_user(self, creds: Credentials, engine_id: bytes | None = None) -> None:
        """Register `creds` under `engine_id` (default: ours, for informs); the first keys
        registered under an (engine ID, user) pair stay."""
        engine_id = self.engine_id if engine_id is None else engine_id
        key = (engine_id, creds.user.encode())
        if key in self._creds:
            return
        _config.add_v3_user(
            self.engine,
            creds.user,
            securityEngineId=rfc1902.OctetString(engine_id),
            **self._keys(creds),
        )
        self._creds[key] = creds

    def _remove_user(self, creds: Credentials, engine_id: bytes) -> None:
        """Destroy the (engine ID, user) row, its keys with it (they augment it). Not pysnmp's
        delete_v3_user: that walks every user row for clones (~0.2 s with 1,000 rows, ~0.9 s
        with 2,000: measured), and a forged trap asks for a removal."""
        (entry,) = self.engine.get_mib_builder().import_symbols(
            "SNMP-USER-BASED-SM-MIB", "usmUserEntry"
        )
        index = entry.getInstIdFromIndices(
            rfc1902.OctetString(engine_id), rfc1902.OctetString(creds.user)
        )
        self.engine.message_dispatcher.mib_instrum_controller.write_variables(
            (entry.name + (13,) + index, "destroy"), snmpEngine=self.engine
        )
        self._creds.pop((engine_id, creds.user.encode()), None)

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
        if header.user:
            if user not in users:
                raise UsmError("auth_failure", f"unknown_user user={user!r}")
            level = LEVELS.get(header.flags & 3)
            if level is None:
                raise UsmError("malformed", "msgFlags: privacy without authentication")
            # (RFC 3414 §4: a sender's time synchronization with our engine may be authNoPriv
            # for a priv user; pysnmp answers it with a Report and never takes it as an inform)
            syncing = header.engine_id == self.engine_id and header.boots == header.time == 0
            if level < required_level(users[user]) and not (syncing and level == 2):
                raise UsmError("auth_failure", f"wrong_security_level user={user!r}")
        tentative, previous = False, None
        trap_engine = header.engine_id != self.engine_id
        if header.engine_id and trap_engine and header.user:
            tentative, previous = self._register_sender(device, header.engine_id, users[user])
        try:
            received = self._process(data, addr, device, users, header)
        except Exception:  # not accepted, whatever the reason: the registration goes
            if tentative:
                self._remove_user(users[user], header.engine_id)
                if previous is not None:  # the keys of the device that had it, back
                    self.add_user(previous, header.engine_id)
            raise
        if previous is not None:
            log.warning(
                "SNMPv3 engine ID sent by devices whose user of that name has other keys (a "
                "cloned engine ID?): each swap costs a localization, at most one per device "
                "every %g s device=%s engine_id=%s user=%s",
                self.registration_interval,
                device,
                header.engine_id.hex(),
                user,
            )
        if header.engine_id and trap_engine:
            engines = self._engines.setdefault(device, set())
            if header.engine_id not in engines:
                engines.add(header.engine_id)
                log.info(
                    "SNMPv3 trap sender engine registered device=%s engine_id=%s user=%s",
                    device,
                    header.engine_id.hex(),
                    user,
                )
        return received

    def _process(
        self,
        data: bytes,
        addr: tuple[str, int],
        device: str,
        users: dict[str, Credentials],
        header: V3Header,
    ) -> Received:
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
        creds = users[name]
        if self._creds.get((header.engine_id, name.encode())) != creds:
            # checked with the keys another device's user of that name has
            raise UsmError("auth_failure", f"keys_of_another_device user={name!r}")
        if int(sec_level) < required_level(creds):
            raise UsmError("auth_failure", f"wrong_security_level user={name!r}")
        inform = pdu_type == api_v2c.InformRequestPDU.tagSet
        if pdu_type not in (api_v2c.TrapPDU.tagSet, api_v2c.InformRequestPDU.tagSet):
            raise UsmError("malformed", "no trap or inform PDU")
        trap = _trap(pdu, inform, name)
        authenticated = int(sec_level) >= 2
        if not inform and authenticated and header.engine_id != self.engine_id:
            now = time.time()
            args = (device, header.engine_id, header.boots, header.time, header.digest, now)
            refused = self.timelines.check(*args)
            if refused is not None:
                raise UsmError("auth_failure", f"{refused} user={name!r}")
            self.timelines.accept(*args)
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

        return Received(trap, name, ack, bytes(ctx_engine))

    def _register_sender(
        self, device: str, engine_id: bytes, creds: Credentials
    ) -> tuple[bool, Credentials | None]:
        """Register `creds` under a trap sender's engine ID. (True, the keys it replaced) when
        it is new: tentative, `receive` puts the replaced keys back unless the message is
        accepted. Another device's user of the same name with other keys may hold that pair
        (it sent with this engine ID first): its keys make way, so no device can keep another
        from its own engine ID; each message is checked with its sending device's keys."""
        if not 5 <= len(engine_id) <= 32:
            raise UsmError("malformed", f"engine ID of {len(engine_id)} octets")
        engines = self._engines.setdefault(device, set())
        if engine_id not in engines and len(engines) >= MAX_ENGINES_PER_DEVICE:
            raise UsmError("engine_id_limit", f"engine_id={engine_id.hex()}")
        held = self._creds.get((engine_id, creds.user.encode()))
        if held == creds:
            return False, None
        now = time.monotonic()
        if now - self._tentative_at.get(device, float("-inf")) < self.registration_interval:
            raise UsmError(
                "engine_id_limit",
                f"engine_id={engine_id.hex()} (one new engine ID per "
                f"{self.registration_interval:g} s)",
            )
        self._tentative_at[device] = now
        if held is not None:
            self._remove_user(held, engine_id)
        self.add_user(creds, engine_id)
        return True, held


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
    "REGISTRATION_INTERVAL_S",
    "Received",
    "UsmError",
    "UsmReceiver",
    "V3Header",
    "read_header",
    "required_level",
]
