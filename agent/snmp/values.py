"""Plain SNMP values, credentials and errors: the vocabulary every other module speaks.

Values are plain Python (int, bytes, str subclasses for OIDs and IP addresses, and three
sentinels for noSuchObject, noSuchInstance and endOfMibView), so the poller and the profiles can
be tested without pysnmp, and the engine can be swapped or sped up in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from pantau.errors import PantauError


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

    __slots__ = ()


class IpValue(str):
    """An IpAddress value, dotted quad."""

    __slots__ = ()


SnmpValue = int | bytes | OidValue | IpValue | Missing
Oid = tuple[int, ...]


class SnmpError(PantauError):
    """A request failed as a whole. `reason` is a short label used in metrics and sample sets."""


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
