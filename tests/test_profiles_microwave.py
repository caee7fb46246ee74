"""Microwave backhaul profiles, proven against real recordings served by snmpsim.

Every test polls a recording through the real agent with profile detection (no `profiles:` in
the device config), checks that detection chose the vendor profile, and compares exact values
with the raw recording lines they come from (quoted in the comments)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.polling import field_values, fields, poll_recording, values
from devstack.servers import SnmpSim


def test_ceragon_ceraos(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "ceraos")
    assert ss.up
    assert "ceragon-ceraos" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.2281.1.20.2.2
    # ifName: 1.3.6.1.2.1.31.1.1.1.1.268452033|4|Radio: Slot 3, Port 1
    assert fields(ss, ifIndex="268452033", ifName="Radio: Slot 3, Port 1") == {
        "rsl_dbm": -45,  # 1.3.6.1.4.1.2281.10.5.1.1.2.268452033|2|-45
        "tx_power_dbm": 30,  # 1.3.6.1.4.1.2281.10.5.1.1.3.268452033|2|30
        "mse_db": -38.28,  # 1.3.6.1.4.1.2281.10.7.1.1.2.268452033|2|-3828
        "capacity_bps": 258_624_000,  # 1.3.6.1.4.1.2281.10.7.4.1.1.7.268452033|66|258624 kbit/s
        "rx_capacity_bps": 258_624_000,  # ...10.7.4.1.1.11.268452033|66|258624
        # sentinel: 1.3.6.1.4.1.2281.10.7.1.1.5.268452033|66|4294957397 (XPI -98.99 dB sent as
        # Gauge32: no XPIC measurement) -> no xpi_db
    }
    # 1.3.6.1.4.1.2281.10.7.1.1.5.268451969|2|4 -> 0.04 dB; 1.3.6.1.4.1.2281.10.7.1.1.2...|2|-4212
    slot2 = fields(ss, ifIndex="268451969", ifName="Radio: Slot 2, Port 1")
    assert (slot2["xpi_db"], slot2["mse_db"], slot2["rsl_dbm"]) == (0.04, -42.12, -34)
    # sentinel: 1.3.6.1.4.1.2281.10.7.1.1.2.268451906|2|-9900 (MSE -99.00 dB: not demodulating)
    # -> no mse_db; its RSL 1.3.6.1.4.1.2281.10.5.1.1.2.268451906|2|-99 is kept as a reading
    slot1 = fields(ss, ifIndex="268451906", ifName="Radio: Slot 1, port 2")
    assert "mse_db" not in slot1
    assert slot1["rsl_dbm"] == -99
    assert len(field_values(ss, "signal", "rsl_dbm")) == 8
    assert len(field_values(ss, "signal", "xpi_db")) == 3  # the 4 Gauge32 sentinels are absent


def test_siae_alfoplus2(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "sm-os_gc8607")
    assert ss.up
    assert "siae-smos" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.3373.1103
    # 1.3.6.1.4.1.3373.1103.80.2.1.2.1|4|TRX A
    assert fields(ss, radio="1", radioLabel="TRX A") == {
        "rsl_dbm": -44,  # 1.3.6.1.4.1.3373.1103.80.12.1.3.1|2|-44
        "mse_db": -43.3,  # 1.3.6.1.4.1.3373.1103.80.12.1.5.1|2|433 (normalized MSE, 0.1 dB)
        # radioPtx (.80.12.1.4) is not in this recording, so there is no tx_power_dbm
    }
    assert fields(ss, radio="2", radioLabel="TRX B") == {
        "rsl_dbm": -45,  # 1.3.6.1.4.1.3373.1103.80.12.1.3.2|2|-45
        "mse_db": -42.6,  # 1.3.6.1.4.1.3373.1103.80.12.1.5.2|2|426
    }
    assert fields(ss, link="1.1") == {
        "capacity_bps": 710_818_000,  # 1.3.6.1.4.1.3373.1103.80.17.1.10.1.1|2|710818 kbit/s
        "rx_capacity_bps": 710_818_000,  # 1.3.6.1.4.1.3373.1103.80.17.1.11.1.1|2|710818
        "modulation": 12,  # 1.3.6.1.4.1.3373.1103.80.17.1.7.1.1|2|12 bps4096QAM
        "rx_modulation": 12,  # 1.3.6.1.4.1.3373.1103.80.17.1.6.1.1|2|12
    }


def test_ericsson_minilink_6352(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "ericsson-ml")
    assert ss.up
    assert "ericsson-minilink-6352" in poller.plan.profiles  # 1.3.6.1.4.1.193.223.2.1
    # 1.3.6.1.2.1.31.1.1.1.1.110101|4|CarrierTermination:slot=1;ctNumber=1
    assert fields(ss, ifIndex="110101", ifName="CarrierTermination:slot=1;ctNumber=1") == {
        "rsl_dbm": -40.5,  # 1.3.6.1.4.1.193.223.2.7.1.1.1.110101|4|-40.5
        "tx_power_dbm": 16.0,  # 1.3.6.1.4.1.193.223.2.7.1.1.2.110101|4|16.0
        "snr_db": 36.7,  # 1.3.6.1.4.1.193.223.2.7.1.1.43.110101|4|36.7
        "capacity_bps": 2_000_000_000,  # 1.3.6.1.4.1.193.223.2.7.1.1.46.110101|2|2000000 kbit/s
        "modulation": 16,  # 1.3.6.1.4.1.193.223.2.7.1.1.58.110101|2|16 (64Qam)
    }
    assert "wrong_type" not in ss.errors  # every text value was a number


def test_ericsson_minilink_6352_text_sentinels(tmp_path: Path, snmpsim: SnmpSim) -> None:
    # tests/data/devices/sentinel-ericsson-ml.snmprec: the system group, ifName and radio link
    # table of ericsson-ml.snmprec with two text values changed: input power "N/A" and SNIR
    # "---". Text that is not a number is no reading, not an error.
    ss, poller = poll_recording(tmp_path, snmpsim.port, "sentinel-ericsson-ml")
    assert "ericsson-minilink-6352" in poller.plan.profiles
    assert fields(ss, ifIndex="110101", ifName="CarrierTermination:slot=1;ctNumber=1") == {
        "tx_power_dbm": 16.0,  # unchanged: ...2.7.1.1.2.110101|4|16.0
        "capacity_bps": 2_000_000_000,
        "modulation": 16,
    }
    assert "wrong_type" not in ss.errors  # text without a number is not an error


def test_ericsson_minilink_tn(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "ericsson-tn_tn")
    assert ss.up
    assert "ericsson-minilink-tn" in poller.plan.profiles  # 1.3.6.1.4.1.193.81.1.1.3
    # RAU power, by ifIndex (1.3.6.1.2.1.31.1.1.1.1.2129920257|4|F2/1.1/1)
    assert fields(ss, ifIndex="2129920257", ifName="F2/1.1/1") == {
        "tx_power_dbm": 28,  # 1.3.6.1.4.1.193.81.3.4.3.1.3.1.1.2129920257|2|28
        "rsl_dbm": -27.2,  # 1.3.6.1.4.1.193.81.3.4.3.1.3.1.10.2129920257|2|-272
    }
    assert fields(ss, ifIndex="2113143041", ifName="F2/2.1/1") == {
        "tx_power_dbm": -99,  # ...3.1.3.1.1.2113143041|2|-99 (in range -100..45: a reading)
        "rsl_dbm": -63.9,  # ...3.1.3.1.10.2113143041|2|-639
    }
    # sentinels: the unconfigured RAU 1/2.1/1 reads output 255 (outside -100..45) and input
    # -999 (-99.9 dBm, the floor: no signal): ...3.1.3.1.1.2146697473|2|255,
    # ...3.1.3.1.10.2146697473|2|-999 -> no row at all
    assert not fields(ss, ifIndex="2146697473", ifName="1/2.1/1")
    # modem MSE, by entPhysicalIndex (1.3.6.1.2.1.47.1.1.1.1.7.1417949183|4|F2/2)
    assert fields(ss, entPhysicalIndex="1417949183", modem="F2/2") == {
        "mse_db": -39.5,  # 1.3.6.1.4.1.193.81.3.4.2.1.1.1.15.1417949183|2|395
    }
    assert fields(ss, entPhysicalIndex="1686384639", modem="F2/1") == {"mse_db": -46.7}  # |467
    # sentinel: ...4.2.1.1.1.15.1954820095|2|0 (modem 1/2 not demodulating) -> no row
    assert not fields(ss, entPhysicalIndex="1954820095", modem="1/2")
    # terminal capacity (1.3.6.1.4.1.193.81.3.4.1.1.1.1.18.1|4|ST308-GI116)
    assert fields(ss, terminal_index="1", terminal="ST308-GI116") == {
        "capacity_bps": 239_208_000,  # 1.3.6.1.4.1.193.81.3.4.1.1.14.1.7.1|2|239208 kbit/s
    }


@pytest.mark.parametrize("bulk", [True, False], ids=["getbulk", "getnext"])
def test_aviat_wtm4000_out_of_order_walk(tmp_path: Path, snmpsim: SnmpSim, bulk: bool) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "aviat-wtm", bulk=bulk)
    assert ss.up
    assert "aviat-wtm" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.2509.11.1.1.8
    # The recording serves ...2509.9.3.2.1.1.14.60 before .59: the walk follows it and counts it.
    assert ss.errors.get("oid_not_increasing") == 1
    # 1.3.6.1.2.1.47.1.1.1.1.7.59|4|Carrier1/1
    assert fields(ss, entPhysicalIndex="59", carrier="Carrier1/1") == {
        "capacity_bps": 730_947_000,  # 1.3.6.1.4.1.2509.9.3.2.1.1.11.59|66|730947 kbit/s
        "rx_capacity_bps": 730_947_000,  # 1.3.6.1.4.1.2509.9.3.2.1.1.12.59|66|730947
        "rx_modulation": 14,  # 1.3.6.1.4.1.2509.9.3.2.1.1.14.59|2|14 (4096qam)
        # the values served after the bad pair - a GETNEXT walk that stops there loses them:
        "rsl_dbm": -36.7,  # 1.3.6.1.4.1.2509.9.15.2.2.1.4.59|2|-367
        "snr_db": 45,  # 1.3.6.1.4.1.2509.9.33.2.2.1.3.59|2|450 (CINR)
        "tx_power_dbm": 22.4,  # 1.3.6.1.4.1.2509.9.33.2.2.1.7.59|2|224
    }
    assert fields(ss, entPhysicalIndex="60", carrier="Carrier1/2") == {
        "capacity_bps": 730_947_000,  # ...9.3.2.1.1.11.60|66|730947
        "rx_capacity_bps": 730_947_000,  # ...9.3.2.1.1.12.60|66|730947
        "rx_modulation": 14,  # ...9.3.2.1.1.14.60|2|14 (the row served first)
        "rsl_dbm": -37,  # ...9.15.2.2.1.4.60|2|-370
        "snr_db": 45,  # ...9.33.2.2.1.3.60|2|450
        "tx_power_dbm": 22.5,  # ...9.33.2.2.1.7.60|2|225
    }


def test_aviat_wtm4000_entity_sensors(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """The WTM4000 implements ENTITY-SENSOR-MIB by the standard: the entity-sensor profile is
    detected on Aviat and reads the board sensors (no status column: every row is read)."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, "aviat-wtm")
    assert {"aviat-wtm", "entity-sensor"} <= set(poller.plan.profiles)
    # 1.3.6.1.2.1.99.1.1.1.{1,2,3,4}.3 = 4 voltsDC, 9 units, precision 3, 47058
    # (1.3.6.1.2.1.47.1.1.1.1.7.3|4|VoltageSensor1/1)
    assert fields(ss, "sensor", entPhysicalIndex="3", sensor="VoltageSensor1/1") == {
        "voltage_volts": 47.058
    }
    # .5: 8 celsius, 9 units, precision 3, 42562 (...47.1.1.1.1.7.5|4|InternalTemp1/1)
    assert fields(ss, "sensor", entPhysicalIndex="5", sensor="InternalTemp1/1") == {
        "temperature_celsius": 42.562
    }
    assert len(field_values(ss, "sensor", "temperature_celsius")) == 5  # rows 5 to 9
    # rows 35/36 (PA Temperature) are type other(1) with no units display: no guessed unit
    # (1.3.6.1.2.1.99.1.1.1.1.35|2|1, .4.35|2|40000)
    for index in ("35", "36"):
        assert not [k for k in values(ss) if dict(k[1]).get("entPhysicalIndex") == index]
    assert field_values(ss, "signal", "rx_power_dbm") == {}


