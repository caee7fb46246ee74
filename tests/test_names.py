"""Names of enumerations and help texts, agent → NOC (issue 12): the wire format and its bounds,
what the agent builds from its profiles, what the collector keeps (and refuses), and what the
status page and /metrics make of it. tests/test_names_live.py runs it through real processes."""

from __future__ import annotations

import random
import time
import tracemalloc
import zlib

import msgspec
import pytest
from prometheus_client import generate_latest

from agent.names import names_payload, profile_fields, site_names
from agent.profiles.model import builtin_profiles
from collector.exposition import SelfMetrics, StateCollector
from collector.intake import Inbound
from collector.names import NameBook, check_names, per_device
from collector.pipeline import Pipeline, RejectedStore
from collector.state import State
from collector.statuspage import key_readings, render
from collector.validate import Rejected
from pantau.wire import (
    NAMES_VERSION,
    Field,
    FieldNames,
    Group,
    Kind,
    Names,
    SampleSet,
    Status,
    WireError,
    decode_names,
    encode_names,
    names_topic,
    parse_topic,
)
from pantau.wire.dictionaries import DICTIONARIES
from pantau.wire.model import DICTIONARY_ID, MAX_NAMES_BYTES, MAX_NAMES_DECODED
from tests.support.recording import RecordingMetrics

PROFILES = builtin_profiles()
BASE = [PROFILES["system"], PROFILES["if-mib"]]
SITE = "vsat-07"
LOCK = FieldNames("signal", "lock_state", "Demodulator lock", {0: "unlocked", 1: "locked"})


# -- the wire ---------------------------------------------------------------------------------


def test_names_round_trip_and_topic() -> None:
    names = Names([[LOCK], [FieldNames("system", "uptime_seconds", "Time since boot")]], {})
    names = Names(names.profiles, {"modem": [0, 1], "radio": [1]})
    payload = encode_names(names)
    assert payload[0] == NAMES_VERSION and payload[1] in (0, DICTIONARY_ID)
    assert decode_names(payload) == names
    assert names_topic(SITE) == "pantau/vsat-07/names"
    assert parse_topic("pantau/vsat-07/names") == ("names", SITE, None)


def deflated(body: bytes) -> bytes:
    d = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=DICTIONARIES[DICTIONARY_ID])
    return bytes((NAMES_VERSION, DICTIONARY_ID)) + d.compress(body) + d.flush()


def plain(names: object) -> bytes:
    return bytes((NAMES_VERSION, 0)) + msgspec.msgpack.encode(names)


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", "malformed"),
        (b"\x01\x00", "malformed"),
        (b"garbage that is no names message", "unknown_version"),
        (bytes((NAMES_VERSION, 0)) + b"\xc1\xc1\xc1", "malformed"),
        (bytes((NAMES_VERSION, 9)) + b"abc", "unknown_dictionary"),
        (plain([[["m", "f"]], {"d": "x"}]), "invalid_schema"),
        (plain([[[["m", "f", "h"]]], {"d": [1]}]), "invalid_schema"),  # no profile 1
        (plain([[[["m", "f", "two\nlines"]]], {"d": [0]}]), "bad_value"),
        (plain([[[["m", "f", "", {1: ""}]]], {"d": [0]}]), "bad_value"),
        (plain([[[["m", "f", "", {1: "x" * 65}]]], {"d": [0]}]), "bad_value"),
        (plain([[[["m", "f", "", {i: "s" for i in range(257)}]]], {"d": [0]}]), "bad_value"),
        (plain([[], {f"d{i}": [] for i in range(1001)}]), "too_many_points"),
        # 10,250 state names: what the collector keeps of a site is bounded by them
        (
            plain([[[["m", f"f{j}", "", {i: "s" for i in range(250)}] for j in range(41)]], {}]),
            "too_many_points",
        ),
        (plain([[[["m" * 65, "f", "h"]]], {"d": [0]}]), "bad_name"),
        (plain([[[["m", "", "h"]]], {"d": [0]}]), "bad_name"),
        (b"\x01\x00" + b"\x90" * (MAX_NAMES_BYTES), "oversize"),
        # a small message that inflates beyond the bound: refused without inflating it all
        (
            deflated(msgspec.msgpack.encode([[], {"d": []}]) + b"\x00" * MAX_NAMES_DECODED),
            "oversize",
        ),
    ],
)
def test_bad_names_messages_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as err:
        decode_names(payload)
    assert err.value.reason == reason
    with pytest.raises(Rejected) as rejected:
        check_names(SITE, payload)
    assert rejected.value.reason == reason


