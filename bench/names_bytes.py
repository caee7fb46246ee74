"""Bytes of the names message (pantau/<site>/names: the profiles' state names and help texts,
issue 12) for sites built from the shipped profiles, as docs/wire-format.md ("Names") gives them.

The agent sends it once per connection and when a device's profiles change, never per poll: the
figures are per message. Payload bytes only (an MQTT 5 PUBLISH adds about 30: header, topic,
packet id). No servers needed. Run: .venv/bin/python bench/names_bytes.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.names import names_payload, site_names  # noqa: E402
from agent.profiles.model import builtin_profiles  # noqa: E402
from pantau.wire import encode_names  # noqa: E402


def main() -> None:
    profiles = builtin_profiles()
    base = [profiles["system"], profiles["if-mib"]]
    sites = {
        "a device with system and if-mib only": [("gw", base)],
        "a UHP VSAT modem (system, if-mib, uhp)": [("modem", [*base, profiles["uhp"]])],
        "20 devices: 10 Ceragon radios, 5 UHP modems, 5 Teltonika routers": [
            *((f"radio-{i:02}", [*base, profiles["ceragon-ceraos"]]) for i in range(10)),
            *((f"modem-{i}", [*base, profiles["uhp"]]) for i in range(5)),
            *((f"lte-{i}", [*base, profiles["teltonika"]]) for i in range(5)),
        ],
        f"one device for each of the {len(profiles)} shipped profiles": [
            (f"dev-{name}", [*base, p]) for name, p in sorted(profiles.items())
        ],
    }
    for what, devices in sites.items():
        payload = names_payload(devices)
        lean = encode_names(site_names(devices, with_help=False))
        size = len(payload) if payload is not None else -1
        print(f"{size:7,d} bytes ({len(lean):,d} without help texts)  {what}")


if __name__ == "__main__":
    main()
