"""Fiber profiles (SFP DOM, OLT PON ports, DWDM), proven against recordings served by snmpsim.

Every test polls a recording through the real agent with profile detection (no `profiles:` in
the device config), checks that detection chose the profile, and compares exact values with the
raw recording lines they come from (quoted in the comments). Files named sentinel-*.snmprec are
small recordings crafted from a real one (same OIDs and encodings, values changed or, for
sentinel-iosxe-sensor, one column added; each says so in its header) where the real recording
has no example of a case; zxa10_c320-sorted.snmprec is zxa10_c320.snmprec sorted
numerically by OID with its 3 duplicate lines dropped (`sort -t'|' -k1,1 -V -u`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.polling import field_values, fields, poll_recording, values
from devstack.servers import SnmpSim


def rows(ss, measurement: str, tag: str) -> set[str]:
    """Values of one tag over the groups of a measurement that carry it."""
    return {
        dict(t)[tag] for (m, t, _), _ in values(ss).items() if m == measurement and tag in dict(t)
    }


# --- ENTITY-SENSOR-MIB ------------------------------------------------------------------------


def test_extreme_sensor_xos(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "xos_sfp")
    assert ss.up
    assert "extreme-sensor" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.1916.2.248
    assert "entity-sensor" not in poller.plan.profiles  # the standard reading: not on Extreme
    # entPhysicalName is empty on XOS (1.3.6.1.2.1.47.1.1.1.1.7.132|4|), so the sensor tag falls
    # back to entPhysicalDescr: 1.3.6.1.2.1.47.1.1.1.1.2.132|4x|...= "SFP Temperature Sensor"
    # type 8 celsius, scale 9 units, precision 0, value 32, status 1:
    assert fields(ss, "sensor", entPhysicalIndex="132", sensor="SFP Temperature Sensor") == {
        "temperature_celsius": 32.0
    }  # 1.3.6.1.2.1.99.1.1.1.4.132|2|32
    # type 4 voltsDC, scale 9, value 3 (XOS rounds Vcc to whole volts)
    assert fields(ss, "sensor", entPhysicalIndex="133", sensor="SFP VCC Voltage Sensor") == {
        "voltage_volts": 3.0
    }  # 1.3.6.1.2.1.99.1.1.1.4.133|2|3
    # type 5 amperes, scale 8 milli: 34 mA
    assert fields(ss, "sensor", entPhysicalIndex="134", sensor="SFP TX Bias Current Sensor") == {
        "current_amperes": 0.034
    }  # 1.3.6.1.2.1.99.1.1.1.4.134|2|34
    # type 6 watts, scale 7 micro, precision 0: by RFC 3433 10646 µW = 10.646 mW = +10.272 dBm,
    # but XOS means SFF-8472's 0.1 µW unit: 1.0646 mW = +0.272 dBm (precision_offset 1, see
    # extreme-sensor.yaml), a normal LR transmitter.
    assert fields(ss, entPhysicalIndex="135", sensor="SFP TX Power Sensor") == {
        "tx_power_dbm": 0.272
    }  # 1.3.6.1.2.1.99.1.1.1.4.135|2|10646
    assert fields(ss, entPhysicalIndex="176", sensor="SFP RX Power Sensor") == {
        "rx_power_dbm": -6.426
    }  # 1.3.6.1.2.1.99.1.1.1.4.176|2|2277 (0.2277 mW)
    assert fields(ss, entPhysicalIndex="406", sensor="SFP RX Power Sensor") == {
        "rx_power_dbm": -9.682
    }  # 1.3.6.1.2.1.99.1.1.1.4.406|2|1076 (0.1076 mW)
    # The offset is for optical power only: temperature, voltage and bias above are as reported.

    # Sentinels, from the same poll:
    rx = {dict(t)["entPhysicalIndex"] for t in field_values(ss, "signal", "rx_power_dbm")}
    # Rx power of zero or less watts (no light, or XOS's negative "no reading") gives nothing:
    assert "136" not in rx  # 1.3.6.1.2.1.99.1.1.1.4.136|2|-1 (status 1 ok)
    assert "146" not in rx  # 1.3.6.1.2.1.99.1.1.1.4.146|2|0 (status 1 ok)
    assert "236" not in rx  # 1.3.6.1.2.1.99.1.1.1.4.236|2|-40
    # Sensors whose status is not ok give nothing at all:
    # 1.3.6.1.2.1.99.1.1.1.5.422|2|2 (unavailable) ... .5.426|2|2 (values read 0)
    # 1.3.6.1.2.1.99.1.1.1.5.592|2|3 (nonoperational), also the QSFP rows 772-821 (status 2)
    for index in ("422", "423", "424", "425", "426", "592", "595", "772", "814"):
        assert not [k for k in values(ss) if dict(k[1]).get("entPhysicalIndex") == index]
    # 3 readable Rx powers in 260 sensor rows: 176, 266, 406 and nothing else is positive
    assert rx == {"176", "266", "406"}
    assert len(field_values(ss, "signal", "tx_power_dbm")) == 43
    assert len(field_values(ss, "sensor", "temperature_celsius")) == 44
    assert len(field_values(ss, "sensor", "voltage_volts")) == 44
    assert len(field_values(ss, "sensor", "current_amperes")) == 44
    # The profile's two tables split the rows by type: every sensor is published once.
    rows = [g.tags["entPhysicalIndex"] for g in ss.groups if "entPhysicalIndex" in g.tags]
    assert len(rows) == len(set(rows)) == 43 + 3 + 44 * 3
    assert ss.errors == {}


def test_entity_sensor_as_extra_profile(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """Any device implementing ENTITY-SENSOR-MIB can have it added; the Cisco IR1101 does."""
    ss, poller = poll_recording(
        tmp_path, snmpsim.port, "iosxe_ir1101", extra_profiles=["entity-sensor"]
    )
    assert "entity-sensor" in poller.plan.profiles
    assert "cisco-cellular" in poller.plan.profiles  # detection still runs
    name = "subslot 0/0 transceiver 0 Temperature Sensor"  # entPhysicalName.4128
    # 1.3.6.1.2.1.99.1.1.1.{1,2,3,4}.4128 = 8 celsius, 9 units, precision 3, 34574
    assert fields(ss, "sensor", entPhysicalIndex="4128", sensor=name) == {
        "temperature_celsius": 34.574
    }
    # .4129: 4 voltsDC, 8 milli, precision 1, 32744 -> 3.2744 V
    assert fields(
        ss,
        "sensor",
        entPhysicalIndex="4129",
        sensor="subslot 0/0 transceiver 0 Supply Voltage Sensor",
    ) == {"voltage_volts": 3.2744}
    # .4130: 5 amperes, 7 micro, precision 0, 13536 -> 13.536 mA
    assert fields(
        ss,
        "sensor",
        entPhysicalIndex="4130",
        sensor="subslot 0/0 transceiver 0 Bias Current Sensor",
    ) == {"current_amperes": 0.013536}
    # .4131/.4132 (Tx/Rx power) are type 1 "other" (IOS-XE puts dBm there, precision 1: -6.8 and
    # -7.7). Only entPhySensorUnitsDisplay "dBm" says so, and this recording does not hold that
    # column (no 1.3.6.1.2.1.99.1.1.1.6 line): the transform does not guess the unit of an
    # "other" sensor, so nothing is published here (see the next test for the column).
    assert field_values(ss, "signal", "tx_power_dbm") == {}
    assert field_values(ss, "signal", "rx_power_dbm") == {}


def test_entity_sensor_other_type_in_dbm(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """sentinel-iosxe-sensor.snmprec (crafted): the IR1101's five transceiver sensor rows, every
    line unchanged, plus entPhySensorUnitsDisplay "dBm" on the two power rows of type other(1)."""
    ss, poller = poll_recording(
        tmp_path, snmpsim.port, "sentinel-iosxe-sensor", extra_profiles=["entity-sensor"]
    )
    assert "entity-sensor" in poller.plan.profiles
    # 1.3.6.1.2.1.99.1.1.1.{1,2,3,4,5}.4131 = 1 other, 9 units, precision 1, -68, 1 ok;
    # 1.3.6.1.2.1.99.1.1.1.6.4131|4|dBm (crafted) -> -6.8 dBm, named tx from the sensor name
    assert fields(
        ss, entPhysicalIndex="4131", sensor="subslot 0/0 transceiver 0 Tx Power Sensor"
    ) == {"tx_power_dbm": -6.8}
    # ...1.1.1.4.4132|2|-77, precision 1 -> -7.7 dBm
    assert fields(
        ss, entPhysicalIndex="4132", sensor="subslot 0/0 transceiver 0 Rx Power Sensor"
    ) == {"rx_power_dbm": -7.7}
    # the other rows read as in the recording (no units display needed for a known type)
    assert fields(
        ss, "sensor", entPhysicalIndex="4128", sensor="subslot 0/0 transceiver 0 Temperature Sensor"
    ) == {"temperature_celsius": 34.574}
    assert len(field_values(ss, "sensor", "voltage_volts")) == 1
    assert len(field_values(ss, "sensor", "current_amperes")) == 1


# --- MikroTik ---------------------------------------------------------------------------------


def test_mikrotik_optical_crs317(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "routeros_crs317")
    assert ss.up
    assert "mikrotik-optical" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.14988.1
    # Every DOM column of the 8 optical rows is 0 (direct-attach cables, ports up at 10G):
    # 1.3.6.1.4.1.14988.1.1.19.1.1.{5..10}.9 = 0 -> no power, temperature, voltage, bias, wavelength
    # 1.3.6.1.4.1.14988.1.1.19.1.1.2.9|4|sfp-sfpplus9, .3.9|2|0 (rx loss false), .4.9|2|0
    assert fields(ss, ifIndex="9", port="sfp-sfpplus9") == {"rx_los": 0, "tx_fault": 0}
    assert rows(ss, "signal", "port") == {f"sfp-sfpplus{i}" for i in range(9, 17)}
    for name in ("rx_power_dbm", "tx_power_dbm", "temperature_celsius", "voltage_volts"):
        assert field_values(ss, "signal", name) == {}


def test_mikrotik_optical_scaling(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """sentinel-mikrotik-optical.snmprec: the CRS317's table with DOM values on two ports."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, "sentinel-mikrotik-optical")
    assert "mikrotik-optical" in poller.plan.profiles
    assert fields(ss, ifIndex="1", port="sfp-sfpplus1") == {
        "rx_power_dbm": -7.891,  # 1.3.6.1.4.1.14988.1.1.19.1.1.10.1|2|-7891 (0.001 dBm)
        "tx_power_dbm": -2.345,  # ...19.1.1.9.1|2|-2345
        "temperature_celsius": 37,  # ...19.1.1.6.1|66|37
        "voltage_volts": 3.287,  # ...19.1.1.7.1|66|3287 (mV)
        "bias_current_amperes": 0.031,  # ...19.1.1.8.1|66|31 (mA)
        "wavelength_nm": 1310,  # ...19.1.1.5.1|66|131000 (0.01 nm)
        "rx_los": 0,
        "tx_fault": 0,
    }
    port2 = fields(ss, ifIndex="2", port="sfp-sfpplus2")
    assert (port2["rx_power_dbm"], port2["tx_power_dbm"], port2["rx_los"]) == (-40, 1.52, 1)
    # ...19.1.1.10.2|2|-40000, .9.2|2|1520, .3.2|2|1 (loss of signal)
    # the DAC port: every DOM column 0 -> only the two flags
    assert fields(ss, ifIndex="9", port="sfp-sfpplus9") == {"rx_los": 0, "tx_fault": 0}