# -- the agent's side -------------------------------------------------------------------------


def test_the_agent_sends_each_profiles_names_once() -> None:
    uhp = PROFILES["uhp"]
    names = site_names([("modem-1", [*BASE, uhp]), ("modem-2", [*BASE, uhp]), ("gw", BASE)])
    assert names.devices["modem-1"] == names.devices["modem-2"]
    assert len(names.profiles) == len({i for v in names.devices.values() for i in v})
    fields = {
        (f.measurement, f.field): f for i in names.devices["modem-1"] for f in names.profiles[i]
    }
    state = fields[("signal", "modem_state")]
    assert state.states[17] == "operation" and state.states[0] == "off"
    assert "initialization" in state.help
    assert ("signal", "modem_state") not in {
        (f.measurement, f.field) for i in names.devices["gw"] for f in names.profiles[i]
    }
    # a field with neither states nor help costs nothing
    assert all(f.help or f.states for p in names.profiles for f in p)


def test_transform_tables_are_left_out() -> None:
    sensor = PROFILES["entity-sensor"]
    assert any(t.transform for t in sensor.tables)
    inputs = {c.name for t in sensor.tables if t.transform for c in t.columns}
    assert not inputs & {f.field for f in profile_fields(sensor)}


def test_every_shipped_profile_fits_in_one_message() -> None:
    """One device per shipped profile (the figure docs/wire-format.md gives)."""
    devices = [(f"dev-{n}", [*BASE, p]) for n, p in sorted(PROFILES.items())]
    payload = names_payload(devices)
    assert payload is not None and len(payload) < MAX_NAMES_BYTES // 4
    assert decode_names(payload) == site_names(devices)


