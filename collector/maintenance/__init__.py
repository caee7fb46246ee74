"""Planned maintenance windows (docs/maintenance.md): declared by an operator, kept in a file
the collector owns, silenced in Alertmanager, written to InfluxDB for availability, shown on the
status page. `window` (the record, its checks, its line protocol), `store` (the durable file),
`alertmanager` (silences through API v2), `manager` (the windows' life), `api` (HTTP),
`cli` (`pantau-collector maintenance`)."""