def test_huawei_optix_rtn905(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "huawei-optixrtn_optixrtn905")
    assert ss.up
    assert "huawei-optix-rtn" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.2011.2.25.1
    assert fields(ss, odu="23.255") == {
        "tx_power_dbm": 9.3,  # 1.3.6.1.4.1.2011.2.25.4.40.4.10.30.1.8.23.255|2|93 (0.1 dBm)
        "rsl_dbm": -55,  # 1.3.6.1.4.1.2011.2.25.4.40.4.10.30.1.9.23.255|2|-550
    }


def test_saf_integra_x(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "saf-integra-x")
    assert ss.up
    assert "saf-integra-x" in poller.plan.profiles  # 1.3.6.1.4.1.7571.100.1.1.7.10
    # Both radio cores publish the same names, told apart by the constant `radio` tag.
    assert fields(ss, radio="a") == {
        "tx_power_dbm": 26,  # 1.3.6.1.4.1.7571.100.1.1.7.10.2.1.1.0|2|26
        "rsl_dbm": -32,  # 1.3.6.1.4.1.7571.100.1.1.7.10.2.1.3.0|2|-32
        "mse_db": -45.7,  # 1.3.6.1.4.1.7571.100.1.1.7.10.3.1.2.0|2|-457
        "capacity_bps": 769_076_000,  # ...10.3.1.10.0|2|769076 kbit/s
        "rx_capacity_bps": 769_076_000,  # ...10.3.1.9.0|2|769076
    }
    assert fields(ss, radio="b") == {
        "tx_power_dbm": 26,  # ...10.2.2.1.0|2|26
        "rsl_dbm": -32,  # ...10.2.2.3.0|2|-32
        "mse_db": -45.5,  # ...10.3.2.2.0|2|-455
        "capacity_bps": 769_076_000,  # ...10.3.2.10.0|2|769076 kbit/s
        "rx_capacity_bps": 769_076_000,  # ...10.3.2.9.0|2|769076
    }
    assert fields(ss) == {}  # nothing untagged


