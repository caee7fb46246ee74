"""Availability from what the sites saw (docs/availability.md): per device, site, uplink and link.

`query` reads InfluxDB over InfluxQL, `timeline` and `compute` turn what it read into states
over time and figures (pure), `report_csv` and `report_html` write the monthly report, `report`
runs it for the CLI and `live` keeps month-to-date figures for /metrics.
"""
