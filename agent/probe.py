"""`pantau-agent probe`: poll devices once and show every value with its unit, for field work.

The text form names the profiles each device used; the JSON form (`--json`, also what
`discover --json` prints) gives each value's unit, state name and the profile's `help:` text."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agent.config import AgentConfig, Device
from agent.icmp import Pinger
from agent.poller import DevicePoller
from agent.snmp import SnmpClient
from pantau.wire import Kind, SampleSet


@dataclass(frozen=True)
class ProbeResult:
    device: Device
    sample_set: SampleSet
    profiles: tuple[str, ...] = ()  # what detection chose (or the configured list)

    def _units(self) -> dict[tuple[str, str], tuple[str, dict[int, str] | None, str]]:
        out: dict[tuple[str, str], tuple[str, dict[int, str] | None, str]] = {}
        for p in (*self.device.profiles, *self.device.candidates):
            if self.profiles and p.name not in self.profiles:
                continue
            for s in p.scalars:
                out[(p.measurement or "", s.name)] = (s.unit, s.states, s.help)
            for t in p.tables:
                for c in t.columns:
                    out[(t.measurement, c.name)] = (c.unit, c.states, c.help)
        return out

    def rows(self) -> list[dict[str, object]]:
        units = self._units()
        rows: list[dict[str, object]] = []
        for g in self.sample_set.groups:
            for f in g.fields:
                unit, states, help_text = units.get((g.measurement, f.name), ("", None, ""))
                row: dict[str, object] = {
                    "measurement": g.measurement,
                    "tags": g.tags,
                    "name": f.name,
                    "kind": f.kind.name.lower(),
                    "value": f.value,
                    "unit": unit,
                }
                if help_text:
                    row["help"] = help_text
                if f.kind is Kind.STATE and states and isinstance(f.value, int):
                    row["state"] = states.get(f.value, "")
                rows.append(row)
        return rows

    def as_json(self) -> dict[str, object]:
        s = self.sample_set
        return {
            "device": s.device,
            "host": self.device.host,
            "up": s.up,
            "reason": s.reason,
            "profiles": list(self.profiles),
            "ts_ms": s.ts_ms,
            "duration_ms": s.duration_ms,
            "errors": s.errors,
            "values": self.rows(),
        }

    def as_table(self) -> str:
        s = self.sample_set
        head = (
            f"== {s.device} ({self.device.host}:{self.device.port}) "
            f"{'up' if s.up else 'DOWN: ' + s.reason} in {s.duration_ms} ms"
        )
        lines = [head]
        if self.profiles:
            lines.append("   profiles: " + ", ".join(self.profiles))
        elif self.device.snmp_enabled:
            lines.append("   profiles: " + (", ".join(p.name for p in self.device.profiles)))
        if s.errors:
            lines.append(
                "   anomalies: " + ", ".join(f"{k}={v}" for k, v in sorted(s.errors.items()))
            )
        table = []
        for r in self.rows():
            tags = r["tags"]
            assert isinstance(tags, dict)
            label = ",".join(f"{k}={v}" for k, v in tags.items())
            value = str(r["value"])
            if "state" in r:
                value += f" ({r['state']})"
            table.append(
                (
                    f"{r['measurement']}{'{' + label + '}' if label else ''}",
                    str(r["name"]),
                    value,
                    str(r["unit"]),
                )
            )
        if table:
            widths = [max(len(row[i]) for row in table) for i in range(3)]
            for row in table:
                lines.append(
                    f"   {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  "
                    f"{row[2]:>{widths[2]}} {row[3]}".rstrip()
                )
        return "\n".join(lines)


async def probe(cfg: AgentConfig, devices: list[Device]) -> list[ProbeResult]:
    async with SnmpClient() as client:
        # A probe publishes nothing, so its sample sets need no real sequence numbers.
        pinger = Pinger()
        pollers = [DevicePoller(cfg.site, d, client, lambda _: 0, pinger) for d in devices]
        if any(p.needs_pysnmp for p in pollers):
            await client.preload()  # not in the first poll's duration
        results = await asyncio.gather(*(p.poll() for p in pollers))
    return [
        ProbeResult(p.device, r, p.plan.profiles) for p, r in zip(pollers, results, strict=True)
    ]
