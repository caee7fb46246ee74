"""A session to one device, and the request logic every kind of session shares.

GET with SNMPv1's noSuchName retry, and one GETBULK/GETNEXT step of a walk cut into rows, are
written once here; a session supplies only `_request` (one PDU out, one answer back) and, if it
cannot read some answers itself, `_fallback` (another session that can). The fast v1/v2c session
and the pysnmp session therefore cannot disagree on what an answer means.

What an answer may claim is checked here too, for both kinds of session: a GET answer counts only
for the OIDs it was asked, in the order asked (a varbind for any other OID is not believed: it is
left out of the result and counted in `stray["wrong_oid"]`; an OID asked and not answered is
absent from the result, as the poller treats a missing value); a walk step whose OID does not
increase (past the OID asked, or past the one before it in the same column) is counted in
`anomalies["walk_not_increasing"]` and passed on: the poller follows such agents (aviat-wtm
serves .60 before .59) as long as they do not repeat themselves, and counts them itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from agent.snmp.ber import GET, GETBULK, GETNEXT, error_status_name
from agent.snmp.values import END_OF_MIB, NO_SUCH_OBJECT, Missing, Oid, SnmpError, SnmpValue

Answer = tuple[int, int, list[tuple[Oid, SnmpValue]]]
"""(error-status, error-index counted from 1, varbinds) of one response."""

NO_SUCH_NAME = 2  # SNMPv1 error-status


class Session(Protocol):
    """Requests to one device. Every request method raises SnmpError (or SnmpTimeout)."""

    @property
    def version(self) -> str: ...

    @property
    def requests(self) -> int: ...

    def forget_engine(self) -> bool: ...

    async def get(self, oids: Sequence[Oid]) -> dict[Oid, SnmpValue]: ...

    async def next_rows(
        self, oids: Sequence[Oid], max_repetitions: int, bulk: bool
    ) -> list[list[tuple[Oid, SnmpValue]]]: ...


class RequestSession:
    """The shared half of a session: what a response means. Subclasses send the PDUs.

    Counters, per device, for the sample set's `errors` (read `counters` for all of them under
    keys the wire format accepts):

    * `fallbacks`: answers this session could not read and sent to its fallback session, by
      reason (`decode`, `unreadable`, `report`);
    * `stray`: datagrams or varbinds from this device (or claiming to answer it) that answered
      nothing asked: `wrong_oid`, `wrong_source`, `late`, `duplicate`, `community`,
      `not_response`, `unreadable`;
    * `anomalies`: encodings outside the standard that were read all the same (the keys of
      agent.snmp.ber.ANOMALIES) and `walk_not_increasing`.
    """

    def __init__(self) -> None:
        self.fallbacks: Counter[str] = Counter()
        self.stray: Counter[str] = Counter()
        self.anomalies: Counter[str] = Counter()

    @property
    def counters(self) -> Counter[str]:
        """Every count of this session as `fallback_<reason>`, `stray_<reason>` and
        `anomaly_<kind>`: keys for the sample set's per-device `errors`."""
        out: Counter[str] = Counter()
        for prefix, counts in (
            ("fallback", self.fallbacks),
            ("stray", self.stray),
            ("anomaly", self.anomalies),
        ):
            for key, n in counts.items():
                if n > 0:
                    out[f"{prefix}_{key}"] += n
        return out

    @property
    def version(self) -> str:
        raise NotImplementedError

    async def _request(self, pdu: int, oids: Sequence[Oid], max_repetitions: int) -> Answer | None:
        """Send one PDU (GET, GETNEXT or GETBULK) and return its answer; None when the answer
        could not be read here and the request must go to `_fallback()`."""
        raise NotImplementedError

    async def _fallback(self) -> Session:
        raise SnmpError("snmp_error", "no fallback session for an unreadable answer")

    async def get(self, oids: Sequence[Oid]) -> dict[Oid, SnmpValue]:
        """GET the given OIDs. A v1 noSuchName marks that OID missing and retries the rest."""
        pending = list(oids)
        out: dict[Oid, SnmpValue] = {}
        while pending:
            answer = await self._request(GET, pending, 0)
            if answer is None:
                out.update(await (await self._fallback()).get(pending))
                return out
            status, index1, varbinds = answer
            if status:
                index = index1 - 1
                if self.version == "1" and status == NO_SUCH_NAME and 0 <= index < len(pending):
                    out[pending.pop(index)] = NO_SUCH_OBJECT
                    continue
                raise SnmpError("snmp_error", f"{error_status_name(status)} at index {index1}")
            self._take_get_answer(pending, varbinds, out)
            break
        return out

    def _take_get_answer(
        self,
        asked: Sequence[Oid],
        varbinds: list[tuple[Oid, SnmpValue]],
        out: dict[Oid, SnmpValue],
    ) -> None:
        """The varbinds of a GET answer that answer what was asked, in the order asked, into
        `out`; any other is counted in stray["wrong_oid"] and left out."""
        wrong = 0
        for i, (name, value) in enumerate(varbinds):
            if i < len(asked) and name == asked[i]:
                out[name] = value
            else:
                wrong += 1
        if wrong:
            self.stray["wrong_oid"] += wrong

    async def next_rows(
        self, oids: Sequence[Oid], max_repetitions: int, bulk: bool
    ) -> list[list[tuple[Oid, SnmpValue]]]:
        """One GETBULK (or GETNEXT) step from `oids`: a list of rows, one (oid, value) per column.

        A column the device has no more of is reported as END_OF_MIB at its position.
        """
        # SNMPv1 has no GETBULK: a GETNEXT goes instead (RFC 2576 4.1.1), as pysnmp does.
        pdu = GETBULK if bulk and self.version != "1" else GETNEXT
        answer = await self._request(pdu, oids, max_repetitions)
        if answer is None:
            return await (await self._fallback()).next_rows(oids, max_repetitions, bulk)
        status, index1, flat = answer
        if status:
            index = index1 - 1
            if self.version == "1" and status == NO_SUCH_NAME and 0 <= index < len(oids):
                # v1 GETNEXT past the end of the MIB for one column: report it as endOfMib
                # for that column and ask again for the others.
                rest = [o for i, o in enumerate(oids) if i != index]
                rows = await self.next_rows(rest, max_repetitions, bulk) if rest else [[]]
                for row in rows:
                    row.insert(index, (oids[index], END_OF_MIB))
                return rows
            raise SnmpError("snmp_error", f"{error_status_name(status)} at index {index1}")
        if not flat:
            raise SnmpError("snmp_error", "Empty SNMP response message")  # as pysnmp says
        width = len(oids)
        # A truncated last repetition (the agent hit its PDU size) is dropped: the walk goes on
        # from the last complete row.
        rows = [flat[i : i + width] for i in range(0, len(flat) - width + 1, width)]
        if not rows:
            raise SnmpError("snmp_error", f"response of {len(flat)} varbinds for {width} columns")
        previous = list(oids)
        for row in rows:
            for col, (name, value) in enumerate(row):
                if not isinstance(value, Missing) and name <= previous[col]:
                    self.anomalies["walk_not_increasing"] += 1
                previous[col] = name
        return rows
