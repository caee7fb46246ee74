"""Read snmpsim recordings, so tests compute expected values from the data, not by hand."""

from __future__ import annotations

from pathlib import Path

NUMERIC_TAGS = {"2", "65", "66", "67", "70"}


def load(path: Path) -> dict[str, object]:
    """{dotted OID: value}: ints for numeric types, bytes for strings, str for OIDs/IPs."""
    out: dict[str, object] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.count("|") < 2:
            continue
        oid, tag, value = line.split("|", 2)
        oid = oid.lstrip(".")
        hexed = tag.endswith("x")
        base = tag.rstrip("xe")
        raw: bytes
        if hexed:
            raw = bytes.fromhex(value)
        elif tag.endswith("e"):
            raw = value.encode("latin-1").decode("unicode_escape").encode("latin-1")
        else:
            raw = value.encode("latin-1")
        if base in NUMERIC_TAGS:
            out.setdefault(oid, int(raw.decode()) if not hexed else int.from_bytes(raw, "big"))
        elif base == "64":
            out.setdefault(oid, ".".join(str(b) for b in raw) if hexed else value)
        elif base == "6":
            out.setdefault(oid, value.lstrip("."))
        else:
            out.setdefault(oid, raw)
    return out


def column(records: dict[str, object], column_oid: str) -> dict[str, object]:
    """{row index: value} for one table column."""
    prefix = column_oid + "."
    return {oid[len(prefix) :]: v for oid, v in records.items() if oid.startswith(prefix)}
