"""Cellular backhaul profiles (RSRP, RSRQ, SINR, RSSI, technology, operator), proven against
recordings served by snmpsim.

Every test polls a recording through the real agent with profile detection (no `profiles:` in
the device config), checks that detection chose the profile, and compares exact values with the
raw recording lines they come from (quoted in the comments). sentinel-teltonika.snmprec is a
small recording crafted from the RUT955/TRB500 ones (same OIDs and encodings, values changed) to
show RutOS's "N/A" and empty answers."""

from __future__ import annotations

from pathlib import Path

from devstack.polling import field_values, fields, poll_recording
from devstack.servers import SnmpSim

# --- Teltonika --------------------------------------------------------------------------------


def test_teltonika_rut955(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "rutos-rutx_rut955")
    assert ss.up
    # sysObjectID is net-snmp's 1.3.6.1.4.1.8072.3.2.10; sysDescr "Linux RUT955 5.4.291 ...";
    # 1.3.6.1.4.1.48690.1.3.0|4|RUT955V03XXX (productCode)
    assert "teltonika" in poller.plan.profiles
    # 1.3.6.1.4.1.48690.2.2.1.4.1|4|EG25-G (mModel)
    assert fields(ss, modem="1", modem_model="EG25-G") == {
        "rssi_dbm": -84,  # 1.3.6.1.4.1.48690.2.2.1.12.1|2|-84
        "rsrp_dbm": -112,  # 1.3.6.1.4.1.48690.2.2.1.20.1|2|-112
        "rsrq_db": -9,  # 1.3.6.1.4.1.48690.2.2.1.21.1|2|-9
        "sinr_db": 12,  # 1.3.6.1.4.1.48690.2.2.1.19.1|2|12
        "temperature_celsius": 41,  # 1.3.6.1.4.1.48690.2.2.1.17.1|2|410 (0.1 °C)
        "technology": "LTE",  # 1.3.6.1.4.1.48690.2.2.1.16.1|4|LTE
        "operator": "Odido DR",  # 1.3.6.1.4.1.48690.2.2.1.13.1|4|Odido DR
        "cell_id": "60859218",  # 1.3.6.1.4.1.48690.2.2.1.18.1|4|60859218
        "registration": "Roaming",  # 1.3.6.1.4.1.48690.2.2.1.11.1|4|Roaming
        "connection_state": "Connected",  # 1.3.6.1.4.1.48690.2.2.1.15.1|4|Connected
    }


