"""Dark is a state, not an absence: a site that went dark stays listed, dark, with its reason and
since when, however long it lasts and whatever `stale_after` is, until an operator decommissions
it. Its devices are `unknown` (neither up nor down) and their readings leave /metrics, while the
agent's last heartbeat and backlog stay. Pure, in process: the real-process counterpart is
tests/test_dark_sites_live.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest

from collector.config import load_collector_config
from collector.exposition import SelfMetrics
from collector.intake import Inbound
from collector.pipeline import Batch, Pipeline, RejectedStore
from collector.state import SiteState, State
from pantau.errors import PantauError
from pantau.wire import Field, Group, Kind, SampleSet, Status, encode_status, status_topic
from tests.support.recording import Scrape, scrape

DAY = 86400.0
STALE_AFTER = 60.0  # far shorter than the darkness below: the behaviour must not depend on it
SITE = "vsat-kpg-07"


def of_site(got: Scrape, name: str, site: str = SITE) -> dict[tuple[tuple[str, str], ...], float]:
    return {k[1]: v for k, v in got.items() if k[0] == name and ("site", site) in k[1]}


def heartbeat(ts: float, site: str = SITE, **extra: object) -> Status:
    return Status(
        v=1,
        site=site,
        online=True,
        ts_ms=int(ts * 1000),
        devices=["radio", "ups"],
        outbox_pending=42,
        outbox_bytes=4096,
        outbox_oldest_age_s=12.5,
        **extra,  # type: ignore[arg-type]
    )


WILL = Status(v=1, site=SITE, online=False, ts_ms=0, reason="connection lost")


def iface(index: int, name: str, oper: int, admin: int = 1, descr: str = "") -> Group:
    tags = {"ifIndex": str(index)}
    if name:
        tags["ifName"] = name
    if descr:
        tags["ifDescr"] = descr
    return Group(
        "interface",
        tags,
        [Field("oper_status", Kind.STATE, oper), Field("admin_status", Kind.STATE, admin)],
    )


def radio(seq: int, ts: float, *, up: bool = True) -> SampleSet:
    groups = [
        Group("signal", {}, [Field("rsl_dbm", Kind.GAUGE, -48.5)]),
        iface(1, "ether1", 1),
        iface(2, "ether2", 2),  # admin up, oper down: a down link
        iface(3, "", 7, descr="wlan60"),  # no ifName: named by ifDescr
        iface(4, "", 2),  # neither: by ifIndex
        iface(5, "ether5", 2, admin=2),  # admin down: not a problem
        iface(6, "lte1", 5),  # dormant: standby, not down
    ]
    return SampleSet(
        site=SITE,
        device="radio",
        seq=seq,
        ts_ms=int(ts * 1000),
        duration_ms=120,
        up=up,
        reason="" if up else "timeout",
        groups=groups if up else [],
    )


def ups(seq: int, ts: float, *, up: bool) -> SampleSet:
    return SampleSet(
        site=SITE,
        device="ups",
        seq=seq,
        ts_ms=int(ts * 1000),
        duration_ms=80,
        up=up,
        reason="" if up else "timeout",
        groups=[Group("power", {}, [Field("battery_charge_percent", Kind.GAUGE, 97.0)])]
        if up
        else [],
    )


def live_site(state: State, t0: float) -> None:
    state.on_status(heartbeat(t0), now=t0)
    state.on_sample_set(radio(1, t0), now=t0)
    state.on_sample_set(ups(1, t0, up=True), now=t0)
    state.on_sample_set(ups(2, t0 + 10, up=False), now=t0 + 10)
    state.on_sample_set(ups(3, t0 + 20, up=False), now=t0 + 20)
    state.on_status(heartbeat(t0 + 20), now=t0 + 20)


def test_a_site_dark_for_a_month_stays_listed_with_its_reason_and_unknown_devices() -> None:
    """The will arrives, a month passes (stale_after is a minute): the site is still there,
    offline, connection_lost, since the will; its devices unknown without readings; its last
    heartbeat and backlog still exported."""
    state = State(STALE_AFTER)
    t0 = float(int(time.time() - 30 * DAY))
    live_site(state, t0)
    before = scrape_at(state, t0 + 21)
    assert before[("pantau_device_up", (("device", "ups"), ("site", SITE)))] == 0.0
    assert before[("pantau_device_state", (("device", "radio"), ("site", SITE), ("state", "up")))]

    will_at = t0 + 30
    state.on_status(WILL, now=will_at)

    site = state.snapshot()[SITE]  # a month later, by the wall clock
    assert not site.online
    assert (site.offline_reason, site.offline_since) == ("connection_lost", will_at)
    assert {n: d.state for n, d in site.devices.items()} == {"radio": "unknown", "ups": "unknown"}

    got = scrape(state)
    assert of_site(got, "pantau_site_online") == {(("site", SITE),): 0.0}
    assert of_site(got, "pantau_site_offline_reason_info") == {
        (("reason", "connection_lost"), ("site", SITE)): 1.0
    }
    assert of_site(got, "pantau_site_offline_since_timestamp_seconds") == {
        (("site", SITE),): will_at
    }
    states = of_site(got, "pantau_device_state")
    assert states == {
        (("device", "radio"), ("site", SITE), ("state", "unknown")): 1.0,
        (("device", "ups"), ("site", SITE), ("state", "unknown")): 1.0,
    }
    for withdrawn in (
        "pantau_device_up",
        "pantau_device_down_reason_info",
        "pantau_device_poll_duration_seconds",
        "pantau_signal_rsl_dbm",
        "pantau_power_battery_charge_percent",
        "pantau_interface_oper_status",
    ):
        assert not of_site(got, withdrawn), withdrawn
    # When each device was last polled stays: since when it is unknown.
    assert len(of_site(got, "pantau_device_last_poll_timestamp_seconds")) == 2
    # The agent's last heartbeat (its age is what the NOC watches) and backlog stay.
    assert of_site(got, "pantau_agent_heartbeat_timestamp_seconds") == {
        (("site", SITE),): pytest.approx(t0 + 20)
    }
    assert of_site(got, "pantau_agent_outbox_pending") == {(("site", SITE),): 42.0}
    assert of_site(got, "pantau_agent_outbox_oldest_age_seconds") == {(("site", SITE),): 12.5}

    # Back: birth and a poll make it live again; the device polled is up, the other unknown
    # until it is polled (its heartbeat still lists it).
    back = time.time()
    state.on_status(heartbeat(back), now=back)
    state.on_sample_set(radio(2, back), now=back)
    site = state.snapshot(back + 1)[SITE]
    assert site.online and site.offline_reason == "" and site.offline_since == 0.0
    assert {n: d.state for n, d in site.devices.items()} == {"radio": "up", "ups": "unknown"}
    assert not of_site(scrape(state), "pantau_site_offline_reason_info")


def scrape_at(state: State, now: float) -> Scrape:
    """A scrape as of `now` (devices' states from a snapshot at `now`)."""
    snap = state.snapshot(now)
    return scrape(_Frozen(state, snap))  # type: ignore[arg-type]


class _Frozen:
    def __init__(self, state: State, snap: dict[str, SiteState]) -> None:
        self.sites_cut = state.sites_cut
        self._snap = snap

    def snapshot(self) -> dict[str, SiteState]:
        return self._snap


def test_clean_stop_and_silence_are_reasons_too() -> None:
    state = State(STALE_AFTER, silent_after=180)
    t0 = float(int(time.time() - 10 * DAY))
    live_site(state, t0)
    stop = Status(v=1, site=SITE, online=False, ts_ms=int((t0 + 25) * 1000), reason="agent stopped")
    state.on_status(stop, now=t0 + 25.5)
    site = state.snapshot()[SITE]
    assert (site.offline_reason, site.offline_since) == ("stopped", t0 + 25)

    other = State(STALE_AFTER, silent_after=180)
    live_site(other, t0)  # then nothing at all: no will (a half-open connection)
    assert other.snapshot(t0 + 20 + 179)[SITE].online
    site = other.snapshot(t0 + 20 + 181)[SITE]
    # dark (its devices unknown, the reason exported), but pantau_site_online stays the
    # agent's connection state: the SiteOffline rule pages on silence by per-site threshold
    assert (site.online, site.offline_reason, site.offline_since) == (True, "silent", t0 + 20)
    assert {d.state for d in site.devices.values()} == {"unknown"}
    # The will arriving later keeps since when the site is dark, and names the cause.
    other.on_status(WILL, now=t0 + 400)
    site = other.snapshot()[SITE]
    assert (site.offline_reason, site.offline_since) == ("connection_lost", t0 + 20)
    got = scrape(other)
    assert of_site(got, "pantau_site_offline_reason_info") == {
        (("reason", "connection_lost"), ("site", SITE)): 1.0
    }


def test_down_devices_and_links_carry_since_when() -> None:
    state = State(900)
    t0 = float(int(time.time() - 100))
    live_site(state, t0)
    site = state.snapshot(t0 + 21)[SITE]
    ups_state, radio_state = site.devices["ups"], site.devices["radio"]
    assert (ups_state.state, ups_state.down_since) == ("down", t0 + 10)  # the first failure
    assert radio_state.links_up == 1
    assert radio_state.links_down == {"ether2": t0, "wlan60": t0, "ifIndex 4": t0}
    state.on_sample_set(radio(2, t0 + 30), now=t0 + 30)
    assert state.snapshot(t0 + 31)[SITE].devices["radio"].links_down["ether2"] == t0
    state.on_sample_set(ups(4, t0 + 40, up=True), now=t0 + 40)
    assert state.snapshot(t0 + 41)[SITE].devices["ups"].down_since == 0.0


def test_a_stale_device_of_a_live_site_is_unknown_while_listed_and_forgotten_when_not() -> None:
    state = State(STALE_AFTER, silent_after=10 * DAY)
    t0 = float(int(time.time() - DAY))
    live_site(state, t0)
    # The site keeps its heartbeat; the ups is no longer polled, still configured.
    state.on_status(heartbeat(t0 + 600), now=t0 + 600)
    state.on_sample_set(radio(2, t0 + 600), now=t0 + 600)
    site = state.snapshot(t0 + 601)[SITE]
    assert {n: d.state for n, d in site.devices.items()} == {"radio": "up", "ups": "unknown"}
    # Its configuration drops the ups: it goes.
    state.on_status(msgspec.structs.replace(heartbeat(t0 + 700), devices=["radio"]), now=t0 + 700)
    state.on_sample_set(radio(3, t0 + 700), now=t0 + 700)
    assert set(state.snapshot(t0 + 701)[SITE].devices) == {"radio"}


def _pipeline(state: State, acked: list[Inbound]) -> Pipeline:
    class Sink:
        lines: list[str] = []

        def write(self, lines: list[str]) -> None:
            self.lines = self.lines + lines

    return Pipeline(
        sink=Sink(),  # type: ignore[arg-type]
        state=state,
        metrics=SelfMetrics(),
        ack=acked.append,
        rejected=RejectedStore(None, 0),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=1.0,
    )


def test_a_retained_empty_status_decommissions_the_site() -> None:
    """The operator deletes the retained status (an empty retained message): the collector
    forgets the site, acknowledges the message and writes nothing for it."""
    state = State(STALE_AFTER)
    t0 = float(int(time.time() - 30 * DAY))
    live_site(state, t0)
    live_site_b = heartbeat(t0, site="other-site")
    state.on_status(live_site_b, now=t0)
    state.on_status(WILL, now=t0 + 30)
    acked: list[Inbound] = []
    pipe = _pipeline(state, acked)

    pipe.handle(Inbound(status_topic(SITE), b"", 1, 1, 1))
    batch, pipe._batch = pipe._batch, Batch()
    assert batch.lines == [] and len(batch.msgs) == 1
    assert pipe.flush(batch, threading.Event())
    assert [m.mid for m in acked] == [1]
    assert SITE not in state.snapshot()
    got = scrape(state)
    assert not any(("site", SITE) in labels for _, labels in got)
    assert of_site(got, "pantau_site_online", "other-site")

    # Sample sets still in flight do not bring it back; a site that comes back later (a new
    # birth) is simply new again.
    state.on_sample_set(radio(9, time.time()))
    state.written_sample_set(SITE, "radio", 9)
    assert SITE not in state.snapshot()
    pipe.handle(Inbound(status_topic(SITE), encode_status(heartbeat(time.time())), 2, 1, 1))
    assert state.snapshot()[SITE].online


def test_decommissioned_sites_in_the_configuration_are_left_out(tmp_path: Path) -> None:
    state = State(STALE_AFTER, decommissioned=["old-site"])
    now = time.time()
    state.on_status(heartbeat(now, site="old-site"), now=now)
    state.on_status(msgspec.structs.replace(WILL, site="old-site"), now=now)
    state.on_status(heartbeat(now), now=now)
    assert set(state.snapshot()) == {SITE}
    assert state.sites_cut == 0, "not counted as refused over the limit of sites"

    cfg = tmp_path / "collector.yaml"
    cfg.write_text("decommissioned_sites: [old-site, vsat-abc-01]\nsilent_after: 300\n")
    loaded = load_collector_config(cfg)
    assert loaded.decommissioned_sites == ["old-site", "vsat-abc-01"]
    assert loaded.silent_after == 300
    cfg.write_text("decommissioned_sites: ['pantau/#']\n")
    with pytest.raises(PantauError):
        load_collector_config(cfg)


def test_sites_stay_bounded_while_dark_sites_are_kept() -> None:
    """Dark sites count against max_sites (decommissioning frees their room); devices of a
    dark site stay within max_devices."""
    state = State(STALE_AFTER, max_sites=3, max_devices=2)
    now = time.time() - DAY
    for i in range(5):
        state.on_status(heartbeat(now, site=f"s{i}"), now=now)
        state.on_status(msgspec.structs.replace(WILL, site=f"s{i}"), now=now + 1)
    assert set(state.snapshot()) == {"s0", "s1", "s2"} and state.sites_cut == 4
    for dev in ("a", "b", "c"):
        state.on_sample_set(SampleSet("s0", dev, 1, int(now * 1000), 5, True, ""), now=now + 2)
    assert set(state.snapshot()["s0"].devices) == {"a", "b"}
    assert state.forget_site("s1") and not state.forget_site("s1")
    state.on_status(heartbeat(now, site="s3"), now=now + 3)
    assert set(state.snapshot()) == {"s0", "s2", "s3"}
