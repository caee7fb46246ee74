"""Trap and inform PDUs of SNMPv1 and SNMPv2c, decoded into one shape (RFC 3584 §3 for v1).

Everything is read with agent.snmp.ber; `decode_trap` raises ber.DecodeError, and nothing else,
on any input. SNMPv3 messages are refused with DecodeError("SNMPv3 ...") so the receiver can
hand them to USM (agent.traps.usm, which builds the same Trap with version 3) or, without v3
users, count them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.snmp import ber
from agent.snmp.values import Oid, OidValue, SnmpValue, oid_str

SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ENTERPRISE = (1, 3, 6, 1, 6, 3, 1, 1, 4, 3, 0)
SNMP_TRAPS = (1, 3, 6, 1, 6, 3, 1, 1, 5)  # generic traps: coldStart = .1 ... egpNeighborLoss = .6
VERSION_3 = 3


@dataclass(frozen=True, slots=True)
class Trap:
    version: int  # ber.VERSION_1, ber.VERSION_2C, or 3 (agent.traps.usm)
    community: bytes
    inform: bool
    request_id: int  # 0 for v1 traps
    trap_oid: str  # dotted, as snmpTrapOID.0 (built for v1)
    uptime: int  # sysUpTime.0 / time-stamp, hundredths of a second
    varbinds: list[tuple[Oid, SnmpValue]]  # without sysUpTime.0 and snmpTrapOID.0
    agent_addr: str = ""  # v1 only
    pdu_offset: int = 0  # where the PDU's tag is in the datagram


def _int(data: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    tag, start, end = ber.read_tlv(data, pos, limit)
    if tag != ber.INTEGER or start == end or end - start > ber.MAX_INTEGER_OCTETS:
        raise ber.DecodeError(f"{what} is not an INTEGER", pos)
    return int.from_bytes(data[start:end], "big", signed=True), end


def decode_trap(data: bytes) -> Trap:
    """A v1 trap, v2c trap or v2c inform; DecodeError for anything else."""
    try:
        tag, pos, msg_end = ber.read_tlv(data, 0, len(data))
        if tag != ber.SEQUENCE:
            raise ber.DecodeError("message is not a SEQUENCE", 0)
        version, pos = _int(data, pos, msg_end, "version")
        if version == VERSION_3:
            raise ber.DecodeError("SNMPv3 is not supported", 2)
        if version not in (ber.VERSION_1, ber.VERSION_2C):
            raise ber.DecodeError(f"SNMP version {version}", 2)
        tag, start, pos = ber.read_tlv(data, pos, msg_end)
        if tag != ber.OCTET_STRING:
            raise ber.DecodeError("community is not an OCTET STRING", start)
        community = data[start:pos]
        pdu_offset = pos
        pdu_tag, start, pdu_end = ber.read_tlv(data, pos, msg_end)
        if pdu_end != msg_end:
            raise ber.DecodeError("octets after the PDU", pdu_end)
        if pdu_tag == ber.TRAP_V1 and version == ber.VERSION_1:
            return _v1(data, community, start, pdu_end)
        if pdu_tag in (ber.TRAP_V2, ber.INFORM) and version == ber.VERSION_2C:
            trap = _v2(data, community, pdu_tag == ber.INFORM, start, pdu_end)
            return Trap(
                trap.version,
                trap.community,
                trap.inform,
                trap.request_id,
                trap.trap_oid,
                trap.uptime,
                trap.varbinds,
                pdu_offset=pdu_offset,
            )
        raise ber.DecodeError(f"PDU 0x{pdu_tag:02x} is no trap of SNMP version {version}", pos)
    except IndexError:
        raise ber.DecodeError("truncated", len(data)) from None


def _v1(data: bytes, community: bytes, pos: int, end: int) -> Trap:
    tag, start, pos = ber.read_tlv(data, pos, end)
    if tag != ber.OBJECT_IDENTIFIER:
        raise ber.DecodeError("enterprise is not an OBJECT IDENTIFIER", start)
    enterprise = ber.decode_oid(data, start, pos)
    tag, start, pos = ber.read_tlv(data, pos, end)
    if tag != ber.IP_ADDRESS or pos - start != 4:
        raise ber.DecodeError("agent-addr is not an IpAddress", start)
    agent_addr = "%d.%d.%d.%d" % tuple(data[start:pos])  # noqa: UP031
    generic, pos = _int(data, pos, end, "generic-trap")
    specific, pos = _int(data, pos, end, "specific-trap")
    tag, start, pos = ber.read_tlv(data, pos, end)
    if tag != ber.TIMETICKS or not 0 < pos - start <= 5:
        raise ber.DecodeError("time-stamp is not TimeTicks", start)
    uptime = int.from_bytes(data[start:pos], "big")
    tag, start, vbl_end = ber.read_tlv(data, pos, end)
    if tag != ber.SEQUENCE or vbl_end != end:
        raise ber.DecodeError("bad variable-bindings", pos)
    varbinds = ber.decode_varbinds(data, start, vbl_end, v1=True)
    if not 0 <= generic <= 6:
        raise ber.DecodeError(f"generic-trap {generic}", start)
    if generic == 6:  # enterpriseSpecific: enterprise.0.specific (RFC 3584 §3.1)
        trap_oid = oid_str((*enterprise, 0, specific))
    else:
        trap_oid = oid_str((*SNMP_TRAPS, generic + 1))
    return Trap(ber.VERSION_1, community, False, 0, trap_oid, uptime, varbinds, agent_addr)


def _v2(data: bytes, community: bytes, inform: bool, pos: int, end: int) -> Trap:
    request_id, pos = _int(data, pos, end, "request-id")
    _, pos = _int(data, pos, end, "error-status")
    _, pos = _int(data, pos, end, "error-index")
    tag, start, vbl_end = ber.read_tlv(data, pos, end)
    if tag != ber.SEQUENCE or vbl_end != end:
        raise ber.DecodeError("bad variable-bindings", pos)
    varbinds = ber.decode_varbinds(data, start, vbl_end)
    # RFC 3416 §4.2.6: sysUpTime.0 first, snmpTrapOID.0 second
    if len(varbinds) < 2 or varbinds[0][0] != SYS_UPTIME or varbinds[1][0] != SNMP_TRAP_OID:
        raise ber.DecodeError("no sysUpTime.0 and snmpTrapOID.0 at the start", start)
    uptime, trap_oid = varbinds[0][1], varbinds[1][1]
    if not isinstance(uptime, int) or not isinstance(trap_oid, OidValue):
        raise ber.DecodeError("sysUpTime.0 or snmpTrapOID.0 of the wrong type", start)
    return Trap(ber.VERSION_2C, community, inform, request_id, str(trap_oid), uptime, varbinds[2:])


def inform_response(data: bytes, trap: Trap) -> bytes:
    """The Response-PDU acknowledging the inform `data` decoded to `trap`: the same message with
    the PDU tag of a Response (RFC 3416 §4.2.7: same request-id, error-status and error-index
    0, which an inform carries, and the same varbinds)."""
    if not trap.inform:
        raise ValueError("only an inform is acknowledged")
    return data[: trap.pdu_offset] + bytes((ber.RESPONSE,)) + data[trap.pdu_offset + 1 :]
