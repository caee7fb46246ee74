"""pantau's shared kernel: what the site agent and the NOC collector both need.

The wire format, settings loading, logging, systemd notification, backoff and the exception
tree live here. This package imports neither `agent` nor `collector`; both import it.
"""

__version__ = "0.1.0"