# --- ZTE C320 ---------------------------------------------------------------------------------

ZTE_CARDS = {
    # 1.3.6.1.4.1.3902.1082.10.1.2.4.1.4.1.1.1|4|GTGOG  (zxAnCardActualType)
    ("1.1.1", "GTGOG"): {
        "oper_status": 1,  # ...10.1.2.4.1.5.1.1.1|2|1 inService
        "cpu_load_percent": 11,  # ...10.1.2.4.1.9.1.1.1|2|11
        "memory_used_percent": 26,  # ...10.1.2.4.1.11.1.1.1|2|26
        "temperature_celsius": 38,  # ...10.10.2.1.6.1.2.1.1.1|2|38
        "power_watts": 26.895,  # ...10.10.2.1.6.1.3.1.1.1|2|26895 (mW)
        "voltage_volts": 50.938,  # ...10.10.2.1.6.1.4.1.1.1|2|50938 (mV)
        "current_amperes": 0.528,  # ...10.10.2.1.6.1.5.1.1.1|2|528 (mA)
    },
    # power card: ...1.11.1.1.3|2|0 memory and ...1.6.1.4/5.1.1.3|2|0 voltage/current: no reading
    ("1.1.3", "PRAM"): {
        "oper_status": 1,
        "cpu_load_percent": 0,
        "temperature_celsius": 37,
        "power_watts": 66,
    },  # ...10.10.2.1.6.1.3.1.1.3|2|66000
    # control card: ...10.10.2.1.6.1.{3,4,5}.1.1.4|2|0 -> no power, voltage, current
    ("1.1.4", "SMXA"): {
        "oper_status": 1,
        "cpu_load_percent": 8,
        "memory_used_percent": 25,
        "temperature_celsius": 43,
    },
}


