"""Device profiles: what a kind of device exposes, as data, compiled once into a poll plan.

`model` is the profile file format (strict, with file:line errors), `mibs` resolves symbolic
MIB names at load time, `plan` compiles profiles into the numeric form the poller runs, and
`transforms` holds the row transforms a profile may name. The shipped profiles themselves are
data in config/profiles/, installed as the package `agent.profiles.shipped`.
"""

from agent.profiles.model import Profile, builtin_profiles, load_profile_file
from agent.profiles.transforms import entity_sensor_field_names

__all__ = ["Profile", "builtin_profiles", "entity_sensor_field_names", "load_profile_file"]
