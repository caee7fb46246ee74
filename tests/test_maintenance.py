"""Maintenance windows in process: the checks on a request, the store file, the line protocol,
the HTTP API's answers and the status page's marks (docs/maintenance.md). The parts that talk
to Alertmanager, InfluxDB and a running collector are in test_maintenance_live.py."""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.inventory import Inventory, load_inventory
from collector.maintenance import cli as maintenance_cli
from collector.maintenance import store
from collector.maintenance.alertmanager import Alertmanager, SilenceFailed
from collector.maintenance.api import make_api
from collector.maintenance.cli import UsageError, duration, when
from collector.maintenance.manager import Maintenance
from collector.maintenance.window import BadRequest, Window, line, parse_request
from collector.statuspage import render
from pantau.settings import ConfigError, Secret

NOW = 1_796_000_000.0  # 2026-11-30

INVENTORY = """\
sites:
  - {name: pop-a, district: Hilir, uplink: fiber}
  - {name: site-b, district: Hulu, uplink: microwave, upstream: mw-a-b}
  - {name: hiran, district: Hulu, uplink: vsat, upstream: vsat-hiran}
  - {name: kampung, district: Hulu, uplink: microwave, upstream: hiran}
links:
  - name: mw-a-b
    kind: microwave
    a: {site: pop-a, device: radio-1, interface: radio0}
    b: {site: site-b, device: radio-2, interface: radio0}
  - name: vsat-hiran
    kind: satellite
    a: {far_end: "VSAT hub Jakarta"}
    b: {site: hiran, device: vsat-modem}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return load_inventory(path)


class Counted:
    """The metrics protocol, counting (SelfMetrics does the same on a registry)."""

    def __init__(self) -> None:
        self.silence: list[str] = []
        self.write: list[str] = []
        self.saves = 0

    def silence_failed(self, reason: str) -> None:
        self.silence.append(reason)

    def maintenance_write_failed(self, reason: str) -> None:
        self.write.append(reason)

    def maintenance_save_failed(self) -> None:
        self.saves += 1


def parse(body: Any, inventory: Inventory | None = None) -> Window:
    return parse_request(body, now=NOW, taken=set(), inventory=inventory)


def refused(body: Any, inventory: Inventory | None = None) -> tuple[str, str]:
    with pytest.raises(BadRequest) as err:
        parse(body, inventory)
    return err.value.field, err.value.detail


# -- the checks ---------------------------------------------------------------------------------


def test_a_site_window_from_now_for_two_hours() -> None:
    w = parse({"site": "pop-a", "duration": 7200, "reason": "replace rectifier"})
    assert (w.scope, w.site, w.device, w.link) == ("site", "pop-a", None, None)
    assert (w.start, w.end, w.state) == (int(NOW), int(NOW) + 7200, "planned")
    assert w.matchers() == [("site", "pop-a")]
    assert w.status(NOW) == "active" and w.status(NOW + 7200) == "over"
    assert w.id.startswith("m-")


def test_scopes_and_their_matchers(inventory: Inventory) -> None:
    d = parse({"site": "pop-a", "device": "radio-1", "duration": 60, "reason": "x"}, inventory)
    assert d.scope == "device" and d.matchers() == [("site", "pop-a"), ("device", "radio-1")]
    k = parse({"link": "mw-a-b", "duration": 60, "reason": "x"}, inventory)
    assert k.scope == "link" and k.matchers() == [("link", "mw-a-b")] and k.site is None
    k2 = parse({"site": "site-b", "link": "mw-a-b", "duration": 60, "reason": "x"}, inventory)
    assert k2.site == "site-b"


def test_iso_times_need_an_offset() -> None:
    w = parse(
        {
            "site": "s",
            "start": "2026-12-01T02:00:00+07:00",
            "end": "2026-11-30T22:30:00Z",
            "reason": "r",
        }
    )
    assert w.start == 1796065200 and w.end - w.start == 3.5 * 3600
    field, detail = refused({"site": "s", "start": "2026-12-01T02:00", "end": "+2h", "reason": "r"})
    assert field == "start" and "offset" in detail


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"site": "s", "start": NOW + 3600, "end": NOW + 60, "reason": "r"}, "end", "after start"),
        ({"site": "s", "start": NOW, "end": NOW, "reason": "r"}, "end", "after start"),
        ({"site": "s", "duration": 60}, "reason", "required"),
        ({"site": "s", "duration": 60, "reason": "  "}, "reason", "required"),
        ({"site": "s", "duration": 60, "reason": "two\nlines"}, "reason", "one line"),
        ({"duration": 60, "reason": "r"}, "site", "required"),
        ({"site": "s", "reason": "r"}, "end", "required"),
        ({"site": "s", "end": NOW + 60, "duration": 60, "reason": "r"}, "duration", "not both"),
        ({"site": "s", "duration": -5, "reason": "r"}, "duration", "more than 0"),
        ({"site": "s", "duration": "2h", "reason": "r"}, "duration", "seconds"),
        ({"site": "s", "duration": 32 * 86400, "reason": "r"}, "end", "31 days"),
        ({"site": "s", "start": NOW - 7200, "end": NOW - 60, "reason": "r"}, "end", "over"),
        ({"site": "s", "start": NOW + 400 * 86400, "duration": 60, "reason": "r"}, "start", "year"),
        ({"site": "s/x", "duration": 60, "reason": "r"}, "site", "name"),
        (
            {"site": "s", "device": "d", "link": "l", "duration": 60, "reason": "r"},
            "link",
            "not both",
        ),
        ({"site": "s", "duration": 60, "reason": "r", "colour": "red"}, "colour", "unknown field"),
        ({"site": "s", "duration": 60, "reason": "r", "force": "yes"}, "force", "true or false"),
        ({"site": "s", "start": "tomorrow", "duration": 60, "reason": "r"}, "start", "ISO 8601"),
        ({"site": "s", "start": True, "duration": 60, "reason": "r"}, "start", "unix seconds"),
        ({"site": "s", "start": 12, "duration": 60, "reason": "r"}, "start", "2000 and 2100"),
        (["site", "s"], "body", "JSON object"),
    ],
)
def test_mistakes_name_the_field(body: Any, field: str, words: str) -> None:
    got_field, detail = refused(body)
    assert got_field == field, detail
    assert words in detail


def test_force_allows_long_and_past_windows() -> None:
    w = parse({"site": "s", "duration": 60 * 86400, "reason": "r", "force": True})
    assert w.forced and w.end - w.start == 60 * 86400
    past = parse({"site": "s", "start": NOW - 7200, "end": NOW - 60, "reason": "r", "force": True})
    assert past.status(NOW) == "over"


def test_unknown_names_are_refused_when_an_inventory_is_loaded(inventory: Inventory) -> None:
    body = {"site": "nowhere", "duration": 60, "reason": "r"}
    field, detail = refused(body, inventory)
    assert field == "site" and "nowhere" in detail and "inventory" in detail
    assert parse(body).site == "nowhere"  # without an inventory, any well-formed name
    field, detail = refused({"link": "mw-x", "duration": 60, "reason": "r"}, inventory)
    assert field == "link" and "mw-x" in detail
    field, detail = refused(
        {"site": "nowhere", "device": "d", "duration": 60, "reason": "r"}, inventory
    )
    assert field == "site"
    # a link's site must be one of its ends
    field, detail = refused(
        {"site": "pop-b", "link": "mw-a-b", "duration": 60, "reason": "r"}, inventory
    )
    assert field == "site"


# -- line protocol ------------------------------------------------------------------------------


def test_the_line_is_the_contracts_point() -> None:
    w = parse({"site": "pop-a", "device": "radio-1", "duration": 3600, "reason": 'swap "ODU", \\'})
    # names are identifiers; a space (impossible through the API) would still be escaped
    w = w.model_copy(update={"id": "m-0000abcd", "device": "radio 1"})
    assert line(w) == (
        r"pantau_maintenance,device=radio\ 1,id=m-0000abcd,scope=device,site=pop-a "
        rf'start_s={int(NOW)}i,end_s={int(NOW) + 3600}i,reason="swap \"ODU\", \\",'
        rf'state="planned" {int(NOW) * 1000}'
    )
    link = parse({"link": "mw-a-b", "duration": 60, "reason": "r"})
    text = line(link.model_copy(update={"id": "m-1", "state": "cancelled"}))
    assert text.startswith("pantau_maintenance,id=m-1,link=mw-a-b,scope=link start_s=")
    assert text.endswith(f'state="cancelled" {int(NOW) * 1000}')


# -- the store ----------------------------------------------------------------------------------


def test_store_round_trip_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "state" / "maintenance.json"
    assert store.load(path) == []
    windows = [parse({"site": "s", "duration": 60, "reason": f"r{i}"}) for i in range(3)]
    store.save(path, windows)
    assert store.load(path) == windows
    assert [p.name for p in path.parent.iterdir()] == ["maintenance.json"]  # no temporary left


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"format": "pantau-maintenance", "version": 1, "windows": [', "line 1 column"),
        ("", "not JSON"),
        ('{"windows": []}', "not a pantau-maintenance file"),
        ('{"format": "pantau-maintenance", "version": 9, "windows": []}', "version 9"),
        ('{"format": "pantau-maintenance", "version": 1, "windows": {}}', "not a list"),
    ],
)
def test_a_corrupt_store_is_refused_with_the_reason(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "maintenance.json"
    path.write_text(text)
    with pytest.raises(store.StoreError) as err:
        store.load(path)
    assert str(path) in err.value.detail and words in err.value.detail
    assert path.read_text() == text  # never emptied


def test_a_bad_window_in_the_store_names_it(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.json"
    w = parse({"site": "s", "duration": 60, "reason": "r"})
    store.save(path, [w, w.model_copy(update={"id": "m-2"})])
    doc = json.loads(path.read_text())
    doc["windows"][1]["scope"] = "planet"
    path.write_text(json.dumps(doc))
    with pytest.raises(store.StoreError) as err:
        Maintenance(path, alertmanager=None, writer=None, metrics=Counted())
    assert "windows[1].scope" in err.value.detail
    doc["windows"][1] = doc["windows"][0]
    path.write_text(json.dumps(doc))
    with pytest.raises(store.StoreError, match="twice"):
        store.load(path)


# -- the HTTP API -------------------------------------------------------------------------------


def call(
    app: Any,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    ctype: str = "application/json",
    remote: str = "127.0.0.1",
    auth: str | None = None,
) -> tuple[int, dict[str, Any]]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "REMOTE_ADDR": remote,
        "CONTENT_TYPE": ctype,
        "CONTENT_LENGTH": str(len(body or b"")),
        "wsgi.input": io.BytesIO(body or b""),
    }
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = auth
    status: list[str] = []
    out = b"".join(app(environ, lambda s, h: status.append(s)))
    code = int(status[0].split()[0])
    return code, json.loads(out) if out.startswith(b"{") else {"text": out.decode()}


@pytest.fixture
def manager(tmp_path: Path, inventory: Inventory) -> Maintenance:
    return Maintenance(
        tmp_path / "maintenance.json",
        alertmanager=None,
        writer=None,
        metrics=Counted(),
        inventory=inventory,
    )


def post(app: Any, doc: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
    return call(app, "POST", "/api/maintenance", json.dumps(doc).encode(), **kw)


def test_api_declares_lists_and_ends(manager: Maintenance, tmp_path: Path) -> None:
    app = make_api(manager)
    code, made = post(
        app,
        {"site": "pop-a", "start": time.time() - 60, "duration": 3600, "reason": "fiber splice"},
    )
    assert code == 201, made
    assert made["status"] == "active" and made["silence"]["state"] == "none"
    code, listed = call(app, "GET", "/api/maintenance")
    assert code == 200 and [w["id"] for w in listed["windows"]] == [made["id"]]
    assert call(app, "GET", f"/api/maintenance/{made['id']}")[1]["reason"] == "fiber splice"
    # durable at once: a new manager on the same file sees it
    again = Maintenance(manager.path, alertmanager=None, writer=None, metrics=Counted())
    assert [w.id for w in again.windows()] == [made["id"]]
    code, ended = call(app, "DELETE", f"/api/maintenance/{made['id']}")
    assert code == 200 and ended["status"] == "over" and ended["state"] == "planned"
    assert ended["end"] <= int(time.time()) + 1 and ended["ended"] is not None
    code, again_ended = call(app, "DELETE", f"/api/maintenance/{made['id']}")
    assert code == 409 and "already over" in again_ended["error"]
    assert call(app, "DELETE", "/api/maintenance/m-nothere")[0] == 404
    assert call(app, "GET", "/api/maintenance/m-nothere")[0] == 404


def test_a_window_not_begun_is_cancelled(manager: Maintenance) -> None:
    app = make_api(manager)
    _, made = post(app, {"site": "pop-a", "start": "+0", "duration": 60, "reason": "r"})
    assert made["field"] == "start"  # the API takes no relative times; the CLI turns them
    _, made = post(
        app, {"site": "pop-a", "start": time.time() + 3600, "duration": 60, "reason": "r"}
    )
    assert made["status"] == "upcoming"
    code, cancelled = call(app, "DELETE", f"/api/maintenance/{made['id']}")
    assert code == 200 and cancelled["state"] == "cancelled" and cancelled["end"] == made["end"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"", "body"),
        (b'{"site": "pop-a", "duration": 60}', "reason"),
        (b'{"site": "atlantis", "duration": 60, "reason": "r"}', "site"),
        (b'{"site": "pop-a", "start": 1900000000, "end": 1899990000, "reason": "r"}', "end"),
    ],
)
def test_api_bad_bodies_answer_400_naming_the_field(
    manager: Maintenance, body: bytes, field: str
) -> None:
    code, doc = call(make_api(manager), "POST", "/api/maintenance", body)
    assert code == 400 and doc["field"] == field, doc
    assert manager.windows() == []


def test_api_changes_need_loopback_or_the_token(manager: Maintenance) -> None:
    open_app = make_api(manager)
    doc = {"site": "pop-a", "duration": 60, "reason": "r"}
    code, answer = post(open_app, doc, remote="10.1.2.3")
    assert code == 403 and "loopback" in answer["error"]
    assert call(open_app, "GET", "/api/maintenance", remote="10.1.2.3")[0] == 200  # reads are open
    locked = make_api(manager, Secret("s3cret"))
    assert post(locked, doc)[0] == 403  # even from loopback
    assert post(locked, doc, auth="Bearer wrong")[0] == 403
    assert post(locked, doc, remote="10.1.2.3", auth="Bearer s3cret")[0] == 201
    assert post(open_app, doc, ctype="text/plain")[0] == 415
    assert call(open_app, "PUT", "/api/maintenance")[0] == 405
    assert call(open_app, "POST", "/api/maintenance/m-1", b"{}")[0] == 405


# -- the status page ----------------------------------------------------------------------------


def test_status_page_marks_windows_in_force(manager: Maintenance) -> None:
    site = manager.create({"site": "pop-a", "duration": 3600, "reason": "rectifier <swap>"})
    link = manager.create({"link": "mw-a-b", "duration": 3600, "reason": "realign"})
    later = manager.create(
        {"site": "site-b", "start": time.time() + 7200, "duration": 60, "reason": "later"}
    )
    in_force = manager.in_force()
    assert {w.id for w in in_force} == {site.id, link.id}
    page = render({}, maintenance=in_force)
    assert f'data-window="{site.id}"' in page and f'data-window="{link.id}"' in page
    assert later.id not in page
    assert "rectifier &lt;swap&gt;" in page and "link mw-a-b" in page
    assert "MAINTENANCE" not in render({})


def test_status_page_marks_the_sites_of_a_link_window(
    manager: Maintenance, inventory: Inventory
) -> None:
    from collector.state import State
    from pantau.wire import Status

    state = State(900.0)
    for site in ("pop-a", "site-b", "hiran", "kampung"):
        state.on_status(Status(v=1, site=site, online=True, ts_ms=int(time.time() * 1000)))
    link = manager.create({"link": "mw-a-b", "duration": 3600, "reason": "realign"})
    vsat = manager.create({"link": "vsat-hiran", "duration": 3600, "reason": "hub work"})
    page = render(state.snapshot(), maintenance=manager.in_force(), inventory=inventory)
    sections = {
        site: page[page.index(f'data-site="{site}"') :].split("</section>")[0]
        for site in ("pop-a", "site-b", "hiran", "kampung")
    }
    assert all(f'data-window="{link.id}"' in sections[s] for s in ("pop-a", "site-b"))
    # the link's own row in the links list, and the sites behind the link (kampung hangs off
    # hiran, behind the VSAT link): all cut off by the work
    rows = {
        name: page[page.index(f'data-link="{name}"') :].split("</ul></li>")[0]
        for name in ("mw-a-b", "vsat-hiran")
    }
    assert f'data-window="{link.id}"' in rows["mw-a-b"]
    assert f'data-window="{vsat.id}"' in rows["vsat-hiran"]
    assert f'data-window="{vsat.id}"' not in rows["mw-a-b"]
    assert all(f'data-window="{vsat.id}"' in sections[s] for s in ("hiran", "kampung"))
    assert f'data-window="{link.id}"' not in sections["kampung"]
    assert f'data-window="{vsat.id}"' not in sections["pop-a"]


# -- the CLI's own parsing ----------------------------------------------------------------------


def test_cli_durations_and_times() -> None:
    assert duration("90m") == 5400 and duration("1h30m") == 5400 and duration("2d") == 172800
    assert duration("45") == 45
    for bad in ("", "2x", "h", "-1h", "1h 2"):
        with pytest.raises(UsageError):
            duration(bad)
    assert when("now", NOW) == int(NOW) and when("+2h", NOW) == int(NOW) + 7200
    assert when("2026-12-01T02:00+07:00", NOW) == 1796065200
    with pytest.raises(UsageError, match="not a time"):
        when("tomorrow 2am", NOW)


def test_the_example_configs_maintenance_block_is_valid(repo_root: Path, tmp_path: Path) -> None:
    from collector.config import load_collector_config

    text = (repo_root / "config" / "collector.example.yaml").read_text()
    block = text[text.index("# maintenance:") :].splitlines()
    # the block: up to the first line that is not part of it (the next section follows)
    end = next((i for i, ln in enumerate(block[1:], 1) if not ln.startswith("#   ")), len(block))
    lines = [ln[2:] for ln in block[:end] if "#   #" not in ln]
    assert len(lines) >= 5
    (tmp_path / "collector.yaml").write_text(text + "\n".join(lines) + "\n")
    cfg = load_collector_config(tmp_path / "collector.yaml")
    assert cfg.maintenance is not None
    assert cfg.maintenance.file == Path("/var/lib/pantau-collector/maintenance.json")
    assert str(cfg.maintenance.alertmanager_url) == "http://127.0.0.1:9093/"
    (tmp_path / "relative.yaml").write_text("maintenance: {file: maintenance.json}\n")
    with pytest.raises(ConfigError, match=r"relative.yaml:1: maintenance: .*absolute"):
        load_collector_config(tmp_path / "relative.yaml")


def test_a_window_that_does_not_fit_its_scope_is_refused_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.json"
    store.save(path, [parse({"site": "s", "device": "d", "duration": 60, "reason": "r"})])
    doc = json.loads(path.read_text())
    doc["windows"][0]["device"] = None
    path.write_text(json.dumps(doc))
    with pytest.raises(store.StoreError, match=r"windows\[0\].*a device window names device, site"):
        store.load(path)


# -- review fixes (issue 14) --------------------------------------------------------------------


def test_a_backdated_start_needs_force() -> None:
    """A start 30 days back would take 30 days of outages out of the SLA without a word."""
    body = {"site": "s", "start": NOW - 30 * 86400, "end": NOW + 3600, "reason": "r"}
    field, detail = refused(body)
    assert field == "start" and "force" in detail and "past" in detail
    field, _ = refused({**body, "start": NOW - 301})
    assert field == "start"
    assert parse({**body, "start": NOW - 300}).start == int(NOW) - 300  # typed a bit late: fine
    assert parse({**body, "force": True}).start == int(NOW) - 30 * 86400


def test_link_windows_silence_what_the_link_cuts_off(inventory: Inventory) -> None:
    """A link's work darkens the sites behind it: their SiteOffline (cause = the link, or for a
    VSAT link whose state is unknown: the site itself) must be silenced too."""
    k = parse({"link": "mw-a-b", "duration": 60, "reason": "x"}, inventory)
    assert (k.cuts, k.behind) == (("mw-a-b",), ("site-b",))
    assert k.silence_groups() == [
        [("link", "mw-a-b")],
        [("cause", "mw-a-b")],
        [("site", "site-b")],
    ]
    v = parse({"link": "vsat-hiran", "duration": 60, "reason": "x"}, inventory)
    assert v.silence_groups() == [
        [("link", "vsat-hiran")],
        [("cause", "vsat-hiran")],
        [("site", "hiran")],
    ]
    # a device that is a link end cuts that link: the same, plus its own labels
    d = parse({"site": "hiran", "device": "vsat-modem", "duration": 60, "reason": "x"}, inventory)
    assert d.cuts == ("vsat-hiran",) and d.silence_groups() == [
        [("site", "hiran"), ("device", "vsat-modem")],
        [("link", "vsat-hiran")],
        [("cause", "vsat-hiran")],
        [("site", "hiran")],
    ]
    assert v.public(NOW)["silence"] == {"id": None, "all": {}, "state": "none"}
    some = v.model_copy(update={"silences": {'link="vsat-hiran"': "s1"}})
    assert some.public(NOW)["silence"] == {
        "id": "s1",
        "all": {'link="vsat-hiran"': "s1"},
        "state": "partial",  # the sites behind it are not silenced yet
    }
    r = parse({"site": "pop-a", "device": "radio-1", "duration": 60, "reason": "x"}, inventory)
    assert [g for g in r.silence_groups() if g[0][0] == "site"][1:] == [[("site", "site-b")]]
    # a device that is no link end, and a site window: their own labels only
    ups = parse({"site": "pop-a", "device": "ups-1", "duration": 60, "reason": "x"}, inventory)
    assert ups.silence_groups() == [[("site", "pop-a"), ("device", "ups-1")]]
    site = parse({"site": "pop-a", "duration": 60, "reason": "x"}, inventory)
    assert site.silence_groups() == [[("site", "pop-a")]]
    # without an inventory nothing is known to be behind a link
    bare = parse({"link": "mw-a-b", "duration": 60, "reason": "x"})
    assert bare.silence_groups() == [[("link", "mw-a-b")], [("cause", "mw-a-b")]]


def test_no_alertmanager_means_no_silence_pending(manager: Maintenance) -> None:
    """Without an Alertmanager no silence is ever placed: `pending` would alert forever."""
    manager.create({"site": "pop-a", "duration": 600, "reason": "r"})
    manager.reconcile()
    assert manager.silences_pending == 0


def _break_dir(directory: Path) -> Path:
    """The store's directory replaced by a plain file: every save fails (OSError), as on a
    full or read-only disk (chmod does not stop root). Returns where the directory went."""
    away = directory.with_name(directory.name + ".away")
    shutil.move(directory, away)
    directory.write_text("")
    return away


def test_api_logs_and_counts_a_failed_save(
    tmp_path: Path, inventory: Inventory, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Counted()
    m = Maintenance(
        tmp_path / "state" / "maintenance.json",
        alertmanager=None,
        writer=None,
        metrics=metrics,
        inventory=inventory,
    )
    app = make_api(m)
    code, made = post(app, {"site": "pop-a", "duration": 600, "reason": "r"})
    assert code == 201
    _break_dir(tmp_path / "state")
    with caplog.at_level(logging.WARNING, logger="pantau.collector.maintenance"):
        code, doc = post(app, {"site": "site-b", "duration": 600, "reason": "r"})
        assert code == 500 and "cannot save" in doc["error"]
        code, doc = call(app, "DELETE", f"/api/maintenance/{made['id']}")
        assert code == 500 and "cannot save" in doc["error"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("POST" in w and "cannot save" in w for w in warnings), warnings
    assert any("DELETE" in w and made["id"] in w for w in warnings), warnings
    assert metrics.saves == 2
    assert [w.id for w in m.windows()] == [made["id"]] and m.get(made["id"]).ended is None


def test_alertmanager_url_with_a_password_is_refused(tmp_path: Path) -> None:
    from collector.config import load_collector_config

    path = tmp_path / "collector.yaml"
    path.write_text(
        "http: {listen: '127.0.0.1:9877'}\n"
        "maintenance:\n"
        f"  file: {tmp_path / 'm.json'}\n"
        "  alertmanager_url: http://noc:s3cret@127.0.0.1:9093\n"
    )
    with pytest.raises(ConfigError) as err:
        load_collector_config(path)
    text = str(err.value)
    assert "collector.yaml:2: maintenance" in text and "alertmanager_url" in text
    assert "s3cret" not in text


def test_a_connection_failure_never_shows_userinfo() -> None:
    from devstack.servers import free_port

    am = Alertmanager(f"http://noc:s3cret@127.0.0.1:{free_port()}", timeout=2)
    w = parse({"site": "pop-a", "duration": 60, "reason": "r"})
    with pytest.raises(SilenceFailed) as err:
        am.create(w, w.matchers(), NOW)
    assert err.value.reason == "connection"
    assert "s3cret" not in err.value.detail and "noc" not in err.value.detail
    assert "127.0.0.1" in err.value.detail


@pytest.fixture
def served(manager: Maintenance) -> Iterator[str]:
    """The API on a real HTTP server (wsgiref, as collector/http.py), for the CLI."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, make_api(manager), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_cli(url: str, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    maintenance_cli.add_parser(parser.add_subparsers(dest="command"))
    return maintenance_cli.run(parser.parse_args(["maintenance", "--url", url, *argv]))


def test_cli_start_is_the_collectors_now_and_end_counts_from_start(
    manager: Maintenance, served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The collector's clock decides "now" (this host's may be off by minutes), and `--end +1h`
    means an hour after the start, as `--for 1h` does."""
    skew = 1000.0  # the collector's clock is 1000 s ahead of this host's
    manager.clock = lambda: time.time() + skew
    assert run_cli(served, "add", "--site", "pop-a", "--end", "+2h", "--reason", "r") == 0
    (w,) = manager.windows()
    assert abs(w.start - (time.time() + skew)) < 5 and w.end - w.start == 7200
    assert (
        run_cli(
            served, "add", "--site", "pop-a", "--start", "+2h", "--end", "+1h", "--reason", "later"
        )
        == 0
    ), capsys.readouterr().err
    later = next(x for x in manager.windows() if x.reason == "later")
    assert later.end - later.start == 3600
    at = int(time.time() + skew) + 86400
    assert (
        run_cli(
            served,
            "add",
            "--site",
            "pop-a",
            "--start",
            str(at),
            "--end",
            str(at - 60),
            "--reason",
            "x",
        )
        == 2
    )
    assert "end: must be after start" in capsys.readouterr().err