def test_a_names_message_over_the_bound_loses_its_help_texts_first(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    devices = [(f"dev-{n}", [*BASE, p]) for n, p in sorted(PROFILES.items())]
    full = encode_names(site_names(devices))
    lean = encode_names(site_names(devices, with_help=False))
    monkeypatch.setattr("agent.names.MAX_NAMES_BYTES", len(full) - 1)
    assert names_payload(devices) == lean
    assert "without help texts" in caplog.text
    monkeypatch.setattr("agent.names.MAX_NAMES_BYTES", len(lean) - 1)
    assert names_payload(devices) is None
    assert "names message not sent" in caplog.text


# -- the collector's side ---------------------------------------------------------------------


def status(devices: list[str]) -> Status:
    return Status(v=1, site=SITE, online=True, ts_ms=int(time.time() * 1000), devices=devices)


def modem_poll(seq: int, modem_state: int, lock: int = 1) -> SampleSet:
    return SampleSet(
        SITE,
        "modem",
        seq,
        int(time.time() * 1000),
        5,
        True,
        "",
        [
            Group(
                "signal",
                {},
                [
                    Field("snr_db", Kind.GAUGE, 9.5),
                    Field("modem_state", Kind.STATE, modem_state),
                    Field("lock_state", Kind.STATE, lock),
                ],
            )
        ],
    )


def uhp_names() -> Names:
    return site_names([("modem", [*BASE, PROFILES["uhp"]])])


def test_names_before_the_sites_status_are_refused() -> None:
    state = State(900)
    with pytest.raises(Rejected) as err:
        state.on_names(SITE, uhp_names())
    assert err.value.reason == "unknown_site"
    assert len(state.names) == 0


def test_names_for_devices_the_site_does_not_have_are_refused() -> None:
    state = State(900)
    state.on_status(status(["modem"]))
    stranger = site_names([("modem", BASE), ("not-mine", [*BASE, PROFILES["uhp"]])])
    with pytest.raises(Rejected) as err:
        state.on_names(SITE, stranger)
    assert err.value.reason == "unknown_device" and "not-mine" in err.value.detail
    assert state.names.device(SITE, "modem") is None  # refused whole
    # and another site's names never land on this site's devices
    state.on_status(Status(v=1, site="other", online=True, ts_ms=1, devices=["modem"]))
    state.on_names("other", uhp_names())
    assert state.names.device(SITE, "modem") is None


def test_names_are_bounded_by_sites() -> None:
    state = State(900, max_sites=2)
    for site in ("a", "b", "c"):
        state.on_status(Status(v=1, site=site, online=True, ts_ms=1, devices=["modem"]))
    for site in ("a", "b"):
        state.on_names(site, site_names([("modem", BASE)]))
    with pytest.raises(Rejected) as err:  # a third site is left out of state: no status
        state.on_names("c", site_names([("modem", BASE)]))
    assert err.value.reason == "unknown_site"
    assert len(state.names) == 2
    state.forget_site("a")
    assert len(state.names) == 1 and state.names.device("a", "modem") is None
    # the book's own bound, whatever the state in front of it lets through
    book = NameBook(max_sites=2)
    names = site_names([("modem", BASE)])
    book.put("a", names, ["modem"])
    book.put("b", names, ["modem"])
    book.put("a", names, ["modem"])  # a site already kept is replaced, not counted twice
    with pytest.raises(Rejected) as err:
        book.put("c", names, ["modem"])
    assert err.value.reason == "too_many_sites"
    assert len(book) == 2 and book.device("c", "modem") is None
    book.forget_site("b")
    book.put("c", names, ["modem"])
    assert book.device("c", "modem") is not None


def test_a_small_names_message_keeps_little_memory() -> None:
    """Review of issue 12: each device's own order of 64 profiles used to copy every
    profile's state names per device (100 devices in 8.5 KB made 240 MB). Now a device holds
    references to the profiles' maps, built once."""
    rng = random.Random(7)
    profiles = [[FieldNames("m", f"f{p}", "", {i: "s" for i in range(156)})] for p in range(64)]
    devices = {}
    for d in range(300):
        order = list(range(64))
        rng.shuffle(order)
        devices[f"d{d}"] = order
    payload = encode_names(Names(profiles, devices))
    assert len(payload) < 20_000
    state = State(900)
    state.on_status(status(list(devices)))
    tracemalloc.start()
    try:
        state.on_names(SITE, check_names(SITE, payload))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"{peak / 1e6:.1f} MB for a {len(payload)} byte message"
    # and it still names by the device's first profile naming the field
    names = state.names.device(SITE, "d0")
    assert names is not None and names.state_name("m", f"f{devices['d0'][0]}", 3) == "s"
    assert names.state_name("m", "f0", 200) is None and names.state_name("m", "f0", 1.5) is None


def test_the_first_profile_naming_a_field_wins() -> None:
    first = [FieldNames("signal", "lock_state", "", {1: "locked"})]
    second = [FieldNames("signal", "lock_state", "Lock", {1: "searching", 2: "lost"})]
    book = per_device(Names([first, second], {"a": [0, 1], "b": [1, 0]}))
    assert book["a"].state_name("signal", "lock_state", 1) == "locked"
    assert book["a"].state_name("signal", "lock_state", 2) is None  # the first one's map only
    assert book["a"].help_text("signal", "lock_state") == "Lock"  # the first with a text
    assert book["b"].state_name("signal", "lock_state", 1) == "searching"
    assert book["a"].help_text("signal", "other") is None


def test_the_status_page_names_enumerations_by_the_devices_profile() -> None:
    state = State(900)
    state.on_status(status(["modem"]))
    state.on_sample_set(modem_poll(1, 17))
    before = render(state.snapshot())
    assert "state 17" in before and "operation" not in before
    state.on_names(SITE, uhp_names())
    page = render(state.snapshot())
    assert "operation (17)" in page
    # a value the profile does not name stays a number
    state.on_sample_set(modem_poll(2, 99))
    assert "state 99" in render(state.snapshot())


def test_the_same_field_is_named_per_device_not_per_field() -> None:
    """One neutral field, two vendors, two numberings: each device shows its own names."""
    a = Names([[FieldNames("signal", "lock_state", "", {1: "locked", 2: "searching"})]], {"m": [0]})
    b = Names([[FieldNames("signal", "lock_state", "", {1: "searching", 2: "locked"})]], {"m": [0]})
    readings = []
    for site, names in (("a", a), ("b", b)):
        state = State(900)
        state.on_status(Status(v=1, site=site, online=True, ts_ms=1, devices=["m"]))
        state.on_names(site, names)
        ss = SampleSet(
            site,
            "m",
            1,
            int(time.time() * 1000),
            1,
            True,
            "",
            [Group("signal", {}, [Field("lock_state", Kind.STATE, 1)])],
        )
        state.on_sample_set(ss)
        dev = state.snapshot()[site].devices["m"]
        readings.append(key_readings(dev.last.groups, dev.names)[0].text)
    assert readings == ["locked (1)", "searching (1)"]


def test_metrics_help_lines_carry_the_profiles_help() -> None:
    state = State(900)
    state.on_status(status(["modem"]))
    state.on_sample_set(modem_poll(1, 17))
    metrics = SelfMetrics()
    metrics.registry.register(StateCollector(state))
    text = generate_latest(metrics.registry).decode()
    assert "# HELP pantau_signal_modem_state signal modem_state\n" in text
    state.on_names(SITE, uhp_names())
    text = generate_latest(metrics.registry).decode()
    help_line = next(
        line for line in text.splitlines() if line.startswith("# HELP pantau_signal_modem_state ")
    )
    assert "initialization" in help_line
    # fields the profile gives no help keep the generic line
    assert "# HELP pantau_signal_lock_state signal lock_state\n" in text


def help_of(state: State, family: str) -> str:
    metrics = SelfMetrics()
    metrics.registry.register(StateCollector(state))
    text = generate_latest(metrics.registry).decode()
    return next(line for line in text.splitlines() if line.startswith(f"# HELP {family} "))


def test_one_site_does_not_set_the_help_line_of_every_site() -> None:
    """A family's HELP line is a profile's text only when every device bringing it gives that
    text: a site whose names say otherwise (or nothing) leaves the generic line (review of
    issue 12: the first site in name order set it for all)."""

    def site_with_help(state: State, site: str, text: str | None) -> None:
        state.on_status(Status(v=1, site=site, online=True, ts_ms=1, devices=["modem"]))
        state.on_sample_set(msgspec.structs.replace(modem_poll(1, 17), site=site))
        if text is not None:
            entry = FieldNames("signal", "snr_db", text)
            state.on_names(site, Names([[entry]], {"modem": [0]}))

    generic = "# HELP pantau_signal_snr_db signal snr_db"
    agreed = State(900)
    site_with_help(agreed, "a", "Signal to noise")
    site_with_help(agreed, "b", "Signal to noise")
    assert help_of(agreed, "pantau_signal_snr_db") == "# HELP pantau_signal_snr_db Signal to noise"
    differ = State(900)
    site_with_help(differ, "a", "Whatever site a says")
    site_with_help(differ, "b", "Signal to noise")
    assert help_of(differ, "pantau_signal_snr_db") == generic
    silent = State(900)
    site_with_help(silent, "a", "Whatever site a says")
    site_with_help(silent, "b", None)
    assert help_of(silent, "pantau_signal_snr_db") == generic


def test_an_empty_names_message_withdraws_the_sites_names() -> None:
    """What an agent publishes (retained) when its names no longer fit (agent/service.py)."""
    state = State(900)
    pipe = Pipeline(
        sink=None,  # type: ignore[arg-type]  # names are state: nothing is written
        state=state,
        metrics=RecordingMetrics(),
        ack=lambda m: None,
        rejected=RejectedStore(None, 0),
        max_message_bytes=65536,
        batch_size=1000,
        flush_interval=60.0,
    )
    state.on_status(status(["modem"]))
    pipe.handle(Inbound(names_topic(SITE), encode_names(uhp_names()), 1, 1, 0))
    assert state.names.device(SITE, "modem") is not None
    pipe.handle(Inbound(names_topic(SITE), b"", 2, 1, 0))
    assert state.names.device(SITE, "modem") is None and len(state.names) == 0