def test_teltonika_trb500_text_values(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """The TRB500 answers the same objects as OCTET STRINGs. Its sysObjectID is net-snmp's and
    its sysDescr names a renamed host ("Linux x.y.fi 4.14.336 ..."): detection knows it by the
    model code TELTONIKA-MIB answers (match.oid_value), without extra_profiles."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, "rutos-rutx_trb500")
    assert ss.up
    # 1.3.6.1.4.1.48690.1.3.0|4|TRB50000XXXX (productCode; deviceName .1.2.0 is "xxx-gw01")
    assert "teltonika" in poller.plan.profiles
    assert fields(ss, modem="1", modem_model="RG501Q-EU") == {
        "rssi_dbm": -50,  # 1.3.6.1.4.1.48690.2.2.1.12.1|4|-50
        "rsrp_dbm": -86,  # 1.3.6.1.4.1.48690.2.2.1.20.1|4|-86
        "rsrq_db": -16,  # 1.3.6.1.4.1.48690.2.2.1.21.1|4|-16
        "sinr_db": -5,  # 1.3.6.1.4.1.48690.2.2.1.19.1|4|-5
        "temperature_celsius": 45,  # 1.3.6.1.4.1.48690.2.2.1.17.1|2|450
        "technology": "5G-NSA",  # 1.3.6.1.4.1.48690.2.2.1.16.1|4|5G-NSA
        "operator": "Telia FI",  # 1.3.6.1.4.1.48690.2.2.1.13.1|4|Telia FI
        "cell_id": "11121489",  # 1.3.6.1.4.1.48690.2.2.1.18.1|4|11121489
        "registration": "Registered, home",  # 1.3.6.1.4.1.48690.2.2.1.11.1|4|Registered, home
        "connection_state": "Connected",  # 1.3.6.1.4.1.48690.2.2.1.15.1|4|Connected
    }
    assert poller.errors.get("wrong_type", 0) == 0


def test_teltonika_not_claimed_by_other_linux(tmp_path: Path, snmpsim: SnmpSim) -> None:
    # Another net-snmp Linux box (same generic sysObjectID, no TELTONIKA-MIB) is not claimed
    ss, poller = poll_recording(tmp_path, snmpsim.port, "linux_powermon")
    assert ss.up
    assert "teltonika" not in poller.plan.profiles


def test_teltonika_na_is_absent(tmp_path: Path, snmpsim: SnmpSim) -> None:
    """sentinel-teltonika.snmprec: a dual-modem RUTX11 whose second modem has no service."""
    ss, poller = poll_recording(tmp_path, snmpsim.port, "sentinel-teltonika")
    # no productCode line: detected by the sysDescr fallback "Linux RUTX11 5.4.291 ..."
    assert "teltonika" in poller.plan.profiles
    modem1 = fields(ss, modem="1", modem_model="EG06-E")
    assert modem1["sinr_db"] == 9.4  # 1.3.6.1.4.1.48690.2.2.1.19.1|4|9.4
    assert modem1["rssi_dbm"] == -71  # 1.3.6.1.4.1.48690.2.2.1.12.1|2|-71
    assert modem1["temperature_celsius"] == 38.5  # 1.3.6.1.4.1.48690.2.2.1.17.1|2|385
    # modem 2: ...12.2|4|N/A, .20.2|4|N/A, .19.2|4|N/A, .21.2|4| (empty), .13.2|4|N/A,
    # .16.2|4| (empty), .18.2|4|N/A -> none of them is published
    assert fields(ss, modem="2", modem_model="EG06-E") == {
        "temperature_celsius": 37.2,  # ...17.2|2|372
        "registration": "Not registered",  # ...11.2|4|Not registered
        "connection_state": "Disconnected",  # ...15.2|4|Disconnected
    }
    assert poller.errors.get("wrong_type", 0) == 0  # "N/A" is a sentinel, not an anomaly


# --- Cisco IR1101 -----------------------------------------------------------------------------


def test_cisco_ir1101(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "iosxe_ir1101")
    assert ss.up
    assert "cisco-cellular" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.9.1.2661
    # 1.3.6.1.2.1.47.1.1.1.1.7.4002|4|Modem on Cellular0/1/0
    assert fields(ss, entPhysicalIndex="4002", modem="Modem on Cellular0/1/0") == {
        "rssi_dbm": -66,  # 1.3.6.1.4.1.9.9.661.1.3.4.1.1.1.4002|2|-66
        "rsrp_dbm": -89,  # 1.3.6.1.4.1.9.9.817.1.1.1.1.1.1.4002|2|-89
        "rsrq_db": -7,  # 1.3.6.1.4.1.9.9.817.1.1.1.1.1.2.4002|2|-70 (0.1 dB)
        "snr_db": 13.8,  # 1.3.6.1.4.1.9.9.817.1.1.1.1.1.3.4002|2|138 (0.1 dB)
        "temperature_celsius": 39,  # 1.3.6.1.4.1.9.9.661.1.1.1.12.4002|2|39
        "access_technology": 10,  # 1.3.6.1.4.1.9.9.661.1.3.2.1.5.4002|2|10 (lte)
        "roaming": 2,  # 1.3.6.1.4.1.9.9.661.1.3.2.1.6.4002|2|2 (roaming)
        "modem_status": 3,  # 1.3.6.1.4.1.9.9.661.1.3.1.1.6.4002|2|3 (onLine)
        "cell_id": "39424",  # 1.3.6.1.4.1.9.9.661.1.3.2.1.13.4002|66|39424
        "band": "20",  # 1.3.6.1.4.1.9.9.817.1.1.1.1.1.6.4002|66|20
        # cwceLteCurrSinr and c3gGsmServiceProvider are not in the recording: absent
    }


# --- Peplink / Pepwave ------------------------------------------------------------------------


def test_pepwave_max_hd4(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "pepwave")
    assert ss.up
    assert "peplink" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.27662
    # modem 0 is on 3G: 1.3.6.1.4.1.23695.200.1.12.1.1.1.{4,5,7,8}.0|2|-9999 -> only RSSI
    assert fields(ss, modem="0") == {"rssi_dbm": -68}  # ...12.1.1.1.3.0|2|-68
    assert fields(ss, modem="1") == {
        "rssi_dbm": -58,  # 1.3.6.1.4.1.23695.200.1.12.1.1.1.3.1|2|-58
        "sinr_db": 28,  # 1.3.6.1.4.1.23695.200.1.12.1.1.1.5.1|2|28
        "rsrp_dbm": -85,  # 1.3.6.1.4.1.23695.200.1.12.1.1.1.7.1|2|-85
        "rsrq_db": -9,  # 1.3.6.1.4.1.23695.200.1.12.1.1.1.8.1|2|-9
        # sentinel: ...12.1.1.1.4.1|2|-9999 (SNR not available) -> no snr_db
    }
    assert fields(ss, modem="2") == {
        "rssi_dbm": -81,
        "sinr_db": 0,
        "rsrp_dbm": -113,
        "rsrq_db": -13,
    }  # SINR 0 dB is real
    assert field_values(ss, "signal", "snr_db") == {}
    # 1.3.6.1.4.1.23695.2.1.2.1.2.2|4|Cellular 1, .3.2|2|3 (connected), .5.2|2|-68
    assert fields(ss, "wan", wanId="2", wan="Cellular 1") == {"state": 3, "rssi_dbm": -68}
    # a wired WAN: .5.0|2|-9999 -> no rssi_dbm; .3.0|2|2 disconnected
    assert fields(ss, "wan", wanId="0", wan="WAN 1") == {"state": 2}
    # a disabled Wi-Fi WAN: .5.7|2|0 -> no rssi_dbm; .3.7|2|1 disabled
    assert fields(ss, "wan", wanId="7", wan="Wi-Fi WAN") == {"state": 1}


# --- MikroTik LTE -----------------------------------------------------------------------------


def test_mikrotik_ltap_mini(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "routeros_ltap-mini")
    assert ss.up
    assert "mikrotik-lte" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.14988.1
    # 1.3.6.1.4.1.14988.1.1.14.1.1.2.3|4|lte1 (mtxrInterfaceStatsName)
    assert fields(ss, ifIndex="3", modem="lte1") == {
        "rsrq_db": -10,  # 1.3.6.1.4.1.14988.1.1.16.1.1.3.3|2|-10
        "rsrp_dbm": -105,  # 1.3.6.1.4.1.14988.1.1.16.1.1.4.3|2|-105
        "sinr_db": 11,  # 1.3.6.1.4.1.14988.1.1.16.1.1.7.3|2|11
        "access_technology": 7,  # 1.3.6.1.4.1.14988.1.1.16.1.1.6.3|2|7 (eutran)
        "technology": "Evolved 3G (LTE)",  # 1.3.6.1.4.1.14988.1.1.16.1.1.14.3|4|Evolved 3G (LTE)
        "cell_id": "2100006",  # 1.3.6.1.4.1.14988.1.1.16.1.1.5.3|2|2100006
        # sentinel: 1.3.6.1.4.1.14988.1.1.16.1.1.2.3|2|0 (RSSI not reported) -> no rssi_dbm
    }


# --- ZMTEL ------------------------------------------------------------------------------------


def test_zmtel_ot350(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "zmtel")
    assert ss.up
    assert "zmtel" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.38595.10 (sysDescr "--")
    assert fields(ss) == {
        "rsrp_dbm": -95,  # 1.3.6.1.4.1.38595.10.3.11.0|2|-95
        "rsrp_rx1_dbm": -94,  # 1.3.6.1.4.1.38595.10.3.12.0|2|-94
        "rsrq_db": -9,  # 1.3.6.1.4.1.38595.10.3.13.0|2|-9
        "rssi_dbm": -54,  # 1.3.6.1.4.1.38595.10.3.14.0|2|-54
        "sinr_db": 26,  # 1.3.6.1.4.1.38595.10.3.15.0|2|26
        "tx_power_dbm": 0,  # 1.3.6.1.4.1.38595.10.3.18.0|2|0
        "dl_mcs": 28,  # 1.3.6.1.4.1.38595.10.3.6.0|2|28
        "ul_mcs": 22,  # 1.3.6.1.4.1.38595.10.3.7.0|2|22
        "channel_bandwidth_hz": 20_000_000,  # 1.3.6.1.4.1.38595.10.3.10.0|66|20000 (kHz)
        "physical_cell_id": "36",  # 1.3.6.1.4.1.38595.10.3.19.0|2|36
        "band": "42_43",  # 1.3.6.1.4.1.38595.10.1.12.0|4|42_43
    }


# --- Nokia 7705 SAR-Hc ------------------------------------------------------------------------


def test_nokia_sar_hc(tmp_path: Path, snmpsim: SnmpSim) -> None:
    ss, poller = poll_recording(tmp_path, snmpsim.port, "timos_hc")
    assert ss.up
    assert "nokia-cellular" in poller.plan.profiles  # sysObjectID 1.3.6.1.4.1.6527.1.3.14
    # 1.3.6.1.2.1.31.1.1.1.1.35684352|4|1/1/1
    assert fields(ss, ifIndex="35684352", port="1/1/1") == {
        "rssi_dbm": -51,  # 1.3.6.1.4.1.6527.3.1.2.109.3.1.1.1.8.35684352|2|-51
        "rsrp_dbm": -70,  # 1.3.6.1.4.1.6527.3.1.2.109.3.1.1.1.9.35684352|2|-70
        "rsrq_db": -8,  # 1.3.6.1.4.1.6527.3.1.2.109.3.1.1.1.11.35684352|2|-8
        "sinr_db": 26.4,  # 1.3.6.1.4.1.6527.3.1.2.109.3.1.1.1.12.35684352|2|264
        "access_technology": 1,  # ...109.3.1.1.1.3.35684352|2|1 (lte)
        "registration_status": 5,  # ...109.3.1.1.1.2.35684352|2|5 (registered-roaming)
        "band": "3",  # ...109.3.1.1.1.4.35684352|66|3
    }
    # the second, unused port: ...1.1.1.{8,9,11}.35717120|2|0 (not known) and
    # ...1.1.1.12.35717120|2|-200 (SINR floor) and band ...1.1.1.4.35717120|66|0 -> absent
    assert fields(ss, ifIndex="35717120", port="1/1/2") == {
        "access_technology": 0,
        "registration_status": 0,
    }
    # 1.3.6.1.4.1.6527.3.1.2.109.3.1.4.1.1.35684352.1|2|1, .8.35684352.1|4|mpls.tampnet
    assert fields(ss, pdn="35684352.1", apn="mpls.tampnet") == {"pdn_connected": 1}
    assert fields(ss, pdn="35717120.1") == {"pdn_connected": 0}  # APN empty: no tag
