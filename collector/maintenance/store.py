"""The windows' durable home: one JSON file the collector owns, replaced atomically.

Why a file and not a database: a few hundred windows a year, read whole at start and rewritten
whole on each change, fit a JSON file an operator can read (and back up) as it is. Each save
writes a temporary file beside it, fsyncs it, renames it over the old one and fsyncs the
directory, so a crash or power cut leaves the old file or the new one, never half of one.

A file that cannot be read back (truncated, edited by hand into invalid JSON, a window that
breaks the rules) is refused at start with the reason: starting empty would silently drop
every planned window, and with it the silences and the availability exclusions they promise.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pydantic

from collector.maintenance.window import Window
from pantau.errors import PantauError
from pantau.settings import format_loc

FORMAT = "pantau-maintenance"
VERSION = 1


class StoreError(PantauError):
    """The store file cannot be used; the detail says which file and why."""


def load(path: Path) -> list[Window]:
    """The windows in `path` (none when it does not exist yet); StoreError when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError("unreadable", f"maintenance file {path}: cannot read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(
            "corrupt",
            f"maintenance file {path}: line {exc.lineno} column {exc.colno}: not JSON: {exc.msg}"
            " (fix or move it away; it is not emptied)",
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StoreError("corrupt", f"maintenance file {path}: not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise StoreError(
            "corrupt",
            f"maintenance file {path}: version {doc.get('version')!r}, expected {VERSION}",
        )
    raw = doc.get("windows")
    if not isinstance(raw, list):
        raise StoreError("corrupt", f"maintenance file {path}: `windows` is not a list")
    windows: list[Window] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        try:
            window = Window.model_validate(item)
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = format_loc(("windows", i, *first["loc"]))
            raise StoreError(
                "corrupt", f"maintenance file {path}: {where}: {first['msg']}"
            ) from None
        if window.id in seen:
            raise StoreError(
                "corrupt", f"maintenance file {path}: windows[{i}]: id {window.id} twice"
            )
        if window.end <= window.start:
            raise StoreError(
                "corrupt", f"maintenance file {path}: windows[{i}]: end is not after start"
            )
        seen.add(window.id)
        windows.append(window)
    return windows


def save(path: Path, windows: Iterable[Window]) -> None:
    """Replace the file atomically with `windows` (OSError when the disk refuses)."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "windows": [w.model_dump() for w in windows],
    }
    data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
