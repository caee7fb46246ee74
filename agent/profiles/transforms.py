"""Row transforms: where a table's rows need more than scaling to become vendor-neutral values.

`entity_sensor` (ENTITY-SENSOR-MIB, RFC 3433): every row is a sensor whose type, scale and
precision are columns of the same row. A reading is value × 10^(3·(scale−9)) × 10^(−precision)
in the type's base unit; optical power in watts becomes dBm (10·log10(mW)), and is named rx or tx
from the sensor's name. Rows that are not operational, or read zero or negative watts, give no
power value rather than a fake one. A row whose type, scale, precision or reading cannot be read
(entPhySensorScale 200, a precision of a million) gives no value and counts `bad_value`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable

from pantau.wire import Field, Kind

# entPhySensorType → (field name, unit)
SENSOR_TYPES: dict[int, tuple[str, str]] = {
    3: ("voltage_volts", "V"),  # voltsAC
    4: ("voltage_volts", "V"),  # voltsDC
    5: ("current_amperes", "A"),
    6: ("power_watts", "W"),
    7: ("frequency_hertz", "Hz"),
    8: ("temperature_celsius", "°C"),
    9: ("humidity_percent", "%"),
    10: ("fan_rpm", "rpm"),
    14: ("power_dbm", "dBm"),  # dBm, as some vendors report optics directly
}
_RX = re.compile(r"\b(rx|receive[dr]?|input)\b", re.I)
_TX = re.compile(r"\b(tx|transmit(ted|ter)?|output)\b", re.I)
SIGNAL_MEASUREMENT = "signal"
SCALES = range(1, 18)  # entPhySensorScale: yocto(1) .. units(9) .. yotta(17)
PRECISIONS = range(-8, 10)  # entPhySensorPrecision: -8 .. 9


def entity_sensor(
    values: dict[str, int | float | str],
    tags: dict[str, str],
    measurement: str,
    precision_offset: int = 0,
    *,
    errors: Counter[str] | None = None,
) -> tuple[str, list[Field]]:
    """values: the row's raw `type`, `scale`, `precision`, `value`, optional `status` and
    `units_display`. `precision_offset` (a profile's transform_options) corrects vendors whose
    precision is off by decades (ExtremeXOS reports optical power in 0.1 µW labelled µW).
    A row that cannot be read is counted in `errors` (`bad_value`) and gives no value."""

    def bad() -> tuple[str, list[Field]]:
        if errors is not None:
            errors["bad_value"] += 1
        return measurement, []

    try:
        kind = int(values["type"])
        raw = float(values["value"])
        scale = int(values.get("scale", 9))
        precision = int(values.get("precision", 0))
        status = int(values.get("status", 1))
    except KeyError:
        return measurement, []  # a column the device lacks: counted where it was read
    except (TypeError, ValueError, OverflowError):
        return bad()
    if kind == 1 and "dbm" in str(values.get("units_display", "")).lower():
        kind = 14  # other(1) with units "dBm": how IOS-XE reports transceiver power
    if status != 1:  # 1 = ok; unavailable/nonoperational: no reading
        return measurement, []
    if kind not in SENSOR_TYPES:
        return measurement, []
    if scale not in SCALES or precision not in PRECISIONS or not math.isfinite(raw):
        return bad()
    name, _unit = SENSOR_TYPES[kind]
    if kind == 6:
        precision += precision_offset  # the vendor quirk concerns optical power only
    try:
        reading = raw * 10.0 ** (3 * (scale - 9)) * 10.0 ** (-precision)
    except OverflowError:
        return bad()  # a precision_offset that leaves the float range
    if not math.isfinite(reading):
        return bad()
    label = tags.get("sensor", "")
    if kind in (6, 14):
        if kind == 6:
            if reading <= 0:
                return SIGNAL_MEASUREMENT, []  # no light, or a vendor's "absent" reading
            reading = 10 * math.log10(reading * 1000)
        direction = "rx" if _RX.search(label) else "tx" if _TX.search(label) else ""
        name = f"{direction}_power_dbm" if direction else "power_dbm"
        return SIGNAL_MEASUREMENT, [Field(name, Kind.GAUGE, round(reading, 3))]
    return measurement, [Field(name, Kind.GAUGE, round(reading, 6))]


def entity_sensor_field_names() -> list[str]:
    """Every field name the entity_sensor transform can give (the wire dictionary lists them)."""
    return sorted({name for name, _unit in SENSOR_TYPES.values()})


# Called as plan.Transform with a profile's transform_options bound first (functools.partial).
TRANSFORMS: dict[str, Callable[..., tuple[str, list[Field]]]] = {"entity_sensor": entity_sensor}
