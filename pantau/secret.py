"""Secrets (passwords, communities, keys, tokens) once read: never printed.

A module of its own, without pydantic or YAML, so that the running agent can hold the secrets
its validating process read (agent/runtime.py) without loading the config machinery;
pantau.settings reads them and re-exports the class.
"""

from __future__ import annotations


class Secret:
    """A password, community, key or token read from a file or the environment.

    It prints as `<secret>` in every repr, str, f-string and traceback; only reveal() gives the
    value, at the one place that hands it to a library."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
