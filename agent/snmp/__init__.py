"""SNMP for the agent: plain values, sessions to devices, and the client that hands them out.

`values` is the vocabulary (values, credentials, errors), `session` the request logic every
session shares, `ber` the BER codec of the fast path, `fast` the v1/v2c UDP session,
`pysnmp_session` the pysnmp session (SNMPv3 and fallbacks; the only importer of pysnmp) and
`client` the SnmpClient that owns engines and sockets.
"""

from agent.snmp.client import SnmpClient, takes_fast_path
from agent.snmp.session import Session
from agent.snmp.values import (
    END_OF_MIB,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    Credentials,
    IpValue,
    Missing,
    Oid,
    OidValue,
    SnmpError,
    SnmpTimeout,
    SnmpValue,
    oid_str,
    oid_tuple,
)

__all__ = [
    "END_OF_MIB",
    "NO_SUCH_INSTANCE",
    "NO_SUCH_OBJECT",
    "Credentials",
    "IpValue",
    "Missing",
    "Oid",
    "OidValue",
    "Session",
    "SnmpClient",
    "SnmpError",
    "SnmpTimeout",
    "SnmpValue",
    "oid_str",
    "oid_tuple",
    "takes_fast_path",
]
