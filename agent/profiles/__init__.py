"""Built-in device profiles, shipped as YAML data (see docs/profiles.md)."""
