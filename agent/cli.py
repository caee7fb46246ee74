"""`pantau-agent`: run the agent, check a config, or probe devices once from the field."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from pantau.errors import ConfigError

if TYPE_CHECKING:
    from agent.config import AgentConfig, Device


def _load(path: Path) -> AgentConfig:
    """Imported late so `--help` stays instant on a small gateway."""
    from agent.config import load_agent_config

    return load_agent_config(path)


def _warn(cfg: AgentConfig) -> None:
    """Mistakes that do not stop the agent but leave something unmonitored, on stderr."""
    for line in cfg.warnings:
        print(f"warning: {line}", file=sys.stderr)


def device_profiles(cfg: AgentConfig, device: Device) -> str:
    """Which profiles a device uses, as check-config lists them: the fixed ones, and under
    detection how many candidates there are and which of them are the site's own."""
    if not device.snmp_enabled:
        return "ping only"
    text = ", ".join(p.name for p in device.profiles) or "(none)"
    if device.candidates:
        own = [p.name for p in device.candidates if p.name in cfg.site_profiles]
        text += f" + detection among {len(device.candidates)} profiles by sysObjectID/sysDescr" + (
            f" (the site's: {', '.join(own)})" if own else ""
        )
    return text


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    print(f"{cfg.path}: ok: site {cfg.site}, {len(cfg.devices)} device(s)")
    for d in cfg.devices:
        where = f"{d.host}:{d.port}" if d.snmp_enabled else d.host
        print(f"  {d.name} ({where}): {device_profiles(cfg, d)}")
    _warn(cfg)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from agent.outbox import OutboxError
    from agent.runtime import ValidatorFailed, load_validated
    from agent.service import Agent, AgentFailed, open_outbox
    from pantau.logs import setup_logging

    # Validated in a process of its own: the running agent never loads pydantic (agent/runtime.py).
    try:
        cfg = load_validated(args.config)
    except ValidatorFailed as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    setup_logging(cfg.log.level, cfg.log.format)
    for line in cfg.warnings:
        logging.getLogger("pantau.agent.config").warning("config warning: %s", line)
    try:
        outbox = open_outbox(cfg)
    except OutboxError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # HUP = stop: docs/deploy.md
            loop.add_signal_handler(sig, stop.set)
        await Agent(cfg, outbox).run(stop)

    try:
        asyncio.run(main())
    except OutboxError as exc:  # e.g. the disk filled up while running
        print(f"stopping: {exc}", file=sys.stderr)
        return 1
    except AgentFailed as exc:  # a task died: logged with its traceback; systemd restarts us
        print(f"stopping: {exc}", file=sys.stderr)
        return 1
    finally:
        outbox.close()
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from agent.probe import probe

    cfg = _load(args.config)
    _warn(cfg)
    devices = [d for d in cfg.devices if args.device in (None, d.name)]
    if not devices:
        print(f"no device named {args.device!r} in {cfg.path}", file=sys.stderr)
        return 2
    if args.traps is not None:
        return _probe_traps(args, cfg)
    results = asyncio.run(probe(cfg, devices))
    if args.json:
        print(json.dumps([r.as_json() for r in results], indent=2))
    else:
        for r in results:
            print(r.as_table())
    return 0 if all(r.sample_set.up for r in results) else 1


def _probe_traps(args: argparse.Namespace, cfg: AgentConfig) -> int:
    """`probe --traps [SECONDS]`: print the traps that arrive (agent.traps.watch); exit 1 when
    none did."""
    from dataclasses import replace

    from agent.config_file import TrapsConfig, plain_traps
    from agent.traps.watch import summary, watch

    traps = cfg.traps or plain_traps(TrapsConfig())
    if args.listen:
        traps = replace(traps, listen=TrapsConfig.model_validate({"listen": args.listen}).listen)
    try:
        w = asyncio.run(watch(traps, cfg.site, cfg.devices, args.traps, args.json))
    except OSError as exc:
        print(f"cannot listen on {traps.listen}: {exc} (is the agent running?)", file=sys.stderr)
        return 2
    print(summary(w), file=sys.stderr)
    return 0 if w.shown else 1


def cmd_discover(args: argparse.Namespace) -> int:
    from agent.discover import build_config, discover, explain

    snmp: dict[str, object] = {"version": args.snmp_version}
    if args.snmp_version == "3":
        snmp["user"] = args.user
        for key in (
            "auth_protocol",
            "auth_key_file",
            "auth_key_env",
            "priv_protocol",
            "priv_key_file",
            "priv_key_env",
            "context",
        ):
            value = getattr(args, key)
            if value is not None:
                snmp[key] = str(value)
    else:
        for key in ("community", "community_file", "community_env"):
            value = getattr(args, key)
            if value is not None:
                snmp[key] = str(value)
    cfg = build_config(
        args.host,
        args.port,
        snmp,
        timeout=args.timeout,
        retries=args.retries,
        profile_files=args.profiles_file or [],
    )
    result, profiles, sys_object_id, sys_descr = asyncio.run(discover(cfg))
    if args.json:
        doc = result.as_json()
        doc.update({"sys_object_id": sys_object_id, "sys_descr": sys_descr})
        print(json.dumps(doc, indent=2))
    else:
        print(explain(result, profiles, sys_object_id, sys_descr))
    return 0 if result.sample_set.up else 1


def _discover_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("discover", help="identify a device and show which profiles fit")
    p.add_argument("host")
    p.add_argument("--port", type=int, default=161)
    p.add_argument("--snmp-version", choices=["1", "2c", "3"], default="2c")
    p.add_argument("--community", help="v1/v2c community (or --community-file/-env)")
    p.add_argument("--community-file", type=Path)
    p.add_argument("--community-env")
    p.add_argument("--user", help="v3 user")
    p.add_argument("--auth-protocol")
    p.add_argument("--auth-key-file", type=Path, help="v3 keys never go on the command line")
    p.add_argument("--auth-key-env")
    p.add_argument("--priv-protocol")
    p.add_argument("--priv-key-file", type=Path)
    p.add_argument("--priv-key-env")
    p.add_argument("--context")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument(
        "--profiles-file", type=Path, action="append", help="extra profile file(s) to consider"
    )
    p.add_argument("--json", action="store_true")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pantau-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pantau-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("run", "poll devices and publish to the broker"),
        ("check-config", "validate the config and exit"),
        ("probe", "poll once and print what each device answers"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", "-c", type=Path, required=True)
        if name == "probe":
            p.add_argument("--device", help="only this device")
            p.add_argument("--json", action="store_true", help="machine-readable output")
            p.add_argument(
                "--traps",
                type=float,
                nargs="?",
                const=60.0,
                metavar="SECONDS",
                help="instead of polling: print the traps that arrive for SECONDS (60)",
            )
            p.add_argument("--listen", help="with --traps: host:port (default: traps.listen)")
    _discover_parser(sub)
    args = parser.parse_args(argv)
    handler = {
        "run": cmd_run,
        "check-config": cmd_check_config,
        "probe": cmd_probe,
        "discover": cmd_discover,
    }
    try:
        return handler[args.command](args)
    except ConfigError as exc:
        print(f"config invalid ({len(exc.errors)} error(s)):", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
