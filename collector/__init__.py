"""pantau collector: takes every site's sample sets off MQTT, writes InfluxDB, serves Prometheus."""

__version__ = "0.1.0"
