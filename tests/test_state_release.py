"""A collector that stops reading a share of the sites (broker: amqp: its partition went to
another collector) takes them out of its current state at once: /metrics and the status page
must not show them online, as last seen, until silent_after. Messages of theirs still in its
pipeline do not bring them back; reading the share again does."""

from __future__ import annotations

import time

from collector.state import State
from pantau.wire import Names, SampleSet, Status
from tests.support.recording import scrape


def status(site: str, now: float) -> Status:
    return Status(v=1, site=site, online=True, ts_ms=int(now * 1000), devices=["radio"])


def sample_set(site: str, seq: int, now: float) -> SampleSet:
    return SampleSet(
        site=site,
        device="radio",
        seq=seq,
        ts_ms=int(now * 1000),
        duration_ms=5,
        up=True,
        reason="",
        groups=[],
        errors={},
    )


def feed(state: State, site: str, seq: int, now: float) -> None:
    state.on_status(status(site, now), now=now)
    state.on_sample_set(sample_set(site, seq, now), now=now)
    state.written_sample_set(site, "radio", seq, now=now)


def online(state: State) -> dict[str, float]:
    """pantau_site_online on /metrics, by site."""
    got = scrape(state)
    return {dict(k[1])["site"]: v for k, v in got.items() if k[0] == "pantau_site_online"}


def sites_in(state: State, family: str) -> set[str]:
    return {dict(k[1])["site"] for k in scrape(state) if k[0] == family}


def in_a(site: str) -> bool:
    return site.startswith("a-")


def test_released_sites_leave_current_state_and_stay_out_until_acquired() -> None:
    state = State(900, silent_after=180)
    now = time.time()
    for site in ("a-1", "a-2", "b-1"):
        feed(state, site, 1, now)
    assert online(state) == {"a-1": 1.0, "a-2": 1.0, "b-1": 1.0}

    assert sorted(state.release_sites(0, in_a)) == ["a-1", "a-2"]
    assert online(state) == {"b-1": 1.0}  # no stale "online"
    assert sites_in(state, "pantau_device_up") == {"b-1"}
    assert set(state.snapshot(now)) == {"b-1"}

    # what was in this collector's pipeline when the share moved: ignored by state, not
    # refused (the names message is not an unknown site's), and not brought back
    feed(state, "a-1", 2, now + 1)
    state.on_names("a-1", Names(profiles=[], devices={}))
    assert set(state.snapshot(now + 1)) == {"b-1"}
    feed(state, "b-1", 2, now + 1)  # the other share goes on
    assert state.snapshot(now + 1)["b-1"].devices["radio"].last.seq == 2

    # read again: followed again, sequence accounting from the first number it sees
    state.acquire_sites(0, in_a)
    feed(state, "a-1", 7, now + 2)
    snap = state.snapshot(now + 2)
    assert set(snap) == {"a-1", "b-1"} and snap["a-1"].online
    assert snap["a-1"].sequences["radio"].lost == 0


def test_releasing_one_share_keeps_the_others_released() -> None:
    state = State(900)
    now = time.time()
    state.release_sites(0, in_a)
    state.release_sites(1, lambda s: s.startswith("b-"))
    state.acquire_sites(1, lambda s: s.startswith("b-"))
    feed(state, "a-1", 1, now)
    feed(state, "b-1", 1, now)
    assert set(state.snapshot(now)) == {"b-1"}
    assert state.release_sites(1, lambda s: s.startswith("b-")) == ["b-1"]
    assert state.snapshot(now) == {}
