"""Preset DEFLATE dictionaries for wire format version 2, by the id that travels in the header.

A preset dictionary lets a small message point back at names it never sent: the bytes a
version 2 table starts with (measurement, tag keys, field names and kinds, exactly as the
encoder writes them) for every table pantau's profiles produce, the `errors` keys, the reasons
of a failed poll and the sysObjectID prefixes the profiles match. It holds names, never values
read from devices, so it does not flatter the recordings the benches measure.

A dictionary is FROZEN once an agent may have used it: its bytes must never change, because a
collector can only inflate a message with the very dictionary it was compressed with
(tests/test_wire.py pins the SHA-256 of every id). New profiles do not need a new dictionary (a
name that is missing is simply sent as text); when enough has changed to matter, add the next
id with `python tools/wire_dict.py` (it prints a snapshot of the current profiles to paste
below), keep every older id so collectors still read messages compressed with it, upgrade the
collectors, then point `pantau.wire.model.DICTIONARY_ID` at the new id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

import msgspec

G, C, S, T = 0, 1, 2, 3  # Kind codes: gauge, counter, state, info = text (pantau.wire.Kind)

Schema = tuple[str, tuple[str, ...], tuple[tuple[str, int], ...]]

# --- dictionary 1: the built-in profiles of 2026-11-29 --------------------------------------

_OBJECT_IDS_1: Final = (
    "1.3.6.1.4.1.",
    "1.3.6.1.2.1.33.",
    "1.3.6.1.4.1.1070.",
    "1.3.6.1.4.1.1916.",
    "1.3.6.1.4.1.20246.",
    "1.3.6.1.4.1.2281.",
    "1.3.6.1.4.1.23695.",
    "1.3.6.1.4.1.2509.",
    "1.3.6.1.4.1.27662.",
    "1.3.6.1.4.1.33333.",
    "1.3.6.1.4.1.3373.",
    "1.3.6.1.4.1.37950.",
    "1.3.6.1.4.1.38595.",
    "1.3.6.1.4.1.41112.",
    "1.3.6.1.4.1.41809.",
    "1.3.6.1.4.1.4515.",
    "1.3.6.1.4.1.48690.",
    "1.3.6.1.4.1.6527.",
    "1.3.6.1.4.1.8000.",
    "1.3.6.1.4.1.12148.10.",
    "1.3.6.1.4.1.14988.1.",
    "1.3.6.1.4.1.17713.11.",
    "1.3.6.1.4.1.193.223.",
    "1.3.6.1.4.1.193.81.",
    "1.3.6.1.4.1.3052.14.",
    "1.3.6.1.4.1.3902.1082.",
    "1.3.6.1.4.1.885.3.",
    "1.3.6.1.4.1.1429.2.2.",
    "1.3.6.1.4.1.2011.2.123.",
    "1.3.6.1.4.1.2011.2.25.",
    "1.3.6.1.4.1.2011.6.164.",
    "1.3.6.1.4.1.30631.1.17.",
    "1.3.6.1.4.1.9.1.2661.",
    "1.3.6.1.4.1.318.1.3.2.",
    "1.3.6.1.4.1.318.1.3.27.",
    "1.3.6.1.4.1.8072.3.2.10.",
    "1.3.6.1.4.1.7571.100.1.1.7.10.",
)

_ERRORS_1: Final = (
    "no_such_object",
    "no_such_instance",
    "end_of_mib",
    "wrong_type",
    "oid_not_increasing",
    "too_many_rows",
    "deadline",
    "timeout",
    "auth",
    "engine",
    "resolve",
    "snmp_error",
)

# (measurement, tag keys in the order the poller adds them, columns): rarest first, since
# DEFLATE reaches the end of a dictionary with the shortest distances.
_TABLES_1: Final[tuple[Schema, ...]] = (
    (
        "power",
        (),
        (
            ("battery_charge_percent", G),
            ("battery_temperature_celsius", G),
            ("battery_voltage_volts", G),
            ("battery_runtime_minutes", G),
            ("battery_replace_needed", G),
            ("input_voltage_volts", G),
            ("input_frequency_hertz", G),
            ("output_voltage_volts", G),
            ("output_frequency_hertz", G),
            ("output_load_percent", G),
            ("output_current_amperes", G),
            ("on_battery", G),
            ("output_status", S),
        ),
    ),
    (
        "signal",
        ("entPhysicalIndex", "carrier"),
        (
            ("rsl_dbm", G),
            ("snr_db", G),
            ("tx_power_dbm", G),
            ("capacity_bps", G),
            ("rx_capacity_bps", G),
            ("modulation", S),
            ("rx_modulation", S),
        ),
    ),
    (
        "signal",
        (),
        (
            ("tx_power_dbm", G),
            ("rsl_dbm", G),
            ("capacity_bps", G),
            ("rx_capacity_bps", G),
            ("modulation", S),
            ("rx_modulation", S),
        ),
    ),
    (
        "signal",
        ("ifIndex", "ifName"),
        (
            ("rsl_dbm", G),
            ("tx_power_dbm", G),
            ("mse_db", G),
            ("xpi_db", G),
            ("capacity_bps", G),
            ("rx_capacity_bps", G),
        ),
    ),
    (
        "signal",
        ("entPhysicalIndex", "modem"),
        (
            ("rssi_dbm", G),
            ("rsrp_dbm", G),
            ("rsrq_db", G),
            ("snr_db", G),
            ("sinr_db", G),
            ("temperature_celsius", G),
            ("access_technology", S),
            ("roaming", S),
            ("service_status", S),
            ("modem_status", S),
            ("operator", T),
            ("cell_id", T),
            ("band", T),
        ),
    ),
    (
        "signal",
        ("tuner", "input"),
        (
            ("cn_db", G),
            ("link_margin_db", G),
            ("signal_level_dbm", G),
            ("uncorrected_errors", C),
            ("lock_state", S),
            ("lock", G),
        ),
    ),
    (
        "power",
        (),
        (
            ("dc_bus_voltage_volts", G),
            ("load_current_amperes", G),
            ("battery_current_amperes", G),
            ("battery_temperature_celsius", G),
            ("rectifier_current_amperes", G),
            ("charge_state", S),
            ("mains_ok", G),
            ("alarms_active", G),
        ),
    ),
    (
        "power",
        ("row", "sensor"),
        (
            ("raw_value", G),
            ("scale_exponent", G),
            ("measurement_unit", S),
        ),
    ),
    ("power", ("event", "sensor"), (("event_state", S),)),
    (
        "power",
        (),
        (
            ("dc_bus_voltage_volts", G),
            ("battery_voltage_volts", G),
            ("battery_current_amperes", G),
            ("rectifier_current_amperes", G),
            ("load_current_amperes", G),
            ("battery_runtime_minutes", G),
            ("mains_ok", G),
            ("mains_status", S),
            ("mains_failed_phases", G),
            ("system_status", S),
            ("charge_state", S),
            ("current_unit", S),
        ),
    ),
    ("power", ("phase", "sensor"), (("input_voltage_volts", G),)),
    (
        "power",
        ("rectifier", "model"),
        (
            ("rectifier_current_amperes", G),
            ("input_voltage_volts", G),
            ("rectifier_status", S),
        ),
    ),
    ("power", ("probe", "sensor"), (("battery_temperature_celsius", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("current_amperes", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("fan_rpm", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("frequency_hertz", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("humidity_percent", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("power_watts", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("temperature_celsius", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("voltage_volts", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("power_dbm", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("rx_power_dbm", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("tx_power_dbm", G),)),
    (
        "signal",
        ("ifIndex", "ifName"),
        (
            ("rsl_dbm", G),
            ("tx_power_dbm", G),
            ("snr_db", G),
            ("capacity_bps", G),
            ("modulation", S),
        ),
    ),
    (
        "signal",
        ("ifIndex", "ifName"),
        (
            ("tx_power_dbm", G),
            ("rsl_dbm", G),
        ),
    ),
    ("signal", ("entPhysicalIndex", "modem"), (("mse_db", G),)),
    ("signal", ("terminal_index", "terminal"), (("capacity_bps", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("current_amperes", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("fan_rpm", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("frequency_hertz", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("humidity_percent", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("power_watts", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("temperature_celsius", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("voltage_volts", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("power_dbm", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("rx_power_dbm", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("tx_power_dbm", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("current_amperes", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("fan_rpm", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("frequency_hertz", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("humidity_percent", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("power_watts", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("temperature_celsius", G),)),
    ("sensor", ("entPhysicalIndex", "sensor"), (("voltage_volts", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("power_dbm", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("rx_power_dbm", G),)),
    ("signal", ("entPhysicalIndex", "sensor"), (("tx_power_dbm", G),)),
    (
        "fs_nmu",
        (),
        (
            ("fan_state", S),
            ("power1_state", S),
            ("power2_state", S),
        ),
    ),
    (
        "signal",
        ("card", "slot"),
        (
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
        ),
    ),
    (
        "power",
        (),
        (
            ("fuel_percent", G),
            ("generator_battery_voltage_volts", G),
            ("generator_running", G),
            ("generator_status_bitmap", G),
            ("generator_frequency_hertz", G),
            ("generator_current_amperes", G),
            ("mains_frequency_hertz", G),
            ("input_voltage_volts", G),
            ("transfer_switch_status_bitmap", G),
        ),
    ),
    (
        "host",
        (),
        (
            ("memory_size_bytes", G),
            ("process_count", G),
        ),
    ),
    ("host", ("processor", "descr"), (("cpu_load_percent", G),)),
    (
        "host",
        ("storage_index", "storage", "storage_type"),
        (
            ("size_units", G),
            ("used_units", G),
            ("size_bytes", G),
            ("used_bytes", G),
            ("allocation_unit_bytes", G),
            ("allocation_failures", C),
        ),
    ),
    (
        "signal",
        ("ifIndex", "pon"),
        (
            ("tx_power_dbm", G),
            ("rx_power_dbm", G),
            ("temperature_celsius", G),
            ("voltage_volts", G),
            ("bias_current_amperes", G),
        ),
    ),
    ("pon", ("ifIndex", "pon"), (("onu_count", G),)),
    (
        "card",
        ("card", "card_type"),
        (
            ("oper_status", S),
            ("cpu_load_percent", G),
            ("memory_used_percent", G),
            ("temperature_celsius", G),
        ),
    ),
    (
        "signal",
        ("odu",),
        (
            ("tx_power_dbm", G),
            ("rsl_dbm", G),
        ),
    ),
    (
        "power",
        (),
        (
            ("dc_bus_voltage_volts", G),
            ("load_current_amperes", G),
            ("rectifier_current_amperes", G),
            ("rectifier_count", G),
            ("battery_current_amperes", G),
            ("battery_runtime_minutes", G),
            ("charge_state", S),
        ),
    ),
    (
        "power",
        ("battery_string", "sensor"),
        (
            ("battery_charge_percent", G),
            ("battery_current_amperes", G),
            ("battery_temperature_celsius", G),
            ("battery_status", S),
        ),
    ),
    (
        "power",
        ("ac_input", "sensor"),
        (
            ("input_voltage_volts", G),
            ("input_voltage_b_volts", G),
            ("input_voltage_c_volts", G),
            ("input_current_amperes", G),
            ("mains_ok", G),
            ("mains_status", S),
        ),
    ),
    (
        "signal",
        ("ifIndex", "modem"),
        (
            ("rssi_dbm", G),
            ("rsrq_db", G),
            ("rsrp_dbm", G),
            ("sinr_db", G),
            ("access_technology", S),
            ("technology", T),
            ("cell_id", T),
        ),
    ),
    (
        "signal",
        ("ifIndex", "port"),
        (
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("temperature_celsius", G),
            ("voltage_volts", G),
            ("bias_current_amperes", G),
            ("wavelength_nm", G),
            ("rx_los", S),
            ("tx_fault", S),
        ),
    ),
    (
        "signal",
        ("ifIndex", "ifName"),
        (
            ("connected", S),
            ("rsl_dbm", G),
            ("signal_quality_percent", G),
            ("mcs_index", G),
            ("capacity_bps", G),
        ),
    ),
    (
        "signal",
        ("ifIndex", "ifName"),
        (
            ("connected", S),
            ("rsl_dbm", G),
            ("signal_quality_percent", G),
            ("mcs_index", G),
            ("capacity_bps", G),
        ),
    ),
    (
        "power",
        (),
        (
            ("battery_voltage_volts", G),
            ("battery_current_amperes", G),
            ("battery_temperature_celsius", G),
            ("battery_charge_percent", G),
            ("load_current_amperes", G),
            ("solar_array_voltage_volts", G),
            ("solar_array_current_amperes", G),
            ("solar_charge_current_amperes", G),
            ("solar_charge_power_watts", G),
            ("charge_state", S),
            ("load_state", S),
        ),
    ),
    (
        "signal",
        ("ifIndex", "port"),
        (
            ("rssi_dbm", G),
            ("rsrp_dbm", G),
            ("rsrq_db", G),
            ("sinr_db", G),
            ("access_technology", S),
            ("registration_status", S),
            ("band", T),
            ("cell_id", T),
        ),
    ),
    ("signal", ("pdn", "apn"), (("pdn_connected", S),)),
    ("sensor", (), (("temperature_celsius", G),)),
    (
        "signal",
        ("ifIndex", "ifDescr"),
        (
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("temperature_celsius", G),
            ("voltage_volts", G),
            ("bias_current_amperes", G),
            ("alarm_bits", S),
        ),
    ),
    (
        "signal",
        (),
        (
            ("lock_state", S),
            ("lock", G),
            ("signal_level_dbm", G),
            ("cn_db", G),
            ("ebno_db", G),
        ),
    ),
    (
        "signal",
        ("modem",),
        (
            ("rssi_dbm", G),
            ("snr_db", G),
            ("sinr_db", G),
            ("rsrp_dbm", G),
            ("rsrq_db", G),
            ("technology", T),
            ("band", T),
        ),
    ),
    (
        "wan",
        ("wanId", "wan"),
        (
            ("state", S),
            ("rssi_dbm", G),
        ),
    ),
    (
        "signal",
        ("radio",),
        (
            ("tx_power_dbm", G),
            ("rsl_dbm", G),
            ("mse_db", G),
            ("capacity_bps", G),
            ("rx_capacity_bps", G),
            ("tx_power_dbm", G),
            ("rsl_dbm", G),
            ("mse_db", G),
            ("capacity_bps", G),
            ("rx_capacity_bps", G),
        ),
    ),
    (
        "signal",
        ("radio", "radioLabel"),
        (
            ("rsl_dbm", G),
            ("tx_power_dbm", G),
            ("mse_db", G),
        ),
    ),
    (
        "signal",
        ("link",),
        (
            ("capacity_bps", G),
            ("rx_capacity_bps", G),
            ("modulation", S),
            ("rx_modulation", S),
        ),
    ),
    (
        "power",
        ("module",),
        (
            ("dc_bus_voltage_volts", G),
            ("load_current_amperes", G),
            ("load_power_watts", G),
            ("module_current_status", T),
        ),
    ),
    (
        "power",
        ("port",),
        (
            ("load_current_amperes", G),
            ("port_current_status", T),
        ),
    ),
    (
        "environment",
        ("point", "sensor"),
        (
            ("temperature_celsius", G),
            ("contact", T),
            ("output", T),
        ),
    ),
    (
        "signal",
        ("modem", "modem_model"),
        (
            ("rssi_dbm", G),
            ("rsrp_dbm", G),
            ("rsrq_db", G),
            ("sinr_db", G),
            ("temperature_celsius", G),
            ("technology", T),
            ("operator", T),
            ("cell_id", T),
            ("registration", T),
            ("connection_state", T),
        ),
    ),
    (
        "signal",
        ("tuner",),
        (
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("lock_status", T),
            ("snr_db", G),
            ("signal_level_dbm", G),
        ),
    ),
    ("signal", (), (("tx_eirp_dbm", G),)),
    (
        "signal",
        ("station",),
        (
            ("rsl_dbm", G),
            ("rsl_chain1_dbm", G),
            ("capacity_bps", G),
            ("rx_capacity_bps", G),
        ),
    ),
    (
        "signal",
        ("demod",),
        (
            ("snr_db", G),
            ("signal_level_dbm", G),
            ("snr_db", G),
            ("signal_level_dbm", G),
        ),
    ),
    (
        "signal",
        (),
        (
            ("tx_power_dbm", G),
            ("modem_state", S),
        ),
    ),
    (
        "power",
        (),
        (
            ("battery_status", S),
            ("time_on_battery_seconds", G),
            ("battery_runtime_minutes", G),
            ("battery_charge_percent", G),
            ("battery_voltage_volts", G),
            ("battery_current_amperes", G),
            ("battery_temperature_celsius", G),
            ("output_source", S),
            ("on_battery", G),
            ("output_frequency_hertz", G),
            ("alarms_active", G),
        ),
    ),
    (
        "power",
        ("input_line",),
        (
            ("input_voltage_volts", G),
            ("input_frequency_hertz", G),
        ),
    ),
    (
        "power",
        ("output_line",),
        (
            ("output_voltage_volts", G),
            ("output_current_amperes", G),
            ("output_power_watts", G),
            ("output_load_percent", G),
        ),
    ),
    (
        "power",
        (),
        (
            ("dc_bus_voltage_volts", G),
            ("sense_voltage_volts", G),
            ("load_current_amperes", G),
            ("rectifier_current_amperes", G),
            ("battery_current_amperes", G),
            ("system_status", S),
        ),
    ),
    ("power", ("rectifier",), (("rectifier_current_amperes", G),)),
    (
        "power",
        ("shunt",),
        (
            ("current_amperes", G),
            ("shunt_type", S),
            ("shunt_alarm", S),
        ),
    ),
    (
        "host",
        (),
        (
            ("cpu_load_percent", G),
            ("memory_used_percent", G),
            ("temperature_celsius", G),
        ),
    ),
    (
        "signal",
        ("pon_index", "pon"),
        (
            ("tx_power_dbm", G),
            ("temperature_celsius", G),
            ("voltage_volts", G),
            ("bias_current_amperes", G),
        ),
    ),
    (
        "signal",
        ("onu", "onu_name"),
        (
            ("rx_power_dbm", G),
            ("tx_power_dbm", G),
            ("temperature_celsius", G),
            ("voltage_volts", G),
            ("bias_current_amperes", G),
        ),
    ),
    (
        "signal",
        (),
        (
            ("rsrp_dbm", G),
            ("rsrp_rx1_dbm", G),
            ("rsrq_db", G),
            ("rssi_dbm", G),
            ("sinr_db", G),
            ("tx_power_dbm", G),
            ("dl_mcs", G),
            ("ul_mcs", G),
            ("channel_bandwidth_hz", G),
            ("physical_cell_id", T),
            ("band", T),
        ),
    ),
    (
        "card",
        ("card", "card_type"),
        (
            ("oper_status", S),
            ("cpu_load_percent", G),
            ("memory_used_percent", G),
            ("temperature_celsius", G),
            ("power_watts", G),
            ("voltage_volts", G),
            ("current_amperes", G),
        ),
    ),
    ("onu", ("onu",), (("distance_meters", G),)),
    (
        "system",
        (),
        (
            ("uptime_seconds", G),
            ("name", T),
            ("descr", T),
            ("object_id", T),
        ),
    ),
    (
        "interface",
        ("ifIndex", "ifName", "ifDescr", "ifAlias"),
        (
            ("oper_status", S),
            ("admin_status", S),
            ("speed_bps", G),
            ("in_octets", C),
            ("out_octets", C),
            ("in_errors", C),
            ("out_errors", C),
            ("in_discards", C),
            ("out_discards", C),
        ),
    ),
)

# ---------------------------------------------------------------------------------------------

_TABLE_HEADER: Final = b"\x97"
"""MessagePack header of a version 2 table: an array of 7 (pantau.wire.model._Table)."""


def _schema_bytes(schema: Schema) -> bytes:
    """The first bytes of a version 2 table of this shape, as pantau.wire.codec encodes them."""
    measurement, tag_keys, columns = schema
    enc = msgspec.msgpack.encode
    return (
        _TABLE_HEADER
        + enc(measurement)
        + enc(list(tag_keys))
        + enc([[name, kind] for name, kind in columns])
    )


def _tag_variants(tag_keys: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The agent leaves out tags whose value is empty: the index alone, each descriptive tag
    left out in turn, then every tag (last: the most likely)."""
    if len(tag_keys) > 1:
        yield tag_keys[:1]
        if len(tag_keys) > 2:
            for i in range(1, len(tag_keys)):
                yield tag_keys[:i] + tag_keys[i + 1 :]
    yield tag_keys


def _build(object_ids: Iterable[str], errors: Iterable[str], tables: Iterable[Schema]) -> bytes:
    enc = msgspec.msgpack.encode
    parts = [oid.encode() for oid in object_ids]
    parts += [enc(reason) for reason in errors]
    for measurement, tag_keys, columns in tables:
        for keys in _tag_variants(tag_keys):
            parts.append(_schema_bytes((measurement, keys, columns)))
    return b"".join(parts)


DICTIONARIES: Final[dict[int, bytes]] = {
    1: _build(_OBJECT_IDS_1, _ERRORS_1, _TABLES_1),
}
"""Every dictionary a collector may meet, by id (1…255; 0 in the header means uncompressed)."""
