"""`pantau-collector`: run the collector or check its config."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from collector import __version__
from pantau.errors import PantauError
from pantau.settings import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pantau-collector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pantau-collector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("run", "subscribe, write InfluxDB, serve /metrics"),
        ("check-config", "validate the config and exit"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", "-c", type=Path, required=True)
    from collector.maintenance import cli as maintenance_cli

    maintenance_cli.add_parser(sub)
    from collector.availability import report

    rp = sub.add_parser("report", help="availability report of a period: CSV and HTML")
    rp.add_argument("--config", "-c", type=Path, required=True)
    report.add_arguments(rp)
    args = parser.parse_args(argv)
    if args.command == "maintenance":  # a client of the running collector: no config read
        return maintenance_cli.run(args)
    from collector.config import load_collector_config

    try:
        cfg = load_collector_config(args.config)
    except ConfigError as exc:
        print(f"config invalid ({len(exc.errors)} error(s)):", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    if args.command == "report":
        return report.command(cfg, args)
    if args.command == "check-config":
        print(
            f"{args.config}: ok: broker {cfg.mqtt.host}:{cfg.mqtt.port}, "
            f"influx {cfg.influx.url}, http {cfg.http.listen}"
        )
        inv = cfg.loaded_inventory
        if inv is not None:
            print(f"{cfg.inventory}: ok: {len(inv.sites)} sites, {len(inv.links)} links")
        return 0
    from collector.service import Collector
    from pantau.logs import setup_logging

    setup_logging(cfg.log.level, cfg.log.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # HUP = stop: docs/deploy.md
        signal.signal(sig, lambda *_: stop.set())
    try:
        collector = Collector(cfg)
    except (OSError, PantauError) as exc:  # PantauError: e.g. a corrupt maintenance file
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    collector.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
