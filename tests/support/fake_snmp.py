"""An in-process SNMP session and client for the poller: OID → value pairs, no sockets."""

from __future__ import annotations

from agent.snmp import END_OF_MIB, NO_SUCH_OBJECT, oid_tuple


class FakeSession:
    """Serves OID → value pairs for GET and GETNEXT/GETBULK, in the order given (like snmpsim,
    file order) or, with sort=True, in OID order; counts the requests."""

    version = "2c"

    def __init__(self, records: list[tuple[str, object]], *, sort: bool = False) -> None:
        pairs = [(oid_tuple(o), v) for o, v in records]
        self.records = sorted(pairs) if sort else pairs
        self.requests = 0

    async def get(self, oids):
        self.requests += 1
        table = dict(self.records)
        return {o: table.get(o, NO_SUCH_OBJECT) for o in oids}

    def _next(self, oid):
        for i, (o, _) in enumerate(self.records):
            if o == oid and i + 1 < len(self.records):
                return self.records[i + 1]
        for o, v in self.records:  # not in the file: first greater, assuming sorted
            if o > oid:
                return o, v
        return oid, END_OF_MIB

    async def next_rows(self, oids, max_repetitions, bulk):
        self.requests += 1
        rows, cur = [], list(oids)
        for _ in range(max_repetitions):
            row = [self._next(o) for o in cur]
            rows.append(row)
            cur = [o for o, _ in row]
        return rows


class FakeClient:
    """Hands out its one session (or raises it, if it is an exception)."""

    def __init__(self, session) -> None:
        self._session = session

    async def session(self, *a, **kw):
        if isinstance(self._session, Exception):
            raise self._session
        return self._session
