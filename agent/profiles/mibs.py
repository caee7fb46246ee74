"""Symbolic MIB names in profiles (`IF-MIB::ifHCInOctets`, `SNMPv2-MIB::sysUpTime.0`),
resolved to numeric OIDs when profiles are loaded (check-config, start-up), never while polling.

pysnmp ships compiled SNMPv2-MIB and the SNMP framework MIBs. Other modules are found in the
directories of PANTAU_MIB_DIRS (colon-separated): compiled pysnmp modules (*.py, e.g. made with
pysmi's mibdump) are loaded as they are; MIB source files are compiled with pysmi when it is
installed (`pip install pantau[mibs]`), which needs the sources of the modules they import
too. Nothing is fetched from the network. Profiles shipped with pantau use numeric OIDs, so none
of this is loaded unless an operator's profile uses a name.
"""

from __future__ import annotations

import os
import re
import tempfile
from functools import cache
from typing import Any

SYMBOL = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)::([A-Za-z][A-Za-z0-9-]*)((?:\.\d+)*)$")


def is_symbolic(text: str) -> bool:
    return SYMBOL.match(text) is not None


def mib_dirs() -> list[str]:
    return [d for d in os.environ.get("PANTAU_MIB_DIRS", "").split(":") if d]


@cache
def _view() -> tuple[Any, Any]:
    from pysnmp.smi import builder, view

    mib_builder = builder.MibBuilder()
    dirs = mib_dirs()
    if dirs:
        mib_builder.add_mib_sources(*(builder.DirMibSource(d) for d in dirs))
        try:
            from pysnmp.smi import compiler

            cache_dir = os.path.join(tempfile.gettempdir(), f"pantau-mibs-{os.getuid()}")
            # Explicit local sources and borrowers: pysnmp's defaults would try the network.
            compiler.add_mib_compiler(
                mib_builder,
                sources=[f"file://{d}" for d in dirs],
                destination=cache_dir,
                borrowers=[f"file://{d}" for d in dirs],
            )
        except Exception:  # pysmi missing: compiled modules in the dirs still load
            pass
    return mib_builder, view.MibViewController(mib_builder)


@cache
def resolve(symbol: str) -> str:
    """'MODULE::name[.suffix]' → dotted numeric OID; ValueError saying what is missing."""
    found = SYMBOL.match(symbol)
    if found is None:
        raise ValueError(f"not a MIB name: {symbol!r} (expected MODULE::name)")
    module, name, suffix = found.groups()
    from pysnmp.smi import error

    mib_builder, mib_view = _view()
    try:
        mib_builder.load_modules(module)
    except error.SmiError:
        where = ", ".join(mib_dirs()) or "PANTAU_MIB_DIRS is not set"
        raise ValueError(
            f"cannot resolve {symbol}: MIB module {module} not found ({where})"
        ) from None
    try:
        oid, _, _ = mib_view.get_node_name((name,), module)
    except error.SmiError:
        raise ValueError(f"cannot resolve {symbol}: {module} has no object {name!r}") from None
    return ".".join(str(x) for x in oid) + suffix
