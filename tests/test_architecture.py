"""The house's rules, enforced: who may import whom, no import cycles, one importer per library.

Read from the source with `ast` (nothing is imported), so a violation fails here before it can
hide behind lazy imports. Imports under `if TYPE_CHECKING:` count too: a cycle for the type
checker is a cycle for the next person who moves a line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pantau", "agent", "collector")
ALLOWED = {
    "pantau": {"pantau"},
    "agent": {"agent", "pantau"},
    "collector": {"collector", "pantau"},
}
"""Rooms and the rooms each may import: agent → pantau, collector → pantau, never agent ↔
collector, and the kernel imports neither."""

ONE_IMPORTER = {
    # agent.traps.usm: pysnmp's SNMPv3 message processing for received traps and informs (a
    # job of its own, loaded only with v3 trap users; it reuses pysnmp_session's key tables)
    "pysnmp": {"agent.snmp.pysnmp_session", "agent.profiles.mibs", "agent.traps.usm"},
    "aiomqtt": {"agent.publisher"},
    "paho": {"collector.intake"},
    "pika": {"collector.amqp_intake"},
    "influxdb_client": {"collector.sink"},
    "urllib3": {"collector.sink"},
    "prometheus_client": {"collector.exposition"},
    "icmplib": {"agent.icmp"},
    "msgspec": {"pantau.wire.model", "pantau.wire.codec", "pantau.wire.dictionaries"},
}
"""Third-party libraries and the only modules of ours allowed to import them."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(name: str, path: Path) -> Iterator[str]:
    """Every module `name` imports, absolute, at any depth of the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            for alias in node.names:  # `from pkg import module`
                yield f"{module}.{alias.name}"


def graph() -> dict[str, set[str]]:
    mods = modules()
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        out[name] = {m for m in imports(name, path) if m in mods and m != name}
    return out


def test_rooms_import_only_what_the_rule_allows():
    bad = []
    for name, targets in graph().items():
        room = name.split(".")[0]
        bad += [f"{name} → {t}" for t in sorted(targets) if t.split(".")[0] not in ALLOWED[room]]
    assert bad == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among modules (a package's own __init__ re-exporting its modules is
    not a cycle: those edges point down), or None."""
    down = {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for t in sorted(down.get(n, ())):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(down):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}}) == [
        "a.x",
        "a.y",
        "a.z",
        "a.x",
    ]
    assert find_cycle({"a": {"a.x"}, "a.x": {"a"}}) is None  # a package and its module


@pytest.mark.parametrize("library", sorted(ONE_IMPORTER))
def test_each_library_has_its_one_importer(library: str):
    users = {
        name
        for name, path in modules().items()
        if any(m == library or m.startswith(library + ".") for m in imports(name, path))
    }
    assert users <= ONE_IMPORTER[library]


def test_the_collector_loads_nothing_of_the_agent():
    code = (
        "import collector.service, collector.cli, sys;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'agent'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_kernel_loads_neither_side():
    code = (
        "import pantau.wire, pantau.settings, pantau.logs, pantau.systemd, pantau.backoff, sys;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'agent', 'collector'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_running_agent_loads_no_validation_library(tmp_path: Path):
    """`pantau-agent run` validates its config in a process of its own (agent/runtime.py):
    the agent that then polls, publishes and receives traps keeps neither pydantic nor PyYAML
    (~10 MiB of a site gateway's memory, docs/performance.md, Footprint)."""
    config = tmp_path / "agent.yaml"
    config.write_text(
        "site: arch\n"
        "broker: {host: 127.0.0.1, port: 9}\n"  # nothing listens: the publisher keeps trying
        f"outbox: {{path: {tmp_path / 'outbox.sqlite'}}}\n"
        "traps: {listen: '127.0.0.1:0'}\n"
        "devices:\n"
        "  - {name: r1, host: 127.0.0.1, port: 9, snmp: {community: c}}\n"
        "  - {name: r2, host: 127.0.0.1, port: 9, profiles: [system], ping: false}\n"
    )
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "import agent.cli\n"
        "from agent.runtime import load_validated\n"
        "from agent.service import Agent, open_outbox\n"
        f"cfg = load_validated(Path({str(config)!r}))\n"
        "async def main():\n"
        "    stop = asyncio.Event()\n"
        "    asyncio.get_running_loop().call_later(1.0, stop.set)\n"
        "    agent = Agent(cfg, open_outbox(cfg))\n"
        "    await agent.run(stop)\n"
        "    assert agent.pollers and agent.traps is not None\n"
        "asyncio.run(main())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'pydantic_core', "
        "'yaml'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True
    )
    assert out.stdout.strip() == "[]"
    # The same process validating in itself (check-config, probe) does load them: the check
    # above can fail.
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from agent.config import load_agent_config\n"
        f"load_agent_config(Path({str(config)!r}))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'yaml'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True
    )
    assert out.stdout.strip() == "['pydantic', 'yaml']"
