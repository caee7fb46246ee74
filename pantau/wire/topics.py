"""MQTT topic names: where each message of a site travels, and how a topic is read back.

Site and device names become topic levels, so both sides build and parse topics here and
nowhere else.
"""

from __future__ import annotations

import re
from typing import Final

from pantau.errors import PantauError

TOPIC_PREFIX: Final = "pantau"

IDENTIFIER: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
"""Site and device names: no '/', '+' or '#', so each is exactly one topic level."""


def metrics_topic(site: str, device: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/{device}/metrics"


def status_topic(site: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/status"


def gap_topic(site: str, device: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/{device}/gap"


def event_topic(site: str, device: str) -> str:
    return f"{TOPIC_PREFIX}/{site}/{device}/event"


def event_gap_topic(site: str, device: str) -> str:
    """Events the agent's outbox dropped (a Gap whose device is "<device>/event")."""
    return f"{TOPIC_PREFIX}/{site}/{device}/event/gap"


def names_topic(site: str) -> str:
    """Agent → collector, retained: the names of the site's enumerations and help texts."""
    return f"{TOPIC_PREFIX}/{site}/names"


def ack_topic(site: str) -> str:
    """Collector → agent: what InfluxDB stored of the site's sample sets (see Ack)."""
    return f"{TOPIC_PREFIX}/{site}/ack"


def confirm_topic() -> str:
    """Collector → every agent, retained: "on" or "off", whether the collectors acknowledge
    (collector/acks.py; an agent in broker.confirm auto goes back to PUBACK only on "off").
    Two levels, so no site's topic (three or more) is ever this one."""
    return f"{TOPIC_PREFIX}/confirm"


class BadTopic(PantauError):
    """A topic that is not one of pantau's."""

    def __init__(self, topic: str) -> None:
        super().__init__("bad_topic", f"unexpected topic {topic[:200]!r}")


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """(kind, site, device): kind 'metrics', 'gap', 'event' or 'event_gap' with a device, or
    ('status', site, None) or ('names', site, None). Raises BadTopic otherwise."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == TOPIC_PREFIX and parts[3:] == ["event", "gap"]:
        if IDENTIFIER.match(parts[1]) and IDENTIFIER.match(parts[2]):
            return "event_gap", parts[1], parts[2]
    if len(parts) == 4 and parts[0] == TOPIC_PREFIX and parts[3] in ("metrics", "gap", "event"):
        if IDENTIFIER.match(parts[1]) and IDENTIFIER.match(parts[2]):
            return parts[3], parts[1], parts[2]
    if len(parts) == 3 and parts[0] == TOPIC_PREFIX and parts[2] in ("status", "names"):
        if IDENTIFIER.match(parts[1]):
            return parts[2], parts[1], None
    raise BadTopic(topic)
