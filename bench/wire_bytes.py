"""Bytes on the MQTT wire per sample: pantau against InfluxDB line protocol (issue 7: ≤ 15 %).

Polls every recording in tests/data/devices through the real agent (snmpsim, profile detection,
devstack/polling.py), and counts, for each device poll, the bytes of one MQTT 3.1.1
PUBLISH at QoS 1 (fixed header, remaining length, topic, packet id, payload) plus its 4-byte
PUBACK:

  * pantau: the sample set as the agent sends it (wire format version 2), on
    pantau/<site>/<device>/metrics; version 1 is shown too, for comparison;
  * baseline: what Telegraf's MQTT output sends with `batch = true` and `data_format = "influx"`,
    one message per poll carrying every line of the same samples (`collector.lineproto`, the
    lines the collector writes, one per row plus `pantau_poll`), on Telegraf's topic layout
    <prefix>/<host>/<plugin> = telegraf/<site>/snmp.

A sample is one field value of those lines. Both sides carry the very same samples, so the ratio
is the same per sample as per message. Nothing here depends on the machine: byte counts only
vary with the clock (timestamps, poll durations), so each device is polled --runs times and
medians are printed. --ideas adds what each part of version 2 is worth (the same sample sets
encoded with a part switched off) and what MQTT 5 topic aliases would add.
Run: .venv/bin/python bench/wire_bytes.py [--runs 3] [--site NAME] [--ideas]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import zlib
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector.lineproto import sample_set_lines  # noqa: E402
from devstack.polling import poll_recording  # noqa: E402
from devstack.servers import SnmpSim  # noqa: E402
from pantau.wire import SampleSet, encode_sample_set, metrics_topic  # noqa: E402
from pantau.wire import codec as wire  # noqa: E402

TARGET = 0.15
PUBACK = 4  # fixed header, remaining length 2, packet id (MQTT 3.1.1; 5.0 without reason code)
SEQ = 525_600  # a year of polls at 60 s (sequence numbers survive agent restarts)


def publish_bytes(topic: str, payload: int) -> int:
    """One MQTT PUBLISH at QoS 1 and its PUBACK, in bytes."""
    remaining = 2 + len(topic.encode()) + 2 + payload
    length = 1
    while remaining >= 128**length:
        length += 1
    return 1 + length + remaining + PUBACK


def alias_publish_bytes(payload: int) -> int:
    """MQTT 5 PUBLISH at QoS 1 with a topic alias already set on this connection: empty topic,
    properties length 1 + Topic Alias property 3; PUBACK without reason code."""
    remaining = 2 + 2 + 4 + payload
    length = 1
    while remaining >= 128**length:
        length += 1
    return 1 + length + remaining + PUBACK


def ideas(sets: list[SampleSet]) -> None:
    """Totals over the same sample sets with one part of version 2 switched off at a time."""

    def total(encode: object = encode_sample_set) -> int:
        return sum(
            publish_bytes(metrics_topic(ss.site, ss.device), len(encode(ss)))  # type: ignore
            for ss in sets
        )

    lp = sum(
        publish_bytes(
            f"telegraf/{ss.site}/snmp", len(("\n".join(sample_set_lines(ss)) + "\n").encode())
        )
        for ss in sets
    )
    rows = [
        (
            "version 1 (row-wise MessagePack, zlib above 256 B, site and device inside)",
            total(lambda ss: encode_sample_set(ss, version=1)),
        )
    ]
    saved = wire.DICTIONARIES[wire.DICTIONARY_ID]
    wire.DICTIONARIES[wire.DICTIONARY_ID] = b""
    try:
        rows.append(("version 2 without the preset dictionary (plain raw DEFLATE)", total()))
    finally:
        wire.DICTIONARIES[wire.DICTIONARY_ID] = saved
    decimal = wire._decimal_column
    wire._decimal_column = lambda column: None  # type: ignore[assignment]
    try:
        rows.append(("version 2 without decimal columns (floats as float64)", total()))
    finally:
        wire._decimal_column = decimal  # type: ignore[assignment]
    rows.append(("version 2", total()))
    try:
        import zstandard  # not a dependency: only to compare, when installed
    except ImportError:
        print("\n(zstandard is not installed: pip install zstandard to compare zstd too)")
    else:
        params = zstandard.ZstdCompressionParameters.from_level(
            19,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_checksum=0,
            write_content_size=0,
            write_dict_id=0,
        )
        zstd = zstandard.ZstdCompressor(
            compression_params=params,
            dict_data=zstandard.ZstdCompressionDict(
                saved, dict_type=zstandard.DICT_TYPE_RAWCONTENT
            ),
        )

        def zstd_payload(ss: SampleSet) -> bytes:
            payload = encode_sample_set(ss)
            body = payload[6:]
            if payload[1] != wire.V2_PLAIN:
                body = zlib.decompressobj(-15, zdict=saved).decompress(body)
            return payload[:6] + min(body, zstd.compress(body), key=len)

        rows.append(
            (
                "version 2 with zstd level 19 (magicless, same dictionary) for DEFLATE",
                total(zstd_payload),
            )
        )
    rows.append(
        (
            "version 2 + MQTT 5 topic alias (not implemented: a publisher change)",
            sum(alias_publish_bytes(len(encode_sample_set(ss))) for ss in sets),
        )
    )
    print(f"\nwhat each part is worth, all devices, one poll each (line protocol: {lp} bytes):")
    for label, value in rows:
        print(f"  {label:78} {value:7d} bytes  {value / lp:6.1%}")


def samples(ss: SampleSet) -> int:
    return 5 + sum(len(g.fields) for g in ss.groups if g.fields)  # pantau_poll has 5 fields


def measure(ss: SampleSet) -> dict[str, int]:
    lines = ("\n".join(sample_set_lines(ss)) + "\n").encode()
    return {
        "samples": samples(ss),
        "v2": publish_bytes(metrics_topic(ss.site, ss.device), len(encode_sample_set(ss))),
        "v1": publish_bytes(
            metrics_topic(ss.site, ss.device), len(encode_sample_set(ss, version=1))
        ),
        "lp": publish_bytes(f"telegraf/{ss.site}/snmp", len(lines)),
        "lp_payload": len(lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="polls per device (medians)")
    parser.add_argument("--site", default="kpg-ridge-01", help="site name in topics and tags")
    parser.add_argument("--ideas", action="store_true", help="what each part of v2 is worth")
    args = parser.parse_args()
    recordings = sorted((REPO / "tests" / "data" / "devices").glob("*.snmprec"))
    results: dict[str, list[dict[str, int]]] = {}
    last: list[SampleSet] = []
    with tempfile.TemporaryDirectory(prefix="pantau-wire-") as tmp:
        with SnmpSim(Path(tmp) / "snmpsim", recordings) as sim:
            for run in range(args.runs):
                for rec in recordings:
                    ss, _ = poll_recording(Path(tmp), sim.port, rec.stem)
                    # the recording's device under a plausible name, at a plausible site
                    device = rec.stem.split("_")[0][:63]
                    ss = msgspec.structs.replace(ss, site=args.site, device=device, seq=SEQ + run)
                    results.setdefault(rec.stem, []).append(measure(ss))
                    if run == args.runs - 1:
                        last.append(ss)

    def med(rows: list[dict[str, int]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(
        f"site {args.site!r}; MQTT 3.1.1 QoS 1: PUBLISH + PUBACK bytes per device poll "
        f"(median of {args.runs}); pantau v2 on pantau/<site>/<device>/metrics, line protocol "
        f"on telegraf/<site>/snmp"
    )
    head = (
        f"{'device':26} {'samples':>7} {'LP bytes':>8} {'v1 bytes':>8} {'v2 bytes':>8}  "
        f"{'LP B/s':>6} {'v2 B/s':>6}  {'v1/LP':>6} {'v2/LP':>6}  target"
    )
    print(head)
    print("-" * len(head))
    totals = {"samples": 0.0, "lp": 0.0, "v1": 0.0, "v2": 0.0}
    met = 0
    for name, rows in results.items():
        n, lp, v1, v2 = (med(rows, k) for k in ("samples", "lp", "v1", "v2"))
        for key, value in zip(("samples", "lp", "v1", "v2"), (n, lp, v1, v2), strict=True):
            totals[key] += value
        ok = v2 / lp <= TARGET
        met += ok
        print(
            f"{name[:26]:26} {n:7.0f} {lp:8.0f} {v1:8.0f} {v2:8.0f}  {lp / n:6.1f} {v2 / n:6.1f}"
            f"  {v1 / lp:6.1%} {v2 / lp:6.1%}  {'met' if ok else '-'}"
        )
    print("-" * len(head))
    n, lp, v1, v2 = totals["samples"], totals["lp"], totals["v1"], totals["v2"]
    print(
        f"{'all devices':26} {n:7.0f} {lp:8.0f} {v1:8.0f} {v2:8.0f}  {lp / n:6.1f} {v2 / n:6.1f}"
        f"  {v1 / lp:6.1%} {v2 / lp:6.1%}"
    )
    print(
        f"\nbytes on the MQTT wire per sample: pantau {v2 / n:.2f}, line protocol {lp / n:.2f}, "
        f"ratio {v2 / lp:.1%} (version 1: {v1 / lp:.1%}); "
        f"target <= {TARGET:.0%}: {'met' if v2 / lp <= TARGET else 'NOT met'} "
        f"(per device: met by {met} of {len(results)})"
    )
    if args.ideas:
        ideas(last)


if __name__ == "__main__":
    main()
