"""Built-in device profiles (YAML data), installed as the package `agent.profiles`.

See docs/profiles.md for the format and docs/metrics.md for the vendor-neutral names.
"""
