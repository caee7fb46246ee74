"""The report as CSV: one row of figures per device, site, uplink and link, and one row per
outage, maintenance window and stretch of unknown time (for a spreadsheet or the regency's own
tools; seconds as numbers, times as ISO 8601 UTC)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from collector.availability.compute import Figures, Report

FIGURES_COLUMNS = (
    "scope",
    "name",
    "district",
    "availability_percent",
    "sla_percent",
    "sla_met",
    "up_seconds",
    "down_seconds",
    "unknown_seconds",
    "maintenance_seconds",
    "period_seconds",
    "outages",
    "mttr_seconds",
)
PERIOD_COLUMNS = ("scope", "name", "district", "kind", "start", "end", "seconds", "cause")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(ms: int | float) -> str:
    """Seconds without a needless fraction (whole seconds are the usual case)."""
    s = ms / 1000
    return str(int(s)) if float(s).is_integer() else f"{s:.3f}"


def sla_met(f: Figures) -> str:
    if f.sla is None or f.ratio is None:
        return ""
    return "yes" if f.ratio * 100 >= f.sla else "no"


def figures_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FIGURES_COLUMNS)
    period = report.end_ms - report.start_ms
    for f in report.all():
        w.writerow(
            (
                f.scope,
                f.name,
                f.district,
                "" if f.ratio is None else f"{f.ratio * 100:.6f}",
                "" if f.sla is None else f"{f.sla:g}",
                sla_met(f),
                seconds(f.up_ms),
                seconds(f.down_ms),
                seconds(f.unknown_ms),
                seconds(f.maintenance_ms),
                seconds(period),
                f.count,
                "" if f.mttr_s is None else seconds(f.mttr_s * 1000),
            )
        )
    return out.getvalue()


def periods_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(PERIOD_COLUMNS)
    for f in report.all():
        for kind, items in (
            ("outage", f.outages),
            ("maintenance", f.maintenance),
            ("unknown", f.unknown),
        ):
            for p in items:
                w.writerow(
                    (
                        f.scope,
                        f.name,
                        f.district,
                        kind,
                        iso(p.start_ms),
                        iso(p.end_ms),
                        seconds(p.end_ms - p.start_ms),
                        p.cause,
                    )
                )
    return out.getvalue()
