"""VSAT and satellite receiver profiles, proven against real recordings served by snmpsim.

Every test polls a recording through the real agent with profile detection (no `profiles:` in
the device config), checks that detection chose the vendor profile, and compares exact values
with the raw recording lines they come from (quoted in the comments)."""

from __future__ import annotations

from pathlib import Path

from devstack.polling import field_values, fields, poll_recording, values
from devstack.servers import SnmpSim


def test_uhp_terminal(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "uhp")
    assert ss.up
    assert "uhp" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.8000
    assert fields(ss) == {  # per terminal: no tag
        # 1.3.6.1.4.1.8000.22.4.6.1.0|66|259 (txLevel, "x -10 dBm")
        "tx_power_dbm": -25.9,
        # 1.3.6.1.4.1.8000.22.5.5.1.0|2|17 (stationState operation(17))
        "modem_state": 17,
    }
    # Both demodulators publish the same names, told apart by the constant `demod` tag.
    assert fields(ss, demod="1") == {
        # 1.3.6.1.4.1.8000.22.2.1.0|2|135 (lbandSNR1, 0.1 dB)
        "snr_db": 13.5,
        # 1.3.6.1.4.1.8000.22.2.3.0|66|119 (inLvl1, "x -10 dBm")
        "signal_level_dbm": -11.9,
    }
    assert fields(ss, demod="2") == {
        # 1.3.6.1.4.1.8000.22.3.3.0|66|80 (inLvl2)
        "signal_level_dbm": -8,
        # sentinel: 1.3.6.1.4.1.8000.22.3.1.0|2|0 (lbandSNR2: demodulator 2 has no carrier,
        # 1.3.6.1.4.1.8000.22.3.2.0|2|-50687 kHz offset) -> no snr_db for demod 2 at all
    }
    assert set(field_values(ss, "signal", "snr_db")) == {(("demod", "1"),)}


def test_cisco_d9854_receiver(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "ciscosat")
    assert ss.up
    assert "cisco-d985x" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.1429.2.2.6.5
    # tags: 1.3.6.1.4.1.1429.2.2.5.5.3.2.1.15.1|4|RF1 (inputStatusCurD985xInput)
    assert fields(ss, tuner="1", input="RF1") == {
        "cn_db": 10.0,  # 1.3.6.1.4.1.1429.2.2.5.5.3.1.1.5.1|4|10.0
        "link_margin_db": 1.6,  # 1.3.6.1.4.1.1429.2.2.5.5.3.1.1.6.1|4|1.6
        "signal_level_dbm": -40,  # 1.3.6.1.4.1.1429.2.2.5.5.3.1.1.7.1|4|-40
        "uncorrected_errors": 42277,  # 1.3.6.1.4.1.1429.2.2.5.5.3.1.1.12.1|4|42277
        "lock_state": 3,  # 1.3.6.1.4.1.1429.2.2.5.5.3.2.1.3.1|2|3 lockplussignal
        "lock": 1,  # the same line as the vendor-neutral 0/1: locked
    }
    assert "wrong_type" not in ss.errors  # every text value was a number


def test_cisco_d9854_text_sentinels(tmp_path: Path, snmpsim: SnmpSim) -> None:
    # tests/data/devices/sentinel-ciscosat.snmprec: the system group and tuning tables of
    # ciscosat.snmprec with the RF values changed to what these receivers show without a
    # usable carrier: C/N "N/A", margin "Unk" (a string the same recording uses elsewhere),
    # level "---", and lock 1 (nolock). Text that is not a number is no reading, not an error.
    ss, poller = poll_recording(tmp_path, snmpsim.port, "sentinel-ciscosat")
    assert "cisco-d985x" in poller.plan.profiles
    assert fields(ss, tuner="1", input="RF1") == {
        "uncorrected_errors": 42277,  # unchanged: ...3.1.1.12.1|4|42277
        "lock_state": 1,  # ...5.5.3.2.1.3.1|2|1 nolock
        "lock": 0,  # the same line as the vendor-neutral 0/1: not locked
    }
    assert "wrong_type" not in ss.errors  # text without a number is not an error


def test_pbi_dch4000p_receiver(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "ird")
    assert ss.up
    # generic UCD sysObjectID 1.3.6.1.4.1.2021.250.10: detected by sysDescr "Linux DCH-4000P ..."
    assert "pbi-dch" in poller.plan.profiles
    assert fields(ss) == {
        "lock_state": 1,  # 1.3.6.1.4.1.1070.3.1.1.104.1.1.1.0|2|1 (tunerLock yes)
        "lock": 1,  # the same line as the vendor-neutral 0/1: locked
        "signal_level_dbm": -36,  # 1.3.6.1.4.1.1070.3.1.1.104.1.1.6.0|2|360 (x -0.1 dBm)
        "cn_db": 16.3,  # 1.3.6.1.4.1.1070.3.1.1.104.1.1.8.0|2|163
        "ebno_db": 11.5,  # 1.3.6.1.4.1.1070.3.1.1.104.1.1.9.0|2|115
    }
    assert values(ss)[("system", (), "descr")].startswith("Linux DCH-4000P")


def test_terra_sdi480_receiver(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "terra-sdi480")
    assert ss.up
    assert "terra-sdi480" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.30631.1.17
    # Every tuner publishes the same names, told apart by the constant `tuner` tag.
    # tuner 1: 1.3.6.1.4.1.30631.1.17.1.1.1.0|4|Locked, .1.2.0|2|481 (48.1 dBuV), .1.3.0|2|138
    assert fields(ss, tuner="1") == {
        "lock_status": "Locked",
        "lock": 1,  # the text mapped to the common 0/1 lock
        "signal_level_dbm": -60.65,  # 48.1 dBuV - 108.75 (75 ohm)
        "snr_db": 13.8,
    }
    # tuner 2: .1.2.2.0|2|708 (70.8 dBuV), .1.2.3.0|2|145
    tuner2 = fields(ss, tuner="2")
    assert (tuner2["signal_level_dbm"], tuner2["snr_db"]) == (-37.95, 14.5)
    # tuner 8: .1.8.1.0|4|Locked, .1.8.2.0|2|461, .1.8.3.0|2|161
    assert fields(ss, tuner="8") == {
        "lock_status": "Locked",
        "lock": 1,
        "signal_level_dbm": -62.65,
        "snr_db": 16.1,
    }
    # tuner 7 is the sentinel case: .1.7.1.0|4|Unlocked, .1.7.3.0|2|0 (no SNR without lock),
    # while its level .1.7.2.0|2|291 (29.1 dBuV) is a real reading of what reaches the input
    assert fields(ss, tuner="7") == {
        "lock_status": "Unlocked",
        "lock": 0,
        "signal_level_dbm": -79.65,
    }
    assert set(field_values(ss, "signal", "signal_level_dbm")) == {
        (("tuner", str(n)),) for n in range(1, 9)
    }
    assert len(field_values(ss, "signal", "snr_db")) == 7
    assert len(field_values(ss, "signal", "lock_status")) == 8
    assert fields(ss) == {}  # nothing untagged
