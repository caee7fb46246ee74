"""Site power profiles proven against real recordings: DC plants (Eltek, Vertiv NetSure, Delta
ORION, Huawei SMU), an APC UPS, a SiteBoss RTU, a Himoinsa genset and a Morningstar solar
controller. Each recording is polled through the real agent with profile detection; expected
values come with the recording line they are read from (OID|type|value -> published value).

Two files in tests/data/devices are crafted, not recorded (each says so in its header):
sentinel-deltaorion.snmprec adds the ORION-BASE-MIB scalars that deltaorion_deltaorion.snmprec
lacks, including the MIB's 2147483647 "invalid value" sentinel.
"""

from __future__ import annotations

from devstack.polling import field_values, fields, poll_recording, row

# The profiles of this area: detection must pick exactly the right one of them for each device.
POWER_PROFILES = {
    "eltek-enexus",
    "vertiv-netsure",
    "delta-orion",
    "huawei-smu",
    "apc-ups",
    "siteboss",
    "himoinsa-genset",
    "morningstar-mppt",
    "ups-mib",
    "host-resources",
}


def poll(tmp_path, snmpsim, community: str, profile: str):
    """Poll with detection (no `profiles:`); check that detection chose `profile`."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, community)
    assert set(poller.plan.profiles) & POWER_PROFILES == {profile}, poller.plan.profiles
    assert ss.up
    return ss


def scalars(ss, measurement: str = "power") -> dict[str, object]:
    """The untagged (scalar) fields of one measurement."""
    return fields(ss, measurement)


def test_eltek_enexus(tmp_path, snmpsim):
    ss = poll(tmp_path, snmpsim, "enexus", "eltek-enexus")
    assert scalars(ss) == {
        "dc_bus_voltage_volts": 54.16,  # 1.3.6.1.4.1.12148.10.10.5.5.0|2|5416 -> x 0.01 V
        "battery_voltage_volts": 54.16,  # the same object: the batteries sit on the bus
        "battery_current_amperes": -0.2,  # 1.3.6.1.4.1.12148.10.10.6.5.0|2|-2 -> x 0.1 A
        "rectifier_current_amperes": 6.3,  # 1.3.6.1.4.1.12148.10.5.2.5.0|2|63 -> x 0.1 A
        "load_current_amperes": 5.1,  # 1.3.6.1.4.1.12148.10.9.2.5.0|2|51 -> x 0.1 A
        "battery_runtime_minutes": 356,  # 1.3.6.1.4.1.12148.10.10.8.5.0|2|356 min
        "mains_status": 1,  # 1.3.6.1.4.1.12148.10.3.1.0|2|1 = normal
        "mains_ok": 1,  # the same object mapped: normal → 1
        "mains_failed_phases": 0,  # 1.3.6.1.4.1.12148.10.3.2.5.0|2|0
        "system_status": 1,  # 1.3.6.1.4.1.12148.10.2.1.0|2|1 = normal
        "charge_state": 3,  # 1.3.6.1.4.1.12148.10.2.3.0|2|3 = float
        "current_unit": 1,  # 1.3.6.1.4.1.12148.10.2.15.0|2|1 = deciAmpere
    }
    # Mains phases: 1.3.6.1.4.1.12148.10.3.4.1.6.1|2|228 ("MainsVolt 1"), .2 -> 236, .3 -> 237
    assert field_values(ss, "power", "input_voltage_volts") == {
        (("phase", "1"), ("sensor", "MainsVolt 1")): 228,
        (("phase", "2"), ("sensor", "MainsVolt 2")): 236,
        (("phase", "3"), ("sensor", "MainsVolt 3")): 237,
        (("model", "Flatpack S 48/1000"), ("rectifier", "1")): 227,  # ...10.5.6.1.4.1|2|227
        (("model", "Flatpack S 48/1000"), ("rectifier", "2")): 227,
        (("model", "FLATPACK2 48/2000 HE"), ("rectifier", "3")): 237,
    }
    # Rectifier modules: 1.3.6.1.4.1.12148.10.5.6.1.3.1|2|31 -> x 0.1 A; .2|33, .3|28
    assert row(ss, "power", rectifier="1") == {
        "rectifier_current_amperes": 3.1,
        "input_voltage_volts": 227,
        "rectifier_status": 1,
    }
    assert row(ss, "power", rectifier="3")["rectifier_current_amperes"] == 2.8
    # Battery temperature probes: 1.3.6.1.4.1.12148.10.10.18.3.1.6.1.1|2|18 -> 18 degC;
    # probes 1.2-1.4 read -100 (not fitted, status disabled): the sentinel gives no value.
    assert field_values(ss, "power", "battery_temperature_celsius") == {
        (("probe", "1.1"), ("sensor", "BatteryTemp1.1")): 18
    }
    assert row(ss, "power", probe="1.2") == {}


def test_vertiv_netsure(tmp_path, snmpsim):
    ss = poll(tmp_path, snmpsim, "netsure", "vertiv-netsure")
    assert scalars(ss) == {
        "dc_bus_voltage_volts": 54.01,  # 1.3.6.1.4.1.885.3.2.1.1.0|4|54.01 (text)
        "sense_voltage_volts": 54.01,  # 1.3.6.1.4.1.885.3.2.1.5.0|4|54.01 (text)
        "load_current_amperes": 1580,  # 1.3.6.1.4.1.885.3.2.1.2.0|2|1580 A
        "rectifier_current_amperes": 1576,  # 1.3.6.1.4.1.885.3.2.1.6.0|4|1576 (text)
        "battery_current_amperes": 0.0,  # 1.3.6.1.4.1.885.3.2.1.7.0|4|0.00 (text)
        "system_status": 0,  # 1.3.6.1.4.1.885.3.2.1.10.0|2|0 = normal
    }
    pcu = {t: v for t, v in field_values(ss, "power", "rectifier_current_amperes").items() if t}
    assert len(pcu) == 72  # psPCUCurrent rows 1..36 and 41..76
    assert pcu[(("rectifier", "1"),)] == 20  # 1.3.6.1.4.1.885.3.2.5.1.3.1|2|20 A
    assert pcu[(("rectifier", "28"),)] == 23  # 1.3.6.1.4.1.885.3.2.5.1.3.28|2|23 A
    # Shunts: 1.3.6.1.4.1.885.3.2.4.1.2.2|4|447 (text), type .4.2|2|1 system, alarm .3.2|2|2 none
    assert row(ss, "power", shunt="2") == {
        "current_amperes": 447,
        "shunt_type": 1,
        "shunt_alarm": 2,
    }


def test_delta_orion_measurement_table(tmp_path, snmpsim):
    ss = poll(tmp_path, snmpsim, "deltaorion_deltaorion", "delta-orion")
    # The recording has no dcSystemMonitor scalars: nothing is made up for them.
    assert scalars(ss) == {}
    # 1.3.6.1.4.1.20246.2.3.1.1.1.2.9.1.1.2.40|4|Vsys, .3.40|2|5445, .4.40|2|-2, .5.40|2|3 voltDC
    assert row(ss, "power", sensor="Vsys") == {
        "raw_value": 5445,
        "scale_exponent": -2,
        "measurement_unit": 3,
    }
    # 1.3.6.1.4.1.20246.2.3.1.1.1.2.9.1.1.3.12|2|391 ("EX-H12 A Temp 1"), exponent -1, unit 7
    assert row(ss, "power", sensor="EX-H12 A Temp 1") == {
        "raw_value": 391,
        "scale_exponent": -1,
        "measurement_unit": 7,
    }
    # Tbatt: 1.3.6.1.4.1.20246.2.3.1.1.1.2.9.1.1.3.37|2|2147483647 = invalid: no value, but the
    # row's exponent and unit are still there.
    assert row(ss, "power", sensor="Tbatt") == {"scale_exponent": -1, "measurement_unit": 7}
    raw = field_values(ss, "power", "raw_value")
    assert len(raw) == 20 and 2147483647 not in raw.values()  # 20 of 40 rows are 2147483647
    # Meter panel events: 1.3.6.1.4.1.20246.2.3.1.1.1.2.10.1.1.3.1|2|3 ("HEX") = true,
    # .3.9|2|1 ("Door Open") = false
    assert row(ss, "power", sensor="HEX") == {"event_state": 3}
    assert row(ss, "power", sensor="Door Open") == {"event_state": 1}


def test_delta_orion_scalars_and_sentinels(tmp_path, snmpsim):
    # Crafted file (see its header): the ORION-BASE-MIB scalars the recording lacks.
    ss = poll(tmp_path, snmpsim, "sentinel-deltaorion", "delta-orion")
    assert scalars(ss) == {
        "dc_bus_voltage_volts": 54.45,  # ...2.3.1.0|2|5445 -> x 0.01 V
        "rectifier_current_amperes": 0,  # ...2.3.7.0|2|0
        "charge_state": 1,  # ...2.3.5.0|2|1 = float
        "mains_ok": 0,  # ...2.2.5.0|2|2 = mains failure active -> 0
        "alarms_active": 3,  # ...2.2.17.0|66|3
        # ...2.3.2.0 (load), 2.3.3.0 (battery current), 2.3.4.0 (battery temperature) are
        # 2147483647, the MIB's invalid value: load_current_amperes, battery_current_amperes and
        # battery_temperature_celsius are absent.
    }


def test_huawei_smu(tmp_path, snmpsim):
    ss = poll(tmp_path, snmpsim, "huawei-smu_11b", "huawei-smu")
    assert scalars(ss) == {
        "dc_bus_voltage_volts": 53.5,  # 1.3.6.1.4.1.2011.6.164.1.6.1.3.0|66|535 -> x 0.1 V
        "load_current_amperes": 3.4,  # 1.3.6.1.4.1.2011.6.164.1.6.1.4.0|2|34 -> x 0.1 A
        "rectifier_current_amperes": 3.1,  # 1.3.6.1.4.1.2011.6.164.1.3.1.3.0|66|31 -> x 0.1 A
        "rectifier_count": 2,  # 1.3.6.1.4.1.2011.6.164.1.3.1.4.0|66|2
        "battery_current_amperes": 0,  # 1.3.6.1.4.1.2011.6.164.1.4.2.1.0|2|0
        "battery_runtime_minutes": 240,  # 1.3.6.1.4.1.2011.6.164.1.4.2.2.0|66|240 min
        "charge_state": 1,  # 1.3.6.1.4.1.2011.6.164.1.4.2.3.0|2|1 = floatCharge
    }
    # Battery string 5: ...4.4.2.1.3.5|66|1000 -> x 0.1 = 100 %; temperature ...4.4.2.1.6.5 is
    # 2147483647 (no probe): absent, not a number.
    assert row(ss, "power", battery_string="5") == {
        "battery_charge_percent": 100,
        "battery_current_amperes": 0,
        "battery_status": 1,
    }
    # AC input 1: ...5.2.1.1.4.1|66|2312 -> 231.2 V; phases B and C (...5.1, ...6.1) are
    # 2147483647 on this single-phase site: absent. Current ...7.1|2|8 -> 0.8 A.
    assert row(ss, "power", ac_input="1") == {
        "input_voltage_volts": 231.2,
        "input_current_amperes": 0.8,
        "mains_status": 1,
        "mains_ok": 1,
    }  # hwAcInputOperStatus 1 = normal → 1


def test_apc_ups(tmp_path, snmpsim):
    ss = poll(tmp_path, snmpsim, "apc_smt750x-nmc2", "apc-ups")
    assert scalars(ss) == {
        "battery_charge_percent": 100,  # 1.3.6.1.4.1.318.1.1.1.2.3.1.0|66|1000 -> x 0.1 %
        "battery_temperature_celsius": 23.4,  # 1.3.6.1.4.1.318.1.1.1.2.3.2.0|66|234 -> x 0.1
        "battery_voltage_volts": 54.7,  # 1.3.6.1.4.1.318.1.1.1.2.3.4.0|2|547 -> x 0.1 V
        # 1.3.6.1.4.1.318.1.1.1.2.2.3.0|67|10976200 TimeTicks = 109762 s -> / 6000 min
        "battery_runtime_minutes": 1829.366666667,
        "battery_replace_needed": 0,  # 1.3.6.1.4.1.318.1.1.1.2.2.4.0|2|1 = no -> 0
        "input_voltage_volts": 119.1,  # 1.3.6.1.4.1.318.1.1.1.3.3.1.0|66|1191 -> x 0.1 V
        "input_frequency_hertz": 60,  # 1.3.6.1.4.1.318.1.1.1.3.3.4.0|66|600 -> x 0.1 Hz
        "output_voltage_volts": 119.1,  # 1.3.6.1.4.1.318.1.1.1.4.3.1.0|66|1191
        "output_frequency_hertz": 60,  # 1.3.6.1.4.1.318.1.1.1.4.3.2.0|66|600
        "output_load_percent": 0,  # 1.3.6.1.4.1.318.1.1.1.4.3.3.0|66|0
        "output_current_amperes": 0,  # 1.3.6.1.4.1.318.1.1.1.4.3.4.0|66|0
        "output_status": 2,  # 1.3.6.1.4.1.318.1.1.1.4.1.1.0|2|2 = onLine
        "on_battery": 0,  # the same object mapped: onLine → 0
    }


def test_siteboss(tmp_path, snmpsim):
    ss = poll(tmp_path, snmpsim, "siteboss571_siteboss571", "siteboss")
    # Power distribution module 1.1: 1.3.6.1.4.1.3052.14.1.5.4.1.1.13.1.1|2|54253 mV,
    # .5.1.1|2|12159 mA, .20.1.1|2|655 W, .4.1.1|4|Normal
    assert row(ss, "power", module="1.1") == {
        "dc_bus_voltage_volts": 54.253,
        "load_current_amperes": 12.159,
        "load_power_watts": 655,
        "module_current_status": "Normal",
    }
    assert row(ss, "power", module="200.1")["dc_bus_voltage_volts"] == 53.641  # ...13.200.1|53641
    # Ports: 1.3.6.1.4.1.3052.14.1.5.4.1.1.23.1.5|2|3605 mA; .23.1.3|2|0 with .22.1.3 "Very Low"
    assert row(ss, "power", port="1.5")["load_current_amperes"] == 3.605
    assert row(ss, "power", port="1.3") == {
        "load_current_amperes": 0,
        "port_current_status": "Very Low",
    }
    assert len(field_values(ss, "power", "load_current_amperes")) == 2 + 18  # modules + ports
    # Sensor points, read from esPointValueStr (1.3.6.1.4.1.3052.14.1.1.1.1.7.<es>.<class>.<pt>):
    # .7.200.1.1|4|35 C -> 35 degC; .7.200.2.1|4|Closed ("Front Door"); .7.1.6.3|4|Off/De-energized
    assert row(ss, "environment", point="200.1.1") == {"temperature_celsius": 35}
    assert row(ss, "environment", point="3.1.1") == {"temperature_celsius": 24}  # .7.3.1.1|24 C
    assert row(ss, "environment", sensor="Front Door") == {"contact": "Closed"}
    assert row(ss, "environment", point="200.2.3") == {"contact": "Open"}
    assert row(ss, "environment", point="1.6.3") == {"output": "Off/De-energized"}
    # The humidity point .7.3.3.1|4|32 has no unit: no field matches it, nothing is guessed.
    assert row(ss, "environment", point="3.3.1") == {}


def test_himoinsa_genset(tmp_path, snmpsim):
    # sysObjectID is .0.0 (1.3.6.1.2.1.1.2.0|6|.0.0): detected by sysDescr "C2LAN SNMP".
    ss = poll(tmp_path, snmpsim, "himoinsa-gensets", "himoinsa-genset")
    assert scalars(ss) == {
        "fuel_percent": 100,  # 1.3.6.1.4.1.41809.1.27.0|2|1000 -> x 0.1 %
        "generator_battery_voltage_volts": 13.7,  # 1.3.6.1.4.1.41809.1.29.0|2|137 -> x 0.1 V
        "generator_status_bitmap": 6,  # 1.3.6.1.4.1.41809.1.46.0|66|6 = stopped + auto
        "generator_running": 0,  # bit 0 of 6 (0b110): not running
        "generator_frequency_hertz": 0,  # 1.3.6.1.4.1.41809.1.55.1.9.0|2|0 (not running)
        "generator_current_amperes": 0,  # 1.3.6.1.4.1.41809.1.55.1.16.0|2|0
        "mains_frequency_hertz": 50,  # 1.3.6.1.4.1.41809.1.55.1.2.0|2|500 -> x 0.1 Hz
        "input_voltage_volts": 241,  # 1.3.6.1.4.1.41809.1.55.1.6.0|2|241 V (L1-N)
        "transfer_switch_status_bitmap": 66,  # 1.3.6.1.4.1.41809.1.55.1.28.0|66|66 = mains+auto
    }


def test_morningstar_mppt(tmp_path, snmpsim):
    ss = poll(tmp_path, snmpsim, "morningstar-mppt", "morningstar-mppt")
    # Values are text sent hex-encoded in the recording, e.g. 1.3.6.1.4.1.33333.10.30.0|4x|
    # 35332e39333735 = "53.9375".
    assert scalars(ss) == {
        "battery_voltage_volts": 53.9375,  # 33333.10.30.0 "53.9375"
        "battery_current_amperes": 19.3906,  # 33333.10.94.0 "19.3906"
        "battery_temperature_celsius": 24.2969,  # 33333.10.36.0 "24.2969"
        "load_current_amperes": 7.3203,  # 33333.10.35.0 "7.3203"
        "solar_array_voltage_volts": 117.0625,  # 33333.10.95.0 "117.0625"
        "solar_array_current_amperes": 12.8438,  # 33333.10.96.0 "12.8438"
        "solar_charge_current_amperes": 26.7344,  # 33333.10.34.0 "26.7344"
        "solar_charge_power_watts": 1442.0,  # 33333.10.93.0 "1442.0"
        "charge_state": 5,  # 33333.10.39.0|2|5 = bulk
        "load_state": 1,  # 33333.10.46.0|2|1 = norm
        # 33333.10.41.0|4|nan (no battery monitor): battery_charge_percent is absent
    }
    assert ss.errors == {}  # "nan" is a known "no reading", not a conversion error