def test_ubiquiti_airfiber_ltu(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "airos-af-ltu")
    assert ss.up
    # generic net-snmp sysObjectID 1.3.6.1.4.1.8072.3.2.10 and a plain kernel sysDescr: detected
    # because afLTUFirmwareVersion.0 answers,
    # 1.3.6.1.4.1.41112.1.10.1.3.4.0|4|.v1.1.1-BETA2.00015.180314.0503
    assert "ubiquiti-af-ltu" in poller.plan.profiles
    assert fields(ss) == {"tx_eirp_dbm": 28}  # 1.3.6.1.4.1.41112.1.10.1.2.6.0|2|28
    # station index = remote MAC 18:e8:29:1e:30:de
    assert fields(ss, station="24.232.41.30.48.222") == {
        "rsl_dbm": -47,  # 1.3.6.1.4.1.41112.1.10.1.4.1.5.24.232.41.30.48.222|2|-47
        "rsl_chain1_dbm": -48,  # ...4.1.6.24.232.41.30.48.222|2|-48
        "capacity_bps": 63_488_000,  # ...4.1.3.24.232.41.30.48.222|2|63488 kbit/s
        "rx_capacity_bps": 161_280_000,  # ...4.1.4.24.232.41.30.48.222|2|161280
    }


def test_ubiquiti_airfiber_not_claimed_by_other_linux(tmp_path: Path, snmpsim: SnmpSim) -> None:
    # Another net-snmp Linux box (same generic sysObjectID 1.3.6.1.4.1.8072.3.2.10) does not
    # select the airFiber profile: it has no afLTUFirmwareVersion.0
    ss, poller = poll_recording(tmp_path, snmpsim.port, "linux_powermon")
    assert ss.up
    assert "ubiquiti-af-ltu" not in poller.plan.profiles


