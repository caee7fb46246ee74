"""Standard MIB profiles proven against real recordings: UPS-MIB (RFC 1628) on a Generex CS141
UPS adapter, HOST-RESOURCES-MIB on a Linux net-snmp host and a MikroTik RouterOS gateway. Each
recording is polled through the real agent with profile detection; expected values come with the
recording line they are read from (OID|type|value -> published value).

tests/data/devices/sentinel-ups-mib.snmprec is crafted, not recorded (its header says so): the
UPS on battery with alarms present, and sentinel readings that must give no value.
"""

from __future__ import annotations

from devstack.polling import field_values, fields, poll_recording, row, values

STANDARD = {"ups-mib", "host-resources"}


def poll(tmp_path, snmpsim, community: str, profile: str, **kw):
    """Poll with detection (no `profiles:`); check that detection chose `profile`."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, community, **kw)
    assert set(poller.plan.profiles) & STANDARD == {profile}, poller.plan.profiles
    assert ss.up
    return ss, poller


def scalars(ss, measurement: str) -> dict[str, object]:
    return fields(ss, measurement)


def test_ups_mib_generex(tmp_path, snmpsim):
    # sysObjectID 1.3.6.1.2.1.1.2.0|6|1.3.6.1.2.1.33: the adapter names UPS-MIB itself.
    ss, _ = poll(tmp_path, snmpsim, "generex-ups_cs141", "ups-mib")
    assert scalars(ss, "power") == {
        "battery_status": 2,  # 1.3.6.1.2.1.33.1.2.1.0|2|2 = batteryNormal
        "time_on_battery_seconds": 0,  # 1.3.6.1.2.1.33.1.2.2.0|2|0 (on mains)
        "battery_runtime_minutes": 544,  # 1.3.6.1.2.1.33.1.2.3.0|2|544
        "battery_charge_percent": 100,  # 1.3.6.1.2.1.33.1.2.4.0|2|100
        "battery_voltage_volts": 271.6,  # 1.3.6.1.2.1.33.1.2.5.0|2|2716 -> x 0.1 V
        "battery_current_amperes": 0,  # 1.3.6.1.2.1.33.1.2.6.0|2|0
        "battery_temperature_celsius": 25,  # 1.3.6.1.2.1.33.1.2.7.0|2|25
        "output_source": 4,  # 1.3.6.1.2.1.33.1.4.1.0|2|4 = bypass
        "on_battery": 0,  # bypass is not battery
        "output_frequency_hertz": 50,  # 1.3.6.1.2.1.33.1.4.2.0|2|500 -> x 0.1 Hz
        # upsAlarmsPresent (1.3.6.1.2.1.33.1.6.1.0) is not in the recording: no alarms_active
    }
    # Input lines: 1.3.6.1.2.1.33.1.3.3.1.3.3|2|235 V, .2.3|2|500 -> 50 Hz
    assert row(ss, "power", input_line="3") == {
        "input_voltage_volts": 235,
        "input_frequency_hertz": 50,
    }
    # Output line 2: 1.3.6.1.2.1.33.1.4.4.1.2.2|2|233 V, .3.2|2|21 -> 2.1 A, .4.2|2|469 W,
    # .5.2|2|14 %
    assert row(ss, "power", output_line="2") == {
        "output_voltage_volts": 233,
        "output_current_amperes": 2.1,
        "output_power_watts": 469,
        "output_load_percent": 14,
    }
    assert len(field_values(ss, "power", "output_load_percent")) == 3


def test_ups_mib_on_battery_and_sentinels(tmp_path, snmpsim):
    ss, _ = poll(tmp_path, snmpsim, "sentinel-ups-mib", "ups-mib")
    assert scalars(ss, "power") == {
        "battery_status": 3,  # ...33.1.2.1.0|2|3 = batteryLow
        "time_on_battery_seconds": 120,  # ...33.1.2.2.0|2|120
        "battery_runtime_minutes": 38,  # ...33.1.2.3.0|2|38
        "battery_charge_percent": 61,  # ...33.1.2.4.0|2|61
        "battery_voltage_volts": 271.6,  # ...33.1.2.5.0|2|2716
        "output_source": 5,  # ...33.1.4.1.0|2|5 = battery
        "on_battery": 1,  # → on battery
        "output_frequency_hertz": 50,  # ...33.1.4.2.0|2|500
        "alarms_active": 2,  # ...33.1.6.1.0|66|2
        # ...33.1.2.6.0|2|-2147483648 and ...33.1.2.7.0|2|2147483647 are sentinels:
        # battery_current_amperes and battery_temperature_celsius are absent.
    }
    assert ss.errors == {}


def test_ups_mib_as_extra_profile(tmp_path, snmpsim):
    # A UPS card with a vendor sysObjectID gets UPS-MIB with `extra_profiles`, next to what
    # detection picks for it (here the APC profile).
    ss, poller = poll_recording(
        tmp_path, snmpsim.port, "apc_smt750x-nmc2", extra_profiles=["ups-mib"]
    )
    assert {"ups-mib", "apc-ups"} <= set(poller.plan.profiles)
    assert ss.up


def test_host_resources_linux(tmp_path, snmpsim):
    # sysObjectID 1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10 (net-snmp, Linux)
    ss, _ = poll(tmp_path, snmpsim, "linux_powermon", "host-resources")
    assert scalars(ss, "host") == {
        "memory_size_bytes": 49225180 * 1024,  # 1.3.6.1.2.1.25.2.2.0|2|49225180 KiB
        "process_count": 316,  # 1.3.6.1.2.1.25.1.6.0|66|316
    }
    cpu = field_values(ss, "host", "cpu_load_percent")
    assert len(cpu) == 24  # hrProcessorLoad .196608 ... .196631
    xeon = "GenuineIntel: Intel(R) Xeon(R) CPU           X5670  @ 2.93GHz"  # hrDeviceDescr
    assert cpu[(("descr", xeon), ("processor", "196608"))] == 3  # ...25.3.3.1.2.196608|2|3
    assert cpu[(("descr", xeon), ("processor", "196610"))] == 100  # ...25.3.3.1.2.196610|2|100
    # Storage "/": 1.3.6.1.2.1.25.2.3.1.4.55|2|4096, .5.55|2|18341120, .6.55|2|3307213
    # (bytes = units x 4096); type .2.55|6|1.3.6.1.2.1.25.2.1.4 (hrStorageFixedDisk)
    assert row(ss, "host", storage="/") == {
        "allocation_unit_bytes": 4096,
        "size_units": 18341120,
        "used_units": 3307213,
        "size_bytes": 18341120 * 4096,
        "used_bytes": 3307213 * 4096,
    }
    assert any(
        dict(t).get("storage_type") == "1.3.6.1.2.1.25.2.1.4"
        for (m, t, f) in values(ss)
        if m == "host" and dict(t).get("storage") == "/"
    )
    # Physical memory: .4.1|2|1024, .5.1|2|49225180, .6.1|2|27274104
    assert row(ss, "host", storage="Physical memory") == {
        "allocation_unit_bytes": 1024,
        "size_units": 49225180,
        "used_units": 27274104,
        "size_bytes": 49225180 * 1024,
        "used_bytes": 27274104 * 1024,
    }
    assert len(field_values(ss, "host", "size_units")) == 14  # hrStorageIndex 1 ... 66


def test_host_resources_routeros(tmp_path, snmpsim):
    # sysObjectID 1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.14988.1 (MikroTik)
    ss, _ = poll(tmp_path, snmpsim, "routeros_rb750gr3", "host-resources")
    # 1.3.6.1.2.1.25.2.2.0|2|262144 KiB; hrSystemProcesses is not served: no process_count
    assert scalars(ss, "host") == {"memory_size_bytes": 262144 * 1024}
    # hrProcessorLoad 1.3.6.1.2.1.25.3.3.1.2.1|2|5 ... .4|2|7; hrDeviceDescr is empty: no descr
    assert field_values(ss, "host", "cpu_load_percent") == {
        (("processor", "1"),): 5,
        (("processor", "2"),): 5,
        (("processor", "3"),): 7,
        (("processor", "4"),): 7,
    }
    # "system disk": 1.3.6.1.2.1.25.2.3.1.4.131072|2|1024, .5.131072|2|16384, .6.131072|2|11196,
    # hrStorageAllocationFailures .7.131072|65|0 (a counter)
    assert row(ss, "host", storage="system disk") == {
        "allocation_unit_bytes": 1024,
        "size_units": 16384,
        "used_units": 11196,
        "size_bytes": 16384 * 1024,
        "used_bytes": 11196 * 1024,
        "allocation_failures": 0,
    }
