"""snmpEngineBoots of the agent's SNMPv3 engine, kept in its state directory (RFC 3414 §2.2).

Informs go to the agent's engine, and a sender keeps the engine's boots and time once it has
discovered them. RFC 3414 wants snmpEngineBoots to grow at every start of an engine whose
snmpEngineID stays the same: a restarted engine that reported the same boots again, with its time
back near zero, would be outside the time window of a sender that cached the old time, and a
message recorded before the restart could be replayed into the new one. So the agent counts its
starts in a small file beside its outbox (`trap-engine-boots.json`), per engine ID, written
atomically (temporary file, fsync, rename, fsync of the directory) before the receiver
listens. An engine ID that changed starts again at 1, as the RFC allows. A file that cannot be read is moved aside
(`.bad`) and logged, and the count starts again at 1 (there is no value known to be higher); a
file that cannot be written stops the receiver (the agent's state directory is broken: its outbox
would fail too).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("pantau.agent.traps")

BOOTS_FILE = "trap-engine-boots.json"
MAX_BOOTS = 2_147_483_647
"""RFC 3414 §2.2.2: the value latches here; the engine then needs new keys (logged)."""


def next_boots(state_dir: Path, engine_id: bytes) -> int:
    """This start's snmpEngineBoots for `engine_id`: the last one kept in `state_dir` plus
    one (1 the first time), kept before it is returned. OSError when it cannot be kept."""
    path = state_dir / BOOTS_FILE
    previous = 0
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ValueError("not a version 1 document")
        if doc.get("engine_id") == engine_id.hex():
            kept = doc["boots"]
            if type(kept) is not int or not 0 <= kept <= MAX_BOOTS:
                raise ValueError(f"boots {str(kept)[:32]!r}")
            previous = kept
        else:
            log.info(
                "SNMPv3 engine ID changed, snmpEngineBoots starts again engine_id=%s",
                engine_id.hex(),
            )
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError) as exc:
        aside = path.with_name(path.name + ".bad")
        log.error(
            "snmpEngineBoots file unreadable, moved aside; counting again from 1 (senders that "
            "cached our engine time get notInTimeWindow once and discover again) file=%s "
            "error=%s moved_to=%s",
            path,
            exc,
            aside,
        )
        try:
            os.replace(path, aside)
        except OSError as move:
            log.error("cannot move the snmpEngineBoots file aside file=%s error=%s", path, move)
    boots = min(previous + 1, MAX_BOOTS)
    if boots == MAX_BOOTS:
        log.error(
            "snmpEngineBoots reached its maximum (RFC 3414 2.2.2): configure new SNMPv3 keys and "
            "a new traps.engine_id engine_id=%s",
            engine_id.hex(),
        )
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"version": 1, "engine_id": engine_id.hex(), "boots": boots}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    # The rename is on disk only once the directory is: lost in a power cut, the next start
    # would count from the old value and reuse this boots value (reopening the time window of
    # informs recorded under it).
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return boots