def test_cambium_ptp670(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "ptp670")
    assert ss.up
    assert "cambium-ptp670" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.17713.11
    assert fields(ss) == {
        "tx_power_dbm": 23,  # 1.3.6.1.4.1.17713.11.12.4.0|2|230 (0.1 dBm)
        "rsl_dbm": -52.8,  # 1.3.6.1.4.1.17713.11.12.12.0|2|-528
        "capacity_bps": 161_340_000,  # 1.3.6.1.4.1.17713.11.20.2.0|2|161340 kbit/s
        "rx_capacity_bps": 161_340_000,  # 1.3.6.1.4.1.17713.11.20.1.0|2|161340
        "modulation": 24,  # 1.3.6.1.4.1.17713.11.12.15.0|2|24 (256QAM 0.81 dual)
        "rx_modulation": 24,  # 1.3.6.1.4.1.17713.11.12.14.0|2|24
    }


def test_mikrotik_60ghz(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "routeros_wifi")
    assert ss.up
    assert "mikrotik-w60g" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.14988.1
    # 1.3.6.1.2.1.31.1.1.1.1.1|4|wlan60-1
    assert fields(ss, ifIndex="1", ifName="wlan60-1") == {
        "connected": 1,  # 1.3.6.1.4.1.14988.1.1.1.8.1.4.1|2|1
        "rsl_dbm": -54,  # 1.3.6.1.4.1.14988.1.1.1.8.1.12.1|2|-54
        "signal_quality_percent": 80,  # 1.3.6.1.4.1.14988.1.1.1.8.1.8.1|2|80
        "mcs_index": 8,  # 1.3.6.1.4.1.14988.1.1.1.8.1.7.1|2|8
        "capacity_bps": 2_310_000_000,  # 1.3.6.1.4.1.14988.1.1.1.8.1.13.1|66|2310 Mbit/s
    }
    # 1.3.6.1.2.1.31.1.1.1.1.4|4|wlan60-station-1
    assert fields(ss, ifIndex="4", ifName="wlan60-station-1") == {
        "connected": 1,  # 1.3.6.1.4.1.14988.1.1.1.9.1.2.4|2|1
        "rsl_dbm": -54,  # 1.3.6.1.4.1.14988.1.1.1.9.1.9.4|2|-54
        "signal_quality_percent": 80,  # 1.3.6.1.4.1.14988.1.1.1.9.1.5.4|2|80
        "mcs_index": 8,  # 1.3.6.1.4.1.14988.1.1.1.9.1.4.4|2|8
        "capacity_bps": 2_310_000_000,  # 1.3.6.1.4.1.14988.1.1.1.9.1.8.4|66|2310
    }
