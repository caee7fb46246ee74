"""pantau agent: polls a site's SNMP devices and publishes sample sets over MQTT."""

__version__ = "0.1.0"
