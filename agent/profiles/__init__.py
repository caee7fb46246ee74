"""Device profiles: what a kind of device exposes, as data, compiled once into a poll plan.

`model` is the profile file format (strict, with file:line errors), `mibs` resolves symbolic
MIB names at load time, `plan` compiles profiles into the numeric form the poller runs, and
`transforms` holds the row transforms a profile may name. The shipped profiles themselves are
data in config/profiles/, installed as the package `agent.profiles.shipped`. `spec` holds the
plain objects the running agent keeps; only `model` imports pydantic, and nothing here imports
it for the package (`pantau-agent run` never loads pydantic, docs/performance.md).
"""

from typing import Any

from agent.profiles.transforms import entity_sensor_field_names

__all__ = ["Profile", "builtin_profiles", "entity_sensor_field_names", "load_profile_file"]


def __getattr__(name: str) -> Any:
    """The validating side (`model`), loaded when first named."""
    if name in ("Profile", "builtin_profiles", "load_profile_file"):
        from agent.profiles import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