def test_zte_c320(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "zxa10_c320-sorted")
    assert ss.up
    assert "zte-olt" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.3902.1082.1001.320.2.1
    for (card, card_type), expected in ZTE_CARDS.items():
        assert fields(ss, "card", card=card, card_type=card_type) == expected
    distance = field_values(ss, "onu", "distance_meters")
    # 1.3.6.1.4.1.3902.1012.3.11.4.1.2.268501248.1|2|1235 (zxGponOntDistance, metres)
    assert distance[(("onu", "268501248.1"),)] == 1235
    assert distance[(("onu", "268501760.6"),)] == 2390  # ...11.4.1.2.268501760.6|2|2390
    assert len(distance) == 125  # ONUs on 7 PON ports: 5 + 18 + 39 + 19 + 9 + 25 + 10


def test_zte_c320_unsorted_recording(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """The recording as published: zxAnCardTable lies out of OID order and snmpsim's walk never
    returns zxAnCardCpuLoad; the poll still succeeds and reads every other column."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, "zxa10_c320")
    assert ss.up
    assert "zte-olt" in poller.plan.profiles
    for (card, card_type), expected in ZTE_CARDS.items():
        without_cpu = {k: v for k, v in expected.items() if k != "cpu_load_percent"}
        assert fields(ss, "card", card=card, card_type=card_type) == without_cpu
    assert len(field_values(ss, "onu", "distance_meters")) == 125


# --- Huawei SmartAX ---------------------------------------------------------------------------


def test_huawei_smartax(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "smartax")
    assert ss.up
    assert "huawei-olt" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.2011.2.123
    # 1.3.6.1.2.1.31.1.1.1.1.4194307840|4|GPON 0/0/15
    assert fields(ss, ifIndex="4194307840", pon="GPON 0/0/15") == {
        "tx_power_dbm": 7.17,  # 1.3.6.1.4.1.2011.6.128.1.1.2.23.1.4.4194307840|2|717
        "temperature_celsius": 40,  # ...2.23.1.1.4194307840|2|40
        "voltage_volts": 3.18,  # ...2.23.1.2.4194307840|2|318
        "bias_current_amperes": 0.037,  # ...2.23.1.3.4194307840|2|37 (mA)
        # sentinel: ...2.23.1.5.4194307840|2|2147483647 (Rx power n/a) -> no rx_power_dbm
    }
    assert fields(ss, ifIndex="4194304000", pon="GPON 0/0/0")["tx_power_dbm"] == 7.11  # |2|711
    assert field_values(ss, "signal", "rx_power_dbm") == {}  # all 32 read 2147483647
    assert len(field_values(ss, "signal", "tx_power_dbm")) == 32
    # ...2.21.1.16.4194307840|2|11 (ONTs on GPON 0/0/15)
    assert fields(ss, "pon", ifIndex="4194307840", pon="GPON 0/0/15") == {"onu_count": 11}
    # boards: 1.3.6.1.4.1.2011.2.6.7.1.1.2.1.{5,6,7,10}.0.7 = 17, 75, H802SCUN, 22;
    # 1.3.6.1.4.1.2011.6.3.3.2.1.8.0.7|2|2 (normal)
    assert fields(ss, "card", card="0.7", card_type="H802SCUN") == {
        "oper_status": 2,
        "cpu_load_percent": 17,
        "memory_used_percent": 75,
        "temperature_celsius": 22,
    }
    # sentinel: ...2.1.5.0.8|2|-1 and ...2.1.6.0.8|2|-1 (no CPU/memory figures on H802X2CS)
    assert fields(ss, "card", card="0.8", card_type="H802X2CS") == {
        "oper_status": 2,
        "temperature_celsius": 20,
    }


# --- V-SOL V1600D -----------------------------------------------------------------------------


def test_vsol_v1600d(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "vsolution_v1600d")
    assert ss.up
    assert "vsol-olt" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.37950.1.1.5.10.14.1
    assert fields(ss, "host") == {
        "cpu_load_percent": 26,  # 1.3.6.1.4.1.37950.1.1.5.10.12.3.0|2|26
        "memory_used_percent": 18,  # 1.3.6.1.4.1.37950.1.1.5.10.12.4.0|2|18
        "temperature_celsius": 40,  # 1.3.6.1.4.1.37950.1.1.5.10.12.5.9.0|2|40
    }
    # 1.3.6.1.4.1.37950.1.1.5.10.1.2.1.1.2.1|4|EPON0/1
    assert fields(ss, pon_index="1", pon="EPON0/1") == {
        "tx_power_dbm": 6.56,  # ...10.13.1.1.5.1|4|6.56 dbm
        "temperature_celsius": 27.84,  # ...10.13.1.1.2.1|4|27.84 .C
        "voltage_volts": 3.22,  # ...10.13.1.1.3.1|4|3.22 V
        "bias_current_amperes": 0.00701,  # ...10.13.1.1.4.1|4|7.01 mA
    }
    # 1.3.6.1.4.1.37950.1.1.5.12.1.25.1.9.1.1|4|AAAAAA
    assert fields(ss, onu="1.1", onu_name="AAAAAA") == {
        "rx_power_dbm": -14.61,  # ...12.2.1.8.1.7.1.1|4|0.03 mW (-14.61 dBm)
        "tx_power_dbm": 3.77,  # ...12.2.1.8.1.6.1.1|4|2.38 mW (3.77 dBm)
        "temperature_celsius": 30.67,  # ...12.2.1.8.1.3.1.1|4|30.67 C
        "voltage_volts": 3.27,  # ...12.2.1.8.1.4.1.1|4|3.27 V
        "bias_current_amperes": 0.01165,  # ...12.2.1.8.1.5.1.1|4|11.65 mA
    }
    # the dBm in brackets, not the rounded mW: ...12.2.1.8.1.7.1.16|4|0.00 mW (-28.24 dBm)
    assert fields(ss, onu="1.16", onu_name="PPPPPP")["rx_power_dbm"] == -28.24
    assert len(field_values(ss, "signal", "rx_power_dbm")) == 16


def test_vsol_text_without_number_is_absent(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """sentinel-vsol.snmprec: the V1600D's tables with an offline PON transceiver ("--") and an
    offline ONU ("N/A", "0.00 mW" without a dBm figure)."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, "sentinel-vsol")
    assert "vsol-olt" in poller.plan.profiles
    assert fields(ss, pon_index="1", pon="EPON0/1")["tx_power_dbm"] == 6.56
    assert fields(ss, pon_index="2", pon="EPON0/2") == {}  # ...10.13.1.1.{2..5}.2|4|--
    # ...12.2.1.8.1.7.1.1|4|0.00 mW (-27.45 dBm)
    assert fields(ss, onu="1.1", onu_name="AAAAAA")["rx_power_dbm"] == -27.45
    # ...12.2.1.8.1.{3..7}.1.2|4|N/A or 0.00 mW -> no field at all, and no "0.0"
    assert fields(ss, onu="1.2", onu_name="BBBBBB") == {}
    assert poller.errors.get("wrong_type", 0) == 0  # a text sentinel is not an anomaly


# --- PacketLight PL-1000E ---------------------------------------------------------------------


def test_packetlight_pl1000e(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "packetlight_pl-1000e")
    assert ss.up
    assert "packetlight" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.4515.100.1.1000.2
    assert fields(ss, "sensor") == {"temperature_celsius": 50}  # 1.3.6.1.4.1.4515.1.3.1.43.0|2|50
    # 1.3.6.1.2.1.2.2.1.2.115712|4|SFP Interface 1
    assert fields(ss, ifIndex="115712", ifDescr="SFP Interface 1") == {
        # 1.3.6.1.4.1.4515.1.10.2.1.1.38.115712|2|5249 (0.1 µW): 0.5249 mW = -2.799 dBm
        "rx_power_dbm": -2.799,
        # ...10.2.1.1.37.115712|2|20065: 2.0065 mW = +3.024 dBm
        "tx_power_dbm": 3.024,
        "temperature_celsius": pytest.approx(42.44140625),  # ...34.115712|2|43633: /256 - 128
        "alarm_bits": 0,  # ...42.115712|2|0
        # ...35/36.115712|2|0: the PL-1000E reports no voltage or bias -> absent
    }
    # ...38.705536|2|4840 (0.484 mW = -3.152 dBm), ...37.705536|2|3926 (0.3926 mW = -4.06 dBm)
    sfp10 = fields(ss, ifIndex="705536", ifDescr="SFP Interface 10")
    assert (sfp10["rx_power_dbm"], sfp10["tx_power_dbm"]) == (-3.152, -4.06)
    # an empty cage: every diagnostic 0 and sfpDiagAlarms bit 15 "Removed SFP"
    # 1.3.6.1.4.1.4515.1.10.2.1.1.42.181248|2|32768; ...38.181248|2|0 and ...37.181248|2|0 are
    # 0 mW, which has no dBm value: absent, not -inf or a made-up floor
    assert fields(ss, ifIndex="181248", ifDescr="SFP Interface 2") == {"alarm_bits": 32768}
    assert len(field_values(ss, "signal", "rx_power_dbm")) == 6  # 6 populated cages
    assert len(field_values(ss, "signal", "tx_power_dbm")) == 6
    assert ss.errors == {}  # 0 mW is no light, not an anomaly


# --- FS NMU -----------------------------------------------------------------------------------


def test_fs_nmu(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "fs-nmu")
    assert ss.up
    # sysObjectID is the bogus 1.3.6.1.2.1.1.2; matched by sysDescr 1.3.6.1.2.1.1.1.0|4|GLCY SNMP
    assert {"fs-nmu", "fs-nmu-oeo"} <= set(poller.plan.profiles)
    # 1.3.6.1.4.1.40989.10.16.20.{10,11,12}.0 = 0, 1, 1
    assert fields(ss, "fs_nmu") == {"fan_state": 0, "power1_state": 1, "power2_state": 1}
    # OEO card levels: rows of `signal`, tagged with the card and the SFP slot
    assert fields(ss, card="1", slot="A1") == {
        "tx_power_dbm": 1.54,  # 1.3.6.1.4.1.40989.10.16.1.2.11.4.0|2|154
        "rx_power_dbm": -19.46,  # 1.3.6.1.4.1.40989.10.16.1.2.11.5.0|2|-1946
    }
    assert fields(ss, card="1", slot="D2")["rx_power_dbm"] == -0.9  # ...16.1.2.18.5.0|2|-90
    assert fields(ss, card="2", slot="A1")["rx_power_dbm"] == -20  # ...16.2.2.11.5.0|2|-2000
    # sentinel: 1.3.6.1.4.1.40989.10.16.2.2.12.5.0|2|-4000 and .14.5.0|2|-4000 (no light)
    assert fields(ss, card="2", slot="A2") == {"tx_power_dbm": -2.91}  # ...2.2.12.4.0|2|-291
    assert fields(ss, card="2", slot="B2") == {"tx_power_dbm": -2.32}  # ...2.2.14.4.0|2|-232
    assert len(field_values(ss, "signal", "tx_power_dbm")) == 12  # card 1: 8 slots, card 2: 4
    assert len(field_values(ss, "signal", "rx_power_dbm")) == 12 - 2
    assert rows(ss, "signal", "slot") == {"A1", "A2", "B1", "B2", "C1", "C2", "D1", "D2"}
    assert dict(poller.errors) == {}
