"""Print a snapshot of the built-in profiles' names, to paste as the next wire dictionary's data.

Development time only: the running agent and collector read the frozen dictionaries in
pantau/wire/dictionaries.py and never build one. Table layouts that several profiles share are
printed once (the first profile that has them keeps its place), so the next dictionary spends no
bytes on repeats. Run from the repository: `python tools/wire_dict.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.profiles import Profile, builtin_profiles, entity_sensor_field_names
from pantau.wire.dictionaries import C, G, S, Schema, T

KINDS = {"gauge": G, "counter": C, "state": S, "info": T}
GENERIC = ("system", "if-mib")  # last in the dictionary: nearest to the data that uses them


def snapshot(profiles: Iterable[Profile]) -> tuple[list[str], list[Schema]]:
    """(sysObjectID prefixes, table shapes without repeats) of the profiles, in dictionary
    order: the generic profiles last."""
    oids: set[str] = set()
    tables: list[Schema] = []
    last: list[Schema] = []
    for p in profiles:
        out = last if p.name in GENERIC else tables
        if p.match is not None:
            oids.update(o + "." for o in p.match.sys_object_id)
        scalars: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        for s in p.scalars:
            # one group per set of constant tags, keys sorted (agent.profiles.plan.Plan.of)
            scalars.setdefault(tuple(sorted(s.tags)), []).append((s.name, KINDS[s.kind]))
        for keys, columns in scalars.items():
            out.append((p.measurement, keys, tuple(columns)))
        for t in p.tables:
            keys = (t.index_tag, *t.tags)
            if t.transform == "entity_sensor":
                names = sorted(set(entity_sensor_field_names()) - {"power_dbm"})
                out.extend((t.measurement, keys, ((n, G),)) for n in names)
                out.extend(("signal", keys, ((f"{d}power_dbm", G),)) for d in ("", "rx_", "tx_"))
            else:
                out.append((t.measurement, keys, tuple((c.name, KINDS[c.kind]) for c in t.columns)))
    ordered = tables + last[::-1]
    unique = list(dict.fromkeys(ordered))
    return sorted(oids, key=lambda o: (o.count("."), o)), unique


def main() -> None:
    oids, tables = snapshot(builtin_profiles().values())
    print("_OBJECT_IDS_N: Final = (")
    print('    "1.3.6.1.4.1.",')
    for o in oids:
        print(f'    "{o}",')
    print(")\n\n_TABLES_N: Final[tuple[Schema, ...]] = (")
    for measurement, keys, columns in tables:
        tags = ", ".join(f'"{k}"' for k in keys) + ("," if len(keys) == 1 else "")
        print(f'    ("{measurement}", ({tags}), (')
        line = "       "
        for name, kind in columns:
            item = f' ("{name}", {"GCST"[kind]}),'
            if len(line) + len(item) > 99:
                print(line)
                line = "       "
            line += item
        print(line)
        print("    )),")
    print(")")


if __name__ == "__main__":
    main()
