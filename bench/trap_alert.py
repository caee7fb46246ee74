"""From trap to alert (issue 15: "the NOC knows in seconds"): how long from net-snmp's
`snmptrap` sending a linkDown at a site until a real Prometheus evaluating the shipped
deploy/prometheus/rules/pantau.rules.yml (unchanged) has DeviceAlarm firing for it.

Real servers on 127.0.0.1: Mosquitto, VictoriaMetrics (the InfluxDB write API), the collector, an
agent with its trap receiver, Prometheus 2.x scraping the collector. Per round, after a random
wait (a random phase against scrape and evaluation), a linkDown for a new ifIndex is sent; the
time until pantau_device_alarm is in the collector's /metrics, and until the alert is firing in
Prometheus' /api/v1/alerts, is recorded; a linkUp clears it again.
The alert has no `for:`, so the figure is the path (trap → agent outbox → MQTT → collector)
plus the wait for the next scrape and the next rule evaluation: with the shipped 15 s scrape
and evaluation intervals up to ~30 s, about half that on average; `--interval 5s` shows what a
shorter scrape and evaluation interval of the collector job buys. `--shipped` scrapes with the
shipped deploy/prometheus/prometheus.yml jobs (pantau-collector every 15 s without the alarms,
pantau-alarms: /metrics/alarms every 5 s; the pantau-traps group is evaluated every 5 s), the
way a NOC runs it.

Run: .venv/bin/python bench/trap_alert.py [--rounds 5] [--interval 15s | --shipped]
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devstack import procs  # noqa: E402
from devstack.prometheus import Prometheus  # noqa: E402
from devstack.servers import Mosquitto, VictoriaMetrics, free_port  # noqa: E402

RULES = REPO / "deploy" / "prometheus" / "rules" / "pantau.rules.yml"
SHIPPED = REPO / "deploy" / "prometheus" / "prometheus.yml"


def shipped_jobs(target: str) -> tuple[str, list[dict[str, Any]]]:
    """The shipped config's global scrape interval and its two collector jobs, aimed at
    `target`."""
    doc = yaml.safe_load(SHIPPED.read_text())
    jobs = [
        {**job, "static_configs": [{"targets": [target]}]}
        for job in doc["scrape_configs"]
        if job["job_name"] in ("pantau-collector", "pantau-alarms")
    ]
    return str(doc["global"]["evaluation_interval"]), jobs


SITE = "bts-trap"
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"


def snmptrap(target: str, trap: str, if_index: int) -> None:
    done = subprocess.run(
        ["snmptrap", "-M", "/dev/null", "-m", "", "-v", "2c", "-c", "public", target, "",
         trap, f"{IF_INDEX}.{if_index}", "i", str(if_index)],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"snmptrap: {done.stderr}")


def firing(prom: Prometheus, alarm: str) -> bool:
    return any(
        a["labels"].get("alertname") == "DeviceAlarm"
        and a["labels"].get("alarm") == alarm
        and a["state"] == "firing"
        for a in prom.alerts()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--interval", default="15s", help="Prometheus scrape and evaluation interval")
    ap.add_argument("--shipped", action="store_true", help="scrape as prometheus.yml ships")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seconds = float(args.interval.rstrip("s"))
    with tempfile.TemporaryDirectory(prefix="pantau-bench-") as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "mosquitto").start()
        victoria = VictoriaMetrics(tmp / "victoria").start()
        http_port, trap_port = free_port(), free_port("udp")
        ccfg = procs.collector_config(
            tmp / "collector.yaml",
            broker_port=broker.port,
            influx_url=victoria.url,
            http_port=http_port,
        )
        # The device does not answer SNMP (nothing listens on its port): traps need none.
        device = {"name": "radio", "host": "127.0.0.1", "port": free_port("udp"), "ping": False}
        acfg = procs.agent_config(
            tmp / "agent.yaml",
            site=SITE,
            broker_port=broker.port,
            devices=[device],
            interval=60.0,
            traps={"listen": f"127.0.0.1:{trap_port}", "poll_min_interval": 60},
        )
        coll = procs.collector(ccfg, tmp / "collector.log").start()
        agent = procs.agent(acfg, tmp / "agent.log").start()
        if args.shipped:
            args.interval, jobs = shipped_jobs(f"127.0.0.1:{http_port}")
            seconds = float(args.interval.rstrip("s"))
            prom = Prometheus(
                tmp / "prometheus",
                {},
                rule_files=[RULES],
                scrape_interval=args.interval,
                evaluation_interval=args.interval,
                scrape_configs=jobs,
            )
        else:
            prom = Prometheus(
                tmp / "prometheus",
                {"pantau-collector": [f"127.0.0.1:{http_port}"]},
                rule_files=[RULES],
                scrape_interval=args.interval,
                evaluation_interval=args.interval,
            )
        try:
            prom.start()
            procs.wait_until(prom.targets_up, 60, "Prometheus scraping the collector")
            to_metric: list[float] = []
            to_alert: list[float] = []
            target = f"127.0.0.1:{trap_port}"
            for n in range(1, args.rounds + 1):
                alarm = f"linkDown:ifIndex={n}"
                key = (
                    "pantau_device_alarm",
                    (("alarm", alarm), ("device", "radio"), ("severity", "major"), ("site", SITE)),
                )
                # a random phase against Prometheus' scrape and evaluation (else every round
                # after the first starts right after a resolution, at the same phase)
                time.sleep(random.uniform(0, seconds))
                t0 = time.monotonic()
                snmptrap(target, LINK_DOWN, n)
                procs.wait_until(lambda k=key: k in procs.scrape(http_port), 30, alarm, 0.05)
                to_metric.append(time.monotonic() - t0)
                procs.wait_until(lambda a=alarm: firing(prom, a), 120, f"{alarm} firing", 0.1)
                to_alert.append(time.monotonic() - t0)
                print(
                    f"round {n}: /metrics {to_metric[-1]:.2f} s, alert {to_alert[-1]:.2f} s",
                    flush=True,
                )
                snmptrap(target, LINK_UP, n)
                procs.wait_until(lambda a=alarm: not firing(prom, a), 120, f"{alarm} resolved", 0.2)
            print(
                f"snmptrap → pantau_device_alarm in /metrics: median "
                f"{statistics.median(to_metric):.2f} s, max {max(to_metric):.2f} s"
            )
            print(
                f"snmptrap → DeviceAlarm firing "
                f"({'as shipped' if args.shipped else 'scrape/evaluation every ' + args.interval}): "
                f"median {statistics.median(to_alert):.1f} s, min {min(to_alert):.1f} s, "
                f"max {max(to_alert):.1f} s over {args.rounds} rounds"
            )
        finally:
            prom.stop()
            agent.stop()
            coll.stop()
            victoria.stop()
            broker.stop()


if __name__ == "__main__":
    main()
